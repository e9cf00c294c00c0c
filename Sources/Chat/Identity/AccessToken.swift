import COpenSSL

/// Opaque bearer tokens (SPEC section 2): `pt_` and 32 random bytes in URL-safe
/// base64 without padding, 46 characters in all. The prefix makes a token found
/// in a log or a leak recognisable (and lets secret scanners match it).
///
/// Only `hash(token)`, the SHA-256 of the token's text, is ever stored. A token
/// has 256 bits of entropy, so a plain hash suffices (no salt, no slow hash) and
/// looking one up costs a digest (about 0.18 us) and an index probe: the MQTT
/// CONNECT fast path, fine on an event loop. Pure and thread-safe.
public enum AccessToken {
    /// What every token starts with.
    public static let prefix = "pt_"
    /// Random bytes in a token.
    public static let entropyBytes = 32
    /// Characters in a token: the prefix and 43 base64 symbols.
    public static let length = prefix.utf8.count + (entropyBytes * 4 + 2) / 3

    /// A fresh token, to hand to the client once, and its hash, to store.
    public static func make() -> (token: String, hash: [UInt8]) {
        let token = prefix + Base64.encode(RandomBytes.make(entropyBytes), alphabet: .urlSafe)
        return (token, hash(token))
    }

    /// SHA-256 of the token's UTF-8 text (32 bytes): the database key.
    public static func hash(_ token: String) -> [UInt8] {
        var text = token
        return text.withUTF8 { SHA256.digest($0) }
    }

    /// SHA-256 of a token given as bytes, e.g. an MQTT CONNECT password field.
    public static func hash(_ token: [UInt8]) -> [UInt8] {
        token.withUnsafeBufferPointer { SHA256.digest($0) }
    }

    /// Whether `candidate` is shaped like a token (prefix, length, alphabet). Says
    /// nothing about whether it was issued; it lets a login tell a token in the
    /// password field from a password without hashing anything.
    public static func isWellFormed(_ candidate: [UInt8]) -> Bool {
        guard candidate.count == length, candidate.starts(with: prefix.utf8) else { return false }
        let body = String(decoding: candidate.dropFirst(prefix.utf8.count), as: UTF8.self)
        return Base64.decode(body[...], alphabet: .urlSafe)?.count == entropyBytes
    }

    /// `isWellFormed` for text.
    public static func isWellFormed(_ candidate: String) -> Bool {
        isWellFormed(Array(candidate.utf8))
    }
}

/// One-shot SHA-256 through OpenSSL's EVP interface.
enum SHA256 {
    /// The provider's implementation, fetched once: with `EVP_sha256()` every
    /// `EVP_Digest` looks it up again (OpenSSL 3's implicit fetch; 330 ns against
    /// 180 ns for a token). A reused `EVP_MD_CTX` would save 90 ns more but needs
    /// one per thread, which is not worth it next to the database lookup.
    private static let algorithm: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("OpenSSL has no SHA256") }
        return md
    }()

    static func digest(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        // A nil base address (empty input) is fine: OpenSSL reads no bytes.
        guard EVP_Digest(bytes.baseAddress, bytes.count, &out, &length, algorithm, nil) == 1, length == 32 else {
            fatalError("EVP_Digest(SHA256) failed")
        }
        return out
    }
}
