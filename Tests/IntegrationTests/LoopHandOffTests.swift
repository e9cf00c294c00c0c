// Work one thread does in a parked loop's place (`EventLoop.runIfParked`): only
// while the loop has nothing to do, after what was queued for it, and without
// leaving it asleep past a timer set meanwhile.
import Foundation
import Glibc
import Broker
@testable import Reactor
import Synchronization
import Testing

@Suite("Work done in a parked loop's place")
struct LoopHandOffTests {
    /// A started loop, given time to park in epoll_wait.
    static func parkedLoop() throws -> EventLoop {
        let loop = try EventLoop(index: 0, name: "hand-off-test")
        loop.start()
        usleep(20_000)
        return loop
    }

    static func stop(_ loop: EventLoop) {
        loop.stop()
        loop.join()
    }

    @Test("a parked loop's work runs on the caller, which owns the loop meanwhile")
    func runsInPlace() throws {
        let loop = try Self.parkedLoop()
        defer { Self.stop(loop) }
        #expect(!loop.inLoop)
        var ownedInside = false
        var ran = false
        let done = loop.runIfParked {
            ownedInside = loop.inLoop
            ran = true
        }
        #expect(done && ran && ownedInside)
        #expect(!loop.inLoop)
    }

    @Test("a busy loop is left alone")
    func busyLoopRefuses() throws {
        let loop = try Self.parkedLoop()
        defer { Self.stop(loop) }
        let entered = Atomic<Bool>(false)
        let release = Atomic<Bool>(false)
        loop.execute {
            entered.store(true, ordering: .releasing)
            while !release.load(ordering: .acquiring) { usleep(1000) }
        }
        while !entered.load(ordering: .acquiring) { usleep(1000) }
        var ran = false
        #expect(!loop.runIfParked { ran = true })
        #expect(!ran)
        release.store(true, ordering: .releasing)
    }

    @Test("a loop that is not running is left alone")
    func stoppedLoopRefuses() throws {
        let unstarted = try EventLoop(index: 0)
        #expect(!unstarted.runIfParked {})
        let loop = try Self.parkedLoop()
        Self.stop(loop)
        #expect(!loop.runIfParked {})
    }

    @Test("tasks queued for the loop run before work done in its place")
    func keepsOrder() throws {
        let loop = try Self.parkedLoop()
        defer { Self.stop(loop) }
        // Who wins the loop (its own thread woken by the task, or this one) varies
        // from round to round; the order may not.
        let order = Mutex<[Int]>([])
        var inPlace = 0
        for round in 0..<2_000 {
            loop.execute { order.withLock { $0.append(2 * round) } }
            if loop.runIfParked({ order.withLock { $0.append(2 * round + 1) } }) {
                inPlace += 1
            } else {
                loop.execute { order.withLock { $0.append(2 * round + 1) } }
            }
        }
        let finished = Atomic<Bool>(false)
        loop.execute { finished.store(true, ordering: .releasing) }
        while !finished.load(ordering: .acquiring) { usleep(1000) }
        let seen = order.withLock { $0 }
        let firstOutOfOrder = zip(seen, 0...).first { $0.0 != $0.1 }.map { $0.1 }
        #expect(seen.count == 4_000 && firstOutOfOrder == nil, "out of order from position \(firstOutOfOrder ?? -1)")
        #expect(inPlace > 0, "no round found the loop parked")
    }

    @Test("a timer set in the loop's place wakes it when it is due")
    func timerWakesLoop() throws {
        let loop = try Self.parkedLoop()
        defer { Self.stop(loop) }
        // Parked with nothing to do, the loop would sleep a second; the timer is due
        // in 5 ms and must not wait for that.
        let fired = Atomic<UInt64>(0)
        let set = EventLoop.monotonicNanoseconds()
        #expect(loop.runIfParked {
            loop.schedule(afterMilliseconds: 5) { fired.store(EventLoop.monotonicNanoseconds(), ordering: .releasing) }
        })
        let deadline = set + 3_000_000_000
        while fired.load(ordering: .acquiring) == 0 && EventLoop.monotonicNanoseconds() < deadline { usleep(1000) }
        let at = fired.load(ordering: .acquiring)
        #expect(at != 0)
        #expect(at - set < 800_000_000, "fired \((at - set) / 1_000_000) ms after it was set")
    }

    @Test("the default loop count leaves a core for the rest")
    func defaultLoops() {
        #expect(Broker.defaultLoopCount(cores: 1) == 1)
        #expect(Broker.defaultLoopCount(cores: 2) == 1)
        #expect(Broker.defaultLoopCount(cores: 8) == 7)
    }
}
