import Foundation
import JSON
import Store

/// Why an admin operation was refused: one line for the user, and the SPEC's code.
public struct ChatAdminError: Error, CustomStringConvertible, Sendable {
    public let code: String
    public let description: String
    init(_ code: String, _ text: String) {
        self.code = code
        description = text
    }
}

/// Users, rooms and memberships changed directly in the database: what `parley
/// user ...` and `parley room ...` do, whether or not a broker runs. Each change
/// also leaves a row in chat_changes, which a running broker reads within a second
/// and applies (a deleted user's sessions end, a removed member loses the room).
public struct ChatAdmin {
    let db: SQLiteDatabase
    public init(_ db: SQLiteDatabase) { self.db = db }

    /// Test and benchmark builds may lower the scrypt cost (`PARLEY_SCRYPT_LN`); never below 10.
    static var scryptParameters: ScryptParameters {
        if let text = ProcessInfo.processInfo.environment["PARLEY_SCRYPT_LN"], let ln = Int(text), ln >= 10, ln < 14,
           let lowered = ScryptParameters(logN: ln, r: 8, p: 1)
        {
            return lowered
        }
        return .default
    }

    // MARK: Users

    public func addUser(_ name: String, password: String, email: String?) throws {
        try Self.validateNewUser(name, password: password, email: email)
        try addUser(name, passwordHash: PasswordHash.make(password: Array(password.utf8), parameters: Self.scryptParameters),
                    email: email)
    }

    /// The checks of a sign-up, before any hashing.
    static func validateNewUser(_ name: String, password: String, email: String?) throws {
        do {
            try Credentials.validateUsername(name)
            try Credentials.validatePassword(password)
            if let email { try Credentials.validateEmail(email) }
        } catch {
            throw ChatAdminError(error.code, error.description)
        }
    }

    /// A new user whose password was hashed already (off the store's thread).
    func addUser(_ name: String, passwordHash hash: String, email: String?) throws {
        let canonical = Credentials.canonicalName(name)
        if try exists("SELECT 1 FROM chat_users WHERE name = ?", canonical) {
            throw ChatAdminError("username_taken", "user \(name) exists already")
        }
        try db.prepare("INSERT INTO chat_users(name, display, email, password, notify, created_at) VALUES (?, ?, ?, ?, NULL, ?)")
            .bind(1, canonical).bind(2, name).bind(3, email).bind(4, hash).bind(5, Timestamp.now()).run()
        try changed("user", canonical)
    }

    /// A new password; every token of the user is revoked.
    public func setPassword(_ name: String, password: String) throws {
        do { try Credentials.validatePassword(password) } catch { throw ChatAdminError(error.code, error.description) }
        try setPassword(name, hash: PasswordHash.make(password: Array(password.utf8), parameters: Self.scryptParameters))
    }

    func setPassword(_ name: String, hash: String) throws {
        let canonical = try existingUser(name)
        try db.prepare("UPDATE chat_users SET password = ? WHERE name = ?").bind(1, hash).bind(2, canonical).run()
        try db.prepare("DELETE FROM chat_tokens WHERE user = ?").bind(1, canonical).run()
        try changed("user", canonical)
    }

    /// A new e-mail address (nil: none) or notification preferences (JSON text).
    func setProfile(_ name: String, email: String??, notify: String?) throws {
        let canonical = try existingUser(name)
        if let email {
            try db.prepare("UPDATE chat_users SET email = ? WHERE name = ?").bind(1, email).bind(2, canonical).run()
        }
        if let notify {
            try db.prepare("UPDATE chat_users SET notify = ? WHERE name = ?").bind(1, notify).bind(2, canonical).run()
        }
        try changed("user", canonical)
    }

    /// Stores a token's hash for the user.
    func storeToken(_ hash: [UInt8], user name: String, expiresAt: Int64) throws {
        let canonical = try existingUser(name)
        try db.prepare("INSERT INTO chat_tokens(hash, user, expires_at) VALUES (?, ?, ?)")
            .bind(1, bytes: hash).bind(2, canonical).bind(3, expiresAt).run()
        try changed("user", canonical)
    }

    /// Revokes one token.
    func dropToken(_ hash: [UInt8], user name: String) throws {
        let canonical = Credentials.canonicalName(name)
        try db.prepare("DELETE FROM chat_tokens WHERE hash = ?").bind(1, bytes: hash).run()
        try changed("user", canonical)
    }

    /// The user, their tokens and memberships go; their past messages stay.
    public func deleteUser(_ name: String) throws {
        let canonical = try existingUser(name)
        let rooms = try strings("SELECT room FROM chat_members WHERE user = ?", canonical)
        try db.prepare("DELETE FROM chat_users WHERE name = ?").bind(1, canonical).run()
        try db.prepare("DELETE FROM chat_tokens WHERE user = ?").bind(1, canonical).run()
        try db.prepare("DELETE FROM chat_members WHERE user = ?").bind(1, canonical).run()
        try changed("user", canonical)
        for room in rooms { try changed("room", room, event: "leave", user: name, by: nil) }
    }

    /// (name, email) of every user, by name.
    public func users() throws -> [(name: String, email: String?)] {
        let q = try db.prepare("SELECT display, email FROM chat_users ORDER BY name")
        var out: [(String, String?)] = []
        while try q.step() { out.append((q.text(0) ?? "", q.text(1))) }
        return out
    }

    /// A new access token for the user (for tests, benchmarks and scripts).
    public func issueToken(_ name: String, lifetime seconds: Int64) throws -> String {
        let canonical = try existingUser(name)
        let (token, hash) = AccessToken.make()
        try db.prepare("INSERT INTO chat_tokens(hash, user, expires_at) VALUES (?, ?, ?)")
            .bind(1, bytes: hash).bind(2, canonical).bind(3, Timestamp.now() + seconds * 1000).run()
        try changed("user", canonical)
        return token
    }

