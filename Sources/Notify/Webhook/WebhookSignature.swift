import Chat
import COpenSSL

/// Standard Webhooks signatures (the `webhook-*` headers): the receiver checks
/// that a POST came from the holder of its secret, was not altered, and is
/// recent. The signed content is `<id>.<timestamp>.<body>`:
///
///     webhook-id: <id, stable across retries of one notification>
///     webhook-timestamp: <Unix seconds of this attempt>
///     webhook-signature: v1,<base64 of HMAC-SHA256(key, content)>
///
/// Pure: the timestamp comes in as a parameter.
public enum WebhookSignature {
    /// The three headers for `body`, sent as `id` at `timestamp`.
    public static func headers(id: String, timestamp: Int64, body: [UInt8], secret: WebhookSecret) -> [(name: String, value: String)] {
        [
            ("webhook-id", id),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", sign(id: id, timestamp: timestamp, body: body, secret: secret)),
        ]
    }

    /// The `webhook-signature` value: `v1,` and the base64 MAC.
    public static func sign(id: String, timestamp: Int64, body: [UInt8], secret: WebhookSecret) -> String {
        "v1," + Base64.encodePadded(mac(id: id, timestamp: timestamp, body: body, key: secret.key), alphabet: .standard)
    }

    /// Whether one of the space-separated signatures in `header` is a valid
    /// `v1` signature of this message (as a receiver checks; the timestamp's
    /// freshness is the caller's to judge). Compares in constant time.
    public static func verify(header: String, id: String, timestamp: Int64, body: [UInt8], secret: WebhookSecret) -> Bool {
        let expected = mac(id: id, timestamp: timestamp, body: body, key: secret.key)
        var found = false
        for entry in header.split(separator: " ") where entry.hasPrefix("v1,") {
            if let candidate = Base64.decodeAllowingPadding(entry.dropFirst(3), alphabet: .standard),
                candidate.count == expected.count, CRYPTO_memcmp(candidate, expected, expected.count) == 0
            {
                found = true
            }
        }
        return found
    }

    static func mac(id: String, timestamp: Int64, body: [UInt8], key: [UInt8]) -> [UInt8] {
        HMACSHA256.mac(key: key, message: Array("\(id).\(timestamp).".utf8) + body)
    }
}
