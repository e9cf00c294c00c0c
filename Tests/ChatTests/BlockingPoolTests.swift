import Broker
import Dispatch
import Foundation
import Synchronization
import Testing

/// The pool lives in Broker (the broker's `runBlocking` uses it too); it is tested
/// here, next to its first user, since Broker has no unit-test target of its own.
@Suite("Blocking pool")
struct BlockingPoolTests {
    @Test("runs every job it accepts, then shuts down")
    func runsAll() {
        let pool = BlockingPool(threads: 2, queueLimit: 256)
        let done = Atomic<Int>(0)
        for _ in 0..<200 { #expect(pool.submit { done.add(1, ordering: .relaxed) }) }
        pool.shutdown()
        #expect(done.load(ordering: .relaxed) == 200)
        #expect(!pool.submit {})
        pool.shutdown()  // a second call returns at once
    }

    @Test("a full queue refuses at once: back-pressure")
    func backPressure() {
        let pool = BlockingPool(threads: 1, queueLimit: 3)
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = Atomic<Int>(0)
        #expect(pool.submit {
            started.signal()
            release.wait()
            done.add(1, ordering: .relaxed)
        })
        started.wait()  // the one thread is busy from here on
        #expect(pool.active == 1)
        for _ in 0..<3 { #expect(pool.submit { done.add(1, ordering: .relaxed) }) }
        #expect(pool.queued == 3)
        #expect(!pool.submit { done.add(100, ordering: .relaxed) })
        release.signal()
        pool.shutdown()
        #expect(done.load(ordering: .relaxed) == 4)
    }

    @Test("never more jobs at once than threads")
    func bounded() {
        let pool = BlockingPool(threads: 2, queueLimit: 64)
        let running = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
        for _ in 0..<40 {
            pool.submit {
                let now = running.add(1, ordering: .relaxed).newValue
                _ = peak.max(now, ordering: .relaxed)
                usleep(500)  // blocking work, the pool's purpose
                running.subtract(1, ordering: .relaxed)
            }
        }
        pool.shutdown()
        #expect(peak.load(ordering: .relaxed) <= 2)
        #expect(peak.load(ordering: .relaxed) >= 1)
    }

    @Test("jobs run on the pool's own named threads")
    func threadNames() {
        let pool = BlockingPool(threads: 1)
        let names = Mutex<(foundation: String?, system: String?)>((nil, nil))
        pool.submit {
            let comm = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            names.withLock { $0 = (Thread.current.name, comm) }
        }
        pool.shutdown()
        let (foundation, system) = names.withLock { $0 }
        #expect(foundation == "parley-pool-0")
        #expect(system == "parley-pool-0\n")  // what ps and gdb show
        #expect(pool.threads == 1 && pool.queueLimit == 256)
    }

    @Test("the default is one thread per core")
    func defaults() {
        let pool = BlockingPool()
        #expect(pool.threads == max(1, ProcessInfo.processInfo.activeProcessorCount))
        pool.shutdown()
    }
}
