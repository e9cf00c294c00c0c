import Foundation
import Synchronization

/// A fixed set of worker threads for blocking work (password hashing, disk), with
/// a bounded queue: `submit` refuses work when the queue is full, so a flood
/// (CONNECTs with passwords) is answered "server busy" instead of piling up.
public final class BlockingPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var stopping = false
    private let queueLimit: Int
    private var threads: [Thread] = []

    public init(threads count: Int, queueLimit: Int, name: String) {
        self.queueLimit = queueLimit
        for i in 0..<max(1, count) {
            let t = Thread { [self] in run() }
            t.name = "\(name)-\(i)"
            threads.append(t)
            t.start()
        }
    }

    /// Queues `work` unless `queueLimit` jobs already wait; returns whether it did.
    public func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping || jobs.count - head >= queueLimit { return false }
        jobs.append(work)
        condition.signal()
        return true
    }

    /// Queues `work` whatever the queue's length (work that must run, and whose
    /// callers bound it themselves).
    public func submitWaiting(_ work: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(work)
        condition.signal()
        condition.unlock()
    }

    /// Jobs waiting (not yet running).
    public var queued: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count - head
    }

    /// Lets the queued jobs finish, then ends the threads.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while head == jobs.count && !stopping { condition.wait() }
            if head == jobs.count {
                condition.unlock()
                return
            }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job()
        }
    }
}
