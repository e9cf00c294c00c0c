import Synchronization

/// Failed-login limiting per user name and per source address (SPEC section 2).
///
/// The policy, for each user name and each address separately (defaults in
/// brackets, see `Policy`):
/// - A failure counts for `window` [5 min] after it happens.
/// - The `maxFailures`-th [5th] failure within the window starts a lock-out and
///   clears the count. The first lock-out lasts `firstLockout` [1 min]; each
///   further one twice the one before, at most `maxLockout` [15 min]: 1, 2, 4,
///   8, 15, 15, ... minutes.
/// - During a lock-out every attempt is refused before any password is checked,
///   the right one too, with the seconds left (HTTP `Retry-After`, CONNACK
///   0x9F / 3.1.1 0x05). Refused attempts are not failures: they neither count
///   nor lengthen the lock-out.
/// - Attempts on a user name that are still running (allowed, password check
///   not yet done) count as failures-to-be: when they and the failures in the
///   window reach `maxFailures`, a further attempt is refused for 1 second.
///   Password checks take tens of milliseconds on a worker pool, and without
///   this one burst of concurrent guesses would all get through before the
///   first failure is known. An attempt not ended within `attemptTimeout`
///   [30 s] stops counting. Addresses do not count running attempts: many
///   users share one behind NAT or a proxy, and their logins must not queue.
/// - A successful login forgets the user's record: its count and its doubling.
///   The address's record stays (one address guessing many users' passwords is
///   not cleared by one right guess).
/// - A record with no failure and no lock-out for `forgetAfter` [15 min] (after
///   its last failure, or the end of its lock-out, whichever is later) is
///   forgotten, and the doubling starts again from `firstLockout`.
///
/// Memory is bounded: each table (names, addresses) keeps at most `capacity`
/// records; beyond it the least recently failed record goes, records in a
/// lock-out last (so a flood of random user names cannot flush a lock-out
/// unless more than `capacity` are in force). Keys are cut to 64 bytes. A
/// record costs about 200 bytes: the default 20,000 per table is a few MB.
///
/// Use: `beginAttempt` before checking the password; if allowed, end the attempt
/// with `recordSuccess` or `recordFailure` (a wrong password or an unknown user
/// name), or `cancelAttempt` if it ends without a check (worker pool full,
/// client gone).
///
/// Thread-safe; time is given by the caller (`now`, milliseconds on any
/// monotonic clock), so it never reads a clock or sleeps.
public final class LoginLimiter: Sendable {
    /// The numbers of the policy above. Durations in milliseconds.
    public struct Policy: Sendable, Equatable {
        public var maxFailures: Int
        public var window: UInt64
        public var firstLockout: UInt64
        public var maxLockout: UInt64
        public var forgetAfter: UInt64
        public var attemptTimeout: UInt64

        /// 5 failures in 5 minutes; lock-outs of 1 minute doubling up to 15; forgotten after 15 quiet minutes.
        public static let `default` = Policy()

        /// The defaults are SPEC section 2's. `forgetAfter` is raised to `window`
        /// if shorter (a record must outlive its failures), `maxLockout` to
        /// `firstLockout`; `maxFailures` is at least 1.
        public init(
            maxFailures: Int = 5, window: UInt64 = 300_000, firstLockout: UInt64 = 60_000, maxLockout: UInt64 = 900_000,
            forgetAfter: UInt64 = 900_000, attemptTimeout: UInt64 = 30_000
        ) {
            self.maxFailures = max(1, maxFailures)
            self.window = window
            self.firstLockout = firstLockout
            self.maxLockout = max(firstLockout, maxLockout)
            self.forgetAfter = max(window, forgetAfter)
            self.attemptTimeout = attemptTimeout
        }
    }

    /// Whether a login attempt may go ahead.
    public enum Verdict: Equatable, Sendable {
        case allowed
        /// Refused without checking the password; try again in this many seconds (at least 1).
        case lockedOut(retryAfterSeconds: Int)
    }

