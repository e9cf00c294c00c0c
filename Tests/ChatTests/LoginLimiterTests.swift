import Chat
import Dispatch
import Synchronization
import Testing

@Suite("Login limiter")
struct LoginLimiterTests {
    private let minute: UInt64 = 60_000

    /// `count` failures for `user` from `address`, one a second from `start`; the lock-outs they started.
    @discardableResult
    private func fail(
        _ limiter: LoginLimiter, _ user: String, from address: String? = "10.0.0.1", times count: Int, at start: UInt64
    ) -> [LoginLimiter.Lockout] {
        (0..<count).flatMap { limiter.recordFailure(user: user, address: address, now: start + UInt64($0) * 1000) }
    }

    @Test("the fifth failure in five minutes locks the name out for a minute")
    func firstLockout() {
        let limiter = LoginLimiter()
        #expect(fail(limiter, "alice", from: nil, times: 4, at: 0).isEmpty)
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 4_000) == .allowed)
        let started = limiter.recordFailure(user: "alice", address: nil, now: 4_000)
        #expect(started == [LoginLimiter.Lockout(subject: .user("alice"), seconds: 60)])
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 4_000) == .lockedOut(retryAfterSeconds: 60))
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 63_500) == .lockedOut(retryAfterSeconds: 1))
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 64_000) == .allowed)
        #expect(limiter.beginAttempt(user: "bob", address: nil, now: 4_000) == .allowed)
    }

    @Test("each further lock-out doubles, up to 15 minutes")
    func doubling() {
        let limiter = LoginLimiter()
        var now: UInt64 = 0
        var lengths: [Int] = []
        for _ in 0..<7 {
            let started = fail(limiter, "alice", from: nil, times: 5, at: now)
            lengths += started.map(\.seconds)
            guard case .lockedOut(let wait) = limiter.beginAttempt(user: "alice", address: nil, now: now + 4_000) else {
                Issue.record("not locked out")
                return
            }
            now += 4_000 + UInt64(wait) * 1000
            #expect(limiter.beginAttempt(user: "alice", address: nil, now: now) == .allowed)
        }
        #expect(lengths == [60, 120, 240, 480, 900, 900, 900])
    }

    @Test("failures older than the window do not count")
    func slidingWindow() {
        let limiter = LoginLimiter()
        for t: UInt64 in [0, 1, 2, 3] { limiter.recordFailure(user: "alice", address: nil, now: t * minute) }
        // The failure at 0 has aged out: four in the window.
        #expect(limiter.recordFailure(user: "alice", address: nil, now: 5 * minute).isEmpty)
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 5 * minute) == .allowed)
        // 1, 2, 3, 5 and 5.5 minutes: five within five minutes.
        #expect(!limiter.recordFailure(user: "alice", address: nil, now: 5 * minute + 30_000).isEmpty)
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 6 * minute) != .allowed)
    }

    @Test("attempts refused during a lock-out neither count nor lengthen it")
    func refusedAttempts() {
        let limiter = LoginLimiter()
        fail(limiter, "alice", from: nil, times: 5, at: 0)
        for t in stride(from: UInt64(5_000), to: 60_000, by: 5_000) {
            #expect(limiter.recordFailure(user: "alice", address: nil, now: t).isEmpty)
        }
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 64_000) == .allowed)
        // The count started afresh when the lock-out began: four more are allowed.
        #expect(fail(limiter, "alice", from: nil, times: 4, at: 64_000).isEmpty)
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 68_000) == .allowed)
    }

    @Test("running attempts on one name count: a burst of guesses cannot outrun the limit")
    func burst() {
        let limiter = LoginLimiter()
        for _ in 0..<5 { #expect(limiter.beginAttempt(user: "alice", address: nil, now: 0) == .allowed) }
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 0) == .lockedOut(retryAfterSeconds: 1))
        // One ends wrong: 1 failure and 4 running still fill the 5.
        limiter.recordFailure(user: "alice", address: nil, now: 40)
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 40) == .lockedOut(retryAfterSeconds: 1))
        // One never reaches the check (the pool was full): a slot frees.
        limiter.cancelAttempt(user: "alice")
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 50) == .allowed)
        // All five wrong: locked out; the burst got 5 guesses, not more.
        let started = (0..<4).flatMap { _ in limiter.recordFailure(user: "alice", address: nil, now: 80) }
        #expect(started.map(\.seconds) == [60])
    }

    @Test("a success ends the running attempts too")
    func burstThenSuccess() {
        let limiter = LoginLimiter()
        for _ in 0..<5 { _ = limiter.beginAttempt(user: "alice", address: nil, now: 0) }
        limiter.recordSuccess(user: "alice")
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 10) == .allowed)
    }

    @Test("attempts never ended stop counting after 30 seconds")
    func abandonedAttempts() {
        let limiter = LoginLimiter()
        for _ in 0..<5 { _ = limiter.beginAttempt(user: "alice", address: nil, now: 0) }
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 29_999) == .lockedOut(retryAfterSeconds: 1))
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 30_000) == .allowed)
    }

    @Test("an address does not count running attempts: many users behind one NAT log in at once")
    func sharedAddress() {
        let limiter = LoginLimiter()
        for i in 0..<100 { #expect(limiter.beginAttempt(user: "user\(i)", address: "203.0.113.1", now: 0) == .allowed) }
        for i in 0..<100 { limiter.recordSuccess(user: "user\(i)") }
        #expect(limiter.recordCounts == (0, 0))
    }

    @Test("user names are counted ignoring case")
    func caseInsensitive() {
        let limiter = LoginLimiter()
        for (i, name) in ["alice", "Alice", "ALICE", "aLiCe", "alicE"].enumerated() {
            limiter.recordFailure(user: name, address: nil, now: UInt64(i))
        }
        #expect(limiter.beginAttempt(user: "ALICE", address: nil, now: 10) == .lockedOut(retryAfterSeconds: 60))
    }

    @Test("one address failing for many names is locked out, for every name")
    func perAddress() {
        let limiter = LoginLimiter()
        var started: [LoginLimiter.Lockout] = []
        for i in 0..<5 { started += limiter.recordFailure(user: "user\(i)", address: "192.0.2.7", now: UInt64(i) * 1000) }
        #expect(started == [LoginLimiter.Lockout(subject: .address("192.0.2.7"), seconds: 60)])
        #expect(limiter.beginAttempt(user: "someone", address: "192.0.2.7", now: 5_000) == .lockedOut(retryAfterSeconds: 59))
        #expect(limiter.beginAttempt(user: "someone", address: "192.0.2.8", now: 5_000) == .allowed)
        #expect(limiter.beginAttempt(user: "user0", address: nil, now: 5_000) == .allowed)
    }

    @Test("the longer of the name's and the address's lock-outs is the answer")
    func bothLocked() {
        let limiter = LoginLimiter()
        let started = fail(limiter, "alice", from: "192.0.2.7", times: 5, at: 0)
        #expect(started.count == 2)
        fail(limiter, "bob", from: "192.0.2.9", times: 5, at: 30_000)
        #expect(limiter.beginAttempt(user: "bob", address: "192.0.2.7", now: 40_000) == .lockedOut(retryAfterSeconds: 54))
    }

    @Test("a success resets the name's count, not the address's")
    func success() {
        let limiter = LoginLimiter()
        fail(limiter, "alice", times: 4, at: 0)
        limiter.recordSuccess(user: "Alice")
        // Alice starts again from zero, but the address has its fifth failure now.
        #expect(limiter.recordFailure(user: "alice", address: "10.0.0.1", now: 5_000)
            == [LoginLimiter.Lockout(subject: .address("10.0.0.1"), seconds: 60)])
        #expect(limiter.beginAttempt(user: "alice", address: "10.0.0.2", now: 6_000) == .allowed)
        #expect(limiter.beginAttempt(user: "alice", address: "10.0.0.1", now: 6_000) != .allowed)
    }

    @Test("a success also forgets the doubling")
    func successForgetsDoubling() {
        let limiter = LoginLimiter()
        fail(limiter, "alice", from: nil, times: 5, at: 0)
        limiter.recordSuccess(user: "alice")
        #expect(fail(limiter, "alice", from: nil, times: 5, at: 70_000).map(\.seconds) == [60])
    }

    @Test("after 15 quiet minutes the doubling starts again")
    func forgetting() {
        let limiter = LoginLimiter()
        fail(limiter, "alice", from: nil, times: 5, at: 0)  // locked until 64 s
        let end: UInt64 = 64_000
        fail(limiter, "bob", from: nil, times: 5, at: 0)
        // Just inside the memory, bob's next lock-out doubles; just past it, alice's does not.
        #expect(fail(limiter, "bob", from: nil, times: 5, at: end + 15 * minute - 5_000).map(\.seconds) == [120])
        #expect(fail(limiter, "alice", from: nil, times: 5, at: end + 15 * minute).map(\.seconds) == [60])
    }

    @Test("records expire, so an idle table empties")
    func expiry() {
        let limiter = LoginLimiter()
        for i in 0..<100 { limiter.recordFailure(user: "user\(i)", address: "10.0.\(i).1", now: UInt64(i)) }
        #expect(limiter.recordCounts == (100, 100))
        // Each call sweeps a bounded number of expired records.
        for _ in 0..<4 {
            _ = limiter.beginAttempt(user: "x", address: "y", now: 20 * minute)
            limiter.recordSuccess(user: "x")
        }
        #expect(limiter.recordCounts == (0, 0))
    }

    @Test("a flood of random names stays within capacity and keeps lock-outs")
    func bounded() {
        let limiter = LoginLimiter(capacity: 100)
        fail(limiter, "victim", from: nil, times: 5, at: 0)
        for i in 0..<10_000 {
            limiter.recordFailure(user: "random\(i)", address: "198.51.100.\(i % 250)", now: 5_000 + UInt64(i))
        }
        #expect(limiter.recordCounts.users <= 100)
        #expect(limiter.recordCounts.addresses <= 100)
        #expect(limiter.beginAttempt(user: "victim", address: nil, now: 30_000) != .allowed)
        // The newest records are the ones kept.
        #expect(fail(limiter, "random9999", from: nil, times: 4, at: 20_000).map(\.seconds) == [60])
    }

    @Test("hostile long names are cut, not stored whole")
    func longKeys() {
        let limiter = LoginLimiter()
        let long = String(repeating: "x", count: 10_000)
        let started = fail(limiter, long, from: long, times: 5, at: 0)
        #expect(started.count == 2)
        #expect(started.allSatisfy {
            switch $0.subject {
            case .user(let key), .address(let key): return key.utf8.count == 64
            }
        })
    }

    @Test("a policy keeps its numbers consistent")
    func policy() {
        let policy = LoginLimiter.Policy(maxFailures: 0, window: 600_000, firstLockout: 120_000, maxLockout: 1, forgetAfter: 0)
        #expect(policy.maxFailures == 1 && policy.maxLockout == 120_000 && policy.forgetAfter == 600_000)
        #expect(LoginLimiter.Policy.default == LoginLimiter.Policy(
            maxFailures: 5, window: 300_000, firstLockout: 60_000, maxLockout: 900_000, forgetAfter: 900_000))
    }

    @Test("concurrent failures are each counted once")
    func concurrent() {
        let policy = LoginLimiter.Policy(maxFailures: 800)
        let limiter = LoginLimiter(policy: policy)
        let lockouts = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for i in 0..<100 {
                let started = limiter.recordFailure(user: "alice", address: nil, now: UInt64(thread * 100 + i))
                lockouts.add(started.count, ordering: .relaxed)
            }
        }
        #expect(lockouts.load(ordering: .relaxed) == 1)
        #expect(limiter.beginAttempt(user: "alice", address: nil, now: 1_000) != .allowed)
    }
}
