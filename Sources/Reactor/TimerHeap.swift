/// Identifies a scheduled timer so that it can be cancelled.
public struct TimerID: Hashable, Sendable {
    let value: UInt64
    /// No timer: cancelling it does nothing.
    public static let none = TimerID(value: 0)
}

/// Timers of one event loop: a binary min-heap of deadlines. Cancelling removes the
/// callback at once; its heap entry is skipped when it comes up.
struct TimerHeap {
    private struct Entry {
        let deadline: UInt64
        let id: UInt64
    }
    private var heap: [Entry] = []
    private var callbacks: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 1
    /// The id of the heap's first entry when it is known to be live (not cancelled):
    /// spares the loop a table lookup on every turn.
    private var liveFirst: UInt64 = 0

    mutating func schedule(at deadline: UInt64, _ callback: @escaping () -> Void) -> TimerID {
        let id = nextID
        nextID += 1
        callbacks[id] = callback
        heap.append(Entry(deadline: deadline, id: id))
        siftUp(heap.count - 1)
        return TimerID(value: id)
    }

    mutating func cancel(_ timer: TimerID) {
        if timer.value == 0 { return }
        callbacks[timer.value] = nil
        if timer.value == liveFirst { liveFirst = 0 }
    }

    mutating func millisecondsUntilNext(now: UInt64) -> UInt64? {
        while let first = heap.first, first.id != liveFirst {
            if callbacks[first.id] != nil {
                liveFirst = first.id
                break
            }
            popFirst()
        }
        guard let first = heap.first else { return nil }
        return first.deadline > now ? first.deadline - now : 0
    }

    /// Removes and returns the callbacks that are due; the caller runs them (a
    /// callback may schedule new timers, which must not happen inside this mutation).
    mutating func takeDue(now: UInt64) -> [() -> Void] {
        var due: [() -> Void] = []
        while let first = heap.first, first.deadline <= now {
            popFirst()
            if let callback = callbacks.removeValue(forKey: first.id) { due.append(callback) }
        }
        return due
    }

    private mutating func popFirst() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].deadline <= heap[i].deadline { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < n && heap[l].deadline < heap[smallest].deadline { smallest = l }
            if r < n && heap[r].deadline < heap[smallest].deadline { smallest = r }
            if smallest == i { return }
            heap.swapAt(i, smallest)
            i = smallest
        }
    }
}