    // MARK: Rooms

    public func createRoom(_ room: String, owner: String, title: String?) throws {
        guard RoomName.isValid(room) else {
            throw ChatAdminError("invalid_room", "room names are 1-64 characters a-z 0-9 _ -, starting with a letter or digit")
        }
        let canonical = try existingUser(owner)
        if try exists("SELECT 1 FROM chat_rooms WHERE name = ?", room) {
            throw ChatAdminError("room_exists", "room \(room) exists already")
        }
        let now = Timestamp.now()
        try db.prepare("INSERT INTO chat_rooms(name, title, owner, created_at) VALUES (?, ?, ?, ?)")
            .bind(1, room).bind(2, title).bind(3, canonical).bind(4, now).run()
        try db.prepare("INSERT INTO chat_members(room, user, joined_at) VALUES (?, ?, ?)")
            .bind(1, room).bind(2, canonical).bind(3, now).run()
        try changed("room", room, event: "join", user: try display(canonical), by: nil)
    }

    /// (name, title, owner) of every room, by name.
    public func rooms() throws -> [(name: String, title: String?, owner: String)] {
        let q = try db.prepare("SELECT r.name, r.title, coalesce(u.display, r.owner) FROM chat_rooms r LEFT JOIN chat_users u ON u.name = r.owner ORDER BY r.name")
        var out: [(String, String?, String)] = []
        while try q.step() { out.append((q.text(0) ?? "", q.text(1), q.text(2) ?? "")) }
        return out
    }

    public func members(_ room: String) throws -> [String] {
        try existingRoom(room)
        return try strings("SELECT coalesce(u.display, m.user) FROM chat_members m LEFT JOIN chat_users u ON u.name = m.user WHERE m.room = ? ORDER BY m.user", room)
    }

    public func addMember(_ room: String, _ user: String) throws {
        try existingRoom(room)
        let canonical = try existingUser(user)
        if try exists2("SELECT 1 FROM chat_members WHERE room = ? AND user = ?", room, canonical) {
            throw ChatAdminError("already_member", "\(user) is a member of \(room) already")
        }
        try db.prepare("INSERT INTO chat_members(room, user, joined_at) VALUES (?, ?, ?)")
            .bind(1, room).bind(2, canonical).bind(3, Timestamp.now()).run()
        try changed("room", room, event: "join", user: try display(canonical), by: nil)
    }

    /// The owner (or an admin) removes a member: a kick; with `leaving`, the member left.
    public func removeMember(_ room: String, _ user: String, leaving: Bool = false) throws {
        try existingRoom(room)
        let canonical = Credentials.canonicalName(user)
        guard try exists2("SELECT 1 FROM chat_members WHERE room = ? AND user = ?", room, canonical) else {
            throw ChatAdminError("not_a_member", "\(user) is not a member of \(room)")
        }
        try db.prepare("DELETE FROM chat_members WHERE room = ? AND user = ?").bind(1, room).bind(2, canonical).run()
        try changed("room", room, event: leaving ? "leave" : "kick", user: (try? display(canonical)) ?? user, by: nil)
    }

    /// The room, its members and its history go.
    public func deleteRoom(_ room: String) throws {
        try existingRoom(room)
        for sql in ["DELETE FROM chat_rooms WHERE name = ?", "DELETE FROM chat_members WHERE room = ?",
                    "DELETE FROM chat_messages WHERE room = ?"]
        {
            try db.prepare(sql).bind(1, room).run()
        }
        try changed("room", room, event: "room_deleted", user: nil, by: nil)
    }

    // MARK: Helpers

    func existingUser(_ name: String) throws -> String {
        let canonical = Credentials.canonicalName(name)
        guard try exists("SELECT 1 FROM chat_users WHERE name = ?", canonical) else {
            throw ChatAdminError("user_not_found", "no user \(name)")
        }
        return canonical
    }

    func existingRoom(_ room: String) throws {
        guard try exists("SELECT 1 FROM chat_rooms WHERE name = ?", room) else {
            throw ChatAdminError("room_not_found", "no room \(room)")
        }
    }

    func display(_ canonical: String) throws -> String {
        try strings("SELECT display FROM chat_users WHERE name = ?", canonical).first ?? canonical
    }

    private func exists(_ sql: String, _ a: String) throws -> Bool {
        let q = try db.prepare(sql)
        q.bind(1, a)
        return try q.step()
    }

    private func exists2(_ sql: String, _ a: String, _ b: String) throws -> Bool {
        let q = try db.prepare(sql)
        q.bind(1, a).bind(2, b)
        return try q.step()
    }

    private func strings(_ sql: String, _ a: String) throws -> [String] {
        let q = try db.prepare(sql)
        q.bind(1, a)
        var out: [String] = []
        while try q.step() { out.append(q.text(0) ?? "") }
        return out
    }

    /// Tells a running broker what changed (and which event to publish, if any).
    private func changed(_ kind: String, _ subject: String, event: String? = nil, user: String? = nil, by: String? = nil) throws {
        var detail: String? = nil
        if let event {
            var w = JSONWriter()
            w.object { o in
                o.field("type", event)
                if let user { o.field("user", user) }
                if let by { o.field("by", by) }
            }
            detail = String(decoding: w.bytes, as: UTF8.self)
        }
        try db.prepare("INSERT INTO chat_changes(kind, subject, detail, created_at) VALUES (?, ?, ?, ?)")
            .bind(1, kind).bind(2, subject).bind(3, detail).bind(4, Timestamp.now()).run()
    }
}
