import MQTT
import Synchronization

/// Shared subscriptions (`$share/<group>/<filter>`), across all loops: each message
/// that matches a group goes to one member, chosen in turn. Matched once, by the
/// loop where the message was published.
final class SharedSubscriptions: @unchecked Sendable {
    struct Member {
        let clientID: String
        let loop: Int
        var options: Subscription
        var identifier: UInt32?
        /// Whether the member's session has a connection: messages go to online
        /// members first, so an offline member's turn is not queued (or lost) while
        /// another could take it [MQTT 5 section 4.8.2].
        var online = true
    }

    struct Group {
        let name: ByteString
        let filter: ByteString
        var members: [Member] = []
        var next = 0
    }

    private let groups = Mutex<[ByteString: Group]>([:])
    private let groupCount = Atomic<Int>(0)

    var isEmpty: Bool { groupCount.load(ordering: .relaxed) == 0 }

    private static func key(_ group: ByteString, _ filter: ByteString) -> ByteString {
        ByteString(Array(group.bytes) + [0] + Array(filter.bytes))
    }

    /// Adds or updates a member; returns true when the member was already there.
    @discardableResult
    func add(group: ByteString, filter: ByteString, member: Member) -> Bool {
        groups.withLock { all in
            let k = Self.key(group, filter)
            var g = all[k] ?? Group(name: group.compacted, filter: filter.compacted)
            var existed = false
            if let i = g.members.firstIndex(where: { $0.clientID == member.clientID }) {
                g.members[i] = member
                existed = true
            } else {
                g.members.append(member)
            }
            if all[k] == nil { groupCount.add(1, ordering: .relaxed) }
            all[k] = g
            return existed
        }
    }

    @discardableResult
    func remove(group: ByteString, filter: ByteString, clientID: String) -> Bool {
        groups.withLock { all in
            let k = Self.key(group, filter)
            guard var g = all[k], let i = g.members.firstIndex(where: { $0.clientID == clientID }) else { return false }
            g.members.remove(at: i)
            if g.members.isEmpty {
                all[k] = nil
                groupCount.subtract(1, ordering: .relaxed)
            } else {
                all[k] = g
            }
            return true
        }
    }

    /// True when some group with members matches `topic`.
    func matchesAny(topic: ByteString) -> Bool {
        groups.withLock { all in
            all.values.contains { !$0.members.isEmpty && TopicRules.matches(name: topic.bytes, filter: $0.filter.bytes) }
        }
    }

    /// Marks a client's memberships online or offline (its session got or lost its connection).
    func setOnline(clientID: String, _ online: Bool) {
        if isEmpty { return }
        groups.withLock { all in
            for (k, g) in all {
                guard let i = g.members.firstIndex(where: { $0.clientID == clientID }) else { continue }
                all[k]!.members[i].online = online
            }
        }
    }

    /// One member of every group whose filter matches `topic`: the next online one
    /// in turn, or the next one in turn when none is online.
    func pick(topic: ByteString, origin: String?) -> [Member] {
        groups.withLock { all in
            var chosen: [Member] = []
            for (k, var g) in all where TopicRules.matches(name: topic.bytes, filter: g.filter.bytes) {
                let n = g.members.count
                guard n > 0 else { continue }
                var pick = g.next % n
                for step in 0..<n where g.members[(g.next + step) % n].online {
                    pick = (g.next + step) % n
                    break
                }
                g.next = (pick + 1) % n
                all[k] = g
                chosen.append(g.members[pick])
            }
            return chosen
        }
    }
}
