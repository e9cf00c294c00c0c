import Chat
import Foundation
import JSON
import Testing
@testable import Notify

/// Writes what Parley sends (an encrypted push body, its VAPID header, a
/// webhook signature) with the keys to check it, for `Tests/notify/webpush_check.py`,
/// which checks them with other implementations (`http_ece`, `cryptography`,
/// Python's `hmac`). It always runs (the project allows no skipped tests): it checks
/// that its own body decrypts, and writes the file only when `PARLEY_WEBPUSH_SAMPLE`
/// names one.
@Suite("Interop sample for the Python cross-check")
struct InteropSampleTests {
    static let path = ProcessInfo.processInfo.environment["PARLEY_WEBPUSH_SAMPLE"]

    @Test("the sample decrypts here; written for the Python cross-check when asked")
    func writeSample() throws {
        let userAgent = P256Key.generate()
        let auth = RandomBytes.make(16)
        let plaintext = #"{"room":"general","from":"ada","text":"Grüße @bob"}"#
        let body = try PushMessageEncryption.encrypt(
            Array(plaintext.utf8), for: PushSubscriptionKeys(p256dh: userAgent.publicKey, auth: auth))

        let vapidKey = P256Key.generate()
        let endpoint = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABsample"
        let now = Int64(Date().timeIntervalSince1970)
        let authorization = try VAPID.authorization(
            endpoint: endpoint, subject: "mailto:ops@parley.example", key: vapidKey, now: now)

        let secret = WebhookSecret.make()
        let webhookBody = Array(#"{"type":"message","room":"general"}"#.utf8)
        let signature = WebhookSignature.sign(id: "msg_42", timestamp: now, body: webhookBody, secret: secret)

        var out = JSONWriter()
        out.object { o in
            o.field("plaintext", plaintext)
            o.field("body", base64URL(body))
            o.field("ua_private_pem", userAgent.privateKeyPEM())
            o.field("auth", base64URL(auth))
            o.field("endpoint", endpoint)
            o.field("now", now)
            o.field("authorization", authorization)
            o.field("vapid_public_key", vapidKey.publicKeyBase64URL)
            o.field("vapid_private_pem", vapidKey.privateKeyPEM())
            o.field("webhook_secret", secret.text)
            o.field("webhook_id", "msg_42")
            o.field("webhook_body", String(decoding: webhookBody, as: UTF8.self))
            o.field("webhook_signature", signature)
        }
        let decrypted = try PushMessageEncryption.decrypt(body, userAgentKey: userAgent, authSecret: auth)
        #expect(decrypted == Array(plaintext.utf8))
        #expect(WebhookSignature.verify(header: signature, id: "msg_42", timestamp: now, body: webhookBody, secret: secret))
        if let path = Self.path { try Data(out.bytes).write(to: URL(fileURLWithPath: path)) }
    }
}
