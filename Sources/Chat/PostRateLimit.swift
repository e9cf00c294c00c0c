import Synchronization

/// Token buckets per user (SPEC section 3: `chat_post_rate`, default 20 posts a
/// second with a burst of 100; typing and receipts a separate, smaller budget, so
/// they are shed first). Memory is bounded: full buckets are forgotten.
public final class PostRateLimit: Sendable {
    public struct Rate: Sendable {
        public var perSecond: Double
        public var burst: Double
        public init(perSecond: Double, burst: Double) {
            self.perSecond = perSecond
            self.burst = burst
        }
    }

    private struct Bucket {
        var tokens: Double
        var at: UInt64
    }

    private let state: Mutex<(rate: Rate, buckets: [String: Bucket])>

    public init(_ rate: Rate) { state = Mutex((rate, [:])) }

    /// SIGHUP: a new rate, for the buckets as they are.
    public func setRate(_ rate: Rate) { state.withLock { $0.rate = rate } }

    /// Takes one token for `user` at `now` (milliseconds); false when none is left.
    public func take(_ user: String, now: UInt64) -> Bool {
        state.withLock { s in
            let rate = s.rate
            var b = s.buckets[user] ?? Bucket(tokens: rate.burst, at: now)
            let elapsed = Double(now &- b.at) / 1000
            b.tokens = min(rate.burst, b.tokens + elapsed * rate.perSecond)
            b.at = now
            guard b.tokens >= 1 else {
                s.buckets[user] = b
                return false
            }
            b.tokens -= 1
            s.buckets[user] = b
            if s.buckets.count > 50_000 { s.buckets = s.buckets.filter { $0.value.tokens < rate.burst - 1 } }
            return true
        }
    }
}
