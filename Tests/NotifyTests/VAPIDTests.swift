import Chat
import JSON
import Testing
@testable import Notify

@Suite("VAPID (RFC 8292)")
struct VAPIDTests {
    static let key = P256Key.generate()
    static let now: Int64 = 1_800_000_000
    static let endpoint = "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b"

    /// The three parts of a JWT, the first two parsed, the signature raw.
    static func parts(_ jwt: String) throws -> (header: JSONValue, claims: JSONValue, signingInput: String, signature: [UInt8]) {
        let fields = jwt.split(separator: ".", omittingEmptySubsequences: false)
        try #require(fields.count == 3)
        let header = try JSONValue.parse(#require(Base64.decode(fields[0], alphabet: .urlSafe)))
        let claims = try JSONValue.parse(#require(Base64.decode(fields[1], alphabet: .urlSafe)))
        let signature = try #require(Base64.decode(fields[2], alphabet: .urlSafe))
        return (header, claims, "\(fields[0]).\(fields[1])", signature)
    }

    @Test("the token's ES256 signature verifies against the public key (r||s back to DER, EVP_DigestVerify)")
    func signatureVerifies() throws {
        let jwt = try VAPID.token(endpoint: Self.endpoint, subject: "mailto:ops@example.com", key: Self.key, now: Self.now)
        let (_, _, signingInput, signature) = try Self.parts(jwt)
        #expect(signature.count == 64)
        let publicOnly = try P256Key(publicKey: Self.key.publicKey)
        #expect(ES256Signature.verify(signature, of: Array(signingInput.utf8), with: publicOnly))
        // Another key, or another message, does not verify.
        #expect(!ES256Signature.verify(signature, of: Array(signingInput.utf8), with: P256Key.generate()))
        #expect(!ES256Signature.verify(signature, of: Array((signingInput + "x").utf8), with: publicOnly))
        var altered = signature
        altered[40] ^= 0x01
        #expect(!ES256Signature.verify(altered, of: Array(signingInput.utf8), with: publicOnly))
    }

    @Test("header and claims are exactly typ/alg and aud/exp/sub")
    func claims() throws {
        let jwt = try VAPID.token(
            endpoint: Self.endpoint, subject: "mailto:ops@example.com", key: Self.key, now: Self.now, lifetime: 3600)
        #expect(jwt.hasPrefix(base64URL(Array(#"{"typ":"JWT","alg":"ES256"}"#.utf8)) + "."))
        let (header, claims, _, _) = try Self.parts(jwt)
        #expect(header == ["typ": "JWT", "alg": "ES256"])
        #expect(claims == ["aud": "https://fcm.googleapis.com", "exp": .integer(Self.now + 3600), "sub": "mailto:ops@example.com"])
    }

    @Test("exp is at most 24 hours ahead: 12 h by default, 1 s to 86400 s accepted")
    func expiry() throws {
        let sub = "https://parley.example/contact"
        let byDefault = try Self.parts(VAPID.token(endpoint: Self.endpoint, subject: sub, key: Self.key, now: Self.now))
        #expect(byDefault.claims["exp"]?.int64 == Self.now + 12 * 3600)
        let longest = try Self.parts(
            VAPID.token(endpoint: Self.endpoint, subject: sub, key: Self.key, now: Self.now, lifetime: 86400))
        #expect(longest.claims["exp"]?.int64 == Self.now + 86400)
        for lifetime: Int64 in [0, -1, 86401] {
            #expect(throws: WebPushError.invalidLifetime(lifetime)) {
                try VAPID.token(endpoint: Self.endpoint, subject: sub, key: Self.key, now: Self.now, lifetime: lifetime)
            }
        }
    }

    @Test("aud is the endpoint's origin", arguments: [
        ("https://fcm.googleapis.com/fcm/send/abc:def", "https://fcm.googleapis.com"),
        ("https://updates.push.services.mozilla.com/wpush/v2/gAAAAA", "https://updates.push.services.mozilla.com"),
        ("https://Web.Push.Apple.COM:443/QGx", "https://web.push.apple.com"),
        ("HTTPS://push.example?x=1", "https://push.example"),
        ("https://push.example#frag", "https://push.example"),
        ("https://push.example:8443/p", "https://push.example:8443"),
        ("http://127.0.0.1:8080/push/1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:80/push/1", "http://127.0.0.1"),
        ("https://[::1]:8443/p", "https://[::1]:8443"),
        ("https://[::1]/p", "https://[::1]"),
    ])
    func audience(endpoint: String, origin: String) throws {
        #expect(try VAPID.audience(ofEndpoint: endpoint) == origin)
    }

    @Test("endpoints that are not absolute http(s) URLs with a host are refused", arguments: [
        "", "push.example/x", "ftp://push.example/x", "https:///path", "https://user@push.example/",
        "https://push.example:0/", "https://push.example:65536/", "https://push.example:/", "https://push.example:8x/",
        "https://[::1/p", "https://[::1]x/p", "https://push example/",
    ])
    func badEndpoint(endpoint: String) {
        #expect(throws: WebPushError.self) { try VAPID.audience(ofEndpoint: endpoint) }
    }

    @Test("sub must be mailto: or https:")
    func subject() {
        for bad in ["", "ops@example.com", "mailto:", "http://parley.example", "https://"] {
            #expect(throws: WebPushError.invalidSubject(bad)) {
                try VAPID.token(endpoint: Self.endpoint, subject: bad, key: Self.key, now: Self.now)
            }
        }
    }

