import JSON

/// What one notification tells: the post a member did not see, and whether it
/// mentions them. Kept as JSON in the outbox row's `body`, so a delivery needs
/// nothing else.
struct NotificationContent: Equatable, Sendable {
    let post: PostedMessage
    let mention: Bool

    var room: String { post.room }
    var id: Int64 { post.id }
    var from: String { post.from }
    var ts: String { post.ts }
    var body: String { post.body }

    init(post: PostedMessage, mention: Bool) {
        self.post = post
        self.mention = mention
    }

    var json: String {
        var w = JSONWriter()
        w.object { o in
            post.write(&o)
            o.field("mention", mention)
        }
        return String(decoding: w.bytes, as: UTF8.self)
    }

    init?(json: String) {
        guard let v = try? JSONValue.parse(Array(json.utf8)[...], maxBytes: 1 << 20, maxDepth: 4), let post = PostedMessage(v)
        else { return nil }
        self.init(post: post, mention: v["mention"]?.bool ?? false)
    }

    /// `alice in general`: the title of a push.
    var title: String { "\(from) in \(room)" }
}

/// The channels of SPEC section 5; `email` or a device kind.
enum Channel: String, Sendable, CaseIterable {
    case email, webhook, ntfy, webpush
}

/// One `notify_outbox` row as a delivery sees it.
struct OutboxEntry: Equatable, Sendable {
    let id: Int64
    let user: String
    let channel: Channel
    /// The e-mail address, or the device id.
    let destination: String
    let content: NotificationContent
    let attempts: Int
    let createdAt: Int64
    let digest: Int64?

    /// The stable id of this notification (`webhook-id`, ntfy `X-Parley-Id`, the push `tag`).
    var notificationID: String { "ntf_\(id)" }
}

/// A registered device, with what sending to it needs.
struct StoredDevice: Equatable, Sendable {
    let id: String
    let kind: Channel
    let url: String
    let secret: String?
    let p256dh: [UInt8]?
    let auth: [UInt8]?
}

/// One delivery for a worker: a digest e-mail, or a push to one device.
enum DeliveryJob: Sendable {
    case email(address: String, entries: [OutboxEntry])
    case push(device: StoredDevice, entry: OutboxEntry)

    var ids: [Int64] {
        switch self {
        case .email(_, let entries): return entries.map(\.id)
        case .push(_, let entry): return [entry.id]
        }
    }

    var channel: Channel {
        switch self {
        case .email: return .email
        case .push(let device, _): return device.kind
        }
    }

    var oldest: Int64 {
        switch self {
        case .email(_, let entries): return entries.map(\.createdAt).min() ?? 0
        case .push(_, let entry): return entry.createdAt
        }
    }
}

/// How one delivery attempt ended.
enum DeliveryOutcome: Equatable, Sendable {
    case delivered
    /// Worth another attempt; at least `after` seconds later when the receiver said so.
    case retry(String, after: Int64?)
    /// Never worth another attempt.
    case dead(String)
    /// The push endpoint is gone (404, 410): the device is removed.
    case gone(String)

    var failed: Bool { self != .delivered }
}
