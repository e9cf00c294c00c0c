import Chat

/// Base64 with `=` padding (RFC 4648 section 4), as MIME bodies, RFC 2047
/// encoded-words and SASL responses write it. Chat's `Base64` leaves the padding
/// out; the arithmetic is the same.
enum PaddedBase64 {
    static func encode(_ bytes: [UInt8]) -> String {
        let text = Base64.encode(bytes, alphabet: .standard)
        return text + String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
    }
}
