import Synchronization

/// Durations counted into fixed buckets, from any thread (a short lock): for the
/// metrics endpoint (`_bucket`, `_sum`, `_count` in the Prometheus text format).
public final class Histogram: Sendable {
    /// Upper bounds, seconds.
    public let bounds: [Double]
    private let state: Mutex<(counts: [Int], sum: Double)>

    /// 100 µs to 10 s, about three buckets per decade.
    public static let latencyBounds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init(bounds: [Double] = Histogram.latencyBounds) {
        self.bounds = bounds
        state = Mutex((Array(repeating: 0, count: bounds.count + 1), 0))
    }

    public func record(seconds: Double) {
        var i = 0
        while i < bounds.count && seconds > bounds[i] { i += 1 }
        state.withLock {
            $0.counts[i] += 1
            $0.sum += seconds
        }
    }

    /// Cumulative counts per bound (the last is +Inf, the total), and the sum in seconds.
    public func snapshot() -> (cumulative: [Int], sum: Double) {
        let (counts, sum) = state.withLock { ($0.counts, $0.sum) }
        var running = 0
        return (counts.map { running += $0; return running }, sum)
    }
}
