import Synchronization

/// One room's sequence: the last id handed out and the client keys of the last
/// 24 hours. It lives on the room's home loop (`BrokerServices.onLoop(of:)`), so
/// ids are handed out one at a time in one order, whichever loop a poster is on,
/// and posts are routed from that loop in id order after their commit.
final class RoomSequence {
    var lastID: Int64
    /// canonical sender + NUL + ckey -> (id, ts)
    var clientKeys: [String: (id: Int64, ts: Int64)] = [:]
    private var postsSincePrune = 0

    init(lastID: Int64) { self.lastID = lastID }

    static let clientKeyLifetime: Int64 = 24 * 3600 * 1000

    /// The id of an earlier post with this key, if it is recent enough to count.
    func repeated(_ key: String, now: Int64) -> Int64? {
        guard let prior = clientKeys[key], prior.ts > now - Self.clientKeyLifetime else { return nil }
        return prior.id
    }

    func forget(_ key: String) { clientKeys[key] = nil }

    func remember(_ key: String, id: Int64, ts: Int64) {
        clientKeys[key] = (id, ts)
        postsSincePrune += 1
        if postsSincePrune >= 1024 {
            postsSincePrune = 0
            let cutoff = ts - Self.clientKeyLifetime
            clientKeys = clientKeys.filter { $0.value.ts > cutoff }
        }
    }
}

/// The room sequences of each loop, each touched only by its own loop's thread.
final class RoomSequences: @unchecked Sendable {
    private final class LoopRooms { var rooms: [String: RoomSequence] = [:] }
    private var perLoop: [LoopRooms] = []
    /// Read from the database at start; each room's loop takes its own on first use.
    private let loaded = Mutex<[String: RoomSequence]>([:])

    func prepare(loops: Int, loaded rooms: [String: RoomSequence]) {
        perLoop = (0..<loops).map { _ in LoopRooms() }
        loaded.withLock { $0 = rooms }
    }

    /// The sequence of `room`, on the room's loop `index`.
    func sequence(_ room: String, loop index: Int) -> RoomSequence {
        let mine = perLoop[index]
        if let s = mine.rooms[room] { return s }
        let s = loaded.withLock { $0.removeValue(forKey: room) } ?? RoomSequence(lastID: 0)
        mine.rooms[room] = s
        return s
    }

    /// Forgets a deleted room (on its loop).
    func remove(_ room: String, loop index: Int) {
        perLoop[index].rooms[room] = nil
        loaded.withLock { _ = $0.removeValue(forKey: room) }
    }
}
