import Broker
import JSON
import MQTT
import Reactor
import Store

// Changes made in the database by the command line while the broker runs
// (chat_changes rows): read about once a second, applied to the directory, and
// acted on: a deleted user's sessions end, a removed member loses the room's
// subscriptions and queued deliveries at once, room events are published.
extension ChatPlugin {
    func pollChanges() {
        guard !polling.exchange(true, ordering: .acquiringAndReleasing) else { return }
        services.storage.read { [self] db in
            defer { polling.store(false, ordering: .releasing) }
            applyChanges(db)
        }
    }

    /// Applies the chat_changes rows not applied yet. Only on the store's thread
    /// (in `storage.read`), so that two callers never apply the same rows.
    func applyChanges(_ db: SQLiteDatabase) {
        do {
            let q = try db.prepare("SELECT id, kind, subject, detail FROM chat_changes WHERE id > ? ORDER BY id")
            q.bind(1, lastChangeSeen.load(ordering: .relaxed))
            var rows: [(Int64, String, String, String?)] = []
            while try q.step() { rows.append((q.int(0), q.text(1) ?? "", q.text(2) ?? "", q.text(3))) }
            for (id, kind, subject, detail) in rows {
                try apply(kind: kind, subject: subject, detail: detail, db: db)
                lastChangeSeen.store(id, ordering: .relaxed)
            }
        } catch {
            Log.error("chat.changes_failed", ["error": error])
        }
    }

    private func apply(kind: String, subject: String, detail: String?, db: SQLiteDatabase) throws {
        switch kind {
        case "user":
            let before = directory.user(subject)
            try directory.reloadUser(subject, from: db, now: Timestamp.now())
            let after = directory.user(subject)
            if let before, after == nil {
                services.disconnect(username: before.name, reason: .notAuthorized)
            } else if let before, let after, before.password != after.password {
                // A new password revokes the tokens; sessions opened with them end.
                services.disconnect(username: after.name, reason: .notAuthorized)
            }
        case "room":
            let (before, after) = try directory.reloadRoom(subject, from: db)
            for user in after.subtracting(before) { unread.set(user: user, room: subject, count: 0) }
            for user in before.subtracting(after) { unread.remove(user: user, room: subject) }
            let removed = before.subtracting(after).map { directory.user($0)?.name ?? $0 }
            let gone = directory.room(subject) == nil
            let event = detail.flatMap { eventMessage(room: subject, detail: $0) }
            // On the room's loop: in order with its posts; the event goes first, so
            // the members it concerns (a kicked one, all of a deleted room's) get it.
            services.onLoop(of: "room/" + subject) { [self] ctx in
                if gone { sequences.remove(subject, loop: ctx.index) }
                let revokeAll = {
                    for name in removed { ctx.revoke(username: name, topicPrefix: "rooms/\(subject)/") }
                }
                if let event { ctx.publish(event) { _ in revokeAll() } } else { revokeAll() }
            }
        default:
            break
        }
    }

    /// `{"type", "user", "by", "ts"}` for `rooms/<room>/events`.
    func eventMessage(room: String, detail: String) -> Message? {
        guard let value = try? JSONValue.parse(detail), let type = value["type"]?.string else { return nil }
        let payload = Envelope.event(type, user: value["user"]?.string, by: value["by"]?.string, ts: Timestamp.now())
        return Message(topic: ByteString(ChatTopic.events(room)), payload: payload, qos: .atLeastOnce, retain: false,
                       origin: nil, receivedAt: 0)
    }
}
