import Testing
@testable import Notify

extension RFC8291Example {
    static func subscription() throws -> PushSubscriptionKeys {
        try PushSubscriptionKeys(p256dh: userAgentPublicKey, auth: authSecret)
    }
}

@Suite("Web Push message encryption (RFC 8291)")
struct PushMessageEncryptionTests {
    @Test("reproduces the RFC 8291 Appendix A body byte for byte")
    func appendixA() throws {
        let sender = try P256Key(privateKey: RFC8291Example.senderPrivateKey, publicKey: RFC8291Example.senderPublicKey)
        let body = try PushMessageEncryption.encrypt(
            RFC8291Example.plaintext, for: RFC8291Example.subscription(), ephemeralKey: sender, salt: RFC8291Example.salt)
        #expect(body == RFC8291Example.body)
    }

    @Test("decrypts the RFC 8291 Appendix A body with the user agent's keys")
    func appendixADecrypts() throws {
        let plaintext = try PushMessageEncryption.decrypt(
            RFC8291Example.body, userAgentKey: RFC8291Example.userAgentKey(),
            authSecret: base64URL(RFC8291Example.authSecret))
        #expect(plaintext == RFC8291Example.plaintext)
    }

    @Test("a body has the RFC 8188 header: salt, record size 4096, the 65-byte sender key")
    func header() throws {
        let body = try PushMessageEncryption.encrypt(Array("hi".utf8), for: RFC8291Example.subscription())
        #expect(body.count == 86 + 2 + 1 + 16)
        #expect(Array(body[16..<20]) == [0, 0, 0x10, 0])
        #expect(body[20] == 65)
        #expect(body[21] == 0x04)
    }

    @Test("fresh keys and salt each time, and the user agent reads every one")
    func roundTrip() throws {
        let userAgent = P256Key.generate()
        let auth: [UInt8] = Array(0..<16)
        let subscription = try PushSubscriptionKeys(p256dh: userAgent.publicKey, auth: auth)
        for plaintext in [[], Array("{\"room\":\"general\"}".utf8), [UInt8](repeating: 0, count: 100)] {
            let first = try PushMessageEncryption.encrypt(plaintext, for: subscription)
            let second = try PushMessageEncryption.encrypt(plaintext, for: subscription)
            #expect(first != second)
            #expect(Array(first[0..<16]) != Array(second[0..<16]))
            #expect(try PushMessageEncryption.decrypt(first, userAgentKey: userAgent, authSecret: auth) == plaintext)
            #expect(try PushMessageEncryption.decrypt(second, userAgentKey: userAgent, authSecret: auth) == plaintext)
        }
    }

    @Test("the longest plaintext makes a 4096-byte message; one byte more is refused")
    func sizeLimit() throws {
        #expect(PushMessageEncryption.maxPlaintextLength == 3993)
        let longest = [UInt8](repeating: 0x61, count: 3993)
        let body = try PushMessageEncryption.encrypt(longest, for: RFC8291Example.subscription())
        #expect(body.count == 4096)
        #expect(try PushMessageEncryption.decrypt(
            body, userAgentKey: RFC8291Example.userAgentKey(), authSecret: base64URL(RFC8291Example.authSecret)) == longest)
        #expect(throws: WebPushError.plaintextTooLong(length: 3994, limit: 3993)) {
            try PushMessageEncryption.encrypt(longest + [0x61], for: RFC8291Example.subscription())
        }
    }

    @Test("an altered byte anywhere after the header, or the wrong auth secret, fails the tag")
    func tampering() throws {
        let userAgent = try RFC8291Example.userAgentKey()
        let auth = base64URL(RFC8291Example.authSecret)
        for index in [0, 15, 86, 100, RFC8291Example.body.count - 1] {
            var body = RFC8291Example.body
            body[index] ^= 0x01
            #expect(throws: WebPushError.decryptionFailed) {
                try PushMessageEncryption.decrypt(body, userAgentKey: userAgent, authSecret: auth)
            }
        }
        var wrongAuth = auth
        wrongAuth[0] ^= 0x80
        #expect(throws: WebPushError.decryptionFailed) {
            try PushMessageEncryption.decrypt(RFC8291Example.body, userAgentKey: userAgent, authSecret: wrongAuth)
        }
    }

    @Test("a truncated body, a foreign key id length or a second record is malformed")
    func malformed() throws {
        let userAgent = try RFC8291Example.userAgentKey()
        let auth = base64URL(RFC8291Example.authSecret)
        func refuses(_ body: [UInt8]) -> Bool {
            do {
                _ = try PushMessageEncryption.decrypt(body, userAgentKey: userAgent, authSecret: auth)
                return false
            } catch .malformedBody { return true } catch { return false }
        }
        #expect(refuses(Array(RFC8291Example.body.prefix(90))))
        var shortKeyID = RFC8291Example.body
        shortKeyID[20] = 0
        #expect(refuses(shortKeyID))
        var smallRecords = RFC8291Example.body
        smallRecords[16..<20] = [0, 0, 0, 20]
        #expect(refuses(smallRecords))
    }

    @Test("subscription keys: base64url with or without padding; bad lengths and off-curve points refused")
    func subscriptionKeys() throws {
        let padded = try PushSubscriptionKeys(
            p256dh: RFC8291Example.userAgentPublicKey + "=", auth: RFC8291Example.authSecret + "==")
        #expect(padded == (try RFC8291Example.subscription()))

        func refused(_ p256dh: String, _ auth: String) -> Bool {
            do {
                _ = try PushSubscriptionKeys(p256dh: p256dh, auth: auth)
                return false
            } catch .invalidSubscription { return true } catch { return false }
        }
        #expect(refused(RFC8291Example.userAgentPublicKey, "BTBZMqHH6r4Tts7J_aSI"))  // 15 bytes
        #expect(refused(RFC8291Example.userAgentPublicKey, "BTBZMqHH6r4Tts7J/aSIgg"))  // standard alphabet
        #expect(refused(String(RFC8291Example.userAgentPublicKey.dropLast(2)), RFC8291Example.authSecret))
        var offCurve = base64URL(RFC8291Example.userAgentPublicKey)
        offCurve[64] ^= 0x01
        #expect(refused(base64URL(offCurve), RFC8291Example.authSecret))
        var compressed = base64URL(RFC8291Example.userAgentPublicKey)
        compressed[0] = 0x02
        #expect(refused(base64URL(compressed), RFC8291Example.authSecret))
    }
}
