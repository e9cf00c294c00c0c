import Chat

/// base64url (unpadded) test data as bytes; traps on a typo in a test vector.
func base64URL(_ text: String) -> [UInt8] {
    guard let bytes = Base64.decode(text[...], alphabet: .urlSafe) else { fatalError("bad base64url in a test: \(text)") }
    return bytes
}

func base64URL(_ bytes: [UInt8]) -> String { Base64.encode(bytes, alphabet: .urlSafe) }
