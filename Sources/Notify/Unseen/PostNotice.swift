import Chat
import JSON

/// A chat post as the bridge reads it from its envelope
/// (`{"id", "room", "from", "ts", "body", ...}`).
struct PostedMessage: Equatable, Sendable {
    let room: String
    let id: Int64
    let from: String
    let ts: String
    let body: String

    init(room: String, id: Int64, from: String, ts: String, body: String) {
        self.room = room
        self.id = id
        self.from = from
        self.ts = ts
        self.body = body
    }

    /// Nil for anything but a post envelope.
    init?(envelope: some Collection<UInt8>) {
        guard let v = try? JSONValue.parse(ArraySlice(envelope), maxBytes: 1 << 20, maxDepth: 4) else { return nil }
        self.init(v)
    }

    /// The post's fields of a parsed envelope (or of an outbox row's content).
    init?(_ v: JSONValue) {
        guard let room = v["room"]?.string, let id = v["id"]?.int64, let from = v["from"]?.string,
              let ts = v["ts"]?.string, let body = v["body"]?.string
        else { return nil }
        self.init(room: room, id: id, from: from, ts: ts, body: body)
    }

    /// Writes the fields `init(_:)` reads.
    func write(_ o: inout JSONObjectWriter) {
        o.field("room", room)
        o.field("id", id)
        o.field("from", from)
        o.field("ts", ts)
        o.field("body", body)
    }
}

/// One member who may not see a post: a `notify_unseen` row.
struct UnseenRow: Equatable, Sendable {
    let user: String
    let post: PostedMessage
    let mention: Bool
    let postedAt: Int64
    let dueAt: Int64
}

/// Which members of a room a post may have to reach by other means, and when
/// that is decided (SPEC section 5): the sender never; a member whose
/// preferences allow neither an e-mail nor a push for it never; a member with no
/// session online at once; one online after the grace.
struct PostNotice {
    let post: PostedMessage
    let now: Int64
    let graceMilliseconds: Int64
    /// Whether e-mail can be sent at all (`smtp_server` set).
    let emailConfigured: Bool

    func rows(members: Set<String>, recipient: (String) -> NotificationRecipient?, hasDevices: (String) -> Bool,
              isOnline: (String) -> Bool) -> [UnseenRow]
    {
        let sender = Credentials.canonicalName(post.from)
        var out: [UnseenRow] = []
        for key in members.sorted() where key != sender {
            // Cheap checks first: most members of most rooms have no device, and
            // without a mail server nobody gets e-mail.
            let devices = hasDevices(key)
            guard devices || emailConfigured, let r = recipient(key) else { continue }
            let mention = ChatPlugin.mentions(post.body, user: key)
            let email = emailConfigured && r.email != nil && r.preferences.wantsEmail(mentioned: mention)
            let push = devices && r.preferences.wantsPush(mentioned: mention)
            guard email || push else { continue }
            let due = isOnline(key) ? now + graceMilliseconds : now
            out.append(UnseenRow(user: key, post: post, mention: mention, postedAt: now, dueAt: due))
        }
        return out
    }
}

/// A receipt envelope `{"from", "up_to", "ts"}` on `rooms/<room>/receipts`.
struct ReceiptNotice: Equatable {
    let room: String
    let user: String
    let upTo: Int64

    init?(room: String, envelope: some Collection<UInt8>) {
        guard let v = try? JSONValue.parse(ArraySlice(envelope), maxBytes: 4096, maxDepth: 2),
              let from = v["from"]?.string, let upTo = v["up_to"]?.int64
        else { return nil }
        self.room = room
        self.user = Credentials.canonicalName(from)
        self.upTo = upTo
    }
}

/// The chat topics the bridge reads: `rooms/<room>/messages` and `/receipts`.
enum WatchedTopic: Equatable {
    case messages(String)
    case receipts(String)

    init?(_ topic: some Collection<UInt8>) {
        let parts = topic.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].elementsEqual("rooms".utf8), let room = String(validating: parts[1], as: UTF8.self),
              !room.isEmpty
        else { return nil }
        if parts[2].elementsEqual("messages".utf8) {
            self = .messages(room)
        } else if parts[2].elementsEqual("receipts".utf8) {
            self = .receipts(room)
        } else {
            return nil
        }
    }
}
