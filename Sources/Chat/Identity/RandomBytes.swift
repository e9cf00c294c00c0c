import COpenSSL

/// Cryptographically secure random bytes from OpenSSL's CSPRNG (public for the
/// notification bridge: push salts, webhook secrets).
public enum RandomBytes {
    /// `count` random bytes. Traps if OpenSSL has no entropy: a salt or token made
    /// without it would be guessable, and there is no safe way to go on.
    public static func make(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else {
            fatalError("RAND_bytes failed: the system offers no randomness")
        }
        return bytes
    }
}
