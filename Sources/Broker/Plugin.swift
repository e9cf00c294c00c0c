import MQTT
import Reactor
import Store

/// What the broker knows about a client when it asks a plugin.
public struct ClientInfo: Sendable {
    public let clientID: String
    public let username: String?
    public let peer: SocketAddress?
    public let protocolVersion: ProtocolVersion
    /// The verified subject of a TLS client certificate, when there is one.
    public let tlsIdentity: String?
    /// True for the broker's own internal clients (plugins publishing).
    public let isInternal: Bool
    /// The listener the client came in on: "mqtt", "mqtts", "http", "https", or a
    /// plugin's name for a client it made ("rest").
    public let listener: String
    /// What carries its bytes: "tcp", "tls", "ws", "wss", or "internal".
    public let transport: String

    public init(clientID: String, username: String?, peer: SocketAddress?, protocolVersion: ProtocolVersion,
                tlsIdentity: String?, isInternal: Bool, listener: String = "internal", transport: String = "internal")
    {
        self.clientID = clientID
        self.username = username
        self.peer = peer
        self.protocolVersion = protocolVersion
        self.tlsIdentity = tlsIdentity
        self.isInternal = isInternal
        self.listener = listener
        self.transport = transport
    }
}

/// A CONNECT as the authentication hook sees it.
public struct ConnectRequest: Sendable {
    public let clientID: String
    public let username: String?
    public let password: [UInt8]?
    public let peer: SocketAddress?
    public let tlsIdentity: String?
    public let protocolVersion: ProtocolVersion
}

/// What an authentication hook decides.
public enum AuthDecision: Sendable {
    /// Accept; `username` replaces the one sent (e.g. the certificate's name).
    case allow(username: String?)
    /// Refuse with this reason (0x86 bad user name or password, 0x87 not authorized, ...).
    case deny(ReasonCode)
    /// No opinion: the next plugin decides; with none left, `allow_anonymous` does.
    case abstain
}

/// The hooks a plugin provides; the broker calls only these.
public struct PluginHooks: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let authenticate = PluginHooks(rawValue: 1 << 0)
    public static let authorizePublish = PluginHooks(rawValue: 1 << 1)
    public static let authorizeSubscribe = PluginHooks(rawValue: 1 << 2)
    public static let inspectPublish = PluginHooks(rawValue: 1 << 3)
    public static let beforeAck = PluginHooks(rawValue: 1 << 4)
    public static let sessionEvents = PluginHooks(rawValue: 1 << 5)
    public static let delivered = PluginHooks(rawValue: 1 << 6)
    public static let tick = PluginHooks(rawValue: 1 << 7)
    public static let decidePublish = PluginHooks(rawValue: 1 << 8)
    public static let authorizeDelivery = PluginHooks(rawValue: 1 << 9)
    /// The plugin keeps tables in the broker's database (opened even with durability none).
    public static let storage = PluginHooks(rawValue: 1 << 10)
    /// The plugin adds writes to the commit of messages that plugins publish in order
    /// (`companionWrites`).
    public static let companionWrites = PluginHooks(rawValue: 1 << 11)
    /// `delivered` for the messages marked with `Message.reportDeliveries()` only.
    public static let markedDeliveries = PluginHooks(rawValue: 1 << 12)
    static let count = 13
}

/// What `decidePublish` says about a PUBLISH.
public enum PublishVerdict: Sendable {
    /// Route it as it is.
    case accept
    /// Acknowledge it as a success and route nothing: a repeat the plugin already
    /// has, or a message the plugin publishes in its own form (`LoopContext.publish`).
    case acceptWithoutRouting
    /// Refuse it: v5 publishers hear the reason code in their ack.
    case refuse(ReasonCode)
}

/// A PUBLISH a plugin may inspect and rewrite before it is routed.
public struct InboundPublish: Sendable {
    public var topic: ByteString
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool
    public var properties: Properties
}

