import COpenSSL

/// One-shot HMAC-SHA256 (RFC 2104) through OpenSSL, for webhook signatures.
/// Not for a hot path: each call sets up a fresh context (a few microseconds).
enum HMACSHA256 {
    /// Bytes in a MAC.
    static let length = 32

    /// SHA-256, fetched once: `EVP_sha256()` would look the provider's
    /// implementation up again on every call (OpenSSL 3's implicit fetch).
    private static let digest: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("OpenSSL has no SHA256") }
        return md
    }()

    /// HMAC-SHA256(key, message). `key` must not be empty.
    static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        var outLength: UInt32 = 0
        precondition(!key.isEmpty, "an HMAC key is never empty here")
        // A nil base address (empty message) is fine: OpenSSL reads no bytes.
        let result = key.withUnsafeBufferPointer { key in
            message.withUnsafeBufferPointer { message in
                HMAC(digest, key.baseAddress, Int32(key.count), message.baseAddress, message.count, &out, &outLength)
            }
        }
        guard result != nil, outLength == UInt32(length) else {
            fatalError(openSSLFailure("HMAC(SHA256)"))
        }
        return out
    }
}