    /// A lock-out that a failure started, for the log.
    public struct Lockout: Equatable, Sendable {
        public enum Subject: Equatable, Sendable {
            /// The canonical user name.
            case user(String)
            case address(String)
        }
        public let subject: Subject
        /// How long it lasts.
        public let seconds: Int

        public init(subject: Subject, seconds: Int) {
            self.subject = subject
            self.seconds = seconds
        }
    }

    public let policy: Policy
    private let state: Mutex<(users: LimiterTable, addresses: LimiterTable)>

    /// - Parameter capacity: records kept per table (user names, addresses), at least 16.
    public init(policy: Policy = .default, capacity: Int = 20_000) {
        self.policy = policy
        let table = LimiterTable(policy: policy, capacity: max(16, capacity))
        state = Mutex((table, table))
    }

    /// Whether `user` (any case) may try to log in from `address` now; if so,
    /// the attempt is running until one of the calls below ends it.
    public func beginAttempt(user: String, address: String?, now: UInt64) -> Verdict {
        let (userKey, addressKey) = Self.keys(user, address)
        let waitMs = state.withLock { tables in
            var wait = tables.users.wait(userKey, now: now, countingPending: true)
            if let addressKey { wait = max(wait, tables.addresses.wait(addressKey, now: now, countingPending: false)) }
            if wait == 0 { tables.users.reserve(userKey, now: now) }
            return wait
        }
        return waitMs == 0 ? .allowed : .lockedOut(retryAfterSeconds: Self.seconds(waitMs))
    }

    /// Ends an attempt as a failure (wrong password, unknown user) for the name
    /// and the address. Returns the lock-outs it started, usually none.
    @discardableResult
    public func recordFailure(user: String, address: String?, now: UInt64) -> [Lockout] {
        let (userKey, addressKey) = Self.keys(user, address)
        let started = state.withLock { tables in
            let forUser = tables.users.fail(userKey, now: now)
            guard let addressKey else { return (forUser, nil as UInt64?) }
            return (forUser, tables.addresses.fail(addressKey, now: now))
        }
        var lockouts: [Lockout] = []
        if let ms = started.0 { lockouts.append(Lockout(subject: .user(userKey), seconds: Self.seconds(ms))) }
        if let ms = started.1, let addressKey {
            lockouts.append(Lockout(subject: .address(addressKey), seconds: Self.seconds(ms)))
        }
        return lockouts
    }

    /// Ends an attempt as a success: forgets `user`'s failures and lock-out
    /// history (and any other attempts of it still running).
    public func recordSuccess(user: String) {
        let (userKey, _) = Self.keys(user, nil)
        state.withLock { $0.users.forget(userKey) }
    }

    /// Ends an attempt that never reached the password check.
    public func cancelAttempt(user: String) {
        let (userKey, _) = Self.keys(user, nil)
        state.withLock { $0.users.cancel(userKey) }
    }

    /// Records held (user names, addresses): for statistics and tests.
    public var recordCounts: (users: Int, addresses: Int) {
        state.withLock { ($0.users.count, $0.addresses.count) }
    }

    private static let maxKeyBytes = 64

    /// Milliseconds as whole seconds, rounded up: a client told to wait must not come back early.
    private static func seconds(_ ms: UInt64) -> Int { Int((ms + 999) / 1000) }

    /// Canonical user name and address, cut to `maxKeyBytes` (no valid name or
    /// address text is longer) so hostile input cannot make big keys.
    private static func keys(_ user: String, _ address: String?) -> (String, String?) {
        func cut(_ s: String) -> String {
            s.utf8.count <= maxKeyBytes ? s : String(decoding: s.utf8.prefix(maxKeyBytes), as: UTF8.self)
        }
        return (cut(Credentials.canonicalName(user)), address.map(cut))
    }
}
