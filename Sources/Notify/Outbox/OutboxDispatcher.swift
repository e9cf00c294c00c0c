import Broker
import Chat
import Dispatch
import Foundation
import Reactor
import Store
import Synchronization

/// The outbox's engine, on its own thread (never a loop). Each turn it ends the
/// watches whose grace ran out, turns unseen posts into outbox rows, claims the
/// rows that are due and hands them to at most `notify_workers` delivery
/// threads, at most `notify_per_destination` to one destination at a time; each
/// outcome is committed before its rows can be claimed again. Only settling
/// unseen posts and recording outcomes are writes (in the store's batches);
/// finding and claiming due rows is a read, so a delivery slot never waits for a
/// batch window (`durability = none` or `batch`).
final class OutboxDispatcher: @unchecked Sendable {
    struct Configuration: Sendable {
        var workers = 4
        var perDestination = 2
        var graceMilliseconds: Int64 = 30_000
        var emailConfigured = false
        var policy = OutboxRows.RetryPolicy()
        /// How often a turn runs when nothing wakes it sooner.
        var turnMilliseconds = 200
    }

    private let storage: PluginStorage
    private let watch: UnseenWatch
    private let chat: ChatPlugin
    let counters: NotifyCounters
    private let onDeviceGone: @Sendable (String) -> Void
    private let current: Mutex<(Configuration, Deliverer)>
    private let wake = DispatchSemaphore(value: 0)
    private let workers = DispatchQueue(label: "parley.notify.delivery", attributes: .concurrent)

    private struct Busy {
        var ids: Set<Int64> = []
        var jobs = 0
        var perDestination: [String: Int] = [:]
        var stopped = false
    }

    private let busy = Mutex(Busy())
    private var lastExpiry: Int64 = 0
    private var lastCount: Int64 = 0
    private var thread: Thread?

    init(storage: PluginStorage, watch: UnseenWatch, chat: ChatPlugin, counters: NotifyCounters,
         configuration: Configuration, deliverer: Deliverer, onDeviceGone: @escaping @Sendable (String) -> Void)
    {
        self.storage = storage
        self.watch = watch
        self.chat = chat
        self.counters = counters
        self.onDeviceGone = onDeviceGone
        self.current = Mutex((configuration, deliverer))
    }

    func start() {
        let t = Thread { [self] in run() }
        t.name = "parley-notify"
        thread = t
        t.start()
    }

    func stop() {
        busy.withLock { $0.stopped = true }
        wake.signal()
    }

    /// Something may be due now (a post for an offline member, an outcome).
    func kick() { wake.signal() }

    func update(_ configuration: Configuration, _ deliverer: Deliverer) {
        current.withLock { $0 = (configuration, deliverer) }
        kick()
    }

    private var isStopped: Bool { busy.withLock { $0.stopped } }

    private func run() {
        while !isStopped {
            turn()
            let pause = current.withLock { $0.0.turnMilliseconds }
            _ = wake.wait(timeout: .now() + .milliseconds(pause))
        }
    }

    // MARK: One turn

    private func turn() {
        let (config, deliverer) = current.withLock { $0 }
        let now = Timestamp.now()
        let seen = watch.harvest(now: now)
        let (free, taken) = busy.withLock { b in (config.workers - b.jobs, b.ids) }
        let upkeep = now - lastExpiry >= 10_000
        let recount = now - lastCount >= 5_000
        // A read first: an idle outbox costs no write, and the count no write either.
        let probe = try? wait(read: { db in
            (due: try OutboxRows.due(now: now, db), pending: recount ? try OutboxRows.pendingCount(db) : nil)
        })
        if let pending = probe?.pending {
            counters.pending.store(Int(pending), ordering: .relaxed)
            lastCount = now
        }
        if !seen.isEmpty || upkeep || probe?.due.unseen == true {
            if upkeep { lastExpiry = now }
            let chat = self.chat
            _ = try? wait(write: { db in
                try UnseenRows.delete(seen, db)
                let due = try UnseenRows.takeDue(cutoff: now, limit: 500, db)
                let made = try OutboxRows.expand(due, chat: chat, emailConfigured: config.emailConfigured, now: now, db)
                if upkeep { try OutboxRows.expire(now: now, maxAgeMilliseconds: config.policy.maxAgeMilliseconds, db) }
                return made
            })
        } else if probe?.due.outbox != true {
            return
        }
        guard free > 0 else { return }
        let jobs = (try? wait(read: { db in try OutboxRows.claimDue(now: now, limit: free * 4, busy: taken, db) })) ?? []
        dispatch(jobs, config: config, deliverer: deliverer)
    }

