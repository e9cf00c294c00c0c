import Broker
import JSON
import MQTT
import Store
import Synchronization

/// Connected sessions per user, on the user's loop: the first session online and
/// the last offline are what presence reports.
final class PresenceCounter: @unchecked Sendable {
    private final class LoopCounts { var sessions: [String: Int] = [:] }
    private var perLoop: [LoopCounts] = []
    /// Users with at least one session connected.
    let usersOnline = Atomic<Int>(0)
    func prepare(loops: Int) { perLoop = (0..<loops).map { _ in LoopCounts() } }

    /// Adds `delta` to a user's sessions (on the user's loop `index`); returns the new count.
    func add(_ delta: Int, user: String, loop index: Int) -> Int {
        let counts = perLoop[index]
        let before = counts.sessions[user] ?? 0
        let n = max(0, before + delta)
        counts.sessions[user] = n == 0 ? nil : n
        if before == 0 && n > 0 { usersOnline.add(1, ordering: .relaxed) }
        if before > 0 && n == 0 { usersOnline.subtract(1, ordering: .relaxed) }
        return n
    }
}

// Presence (SPEC section 3): retained `presence/<user>`, online when the first
// session connects (any listener), offline with last_seen when the last goes.
// The state is also kept in chat_presence, so that after a crash nobody is left
// shown online: at start everyone marked online is published offline.
extension ChatPlugin {
    func presenceChanged(_ user: String, online: Bool) {
        let canonical = Credentials.canonicalName(user)
        services.onLoop(of: "user/" + canonical) { [self] ctx in
            let n = presence.add(online ? 1 : -1, user: canonical, loop: ctx.index)
            guard (online && n == 1) || (!online && n == 0) else { return }
            let ts = Timestamp.now()
            let row = PluginWrite(plugin: name) { db in
                try db.cached("INSERT OR REPLACE INTO chat_presence(user, online, at) VALUES (?, ?, ?)")
                    .bind(1, canonical).bind(2, online ? 1 : 0).bind(3, ts).run()
            }
            ctx.publish(Self.presenceMessage(user, online: online, at: ts), writes: [row])
        }
    }

    static func presenceMessage(_ user: String, online: Bool, at ts: Int64) -> Message {
        var w = JSONWriter()
        w.object { o in
            o.field("user", user)
            o.field("status", online ? "online" : "offline")
            o.field(online ? "since" : "last_seen", Timestamp.iso(ts))
        }
        return Message(topic: ByteString(ChatTopic.presence(user)), payload: w.bytes, qos: .atLeastOnce, retain: true,
                       origin: nil, receivedAt: 0)
    }

    /// At start: whoever the last run left online (a crash) is published offline.
    func clearStalePresence(_ storage: PluginStorage, now: Int64) throws {
        presence.prepare(loops: services.loopCount)
        let stale = try storage.load { db -> [(String, Int64)] in
            var out: [(String, Int64)] = []
            let q = try db.prepare("SELECT p.user, p.at, u.display FROM chat_presence p JOIN chat_users u ON u.name = p.user WHERE p.online = 1")
            while try q.step() { out.append((q.text(2) ?? q.text(0) ?? "", q.int(1))) }
            try db.exec("UPDATE chat_presence SET online = 0 WHERE online = 1")
            return out
        }
        for (user, at) in stale {
            let m = Self.presenceMessage(user, online: false, at: max(at, now))
            services.publish(topic: m.topic.string, payload: Array(m.payload), qos: m.qos, retain: true, properties: .none)
        }
    }
}
