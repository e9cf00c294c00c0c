import Testing
@testable import Notify

@Suite("Standard Webhooks signatures")
struct WebhookSignatureTests {
    /// The Standard Webhooks reference vector (the spec's test suite, as the
    /// svix and standardwebhooks libraries use it). Checked independently:
    ///     hmac.new(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ///              b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}',
    ///              hashlib.sha256).digest()  ->  base64 g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let timestamp: Int64 = 1_614_265_330
    static let body = Array(#"{"test": 2432232314}"#.utf8)
    static let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    @Test("signs the reference vector")
    func referenceVector() throws {
        let secret = try WebhookSecret(Self.secret)
        #expect(secret.key.count == 24)
        #expect(WebhookSignature.sign(id: Self.id, timestamp: Self.timestamp, body: Self.body, secret: secret) == Self.signature)
    }

    @Test("the three headers")
    func headers() throws {
        let headers = WebhookSignature.headers(
            id: Self.id, timestamp: Self.timestamp, body: Self.body, secret: try WebhookSecret(Self.secret))
        #expect(headers.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        #expect(headers.map(\.value) == [Self.id, "1614265330", Self.signature])
    }

    @Test("verifies one of several signatures; refuses altered id, timestamp, body or key")
    func verification() throws {
        let secret = try WebhookSecret(Self.secret)
        let other = WebhookSecret.make()
        let header = "v1,AAAA v1a,xyz " + Self.signature
        #expect(WebhookSignature.verify(header: header, id: Self.id, timestamp: Self.timestamp, body: Self.body, secret: secret))
        #expect(!WebhookSignature.verify(header: header, id: "msg_x", timestamp: Self.timestamp, body: Self.body, secret: secret))
        #expect(!WebhookSignature.verify(header: header, id: Self.id, timestamp: Self.timestamp + 1, body: Self.body, secret: secret))
        #expect(!WebhookSignature.verify(header: header, id: Self.id, timestamp: Self.timestamp, body: Self.body + [0x20], secret: secret))
        #expect(!WebhookSignature.verify(header: header, id: Self.id, timestamp: Self.timestamp, body: Self.body, secret: other))
        #expect(!WebhookSignature.verify(header: "", id: Self.id, timestamp: Self.timestamp, body: Self.body, secret: secret))
    }

    @Test("a made secret is whsec_ and 32 random bytes, and reads back from its text")
    func madeSecret() throws {
        let secret = WebhookSecret.make()
        #expect(secret.key.count == 32)
        #expect(secret.text.hasPrefix("whsec_"))
        #expect(secret.text.utf8.count == 6 + 44)
        #expect(try WebhookSecret(secret.text) == secret)
        #expect(WebhookSecret.make() != secret)
    }

    @Test("secrets without the prefix, not base64, or with a short or long key are refused")
    func badSecrets() {
        #expect(throws: WebhookSecretError.missingPrefix) { try WebhookSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") }
        #expect(throws: WebhookSecretError.notBase64) { try WebhookSecret("whsec_MfKQ9r8GKYqr-wjUPD8ILPZIo2LaLaSw") }
        #expect(throws: WebhookSecretError.badKeyLength(12)) { try WebhookSecret("whsec_MfKQ9r8GKYqrTwjU") }
        #expect(throws: WebhookSecretError.badKeyLength(66)) {
            try WebhookSecret("whsec_" + String(repeating: "AAAA", count: 22))
        }
    }
}
