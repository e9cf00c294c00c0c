/// What the store keeps, as plain values: the broker converts to and from its
/// own types, so this module knows SQLite and nothing of sessions or sockets.

/// An application message body, shared by every delivery that refers to it.
public struct StoredMessage: Sendable, Equatable {
    public var id: Int64
    public var topic: [UInt8]
    public var payload: [UInt8]
    public var qos: UInt8
    public var retain: Bool
    /// The v5 property list, as encoded on the wire (without its length).
    public var properties: [UInt8]
    /// Wall-clock milliseconds after which it is dropped.
    public var expiresAt: Int64?
    /// Publisher's client id (No Local after a restart).
    public var origin: String?

    public init(id: Int64, topic: [UInt8], payload: [UInt8], qos: UInt8, retain: Bool, properties: [UInt8],
                expiresAt: Int64?, origin: String?)
    {
        self.id = id
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expiresAt = expiresAt
        self.origin = origin
    }

    /// A compact self-describing encoding (for the will kept with a session).
    public var blob: [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: Int) { for s in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> s)) } }
        func i64(_ v: Int64) { for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> Int64(s))) } }
        out.append(1)  // format version
        u32(topic.count); out += topic
        u32(payload.count); out += payload
        out.append(qos); out.append(retain ? 1 : 0)
        u32(properties.count); out += properties
        i64(expiresAt ?? -1)
        let o = Array((origin ?? "").utf8)
        u32(o.count); out += o
        return out
    }

    public init?(blob b: [UInt8], id: Int64 = 0) {
        var i = 0
        func u32() -> Int? {
            guard i + 4 <= b.count else { return nil }
            defer { i += 4 }
            return Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
        }
        func bytes(_ n: Int) -> [UInt8]? {
            guard n >= 0, i + n <= b.count else { return nil }
            defer { i += n }
            return Array(b[i..<(i + n)])
        }
        guard b.first == 1 else { return nil }
        i = 1
        guard let tl = u32(), let t = bytes(tl), let pl = u32(), let p = bytes(pl), let flags = bytes(2),
              let prl = u32(), let pr = bytes(prl), let e = bytes(8), let ol = u32(), let o = bytes(ol)
        else { return nil }
        var expires: Int64 = 0
        for x in e { expires = expires << 8 | Int64(x) }
        self.init(id: id, topic: t, payload: p, qos: flags[0], retain: flags[1] == 1, properties: pr,
                  expiresAt: expires < 0 ? nil : expires, origin: o.isEmpty ? nil : String(decoding: o, as: UTF8.self))
    }
}

/// A session that outlives its connection.
public struct StoredSession: Sendable, Equatable {
    public var clientID: String
    public var expiryInterval: UInt32
    /// Wall-clock milliseconds when it expires; nil while connected.
    public var expiresAt: Int64?
    public var username: String?
    public var version: UInt8
    public var will: StoredMessage?
    public var willDelay: UInt32

    public init(clientID: String, expiryInterval: UInt32, expiresAt: Int64?, username: String?, version: UInt8,
                will: StoredMessage?, willDelay: UInt32)
    {
        self.clientID = clientID
        self.expiryInterval = expiryInterval
        self.expiresAt = expiresAt
        self.username = username
        self.version = version
        self.will = will
        self.willDelay = willDelay
    }
}

public struct StoredSubscription: Sendable, Equatable {
    public var clientID: String
    public var filter: [UInt8]
    /// QoS | no local << 2 | retain as published << 3 | retain handling << 4.
    public var options: UInt8
    public var identifier: UInt32?

    public init(clientID: String, filter: [UInt8], options: UInt8, identifier: UInt32?) {
        self.clientID = clientID
        self.filter = filter
        self.options = options
        self.identifier = identifier
    }
}

/// One message owed to one session, in the session's order (`seq`).
public struct StoredDelivery: Sendable, Equatable {
    public enum State: UInt8, Sendable { case queued = 0, sent = 1, released = 2 }
    public var clientID: String
    public var seq: Int64
    public var messageID: Int64
    public var qos: UInt8
    public var retain: Bool
    public var subscriptionIDs: [UInt32]
    public var packetID: UInt16?
    public var state: State

    public init(clientID: String, seq: Int64, messageID: Int64, qos: UInt8, retain: Bool, subscriptionIDs: [UInt32],
                packetID: UInt16?, state: State)
    {
        self.clientID = clientID
        self.seq = seq
        self.messageID = messageID
        self.qos = qos
        self.retain = retain
        self.subscriptionIDs = subscriptionIDs
        self.packetID = packetID
        self.state = state
    }
}

/// One change for the writer thread.
public enum StoreOp: Sendable {
    /// A message published with a durable promise: it is routed again at start
    /// until it is marked `routed`.
    case message(StoredMessage)
    /// The body of a message a delivery refers to (no routing promise).
    case messageBody(StoredMessage)
    /// Set (message id) or clear (nil) the retained message of a topic.
    case retain(topic: [UInt8], messageID: Int64?)
    /// The message has been matched on every loop: no need to route it again at start.
    case routed(Int64)
    case enqueue(StoredDelivery)
    case deliverySent(clientID: String, seq: Int64, packetID: UInt16)
    case deliveryReleased(clientID: String, seq: Int64)
    case deliveryDone(clientID: String, seq: Int64)
    case incoming(clientID: String, packetID: UInt16)
    case incomingDone(clientID: String, packetID: UInt16)
    case session(StoredSession)
    case sessionDisconnected(clientID: String, expiresAt: Int64)
    case clearWill(clientID: String)
    case deleteSession(clientID: String)
    case subscribe(StoredSubscription)
    case unsubscribe(clientID: String, filter: [UInt8])
    /// Drops a session's queued (not yet sent) deliveries on topics starting with the prefix.
    case dropDeliveries(clientID: String, topicPrefix: [UInt8])
    /// A plugin's write, in the same transaction as the broker's own.
    case plugin(PluginWrite)
}

/// A plugin's change to its own tables, run on the store's thread inside the
/// batch's transaction (one commit, one fsync with the broker's writes). A write
/// that throws is rolled back alone (a savepoint) and logged; the rest commits.
public struct PluginWrite: Sendable {
    public let plugin: String
    public let work: @Sendable (SQLiteDatabase) throws -> Void
    public init(plugin: String, _ work: @escaping @Sendable (SQLiteDatabase) throws -> Void) {
        self.plugin = plugin
        self.work = work
    }
}

/// Everything the store held at start, after expired sessions and messages went.
public struct StoreSnapshot: Sendable {
    public var sessions: [StoredSession] = []
    public var subscriptions: [StoredSubscription] = []
    /// The first page of each session's deliveries, in order.
    public var deliveries: [StoredDelivery] = []
    /// Deliveries left on disk beyond the first page, per session.
    public var backlog: [String: Int] = [:]
    public var incoming: [(clientID: String, packetID: UInt16)] = []
    public var retained: [StoredMessage] = []
    /// Messages logged but not yet matched on every loop when the broker stopped.
    public var unrouted: [StoredMessage] = []
    /// Bodies of the messages the deliveries refer to.
    public var messages: [Int64: StoredMessage] = [:]
    /// The largest message id used.
    public var maxMessageID: Int64 = 0
    /// The largest delivery sequence per session.
    public var maxSeq: [String: Int64] = [:]
}
