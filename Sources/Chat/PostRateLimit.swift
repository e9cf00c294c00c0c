import Synchronization

/// Token buckets per user (SPEC section 3: `chat_post_rate`, default 20 posts a
/// second with a burst of 100; typing and receipts a separate, smaller budget, so
/// they are shed first). Memory is bounded: full buckets are forgotten.
final class PostRateLimit: Sendable {
    struct Rate: Sendable {
        var perSecond: Double
        var burst: Double
    }

    private struct Bucket {
        var tokens: Double
        var at: UInt64
    }

    let rate: Rate
    private let buckets = Mutex<[String: Bucket]>([:])

    init(_ rate: Rate) { self.rate = rate }

    /// Takes one token for `user` at `now` (milliseconds); false when none is left.
    func take(_ user: String, now: UInt64) -> Bool {
        buckets.withLock { all in
            var b = all[user] ?? Bucket(tokens: rate.burst, at: now)
            let elapsed = Double(now &- b.at) / 1000
            b.tokens = min(rate.burst, b.tokens + elapsed * rate.perSecond)
            b.at = now
            guard b.tokens >= 1 else {
                all[user] = b
                return false
            }
            b.tokens -= 1
            all[user] = b
            if all.count > 50_000 { all = all.filter { $0.value.tokens < rate.burst - 1 } }
            return true
        }
    }
}
