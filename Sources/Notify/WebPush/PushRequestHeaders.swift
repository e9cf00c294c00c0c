/// How urgent a push message is (RFC 8030 section 5.3): a push service may hold
/// back low-urgency messages to spare a device's battery.
public enum PushUrgency: String, Sendable, CaseIterable {
    case veryLow = "very-low"
    case low
    case normal
    case high
}

/// The HTTP headers of a push message request (RFC 8030 section 5, RFC 8291,
/// RFC 8292), next to a body from `PushMessageEncryption`.
public enum PushRequestHeaders {
    /// `TTL: <seconds>`: how long the push service keeps an undelivered message.
    /// Negative values become 0 (deliver now or drop).
    public static func ttl(seconds: Int) -> (name: String, value: String) {
        ("TTL", String(max(seconds, 0)))
    }

    /// `Urgency: very-low | low | normal | high`.
    public static func urgency(_ urgency: PushUrgency) -> (name: String, value: String) {
        ("Urgency", urgency.rawValue)
    }

    /// All headers of an encrypted push with VAPID: `Authorization` (from
    /// `VAPID.authorization`), `Content-Encoding: aes128gcm`, `Content-Type`,
    /// `TTL` and `Urgency`. (`Content-Length` is the HTTP client's.)
    public static func all(authorization: String, ttl seconds: Int, urgency: PushUrgency = .normal) -> [(name: String, value: String)] {
        [
            ("Authorization", authorization),
            ("Content-Encoding", "aes128gcm"),
            ("Content-Type", "application/octet-stream"),
            ttl(seconds: seconds),
            self.urgency(urgency),
        ]
    }
}
