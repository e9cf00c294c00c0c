import Broker
import JSON
import MQTT
import Store
import Synchronization

/// Unread messages per member and room (messages after the member's read marker,
/// their own excluded), kept in memory from the database and published retained
/// on `users/<user>/unread` as `{"<room>": <count>, ...}`: at most once a second
/// per user, however many posts arrive.
final class UnreadCounts: @unchecked Sendable {
    private struct State {
        var counts: [String: [String: Int]] = [:]
        var dirty: Set<String> = []
    }
    private let state = Mutex(State())

    func load(_ db: SQLiteDatabase) throws {
        let q = try db.prepare("""
            SELECT m.user, m.room, (SELECT count(*) FROM chat_messages c
                WHERE c.room = m.room AND c.id > m.read_up_to AND c.sender_key != m.user)
            FROM chat_members m
            """)
        var counts: [String: [String: Int]] = [:]
        while try q.step() { counts[q.text(0) ?? "", default: [:]][q.text(1) ?? ""] = Int(q.int(2)) }
        state.withLock { $0.counts = counts }
    }

    /// A post was committed: one more unread for every other member.
    func posted(room: String, by sender: String, directory: ChatDirectory) {
        guard let members = directory.room(room)?.members else { return }
        let from = Credentials.canonicalName(sender)
        state.withLock { s in
            for m in members where m != from {
                s.counts[m, default: [:]][room, default: 0] += 1
                s.dirty.insert(m)
            }
        }
    }

    func set(user: String, room: String, count: Int) {
        state.withLock { s in
            s.counts[user, default: [:]][room] = count
            s.dirty.insert(user)
        }
    }

    /// The member left the room (or the room went).
    func remove(user: String, room: String) {
        state.withLock { s in
            guard s.counts[user]?.removeValue(forKey: room) != nil else { return }
            s.dirty.insert(user)
        }
    }

    func count(user: String, room: String) -> Int { state.withLock { $0.counts[user]?[room] ?? 0 } }

    /// The users whose counts changed since the last call, with all their counts.
    func takeChanged() -> [(user: String, counts: [String: Int])] {
        state.withLock { s in
            let out = s.dirty.map { ($0, s.counts[$0] ?? [:]) }
            s.dirty.removeAll()
            return out
        }
    }

    /// `{"<room>": <count>, ...}`, rooms in name order.
    static func payload(_ counts: [String: Int]) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            for (room, n) in counts.sorted(by: { $0.key < $1.key }) { o.field(room, n) }
        }
        return w.bytes
    }
}

extension ChatPlugin {
    /// Publishes the changed unread counts (retained), once a second.
    func publishUnread() {
        for (user, counts) in unread.takeChanged() {
            let name = directory.user(user)?.name ?? user
            services.publish(topic: ChatTopic.unread(name), payload: UnreadCounts.payload(counts), qos: .atLeastOnce,
                             retain: true, properties: .none)
        }
    }

    /// After a receipt: the member's unread count in the room, from the database.
    func recountUnread(user: String, room: String, marker: Int64) {
        services.storage.read { [self] db in
            guard let q = try? db.cached("SELECT count(*) FROM chat_messages WHERE room = ? AND id > ? AND sender_key != ?")
            else { return }
            q.bind(1, room).bind(2, marker).bind(3, user)
            let n = (try? q.scalar()) ?? 0
            unread.set(user: user, room: room, count: Int(n))
        }
    }
}
