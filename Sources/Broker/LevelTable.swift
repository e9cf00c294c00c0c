import Glibc
/// The children of a topic-trie node, keyed by level text. An open-addressing
/// table over FNV-1a hashes: a lookup hashes the level once, straight from the
/// topic's bytes, with no allocation and no String or Hasher involved.
struct LevelTable<Value: AnyObject> {
    private var keys: [[UInt8]] = []
    private var hashes: [UInt64] = []
    private(set) var values: [Value] = []
    /// Indices into keys/values, or -1; size is a power of two, at most half full.
    private var slots: [Int32] = []

    var isEmpty: Bool { values.isEmpty }
    var count: Int { values.count }

    @inline(__always)
    static func hash(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var i = start
        while i < end {
            h = (h ^ UInt64(p[i])) &* 0x100_0000_01b3
            i += 1
        }
        return h
    }

    /// The value for the level `p[start..<end]`.
    @inline(__always)
    func find(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Value? {
        if values.isEmpty { return nil }
        let h = Self.hash(p, start, end)
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        let length = end - start
        while true {
            let slot = Int(slots[i])
            if slot < 0 { return nil }
            if hashes[slot] == h && keys[slot].count == length {
                let equal = keys[slot].withUnsafeBufferPointer { k in
                    length == 0 || memcmp(k.baseAddress!, p.baseAddress! + start, length) == 0
                }
                if equal { return values[slot] }
            }
            i = (i + 1) & mask
        }
    }

    func find(_ key: ArraySlice<UInt8>) -> Value? {
        key.withUnsafeBufferPointer { find($0, 0, $0.count) }
    }

    mutating func insert(_ key: ArraySlice<UInt8>, _ value: Value) {
        keys.append(Array(key))
        hashes.append(key.withUnsafeBufferPointer { Self.hash($0, 0, $0.count) })
        values.append(value)
        if values.count * 2 > slots.count { rebuild() } else { place(values.count - 1) }
    }

    /// Removes the value for `key`, in constant time (the table of whole topics can
    /// be large): the last entry takes its place, and the probe chain is closed up.
    @discardableResult
    mutating func remove(key: ArraySlice<UInt8>) -> Value? {
        let h = key.withUnsafeBufferPointer { Self.hash($0, 0, $0.count) }
        guard let s = slot(of: key, hash: h) else { return nil }
        let index = Int(slots[s])
        let removed = values[index]
        closeGap(at: s)
        let last = values.count - 1
        if index != last {
            slots[slot(ofIndex: last)] = Int32(index)
            keys.swapAt(index, last)
            hashes.swapAt(index, last)
            values.swapAt(index, last)
        }
        keys.removeLast()
        hashes.removeLast()
        values.removeLast()
        return removed
    }

    /// The slot holding `key`, if it is in the table.
    private func slot(of key: ArraySlice<UInt8>, hash h: UInt64) -> Int? {
        if values.isEmpty { return nil }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let index = Int(slots[i])
            if index < 0 { return nil }
            if hashes[index] == h && keys[index].elementsEqual(key) { return i }
            i = (i + 1) & mask
        }
    }

    /// The slot holding entry `index` (which is in the table).
    private func slot(ofIndex index: Int) -> Int {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hashes[index]) & mask
        while Int(slots[i]) != index { i = (i + 1) & mask }
        return i
    }

    /// Empties slot `s` and moves later entries of its probe chain back into the gap,
    /// so that every entry stays reachable from its home slot (no tombstones).
    private mutating func closeGap(at s: Int) {
        let mask = slots.count - 1
        var gap = s
        var j = s
        slots[gap] = -1
        while true {
            j = (j + 1) & mask
            let index = Int(slots[j])
            if index < 0 { return }
            let home = Int(truncatingIfNeeded: hashes[index]) & mask
            // The entry may move into the gap unless its home lies after the gap, up to j (cyclically).
            let stays = gap <= j ? (home > gap && home <= j) : (home > gap || home <= j)
            if !stays {
                slots[gap] = slots[j]
                slots[j] = -1
                gap = j
            }
        }
    }

    mutating func remove(_ value: Value) {
        guard let i = values.firstIndex(where: { $0 === value }) else { return }
        keys.remove(at: i)
        hashes.remove(at: i)
        values.remove(at: i)
        rebuild()
    }

    private mutating func rebuild() {
        var size = 8
        while size < values.count * 2 { size *= 2 }
        slots = [Int32](repeating: -1, count: size)
        for i in values.indices { place(i) }
    }

    private mutating func place(_ index: Int) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hashes[index]) & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = Int32(index)
    }
}
