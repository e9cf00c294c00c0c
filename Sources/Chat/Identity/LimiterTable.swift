/// One table of `LoginLimiter` (user names or addresses): records by key, and
/// their order of last activity (a queue whose stale entries are dropped when
/// reached) for expiry and eviction. Not thread-safe: the limiter's mutex
/// guards it.
struct LimiterTable: Sendable {
    struct Record: Sendable {
        /// Failures, oldest first; those older than the window are dropped on the next failure.
        var failures: [UInt64] = []
        /// Start times of attempts allowed and not yet ended (user table only).
        var pending: [UInt64] = []
        var lockouts = 0
        var lockedUntil: UInt64 = 0
        /// The last failure or allowed attempt.
        var lastActivity: UInt64 = 0
        /// Matches the record's newest entry in `order`; older entries are stale.
        var stamp: UInt64 = 0
    }

    private struct Touch: Sendable {
        let key: String
        let stamp: UInt64
    }

    let policy: LoginLimiter.Policy
    let capacity: Int
    private var records: [String: Record] = [:]
    private var order: [Touch] = []
    private var head = 0
    private var nextStamp: UInt64 = 0

    init(policy: LoginLimiter.Policy, capacity: Int) {
        self.policy = policy
        self.capacity = capacity
    }

    var count: Int { records.count }

    // MARK: Attempts

    /// Milliseconds until `key` may try, 0 if it may now: what is left of its
    /// lock-out, or, when `countingPending`, a second if the failures in the
    /// window and the attempts still running already reach the limit.
    mutating func wait(_ key: String, now: UInt64, countingPending: Bool) -> UInt64 {
        sweep(now: now)
        guard var record = live(key, now: now) else { return 0 }
        if now < record.lockedUntil { return record.lockedUntil - now }
        guard countingPending else { return 0 }
        record.pending.removeAll { $0 + policy.attemptTimeout <= now }
        records[key] = record
        let recent = record.failures.count(where: { $0 + policy.window > now })
        return recent + record.pending.count >= policy.maxFailures ? 1000 : 0
    }

    /// Notes an attempt that `wait` allowed, until `fail`, `forget` or `cancel` ends it.
    mutating func reserve(_ key: String, now: UInt64) {
        var record = live(key, now: now) ?? Record()
        record.pending.append(now)
        record.lastActivity = max(record.lastActivity, now)
        touch(key, record, now: now)
    }

    /// Ends an attempt without a verdict (it never reached the password check).
    mutating func cancel(_ key: String) {
        guard var record = records[key], !record.pending.isEmpty else { return }
        record.pending.removeFirst()
        records[key] = record
    }

    /// Counts a failure (ending an attempt); returns the length of the lock-out
    /// it started, if any.
    mutating func fail(_ key: String, now: UInt64) -> UInt64? {
        sweep(now: now)
        var record = live(key, now: now) ?? Record()
        if !record.pending.isEmpty { record.pending.removeFirst() }
        // A failure that raced a lock-out (allowed just before it began) does not count.
        guard now >= record.lockedUntil else {
            records[key] = record
            return nil
        }
        record.failures.removeAll { $0 + policy.window <= now }
        record.failures.append(now)
        record.lastActivity = max(record.lastActivity, now)
        var started: UInt64?
        if record.failures.count >= policy.maxFailures {
            let duration = lockoutLength(after: record.lockouts)
            record.lockedUntil = now + duration
            record.lockouts += 1
            record.failures.removeAll()
            started = duration
        }
        touch(key, record, now: now)
        return started
    }

    mutating func forget(_ key: String) {
        // Its entries in `order` become stale and are dropped when reached.
        records[key] = nil
    }

    /// 1, 2, 4, ... times `firstLockout`, capped.
    private func lockoutLength(after earlier: Int) -> UInt64 {
        let doubled = policy.firstLockout.multipliedReportingOverflow(by: 1 << UInt64(min(earlier, 32)))
        return doubled.overflow ? policy.maxLockout : min(doubled.partialValue, policy.maxLockout)
    }

    private func isExpired(_ record: Record, now: UInt64) -> Bool {
        now >= max(record.lastActivity, record.lockedUntil) + policy.forgetAfter
    }

    /// The record for `key` unless it has expired (then it is removed).
    private mutating func live(_ key: String, now: UInt64) -> Record? {
        guard let record = records[key] else { return nil }
        if isExpired(record, now: now) {
            records[key] = nil
            return nil
        }
        return record
    }

    // MARK: Order, expiry, eviction

    private mutating func touch(_ key: String, _ record: Record, now: UInt64) {
        var record = record
        nextStamp += 1
        record.stamp = nextStamp
        records[key] = record
        order.append(Touch(key: key, stamp: nextStamp))
        evictOverCapacity(now: now)
        compactIfSparse()
    }

    /// Drops expired records from the front of the queue, a bounded number per
    /// call so that no caller holds the lock for long.
    private mutating func sweep(now: UInt64) {
        var budget = 32
        while budget > 0, head < order.count {
            let front = order[head]
            if let record = records[front.key], record.stamp == front.stamp {
                guard isExpired(record, now: now) else { return }
                records[front.key] = nil
            }
            head += 1
            budget -= 1
        }
    }

    /// Removes the least recently active records until `capacity` holds. One in
    /// a lock-out is moved to the back instead (a few times per call), so that
    /// floods of one-off failures evict each other first.
    private mutating func evictOverCapacity(now: UInt64) {
        var reprieves = 4
        while records.count > capacity, head < order.count {
            let front = order[head]
            head += 1
            guard var record = records[front.key], record.stamp == front.stamp else { continue }
            if now < record.lockedUntil, reprieves > 0 {
                reprieves -= 1
                nextStamp += 1
                record.stamp = nextStamp
                records[front.key] = record
                order.append(Touch(key: front.key, stamp: nextStamp))
                continue
            }
            records[front.key] = nil
        }
    }

    /// Rebuilds the queue from live entries once stale and consumed ones
    /// outnumber them: amortised O(1) per touch, memory within twice the records.
    private mutating func compactIfSparse() {
        guard order.count > 2 * records.count + 32 else { return }
        order = order[head...].filter { records[$0.key]?.stamp == $0.stamp }
        head = 0
    }
}
