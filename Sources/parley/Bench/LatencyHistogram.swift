/// Latencies in nanoseconds, in log-linear buckets: 32 per power of two, so any
/// percentile is within about 3 % of the true value, in fixed memory.
struct LatencyHistogram {
    private static let subBits = 5
    private static let subCount = 1 << subBits
    private var counts = [UInt64](repeating: 0, count: 64 * subCount)
    private(set) var total: UInt64 = 0
    private(set) var maximum: UInt64 = 0

    @inline(__always)
    static func bucket(_ v: UInt64) -> Int {
        if v < UInt64(subCount) { return Int(v) }
        let exponent = 63 - v.leadingZeroBitCount
        let shift = exponent - subBits
        let mantissa = Int((v >> UInt64(shift)) & UInt64(subCount - 1))
        return (shift + 1) * subCount + mantissa
    }

    static func lowerBound(_ bucket: Int) -> UInt64 {
        if bucket < subCount { return UInt64(bucket) }
        let shift = bucket / subCount - 1
        let mantissa = UInt64(bucket % subCount)
        return (UInt64(subCount) | mantissa) << UInt64(shift)
    }

    @inline(__always)
    mutating func record(_ nanoseconds: UInt64) {
        counts[Self.bucket(nanoseconds)] &+= 1
        total &+= 1
        if nanoseconds > maximum { maximum = nanoseconds }
    }

    mutating func merge(_ other: LatencyHistogram) {
        for i in counts.indices { counts[i] &+= other.counts[i] }
        total &+= other.total
        maximum = max(maximum, other.maximum)
    }

    /// The value at quantile `q` (0...1), in nanoseconds.
    func percentile(_ q: Double) -> UInt64 {
        if total == 0 { return 0 }
        let rank = UInt64((Double(total) * q).rounded(.up))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= max(rank, 1) {
                // Middle of the bucket.
                let low = Self.lowerBound(i)
                let high = i + 1 < counts.count ? Self.lowerBound(i + 1) : low
                return min((low + high) / 2, maximum)
            }
        }
        return maximum
    }
}
