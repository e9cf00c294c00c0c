import Chat

/// The spellings of base64 that other parties use: browsers hand out
/// subscription keys in base64url with or without `=`, and Standard Webhooks
/// writes secrets and signatures in standard base64 with `=`.
extension Base64 {
    /// `bytes` in `alphabet`, padded with `=` to a multiple of 4 symbols.
    static func encodePadded(_ bytes: [UInt8], alphabet: Alphabet) -> String {
        let text = encode(bytes, alphabet: alphabet)
        return text + String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
    }

    /// The bytes `text` spells in `alphabet`, padded or not; nil if it is not
    /// base64 (padding, where present, must be the right amount).
    static func decodeAllowingPadding(_ text: Substring, alphabet: Alphabet) -> [UInt8]? {
        let unpadded = text.utf8.last == UInt8(ascii: "=") ? text.prefix { $0 != "=" } : text
        let padding = text.utf8.count - unpadded.utf8.count
        if padding > 0 {
            guard text.utf8.count % 4 == 0, padding <= 2, text.utf8.suffix(padding).allSatisfy({ $0 == UInt8(ascii: "=") })
            else { return nil }
        }
        return decode(unpadded, alphabet: alphabet)
    }
}
