import Foundation

/// A fixed set of worker threads for blocking work (password hashing, files,
/// DNS) that must stay off the event loops, behind a bounded queue.
///
/// The bound is the back-pressure: when `queueLimit` jobs are already waiting,
/// `submit` refuses at once instead of queueing without end, and the caller
/// answers "busy" (CONNACK 0x89, HTTP 503). A flood of logins thus costs at
/// most `threads` cores and `queueLimit` queued jobs, whatever its size. Unlike
/// the global Dispatch queue, the pool never grows threads when jobs block.
public final class BlockingPool: @unchecked Sendable {
    /// Worker threads.
    public let threads: Int
    /// Jobs that may wait (not counting the ones running).
    public let queueLimit: Int

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [(@Sendable () -> Void)?]
    private var first = 0
    private var waiting = 0
    private var stopping = false
    private var running = 0

    private let exited = DispatchGroup()

    /// Starts `threads` workers (default: one per core, at least one) named
    /// `parley-pool-N`.
    /// How much lower than the loops the workers run (nice value added).
    private let niceness: Int32

    public init(threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount), queueLimit: Int = 256,
                niceness: Int32 = 0)
    {
        self.niceness = niceness
        self.threads = max(1, threads)
        self.queueLimit = max(1, queueLimit)
        jobs = Array(repeating: nil, count: self.queueLimit)
        for index in 0..<self.threads { startWorker(index) }
    }

    /// Queues `work` for a worker thread. Returns false, and runs nothing, when
    /// the queue is full or the pool is shutting down.
    @discardableResult
    public func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, waiting < queueLimit else { return false }
        jobs[(first + waiting) % queueLimit] = work
        waiting += 1
        condition.signal()
        return true
    }

    /// Jobs waiting for a thread (not the running ones).
    public var queued: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting
    }

    /// Jobs running now.
    public var active: Int {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    /// Refuses new work, lets the workers finish what is queued, and returns once
    /// every worker has exited. Later calls return at once. Not from inside a job
    /// (it would wait for itself).
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        exited.wait()
    }

    private func startWorker(_ index: Int) {
        exited.enter()
        let thread = Thread { [self] in
            // Named from inside: on Linux, Foundation gives a name set before
            // `start` to the Thread object only, not to the system thread (ps, gdb).
            Thread.current.name = "parley-pool-\(index)"
            // Below the event loops: password hashing must not take a core from them
            // (on Linux the priority of PRIO_PROCESS 0 is this thread's own).
            if niceness > 0 { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness) }
            while let job = nextJob() {
                job()
                finishedJob()
            }
            exited.leave()
        }
        thread.start()
    }

    /// The oldest queued job; nil once the pool is stopping and the queue is empty.
    private func nextJob() -> (@Sendable () -> Void)? {
        condition.lock()
        defer { condition.unlock() }
        while waiting == 0 {
            if stopping { return nil }
            condition.wait()
        }
        let job = jobs[first]
        jobs[first] = nil
        first = (first + 1) % queueLimit
        waiting -= 1
        running += 1
        return job
    }

    private func finishedJob() {
        condition.lock()
        running -= 1
        condition.unlock()
    }
}