/// The plugin protocol. Hooks run on the event loop threads, concurrently from
/// several loops, so they must be thread-safe and must not block: blocking work
/// (password hashing, disk, network) goes to `BrokerServices.runBlocking`, and
/// the asynchronous hooks answer through their completion.
///
/// Every hook has a default that does nothing; `hooks` says which ones the plugin
/// provides, and the broker calls only those.
public protocol BrokerPlugin: AnyObject, Sendable {
    var name: String { get }
    var hooks: PluginHooks { get }

    /// Called once before listeners open; keep `services` to publish, subscribe,
    /// schedule and run blocking work.
    func start(_ services: BrokerServices) throws
    func stop()

    /// Decide on a CONNECT. Call `completion` exactly once, from any thread.
    func authenticate(_ request: ConnectRequest, completion: @escaping @Sendable (AuthDecision) -> Void)
    /// May this client publish to this topic? `.success` allows; a failure code refuses.
    func authorizePublish(_ client: ClientInfo, topic: ByteString, qos: QoS, retain: Bool) -> ReasonCode
    /// True while `authorizePublish` would allow every client every topic (an ACL with
    /// no rules that allows by default): the broker then skips the call for a
    /// client's PUBLISH, and the `ClientInfo` it would build for it. Read per PUBLISH,
    /// from any loop: keep it a plain load.
    var allowsEveryPublish: Bool { get }
    /// The QoS to grant (≤ requested) as `.grantedQoS0/1/2`, or a failure code.
    func authorizeSubscribe(_ client: ClientInfo, filter: TopicFilter, requested: QoS) -> ReasonCode
    /// Inspect or rewrite a PUBLISH before routing. A failure code drops it (the
    /// publisher's v5 PUBACK/PUBREC carries the code).
    func inspectPublish(_ publish: inout InboundPublish, from client: ClientInfo) -> ReasonCode
    /// Act on a routed-to-be QoS 1/2 message before the publisher's ack is sent (e.g.
    /// store it). Call `completion` once, from any thread; the broker routes and acks a
    /// client's messages in arrival order whatever order completions come in. A failure
    /// code is sent in the v5 ack and the message is dropped.
    func beforeAck(_ message: Message, from client: ClientInfo, completion: @escaping @Sendable (ReasonCode) -> Void)
    func sessionOnline(_ client: ClientInfo)
    func sessionOffline(_ client: ClientInfo)
    /// A delivery is done: a QoS 1 one acknowledged (PUBACK), a QoS 2 one completed
    /// (PUBCOMP), a QoS 0 one written to the client's connection.
    func delivered(_ message: Message, to client: ClientInfo)
    /// About once a second, on one loop.
    func tick(now: UInt64)
    /// Decide on a PUBLISH that passed the checks, possibly later (e.g. after the
    /// plugin stored its own version of it). Call `completion` exactly once, from any
    /// thread; outcomes are applied in the order the client's PUBLISHes arrived.
    func decidePublish(_ message: Message, from client: ClientInfo, completion: @escaping @Sendable (PublishVerdict) -> Void)
    /// Whether deliveries through this (granted) subscription must each be checked
    /// with `authorizeDelivery` (e.g. a wildcard filter that spans protected topics).
    func checksDeliveries(of filter: TopicFilter, for client: ClientInfo) -> Bool
    /// May a message on `topic` be delivered to this session? Asked only for
    /// subscriptions that `checksDeliveries` flagged, and for queued deliveries after
    /// `BrokerServices.accessChanged`, so it costs nothing per message otherwise.
    func authorizeDelivery(topic: ByteString, username: String?, clientID: String) -> Bool
    /// SIGHUP: the configuration file was read again.
    func reload(_ settings: PluginSettings)
    /// Writes to commit together with a message a plugin publishes in order
    /// (`LoopContext.publish(_:writes:)`, e.g. a chat post and its history row): a
    /// notification bridge's outbox rows for the post, so that the post and its
    /// notifications are stored in one commit, or neither. On the publishing loop;
    /// must not block. (For messages from clients, `beforeAck` can store what it
    /// needs before the ack.)
    func companionWrites(for message: Message) -> [PluginWrite]
}

