import JSON
import Store

/// A user's notification preferences (`notify` in `GET /v1/me`, SPEC section 5).
public struct NotificationPreferences: Equatable, Sendable {
    public enum Level: String, Sendable { case all, mentions, off }

    public var email: Level
    public var push: Level
    /// E-mail notifications within this many minutes go out as one digest (0: each at once).
    public var digestMinutes: Int

    public static let standard = NotificationPreferences(email: .mentions, push: .all, digestMinutes: 10)

    public init(email: Level, push: Level, digestMinutes: Int) {
        self.email = email
        self.push = push
        self.digestMinutes = digestMinutes
    }

    /// From the stored JSON; what is missing or unreadable keeps its default.
    public init(stored text: String?) {
        self = .standard
        guard let text, let value = try? JSONValue.parse(Array(text.utf8)[...], maxBytes: 4096, maxDepth: 4) else { return }
        if let e = value["email"]?.string.flatMap(Level.init(rawValue:)) { email = e }
        if let p = value["push"]?.string.flatMap(Level.init(rawValue:)) { push = p }
        if let d = value["digest_minutes"]?.int64, (0...1440).contains(d) { digestMinutes = Int(d) }
    }

    public func wantsEmail(mentioned: Bool) -> Bool { Self.allows(email, mentioned) }
    public func wantsPush(mentioned: Bool) -> Bool { Self.allows(push, mentioned) }

    private static func allows(_ level: Level, _ mentioned: Bool) -> Bool {
        switch level {
        case .all: return true
        case .mentions: return mentioned
        case .off: return false
        }
    }
}

/// A member as the notification bridge needs them.
public struct NotificationRecipient: Equatable, Sendable {
    /// The canonical (lower-case) name, the key of every table.
    public let key: String
    /// As registered.
    public let name: String
    public let email: String?
    public let preferences: NotificationPreferences

    public init(key: String, name: String, email: String?, preferences: NotificationPreferences) {
        self.key = key
        self.name = name
        self.email = email
        self.preferences = preferences
    }
}

// What the notification bridge reads of the chat plugin (SPEC section 5).
extension ChatPlugin {
    /// The canonical names of a room's members; empty for an unknown room.
    public func memberKeys(of room: String) -> Set<String> {
        directory.room(room)?.members ?? []
    }

    /// A registered user's address and preferences.
    public func recipient(_ user: String) -> NotificationRecipient? {
        let key = Credentials.canonicalName(user)
        guard let u = directory.user(key) else { return nil }
        return NotificationRecipient(key: key, name: u.name, email: u.email, preferences: NotificationPreferences(stored: u.notify))
    }

    /// Whether `body` mentions the user: `@name`, case-insensitive, not followed by
    /// a character a user name may hold (`@bob` is not in `@bobby`).
    public static func mentions(_ body: String, user key: String) -> Bool {
        let text = Array(body.utf8)
        let needle = [UInt8(ascii: "@")] + Array(key.utf8)
        guard text.count >= needle.count else { return false }
        var i = 0
        while i + needle.count <= text.count {
            if text[i] == 0x40, zip(text[i..<(i + needle.count)], needle).allSatisfy({ Credentials.lowercased($0) == $1 }) {
                let end = i + needle.count
                if end == text.count || !Credentials.isUsernameByte(text[end]) { return true }
            }
            i += 1
        }
        return false
    }

    /// How far a member has read a room (their receipt marker), from the store's
    /// thread; nil when they are not a member (left, removed, or the room is gone).
    public static func readMarker(_ db: SQLiteDatabase, room: String, user key: String) throws -> Int64? {
        let q = try db.cached("SELECT read_up_to FROM chat_members WHERE room = ? AND user = ?").bind(1, room).bind(2, key)
        defer { q.reset() }
        return try q.step() ? q.int(0) : nil
    }
}
