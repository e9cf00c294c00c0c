/// The cost of one scrypt derivation (RFC 7914): N = 2^logN, block size r,
/// parallelism p. Memory is about 128 * r * N bytes, time grows with N * r * p.
public struct ScryptParameters: Sendable, Hashable, CustomStringConvertible {
    /// log2 of N, the CPU/memory cost.
    public let logN: Int
    /// The block size factor.
    public let r: Int
    /// The parallelisation factor.
    public let p: Int

    /// What new hashes use (SPEC section 2): N = 2^14, r = 8, p = 1, about 16 MiB
    /// and some tens of milliseconds per derivation.
    public static let `default` = ScryptParameters(checked: 14, 8, 1)

    /// N = 2^10: 16 times cheaper than `default`, for tests and benchmarks that
    /// create many users. Never chosen implicitly: pass it to `PasswordHash.make`
    /// explicitly. Hashes made with it verify, and `needsRehash` flags them.
    public static let testing = ScryptParameters(checked: 10, 8, 1)

    /// The most a stored hash may ask for: a string read back from the database
    /// (or planted in it) must not make a login allocate gigabytes or spin for
    /// seconds. 128 MiB for the V array (plus OpenSSL's few KiB beside it) and
    /// 2^20 for N * r * p leave room to raise the cost eight-fold (e.g. logN 17
    /// at r = 8) before these bounds need to move.
    public static let maxMemoryBytes = 129 << 20
    /// The most N * r * p a stored hash may ask for.
    public static let maxWork = 1 << 20

    /// Parameters within the bounds (`logN` 1...20, `r` 1...32, `p` 1...16, the
    /// memory and work caps above), or nil.
    public init?(logN: Int, r: Int, p: Int) {
        guard (1...20).contains(logN), (1...32).contains(r), (1...16).contains(p) else { return nil }
        let candidate = ScryptParameters(checked: logN, r, p)
        guard candidate.memoryBytes <= Self.maxMemoryBytes, (1 << logN) * r * p <= Self.maxWork else { return nil }
        self = candidate
    }

    private init(checked logN: Int, _ r: Int, _ p: Int) {
        self.logN = logN
        self.r = r
        self.p = p
    }

    /// N itself.
    public var n: UInt64 { 1 << UInt64(logN) }

    /// What OpenSSL allocates for one derivation: the B array (128 * r * p) and
    /// V plus scratch (128 * r * (N + 2)). Passed to it as `maxmem`, which must
    /// cover this sum (its own default cap, 32 MiB, would refuse a raised N).
    public var memoryBytes: Int { 128 * r * p + 128 * r * ((1 << logN) + 2) }

    /// `ln=14,r=8,p=1`, as the stored string writes it.
    public var description: String { "ln=\(logN),r=\(r),p=\(p)" }
}