    @Test("the Authorization header is vapid t=<jwt>, k=<public key>")
    func authorization() throws {
        let value = try VAPID.authorization(
            endpoint: Self.endpoint, subject: "mailto:ops@example.com", key: Self.key, now: Self.now)
        let prefix = "vapid t="
        let suffix = ", k=" + Self.key.publicKeyBase64URL
        #expect(value.hasPrefix(prefix))
        #expect(value.hasSuffix(suffix))
        let jwt = String(value.dropFirst(prefix.count).dropLast(suffix.count))
        let (_, claims, _, _) = try Self.parts(jwt)
        #expect(claims["aud"]?.string == "https://fcm.googleapis.com")
    }

    @Test("DER and raw r||s convert both ways, short integers left-padded")
    func derConversion() throws {
        var raw = [UInt8](repeating: 0, count: 64)
        raw[31] = 1  // r = 1: DER 02 01 01
        raw[32] = 0x80  // s has its top bit set: DER adds a 00 byte
        let der = try #require(ES256Signature.der(fromRaw: raw))
        #expect(Array(der.prefix(5)) == [0x30, UInt8(der.count - 2), 0x02, 0x01, 0x01])
        #expect(Array(der[5..<8]) == [0x02, 0x21, 0x00])
        #expect(try ES256Signature.raw(fromDER: der) == raw)
        #expect(ES256Signature.der(fromRaw: Array(raw.prefix(63))) == nil)
    }

    @Test("TTL and Urgency headers")
    func pushHeaders() {
        #expect(PushRequestHeaders.ttl(seconds: 86400) == ("TTL", "86400"))
        #expect(PushRequestHeaders.ttl(seconds: -5) == ("TTL", "0"))
        #expect(PushRequestHeaders.urgency(.veryLow) == ("Urgency", "very-low"))
        #expect(PushUrgency.allCases.map(\.rawValue) == ["very-low", "low", "normal", "high"])
        let all = PushRequestHeaders.all(authorization: "vapid t=x, k=y", ttl: 60, urgency: .high)
        #expect(all.map(\.name) == ["Authorization", "Content-Encoding", "Content-Type", "TTL", "Urgency"])
        #expect(all[1].value == "aes128gcm")
        #expect(all[4].value == "high")
    }
}