extension BrokerPlugin {
    public func start(_ services: BrokerServices) throws {}
    public func stop() {}
    public func authenticate(_ request: ConnectRequest, completion: @escaping @Sendable (AuthDecision) -> Void) {
        completion(.abstain)
    }
    public func authorizePublish(_ client: ClientInfo, topic: ByteString, qos: QoS, retain: Bool) -> ReasonCode {
        .success
    }
    public var allowsEveryPublish: Bool { false }
    public func authorizeSubscribe(_ client: ClientInfo, filter: TopicFilter, requested: QoS) -> ReasonCode {
        ReasonCode(requested.rawValue)
    }
    public func inspectPublish(_ publish: inout InboundPublish, from client: ClientInfo) -> ReasonCode { .success }
    public func beforeAck(_ message: Message, from client: ClientInfo, completion: @escaping @Sendable (ReasonCode) -> Void) {
        completion(.success)
    }
    public func sessionOnline(_ client: ClientInfo) {}
    public func sessionOffline(_ client: ClientInfo) {}
    public func delivered(_ message: Message, to client: ClientInfo) {}
    public func tick(now: UInt64) {}
    public func decidePublish(_ message: Message, from client: ClientInfo,
                              completion: @escaping @Sendable (PublishVerdict) -> Void) {
        completion(.accept)
    }
    public func checksDeliveries(of filter: TopicFilter, for client: ClientInfo) -> Bool { false }
    public func authorizeDelivery(topic: ByteString, username: String?, clientID: String) -> Bool { true }
    public func reload(_ settings: PluginSettings) {}
    public func companionWrites(for message: Message) -> [PluginWrite] { [] }
}

/// What plugins may ask of the broker. Safe from any thread.
public protocol BrokerServices: AnyObject, Sendable {
    /// Publishes as the broker itself (no ACL check; `$`-topics allowed).
    func publish(topic: String, payload: [UInt8], qos: QoS, retain: Bool, properties: Properties)
    /// Subscribes an internal client; `handler` runs on a loop thread for every match.
    /// Returns a token for `unsubscribe`.
    func subscribe(filter: String, handler: @escaping @Sendable (Message) -> Void) throws -> Int
    func unsubscribe(_ token: Int)
    /// Runs `work` on a worker thread, off the event loops.
    func runBlocking(_ work: @escaping @Sendable () -> Void)
    /// Ends a client's connection (e.g. a kicked room member), v5 with this reason.
    func disconnect(clientID: String, reason: ReasonCode)

