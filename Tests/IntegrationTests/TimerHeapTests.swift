@testable import Reactor
import Testing

/// The loop's timer heap against a plain model: random schedules, cancels and
/// expiries, with the next deadline checked after every step (the heap remembers
/// that its first entry is live, and a cancel must forget that).
@Suite("timer heap")
struct TimerHeapTests {
    @Test("next deadline and due callbacks match a model through random steps", arguments: [1, 2, 3, 4] as [UInt64])
    func againstModel(seed: UInt64) {
        var rng = SplitMix64(state: seed)
        var heap = TimerHeap()
        var live: [UInt64: (deadline: UInt64, id: TimerID)] = [:]  // by the number each callback reports
        var fired: [UInt64] = []
        var now: UInt64 = 0
        var serial: UInt64 = 0
        for _ in 0..<2_000 {
            switch rng.next() % 8 {
            case 0, 1, 2:
                serial += 1
                let n = serial
                let deadline = now + rng.next() % 50
                live[n] = (deadline, heap.schedule(at: deadline) { fired.append(n) })
            case 3, 4:
                // Often the earliest timer: the one whose liveness the heap remembers.
                let pick = rng.next() % 2 == 0 ? live.min { $0.value.deadline < $1.value.deadline } : live.randomElement(using: &rng)
                if let (n, entry) = pick {
                    heap.cancel(entry.id)
                    live[n] = nil
                }
            case 5:
                heap.cancel(.none)
            default:
                now += rng.next() % 20
                for callback in heap.takeDue(now: now) { callback() }
                let due = live.filter { $0.value.deadline <= now }
                #expect(Set(fired) == Set(due.keys))
                for n in fired { live[n] = nil }
                fired.removeAll()
            }
            let expected = live.values.map(\.deadline).min().map { $0 > now ? $0 - now : 0 }
            #expect(heap.millisecondsUntilNext(now: now) == expected)
        }
    }
}
