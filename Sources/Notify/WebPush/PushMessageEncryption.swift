import Chat

/// Web Push message encryption (RFC 8291): the body of a push message, in the
/// aes128gcm content coding (RFC 8188), that only the subscribed user agent
/// can read.
///
/// A body is one record after a header that names the sender's ephemeral key:
///
///     salt (16) | record size (4, = 4096) | key id length (1, = 65) |
///     sender's ephemeral public key (65) | ciphertext of plaintext 0x02 | tag (16)
///
/// Keys: ECDH between a fresh P-256 key and the subscription's `p256dh`, mixed
/// with the subscription's `auth` secret (HKDF, "WebPush: info"), then RFC
/// 8188's content key and nonce from the salt. Pure and thread-safe; each
/// message costs a key generation, an ECDH and three HKDFs: a worker thread's job.
public enum PushMessageEncryption {
    /// The record size written into the header.
    public static let recordSize = 4096
    /// Bytes of header before the ciphertext.
    public static let headerLength = 16 + 4 + 1 + P256Key.publicKeyLength
    /// The longest plaintext: a push message is at most 4096 bytes (RFC 8291
    /// section 4), less the header, the padding delimiter and the tag.
    public static let maxPlaintextLength = recordSize - headerLength - 1 - AES128GCM.tagLength
    /// Bytes of salt.
    public static let saltLength = 16

    /// The delimiter after the plaintext of the last (here: only) record.
    static let lastRecordDelimiter: UInt8 = 0x02

    /// `plaintext` encrypted for `subscription`, with a fresh ephemeral key and salt.
    public static func encrypt(_ plaintext: [UInt8], for subscription: PushSubscriptionKeys) throws(WebPushError) -> [UInt8] {
        try encrypt(plaintext, for: subscription, ephemeralKey: P256Key.generate(), salt: RandomBytes.make(saltLength))
    }

    /// `plaintext` encrypted for `subscription` with the ephemeral key and salt
    /// given. Reusing either across messages breaks confidentiality: this exists
    /// so that tests can reproduce published vectors.
    public static func encrypt(
        _ plaintext: [UInt8], for subscription: PushSubscriptionKeys, ephemeralKey: P256Key, salt: [UInt8]
    ) throws(WebPushError) -> [UInt8] {
        guard plaintext.count <= maxPlaintextLength else {
            throw .plaintextTooLong(length: plaintext.count, limit: maxPlaintextLength)
        }
        precondition(salt.count == saltLength, "the salt is 16 bytes")
        precondition(ephemeralKey.hasPrivateKey, "the ephemeral key needs its private half")
        let userAgentKey = try P256Key(publicKey: subscription.p256dh)
        let secret = try ephemeralKey.sharedSecret(with: userAgentKey)
        let keys = ContentKeys(
            sharedSecret: secret, authSecret: subscription.auth, userAgentPublicKey: subscription.p256dh,
            senderPublicKey: ephemeralKey.publicKey, salt: salt)

        var body = salt
        body.reserveCapacity(headerLength + plaintext.count + 1 + AES128GCM.tagLength)
        body += withUnsafeBytes(of: UInt32(recordSize).bigEndian, Array.init)
        body.append(UInt8(P256Key.publicKeyLength))
        body += ephemeralKey.publicKey
        body += AES128GCM.seal(plaintext + [lastRecordDelimiter], key: keys.contentEncryptionKey, nonce: keys.nonce)
        return body
    }

    /// The plaintext of `body`, as the user agent holding `userAgentKey` (its
    /// key pair) and `authSecret` reads it: for tests and as a check of what is
    /// sent. Only single-record bodies with a 65-byte key id are accepted.
    public static func decrypt(_ body: [UInt8], userAgentKey: P256Key, authSecret: [UInt8]) throws(WebPushError) -> [UInt8] {
        guard body.count >= headerLength + 1 + AES128GCM.tagLength else {
            throw .malformedBody("\(body.count) bytes is shorter than a header and one record")
        }
        let salt = Array(body[0..<16])
        let recordSize = body[16..<20].reduce(0) { $0 << 8 | Int($1) }
        guard body[20] == P256Key.publicKeyLength else {
            throw .malformedBody("key id of \(body[20]) bytes, not a 65-byte P-256 public key")
        }
        let senderPublicKey = Array(body[21..<headerLength])
        let record = Array(body[headerLength...])
        guard recordSize >= 18, record.count <= recordSize else {
            throw .malformedBody("more than one record (record size \(recordSize), \(record.count) bytes after the header)")
        }
        let senderKey = try P256Key(publicKey: senderPublicKey)
        let keys = ContentKeys(
            sharedSecret: try userAgentKey.sharedSecret(with: senderKey), authSecret: authSecret,
            userAgentPublicKey: userAgentKey.publicKey, senderPublicKey: senderPublicKey, salt: salt)
        guard var padded = AES128GCM.open(record, key: keys.contentEncryptionKey, nonce: keys.nonce) else {
            throw .decryptionFailed
        }
        // Padding is zeros after the delimiter; the last record's delimiter is 0x02.
        while padded.last == 0 { padded.removeLast() }
        guard padded.last == lastRecordDelimiter else {
            throw .malformedBody("the record does not end with the last-record delimiter 0x02")
        }
        padded.removeLast()
        return padded
    }
}

/// The content-encryption key and nonce of one message (RFC 8291 section 3.4,
/// RFC 8188 section 2.2-2.3).
struct ContentKeys {
    let contentEncryptionKey: [UInt8]
    let nonce: [UInt8]

    init(sharedSecret: [UInt8], authSecret: [UInt8], userAgentPublicKey: [UInt8], senderPublicKey: [UInt8], salt: [UInt8]) {
        let keyInfo = Array("WebPush: info".utf8) + [0] + userAgentPublicKey + senderPublicKey
        let inputKeyingMaterial = HKDF.sha256(ikm: sharedSecret, salt: authSecret, info: keyInfo, length: 32)
        contentEncryptionKey = HKDF.sha256(
            ikm: inputKeyingMaterial, salt: salt, info: Array("Content-Encoding: aes128gcm".utf8) + [0],
            length: AES128GCM.keyLength)
        // The nonce of record 0 is the derived nonce itself (XOR with sequence number 0).
        nonce = HKDF.sha256(
            ikm: inputKeyingMaterial, salt: salt, info: Array("Content-Encoding: nonce".utf8) + [0],
            length: AES128GCM.nonceLength)
    }
}