    /// The plugin's tables in the broker's database (a plugin providing `.storage`).
    var storage: PluginStorage { get }
    /// The number of event loops.
    var loopCount: Int { get }
    /// Runs `work` on the event loop that owns `key`: the same loop for the same key,
    /// in submission order, so state keyed by it needs no lock (e.g. a room's ids).
    func onLoop(of key: String, _ work: @escaping @Sendable (LoopContext) -> Void)
    /// Ends every session of a user (a deleted user), v5 with this reason.
    func disconnect(username: String, reason: ReasonCode)
    /// Removes a user's subscriptions (every session of theirs) whose filter matches
    /// `topicPrefix` or lies below it, and drops their queued deliveries on topics
    /// below it, in memory and on disk (a removed room member).
    func revoke(username: String, topicPrefix: String)
    /// What a user may read changed: queued deliveries of their sessions are checked
    /// again (`authorizeDelivery`) before they are sent.
    func accessChanged(username: String)
    /// Blocking work (password hashing) on a bounded pool off the loops; false when
    /// the pool's queue is full (answer "server busy").
    func runBounded(_ work: @escaping @Sendable () -> Void) -> Bool
    /// Publishes as a client would (a REST post made as a user): the `$`-topic rule,
    /// the plugins' authorization and verdicts, the commit when it must outlive a
    /// crash, then routing. `completion` gets success (0x10 when nobody subscribes),
    /// or the refusal's code; on the client id's loop.
    func publish(_ message: Message, as client: ClientInfo, completion: @escaping @Sendable (ReasonCode) -> Void)
    /// Opens a listener for a plugin's own protocol (HTTP) on every event loop, as
    /// the MQTT listeners are; with `secure`, connections get the TLS settings'
    /// context (`startTLS`). `accept` runs on the loop that took each connection.
    /// Only in `start`. Returns the address bound (port 0 picks a free one).
    func listen(_ address: SocketAddress, name: String, secure: Bool,
                accept: @escaping (AcceptedSocket) -> Void) throws -> SocketAddress
    /// Makes an MQTT client of a connection a plugin accepted and upgraded (a
    /// WebSocket on `/mqtt`): from then on it is a client like any other. Call on
    /// the thread of the loop that owns the socket.
    func adoptMQTTClient(_ handOver: MQTTHandOver)
    /// Counters and gauges of the broker, for a metrics endpoint. `done` runs on a
    /// loop thread once every loop has answered.
    func collectMetrics(_ done: @escaping @Sendable (BrokerMetrics) -> Void)
    /// Whether the database can take writes now (its last commit succeeded and it is
    /// not full); true when there is no database.
    var storeWritable: Bool { get }
}

/// A connection a plugin's listener accepted.
public struct AcceptedSocket {
    public let fd: Int32
    public let peer: SocketAddress?
    public let loop: EventLoop
    /// The TLS context, for a secure listener.
    public let tls: TLSContext?
}

/// A socket a plugin hands to the broker as an MQTT client.
public struct MQTTHandOver {
    public let fd: Int32
    public let peer: SocketAddress?
    public let loop: EventLoop
    public let tls: TLSStream?
    public let layer: StreamLayer
    /// Bytes that arrived after the upgrade request, for the layer.
    public let initialBytes: [UInt8]
    /// Bytes to write first, unframed (the end of the upgrade answer).
    public let greeting: [UInt8]
    /// The listener's name ("http", "https").
    public let listener: String

    public init(fd: Int32, peer: SocketAddress?, loop: EventLoop, tls: TLSStream?, layer: StreamLayer,
                initialBytes: [UInt8], greeting: [UInt8], listener: String)
    {
        self.greeting = greeting
        self.fd = fd
        self.peer = peer
        self.loop = loop
        self.tls = tls
        self.layer = layer
        self.initialBytes = initialBytes
        self.listener = listener
    }
}

/// A plugin's tables in the broker's SQLite database.
public protocol PluginStorage: AnyObject, Sendable {
    /// Brings the plugin's tables to the newest version (`migrations[i]` takes them
    /// from version i to i + 1). Only in `start`.
    func migrate(_ plugin: String, _ migrations: [String]) throws
    /// Direct access on the calling thread, only in `start` (to load state).
    func load<T>(_ body: (SQLiteDatabase) throws -> T) throws -> T
    /// A write in the store's next batch; `completion(ok)` after its commit, on any thread.
    func write(_ write: PluginWrite, completion: (@Sendable (Bool) -> Void)?)
    /// A read on the store's thread after every write queued before it.
    func read(_ work: @escaping @Sendable (SQLiteDatabase) -> Void)
}

/// A plugin's settings from the configuration file: the keys it declared, as written.
public struct PluginSettings: Sendable {
    public struct Value: Sendable {
        public let text: String
        public let file: String
        public let line: Int
        public init(text: String, file: String, line: Int) {
            self.text = text
            self.file = file
            self.line = line
        }
    }
    public var values: [String: Value] = [:]
    public init() {}
    public subscript(key: String) -> Value? { values[key] }
}
