import COpenSSL

/// ECDSA over P-256 with SHA-256, in the JOSE form (RFC 7518 section 3.4): the
/// signature is r and s, each left-padded to 32 bytes, 64 bytes in all.
/// OpenSSL speaks DER (`SEQUENCE { INTEGER r, INTEGER s }`), hence the
/// conversions both ways.
enum ES256Signature {
    static let length = 64

    /// SHA-256, fetched once rather than looked up by every `EVP_sha256()` use.
    private static let sha256: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("OpenSSL has no SHA256") }
        return md
    }()

    /// The raw r||s signature of `message` by `key`.
    static func sign(_ message: [UInt8], with key: P256Key) throws(WebPushError) -> [UInt8] {
        precondition(key.hasPrivateKey, "signing needs a private key")
        guard let context = EVP_MD_CTX_new() else { throw .openSSL(openSSLFailure("EVP_MD_CTX_new")) }
        defer { EVP_MD_CTX_free(context) }
        var der = [UInt8](repeating: 0, count: 80)  // DER of two 32-byte integers is at most 72
        var length = der.count
        guard EVP_DigestSignInit(context, nil, sha256, nil, key.pkey) == 1,
            EVP_DigestSign(context, &der, &length, message, message.count) == 1
        else { throw .openSSL(openSSLFailure("EVP_DigestSign(ES256)")) }
        return try raw(fromDER: Array(der.prefix(length)))
    }

    /// Whether `signature` (raw r||s) is `key`'s signature of `message`.
    static func verify(_ signature: [UInt8], of message: [UInt8], with key: P256Key) -> Bool {
        guard let der = der(fromRaw: signature), let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        let ok = EVP_DigestVerifyInit(context, nil, sha256, nil, key.pkey) == 1
            && EVP_DigestVerify(context, der, der.count, message, message.count) == 1
        if !ok { ERR_clear_error() }
        return ok
    }

    /// r||s from a DER `ECDSA-Sig-Value`.
    static func raw(fromDER der: [UInt8]) throws(WebPushError) -> [UInt8] {
        let signature: OpaquePointer? = der.withUnsafeBufferPointer { bytes in
            var cursor = bytes.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, bytes.count)
        }
        guard let signature else { throw .openSSL(openSSLFailure("d2i_ECDSA_SIG")) }
        defer { ECDSA_SIG_free(signature) }
        var out = [UInt8](repeating: 0, count: length)
        let ok = out.withUnsafeMutableBufferPointer { out in
            BN_bn2binpad(ECDSA_SIG_get0_r(signature), out.baseAddress, 32) == 32
                && BN_bn2binpad(ECDSA_SIG_get0_s(signature), out.baseAddress! + 32, 32) == 32
        }
        guard ok else { throw .openSSL(openSSLFailure("BN_bn2binpad")) }
        return out
    }

    /// A DER `ECDSA-Sig-Value` from r||s, or nil unless it is 64 bytes.
    static func der(fromRaw raw: [UInt8]) -> [UInt8]? {
        guard raw.count == length, let signature = ECDSA_SIG_new() else { return nil }
        defer { ECDSA_SIG_free(signature) }
        let r = BN_bin2bn(raw, 32, nil)
        let s = raw.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress! + 32, 32, nil) }
        guard let r, let s, ECDSA_SIG_set0(signature, r, s) == 1 else {
            BN_free(r)
            BN_free(s)
            return nil
        }
        let count = i2d_ECDSA_SIG(signature, nil)
        guard count > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(count))
        let written = out.withUnsafeMutableBufferPointer { out -> Int32 in
            var cursor = out.baseAddress
            return i2d_ECDSA_SIG(signature, &cursor)
        }
        return written == count ? out : nil
    }
}
