import Chat

/// The keys of a browser's push subscription (`PushSubscription.toJSON().keys`):
/// the user agent's P-256 public key and its 16-byte authentication secret.
/// Made only from valid values, so a device registration can be checked once,
/// when it arrives.
public struct PushSubscriptionKeys: Equatable, Sendable {
    /// Bytes in an authentication secret (RFC 8291 section 3.2).
    public static let authSecretLength = 16

    /// The user agent's public key, an uncompressed point on P-256 (65 bytes).
    public let p256dh: [UInt8]
    /// The authentication secret (16 bytes).
    public let auth: [UInt8]

    /// Keys from their raw bytes; the point must lie on the curve.
    public init(p256dh: [UInt8], auth: [UInt8]) throws(WebPushError) {
        guard auth.count == Self.authSecretLength else {
            throw .invalidSubscription("auth must be 16 bytes, not \(auth.count)")
        }
        do { _ = try P256Key(publicKey: p256dh) } catch {
            throw .invalidSubscription("p256dh is not a P-256 public key (\(error))")
        }
        self.p256dh = p256dh
        self.auth = auth
    }

    /// Keys as a subscription's JSON gives them: base64url, with or without `=`.
    public init(p256dh: String, auth: String) throws(WebPushError) {
        guard let point = Base64.decodeAllowingPadding(p256dh[...], alphabet: .urlSafe) else {
            throw .invalidSubscription("p256dh is not base64url")
        }
        guard let secret = Base64.decodeAllowingPadding(auth[...], alphabet: .urlSafe) else {
            throw .invalidSubscription("auth is not base64url")
        }
        try self.init(p256dh: point, auth: secret)
    }
}
