import Broker
import Synchronization

/// A member who saw a post (a session of theirs acknowledged or was written it):
/// the key of its `notify_unseen` row.
struct SeenPost: Hashable, Sendable {
    let user: String
    let room: String
    let id: Int64
}

/// Who is online, and which online members have still to see which posts, in
/// memory: the broker tells the bridge of sessions and deliveries on every loop,
/// so this is one lock, held only for a lookup or an insert. A watched post
/// keeps its `Message` (the same object every subscriber is handed), so its
/// identity stays unique until the watch ends.
final class UnseenWatch: @unchecked Sendable {
    private struct Watched {
        let message: Message
        let room: String
        let id: Int64
        var waiting: Set<String>
        let due: Int64
    }

    private struct State {
        var online: [String: Int] = [:]
        var watched: [ObjectIdentifier: Watched] = [:]
        /// Watched posts by due time (a FIFO: the grace is the same for all).
        var expiry: [(due: Int64, key: ObjectIdentifier)] = []
        var expiryHead = 0
        var seen: [SeenPost] = []
    }

    private let state = Mutex(State())
    /// Posts watched now: deliveries of anything else cost one atomic load.
    private let watchedCount = Atomic<Int>(0)

    // MARK: Sessions

    func sessionChanged(_ user: String, by delta: Int) {
        state.withLock { s in
            let n = (s.online[user] ?? 0) + delta
            s.online[user] = n > 0 ? n : nil
        }
    }

    func isOnline(_ user: String) -> Bool { state.withLock { $0.online[user] != nil } }

    // MARK: Posts

    /// Watches deliveries of `message` to `users` until `due`.
    func watch(_ message: Message, room: String, id: Int64, users: Set<String>, due: Int64) {
        guard !users.isEmpty else { return }
        state.withLock { s in
            let key = ObjectIdentifier(message)
            s.watched[key] = Watched(message: message, room: room, id: id, waiting: users, due: due)
            s.expiry.append((due, key))
            watchedCount.store(s.watched.count, ordering: .relaxed)
        }
    }

    /// A delivery of `message` to a session of `user` (canonical name) is done.
    func delivered(_ message: Message, to user: String) {
        guard watchedCount.load(ordering: .relaxed) > 0 else { return }
        state.withLock { s in
            let key = ObjectIdentifier(message)
            guard var w = s.watched[key], w.waiting.remove(user) != nil else { return }
            s.seen.append(SeenPost(user: user, room: w.room, id: w.id))
            if w.waiting.isEmpty {
                s.watched[key] = nil
                watchedCount.store(s.watched.count, ordering: .relaxed)
            } else {
                s.watched[key] = w
            }
        }
    }

    /// The posts seen since the last call; watches whose grace ended by `now` end
    /// (a delivery after that no longer counts).
    func harvest(now: Int64) -> [SeenPost] {
        state.withLock { s in
            while s.expiryHead < s.expiry.count, s.expiry[s.expiryHead].due <= now {
                let key = s.expiry[s.expiryHead].key
                if let w = s.watched[key], w.due <= now { s.watched[key] = nil }
                s.expiryHead += 1
            }
            if s.expiryHead > 1024 && s.expiryHead * 2 > s.expiry.count {
                s.expiry.removeFirst(s.expiryHead)
                s.expiryHead = 0
            }
            watchedCount.store(s.watched.count, ordering: .relaxed)
            let seen = s.seen
            s.seen = []
            return seen
        }
    }

    var watchedPosts: Int { watchedCount.load(ordering: .relaxed) }
}
