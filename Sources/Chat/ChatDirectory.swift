import Store
import Synchronization

/// A registered user as the plugin keeps it in memory.
struct ChatUser: Sendable {
    /// As registered (what envelopes and topics show).
    var name: String
    var email: String?
    /// The scrypt string (`PasswordHash`).
    var password: String
    var notify: String?
}

/// A room as the plugin keeps it in memory.
struct ChatRoom: Sendable {
    var name: String
    var title: String?
    /// Canonical name of the owner.
    var owner: String
    /// Canonical names of the members.
    var members: Set<String>
}

/// Users, tokens, rooms and memberships in memory, read on every CONNECT,
/// SUBSCRIBE and PUBLISH, changed rarely (sign-up, membership): one lock, held
/// only for lookups and updates, never across I/O. The database is the truth;
/// this is loaded from it at start and kept in step with every change.
final class ChatDirectory: @unchecked Sendable {
    struct State {
        var users: [String: ChatUser] = [:]
        /// SHA-256 of a token -> (canonical user, expiry in wall milliseconds).
        var tokens: [[UInt8]: (user: String, expiresAt: Int64)] = [:]
        var rooms: [String: ChatRoom] = [:]
        /// Canonical user -> the rooms they are a member of.
        var memberships: [String: Set<String>] = [:]
    }

    private let state = Mutex(State())

    func read<T>(_ body: (borrowing State) -> T) -> T { state.withLock { body($0) } }
    func change<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }

    // MARK: Lookups

    func user(_ name: String) -> ChatUser? {
        let key = Credentials.canonicalName(name)
        return state.withLock { $0.users[key] }
    }

    func isMember(_ user: String?, of room: String) -> Bool {
        guard let user else { return false }
        let key = Credentials.canonicalName(user)
        return state.withLock { $0.memberships[key]?.contains(room) ?? false }
    }

    /// Whether two users share a room (or are the same user).
    func shareRoom(_ a: String?, _ b: String) -> Bool {
        guard let a else { return false }
        let ka = Credentials.canonicalName(a)
        let kb = Credentials.canonicalName(b)
        if ka == kb { return true }
        return state.withLock { s in
            guard let ra = s.memberships[ka], let rb = s.memberships[kb] else { return false }
            return !ra.isDisjoint(with: rb)
        }
    }

    func room(_ name: String) -> ChatRoom? { state.withLock { $0.rooms[name] } }

    /// The user a token stands for, if it is known and not expired.
    func tokenUser(_ hash: [UInt8], now: Int64) -> String? {
        state.withLock { s in
            guard let t = s.tokens[hash], t.expiresAt > now else { return nil }
            return s.users[t.user]?.name
        }
    }

    // MARK: Loading

    /// Reads every user, live token, room and membership from the database.
    func load(from db: SQLiteDatabase, now: Int64) throws {
        var s = State()
        let users = try db.prepare("SELECT name, display, email, password, notify FROM chat_users")
        while try users.step() {
            let key = users.text(0) ?? ""
            s.users[key] = ChatUser(name: users.text(1) ?? key, email: users.text(2), password: users.text(3) ?? "",
                                    notify: users.text(4))
        }
        let tokens = try db.prepare("SELECT hash, user, expires_at FROM chat_tokens WHERE expires_at > ?")
        tokens.bind(1, now)
        while try tokens.step() { s.tokens[tokens.blob(0)] = (tokens.text(1) ?? "", tokens.int(2)) }
        let rooms = try db.prepare("SELECT name, title, owner FROM chat_rooms")
        while try rooms.step() {
            let name = rooms.text(0) ?? ""
            s.rooms[name] = ChatRoom(name: name, title: rooms.text(1), owner: rooms.text(2) ?? "", members: [])
        }
        let members = try db.prepare("SELECT room, user FROM chat_members")
        while try members.step() {
            let room = members.text(0) ?? "", user = members.text(1) ?? ""
            s.rooms[room]?.members.insert(user)
            s.memberships[user, default: []].insert(room)
        }
        state.withLock { $0 = s }
    }

    /// Re-reads one user (after a change made by the command line).
    func reloadUser(_ canonical: String, from db: SQLiteDatabase, now: Int64) throws {
        let q = try db.prepare("SELECT display, email, password, notify FROM chat_users WHERE name = ?")
        q.bind(1, canonical)
        let user: ChatUser? = try q.step()
            ? ChatUser(name: q.text(0) ?? canonical, email: q.text(1), password: q.text(2) ?? "", notify: q.text(3)) : nil
        q.reset()
        var tokens: [[UInt8]: (user: String, expiresAt: Int64)] = [:]
        let t = try db.prepare("SELECT hash, expires_at FROM chat_tokens WHERE user = ? AND expires_at > ?")
        t.bind(1, canonical).bind(2, now)
        while try t.step() { tokens[t.blob(0)] = (canonical, t.int(1)) }
        state.withLock { s in
            s.users[canonical] = user
            s.tokens = s.tokens.filter { $0.value.user != canonical }.merging(tokens) { a, _ in a }
        }
    }

    /// Re-reads one room and its members; returns the members before and after.
    func reloadRoom(_ name: String, from db: SQLiteDatabase) throws -> (before: Set<String>, after: Set<String>) {
        let q = try db.prepare("SELECT title, owner FROM chat_rooms WHERE name = ?")
        q.bind(1, name)
        var room: ChatRoom? = try q.step() ? ChatRoom(name: name, title: q.text(0), owner: q.text(1) ?? "", members: []) : nil
        q.reset()
        if room != nil {
            let m = try db.prepare("SELECT user FROM chat_members WHERE room = ?")
            m.bind(1, name)
            while try m.step() { room!.members.insert(m.text(0) ?? "") }
        }
        return state.withLock { s in
            let before = s.rooms[name]?.members ?? []
            let after = room?.members ?? []
            for u in before.subtracting(after) { s.memberships[u]?.remove(name) }
            for u in after.subtracting(before) { s.memberships[u, default: []].insert(name) }
            s.rooms[name] = room
            return (before, after)
        }
    }
}
