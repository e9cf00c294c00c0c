/// Why a Web Push message could not be made, or a body could not be opened.
/// Each case says what to fix.
public enum WebPushError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A subscription's `p256dh` or `auth` is malformed (a device registration to refuse).
    case invalidSubscription(String)
    /// A key (PEM text, raw parts, a point) is not a usable P-256 key.
    case invalidKey(String)
    /// The plaintext does not fit in one 4096-byte push message.
    case plaintextTooLong(length: Int, limit: Int)
    /// An aes128gcm body is not shaped as RFC 8188 and RFC 8291 say.
    case malformedBody(String)
    /// The body's tag does not verify: wrong keys, or altered bytes.
    case decryptionFailed
    /// A push endpoint is not an absolute http(s) URL with a host.
    case invalidEndpoint(String)
    /// The VAPID `sub` is not a `mailto:` or `https:` URI.
    case invalidSubject(String)
    /// The VAPID token lifetime is outside 1 second to 24 hours.
    case invalidLifetime(Int64)
    /// OpenSSL failed where valid input should succeed.
    case openSSL(String)

    public var description: String {
        switch self {
        case .invalidSubscription(let reason): return "invalid push subscription: \(reason)"
        case .invalidKey(let reason): return "invalid P-256 key: \(reason)"
        case .plaintextTooLong(let length, let limit):
            return "push message of \(length) bytes exceeds the \(limit)-byte limit of one encrypted record"
        case .malformedBody(let reason): return "malformed aes128gcm body: \(reason)"
        case .decryptionFailed: return "push message does not decrypt (wrong keys or altered bytes)"
        case .invalidEndpoint(let reason): return "invalid push endpoint: \(reason)"
        case .invalidSubject(let subject):
            return "VAPID subject must be a mailto: or https: URI, not \"\(subject)\""
        case .invalidLifetime(let seconds):
            return "VAPID token lifetime must be 1 to 86400 seconds, not \(seconds)"
        case .openSSL(let reason): return reason
        }
    }
}