    private func dispatch(_ jobs: [DeliveryJob], config: Configuration, deliverer: Deliverer) {
        for job in jobs {
            let destination = Deliverer.destination(of: job)
            let admitted = busy.withLock { b -> Bool in
                guard !b.stopped, b.jobs < config.workers, b.perDestination[destination, default: 0] < config.perDestination,
                      b.ids.isDisjoint(with: job.ids)
                else { return false }
                b.jobs += 1
                b.perDestination[destination, default: 0] += 1
                b.ids.formUnion(job.ids)
                return true
            }
            guard admitted else { continue }
            workers.async { [self] in
                let outcome = deliverer.deliver(job, now: Timestamp.now() / 1000)
                // The slot is free at once; the rows stay claimed until the outcome is committed.
                busy.withLock { b in
                    b.jobs -= 1
                    b.perDestination[destination, default: 1] -= 1
                    if b.perDestination[destination] == 0 { b.perDestination[destination] = nil }
                }
                kick()
                finished(job, outcome, policy: config.policy)
            }
        }
    }

    /// Records an outcome; the rows are free to be claimed once it is committed.
    private func finished(_ job: DeliveryJob, _ outcome: DeliveryOutcome, policy: OutboxRows.RetryPolicy) {
        let now = Timestamp.now()
        counters.count(outcome, channel: job.channel, notifications: job.ids.count,
                       secondsSincePost: Double(now - job.oldest) / 1000)
        logFailure(job, outcome)
        let gone: String? = if case .gone = outcome, case .push(let device, _) = job { device.id } else { nil }
        let onDeviceGone = self.onDeviceGone
        storage.write(PluginWrite(plugin: Notify.pluginName) { db in
            if let gone, let user = try OutboxRows.removeDevice(gone, db) { onDeviceGone(user) }
            try OutboxRows.record(job.ids, outcome, now: now, policy: policy, db)
        }) { [self] _ in
            busy.withLock { $0.ids.subtract(job.ids) }
            kick()
        }
    }

    private func logFailure(_ job: DeliveryJob, _ outcome: DeliveryOutcome) {
        switch outcome {
        case .delivered: return
        case .retry(let reason, _):
            Log.info("notify.retry", ["channel": job.channel.rawValue, "ids": job.ids.map(String.init).joined(separator: ","), "error": reason])
        case .dead(let reason), .gone(let reason):
            Log.warning("notify.dead", ["channel": job.channel.rawValue, "ids": job.ids.map(String.init).joined(separator: ","), "error": reason])
        }
    }

    // MARK: Waiting for the store

    /// Runs `work` on the store's thread and waits (at most 30 s) for its answer.
    private func wait<T: Sendable>(read work: @escaping @Sendable (SQLiteDatabase) throws -> T) throws -> T {
        let box = ResultBox<T>()
        storage.read { db in box.set(Result { try work(db) }) }
        return try box.get()
    }

    /// `work` as a write in the store's next batch; waits for its commit.
    private func wait<T: Sendable>(write work: @escaping @Sendable (SQLiteDatabase) throws -> T) throws -> T {
        let box = ResultBox<T>()
        storage.write(PluginWrite(plugin: Notify.pluginName) { db in
            do { box.stash(.success(try work(db))) } catch {
                box.stash(.failure(error))
                throw error
            }
        }) { ok in box.commit(ok) }
        return try box.get()
    }
}

/// A value handed from the store's thread to a waiting one.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let value = Mutex<Result<T, any Error>?>(nil)
    private let stashed = Mutex<Result<T, any Error>?>(nil)

    func set(_ result: Result<T, any Error>) {
        value.withLock { $0 = result }
        done.signal()
    }

    /// A write's answer, kept until its commit says whether it counts.
    func stash(_ result: Result<T, any Error>) { stashed.withLock { $0 = result } }

    func commit(_ ok: Bool) {
        let result = stashed.withLock { $0 } ?? .failure(StoreError("the write did not run"))
        set(ok ? result : .failure(StoreError("the commit failed")))
    }

    func get() throws -> T {
        guard done.wait(timeout: .now() + .seconds(30)) == .success else { throw StoreError("the store did not answer") }
        return try value.withLock { $0! }.get()
    }
}
