import COpenSSL

/// AES-128-GCM with a 96-bit nonce, no associated data and a 16-byte tag
/// appended to the ciphertext: the record cipher of RFC 8188's aes128gcm.
enum AES128GCM {
    static let keyLength = 16
    static let nonceLength = 12
    static let tagLength = 16

    /// `plaintext` encrypted under `key` and `nonce`, followed by the tag.
    static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8]) -> [UInt8] {
        precondition(key.count == keyLength && nonce.count == nonceLength)
        guard let context = EVP_CIPHER_CTX_new() else { fatalError(openSSLFailure("EVP_CIPHER_CTX_new")) }
        defer { EVP_CIPHER_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var written: Int32 = 0
        var finalWritten: Int32 = 0
        let ok = out.withUnsafeMutableBufferPointer { out -> Bool in
            guard EVP_EncryptInit_ex2(context, EVP_aes_128_gcm(), key, nonce, nil) == 1,
                EVP_EncryptUpdate(context, out.baseAddress, &written, plaintext, Int32(plaintext.count)) == 1,
                EVP_EncryptFinal_ex(context, out.baseAddress! + Int(written), &finalWritten) == 1,
                Int(written + finalWritten) == plaintext.count
            else { return false }
            return EVP_CIPHER_CTX_ctrl(
                context, EVP_CTRL_AEAD_GET_TAG, Int32(tagLength), out.baseAddress! + plaintext.count) == 1
        }
        guard ok else { fatalError(openSSLFailure("AES-128-GCM encryption")) }
        return out
    }

    /// The plaintext of `sealed` (ciphertext and tag), or nil if it is shorter
    /// than a tag or the tag does not match (wrong key, nonce, or altered bytes).
    static func open(_ sealed: [UInt8], key: [UInt8], nonce: [UInt8]) -> [UInt8]? {
        precondition(key.count == keyLength && nonce.count == nonceLength)
        guard sealed.count >= tagLength else { return nil }
        guard let context = EVP_CIPHER_CTX_new() else { fatalError(openSSLFailure("EVP_CIPHER_CTX_new")) }
        defer { EVP_CIPHER_CTX_free(context) }
        let ciphertextLength = sealed.count - tagLength
        var tag = Array(sealed[ciphertextLength...])
        // One spare byte keeps the base address non-nil for an empty plaintext.
        var out = [UInt8](repeating: 0, count: ciphertextLength + 1)
        var written: Int32 = 0
        var finalWritten: Int32 = 0
        let ok = out.withUnsafeMutableBufferPointer { out -> Bool in
            sealed.withUnsafeBufferPointer { sealed in
                EVP_DecryptInit_ex2(context, EVP_aes_128_gcm(), key, nonce, nil) == 1
                    && EVP_DecryptUpdate(context, out.baseAddress, &written, sealed.baseAddress, Int32(ciphertextLength)) == 1
                    && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(tagLength), &tag) == 1
                    && EVP_DecryptFinal_ex(context, out.baseAddress! + Int(written), &finalWritten) == 1
            }
        }
        guard ok, Int(written + finalWritten) == ciphertextLength else {
            ERR_clear_error()
            return nil
        }
        return Array(out.prefix(ciphertextLength))
    }
}
