import COpenSSL

/// HKDF-SHA256 (RFC 5869), extract then expand, through OpenSSL's KDF
/// interface: the key schedule of Web Push encryption (RFC 8291, RFC 8188).
enum HKDF {
    /// The KDF, fetched once.
    private static let kdf: OpaquePointer = {
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else { fatalError(openSSLFailure("EVP_KDF_fetch(HKDF)")) }
        return kdf
    }()

    /// `length` bytes of HKDF-SHA256 output keying material for `ikm`, `salt`
    /// and `info`. Traps if OpenSSL refuses valid input: that means a broken
    /// installation, and no message could be encrypted anyway.
    static func sha256(ikm: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        precondition((1...255 * 32).contains(length), "HKDF-SHA256 gives 1 to 8160 bytes")
        guard let context = EVP_KDF_CTX_new(kdf) else { fatalError(openSSLFailure("EVP_KDF_CTX_new")) }
        defer { EVP_KDF_CTX_free(context) }
        let parameters = OpenSSLParameters()
        parameters.add("digest", utf8: "SHA256")
        parameters.add("key", octets: ikm)
        parameters.add("salt", octets: salt)
        parameters.add("info", octets: info)
        var out = [UInt8](repeating: 0, count: length)
        let ok = parameters.withArray { EVP_KDF_derive(context, &out, length, $0) }
        guard ok == 1 else { fatalError(openSSLFailure("EVP_KDF_derive(HKDF)")) }
        return out
    }
}
