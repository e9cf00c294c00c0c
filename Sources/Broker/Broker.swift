import Dispatch
import Foundation
import MQTT
import Reactor
import Store
import Synchronization

/// The broker: event loops, listeners, the state they share (retained messages,
/// shared subscriptions, counters) and the plugins.
public final class Broker: BrokerServices, @unchecked Sendable {
    public let config: BrokerConfig
    let plugins: [BrokerPlugin]
    private(set) var loops: [BrokerLoop] = []
    private var listeners: [Listener] = []
    private var listeningSockets: [Int32] = []
    let retained = RetainedStore()
    let shared = SharedSubscriptions()
    let census = FilterCensus()
    let connectionCount = Atomic<Int>(0)
    /// The database for the broker's own state, unless durability is none.
    public private(set) var store: Store?
    /// The database file, open also with durability none when a plugin keeps tables
    /// in it (then only the plugins' writes go to it).
    public private(set) var database: Store?
    /// Blocking plugin work (password hashing), bounded.
    let workers: BlockingPool
    /// Message ids handed out (the store's primary key).
    let nextMessageID = Atomic<Int64>(0)
    /// Subscriptions of stored sessions: when there are none, nothing needs logging.
    let persistentSubscriptions = Atomic<Int>(0)
    /// Logged messages not yet routed when the broker stopped; routed at start.
    var recovered: [Message] = []
    let queuedBytes = Atomic<Int>(0)
    let startedAt = Date()
    /// Whether any plugin wants `delivered` (checked per QoS 0 delivery, so a plain flag).
    let hasDeliveredHooks: Bool
    /// No plugin inspects or decides publishes, or hears of deliveries: a QoS 0
    /// PUBLISH then needs no `Message` unless a recipient keeps it (`forwardQoS0`).
    let forwardsQoS0Directly: Bool
    /// The plugins providing each hook, indexed by the hook's bit.
    private let hookLists: [[BrokerPlugin]]
    private let internalTokens = Mutex<[Int: (loop: Int, clientID: String)]>([:])
    private let nextToken = Atomic<Int>(1)
    /// The addresses actually bound (port 0 resolved).
    public private(set) var boundAddresses: [SocketAddress] = []
    public private(set) var boundTLSAddresses: [SocketAddress] = []
    /// The TLS context of the TLS listeners; SIGHUP may replace it.
    public private(set) var tlsContext: TLSContextHolder?
    private let stopped = Atomic<Bool>(false)
    private let loopsRunning = Atomic<Bool>(false)

    public init(config: BrokerConfig, plugins: [BrokerPlugin] = []) {
        self.config = config
        self.plugins = plugins
        hookLists = (0..<PluginHooks.count).map { bit in plugins.filter { $0.hooks.contains(PluginHooks(rawValue: 1 << bit)) } }
        hasDeliveredHooks = plugins.contains { $0.hooks.contains(.delivered) }
        forwardsQoS0Directly = !plugins.contains { !$0.hooks.isDisjoint(with: [.inspectPublish, .decidePublish, .delivered]) }
        // One core fewer than the machine has (at least one), below the loops' priority:
        // a flood of password logins leaves the event loops a core and their turn.
        workers = BlockingPool(threads: max(1, min(4, ProcessInfo.processInfo.activeProcessorCount - 1)),
                               queueLimit: config.blockingQueueLimit, niceness: 10)
    }

    /// Client ids of the broker's internal clients; refused from the network.
    static let internalClientPrefix = "$internal-"

    /// The plugins that provide `hook`, in configuration order.
    @inline(__always)
    func plugins(providing hook: PluginHooks) -> [BrokerPlugin] { hookLists[hook.rawValue.trailingZeroBitCount] }

    /// The loop that owns a client id's session.
    func homeLoop(for clientID: String) -> BrokerLoop {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in clientID.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return loops[Int(h % UInt64(loops.count))]
    }

    // MARK: Life cycle

    /// One loop per core but one: the remaining core is for what is not a loop
    /// (the store's writer, password checks, notification deliveries, the kernel's
    /// network work), and on a machine of one or two cores a single loop spends the
    /// least per message (no cross-loop hand-offs) without losing throughput.
    public static func defaultLoopCount(cores: Int) -> Int { max(1, cores - 1) }

    /// Opens the listeners and starts the loops.
    public func start() throws {
        Sockets.ignoreSIGPIPE()
        let count = config.loops > 0 ? config.loops : Broker.defaultLoopCount(cores: ProcessInfo.processInfo.activeProcessorCount)
        let ringRefusal = config.ioUring == .off ? "io_uring = off" : EventLoop.sendRingUnavailableReason()
        if config.ioUring == .on, let ringRefusal {
            throw SystemError("io_uring = on, but the kernel refuses it (\(ringRefusal))", code: 0)
        }
        for i in 0..<count {
            let loop = try EventLoop(index: i, name: "parley-loop-\(i)")
            if ringRefusal == nil { try loop.useSendRing(measured: config.ioUring == .auto) }
            loops.append(BrokerLoop(loop: loop, broker: self, loopCount: count))
        }
        // auto: each loop measures the ring against a write() each and keeps the cheaper (`reactor.sends` lines).
        let sends = ringRefusal != nil ? "write" : config.ioUring == .auto ? "measured" : "io_uring"
        Log.info("reactor.start", ["loops": count, "sends": sends, "io_uring": ringRefusal ?? "on"])
        let pluginTables = plugins.contains { $0.hooks.contains(.storage) }
        if config.durability != .none || pluginTables {
            let store = try Store(directory: config.dataDirectory,
                                  durability: config.durability == .none ? .batch(milliseconds: 10) : config.durability,
                                  maxBytes: config.storeMaxBytes > 0 ? config.storeMaxBytes : nil)
            database = store
            if config.durability != .none { self.store = store }
        }
        tlsContext = try config.tls.map { TLSContextHolder(try TLSContext($0)) }
        // Plugins start with the database still theirs to read directly (their
        // tables, migrations), before the broker's own state is restored.
        for plugin in plugins { try plugin.start(self) }
        if let store {
            let started = Date()
            let snapshot = try store.load(now: Broker.wallMillis(), page: DurableQueue.memoryPage)
            restore(from: snapshot)
            Log.info("store.open", ["directory": config.dataDirectory, "durability": "\(config.durability)",
                                    "load_ms": Int(Date().timeIntervalSince(started) * 1000)])
        }
        database?.start()
        if !config.mqttsListeners.isEmpty && tlsContext == nil {
            throw TLSError("TLS listeners need a certificate and a key (tls_cert, tls_key or --cert, --key)")
        }
        for address in config.mqttListeners {
            let fd = try Sockets.listen(address, reusePort: false)
            guard let bound = Sockets.localAddress(fd) else { throw SystemError("getsockname") }
            boundAddresses.append(bound)
            try addListeners(fd) { [unowned self] client, peer, loop in
                self.accepted(client, peer: peer, on: loops[loop.index], tls: nil)
            }
            Log.info("listener.open", ["address": bound, "protocol": "mqtt", "loops": count])
        }
        for address in config.mqttsListeners {
            let fd = try Sockets.listen(address, reusePort: false)
            guard let bound = Sockets.localAddress(fd) else { throw SystemError("getsockname") }
            boundTLSAddresses.append(bound)
            let holder = tlsContext!
            try addListeners(fd) { [unowned self] client, peer, loop in
                self.accepted(client, peer: peer, on: loops[loop.index], tls: holder)
            }
            Log.info("listener.open", ["address": bound, "protocol": "mqtts", "loops": count])
        }
        // Messages whose routing a crash interrupted are matched again before any
        // loop runs, so they come before anything published after the restart
        // (their deliveries are written once: the store ignores repeats).
        for m in recovered {
            let picks = shared.isEmpty ? [] : shared.pick(topic: m.topic, origin: m.origin)
            m.pendingRoutes.store(loops.count + picks.count, ordering: .releasing)
            for ctx in loops {
                ctx.matchLocally(m)
                ctx.finishedRouting(m)
            }
            for member in picks {
                loops[member.loop].perform(.deliver(
                    m, clientID: member.clientID, qos: min(member.options.qos, m.qos),
                    retain: member.options.retainAsPublished ? m.retain : false,
                    subscriptionIDs: member.identifier.map { [$0] } ?? []))
            }
        }
        recovered = []
        loopsRunning.store(true, ordering: .releasing)
        for ctx in loops {
            ctx.loop.start()
            ctx.loop.execute { [unowned self] in self.startTimers(ctx) }
        }
    }

    /// Watches a listening socket on every loop; the kernel wakes one loop per
    /// connection. (Not SO_REUSEPORT: that would let a second broker share the port
    /// silently instead of failing to start.)
    func addListeners(_ fd: Int32, _ accept: @escaping (Int32, SocketAddress?, EventLoop) -> Void) throws {
        listeningSockets.append(fd)
        for ctx in loops {
            let loop = ctx.loop
            listeners.append(try Listener(fd: fd, loop: loop, exclusive: true) { client, peer in
                accept(client, peer, loop)
            })
        }
    }

    private func startTimers(_ ctx: BrokerLoop) {
        func sweep() {
            ctx.sweep()
            ctx.loop.schedule(afterMilliseconds: 1000, sweep)
        }
        ctx.loop.schedule(afterMilliseconds: 1000, sweep)
        if ctx.index == 0 && config.sysInterval > 0 {
            func sys() {
                publishSys()
                ctx.loop.schedule(afterMilliseconds: UInt64(config.sysInterval) * 1000, sys)
            }
            sys()
        }
    }

    private func accepted(_ fd: Int32, peer: SocketAddress?, on ctx: BrokerLoop, tls: TLSContextHolder?) {
        let count = connectionCount.add(1, ordering: .relaxed).newValue
        ctx.stats.connectionsAccepted += 1
        let conn = ClientConnection(fd: fd, ctx: ctx, peer: peer)
        conn.listenerKind = tls == nil ? .mqtt : .mqtts
        ctx.stats.open[Int(conn.listenerKind.rawValue)] += 1
        if let tls, !conn.startTLS(tls.context) {
            conn.closeNow()
            return
        }
        _ = admit(conn, on: ctx, count: count)
    }

    /// Starts reading a new client's socket, unless the broker is far over its
    /// connection limit (then it closes at once rather than spend a CONNACK on it).
    func admit(_ conn: ClientConnection, on ctx: BrokerLoop, count: Int) -> Bool {
        if count > config.maxConnections + 16 {
            conn.closeNow()
            return false
        }
        ctx.clients[ObjectIdentifier(conn)] = conn
        do {
            try conn.activate()
            return true
        } catch {
            ctx.clients[ObjectIdentifier(conn)] = nil
            conn.closeNow()
            return false
        }
    }

    /// Stops accepting, tells v5 clients the server is shutting down (0x8B),
    /// flushes what is queued on the sockets, stops the loops.
    public func shutdown() {
        if stopped.exchange(true, ordering: .acquiringAndReleasing) { return }
        let done = DispatchGroup()
        for (i, ctx) in loops.enumerated() {
            done.enter()
            ctx.loop.execute { [self] in
                for l in listeners where l.loop === ctx.loop { l.stop() }
                for c in ctx.allConnections {
                    c.publishWillOnClose = false
                    c.disconnect(reason: .serverShuttingDown, "server shutting down")
                }
                _ = i
                done.leave()
            }
        }
        _ = done.wait(timeout: .now() + 5)
        for fd in listeningSockets { close(fd) }
        for ctx in loops { ctx.loop.stop() }
        for ctx in loops { ctx.loop.join() }
        for plugin in plugins { plugin.stop() }
        database?.stop()
        workers.shutdown()
        Log.info("broker.stopped")
    }

    // MARK: BrokerServices

    public func publish(topic: String, payload: [UInt8], qos: QoS, retain: Bool, properties: Properties) {
        let ctx = loops[0]
        ctx.loop.execute {
            let expiry = properties.messageExpiryInterval.map { ctx.now + UInt64($0) * 1000 }
            let message = Message(topic: ByteString(topic), payload: payload, qos: qos, retain: retain,
                                  properties: properties, expiresAt: expiry, origin: nil, receivedAt: ctx.now)
            ctx.publish(message)
        }
    }

    public func subscribe(filter: String, handler: @escaping @Sendable (Message) -> Void) throws -> Int {
        let raw = ByteString(filter)
        let parsed = try TopicRules.parseFilter(raw.bytes, version: .v5)
        let token = nextToken.add(1, ordering: .relaxed).newValue
        let clientID = "\(Broker.internalClientPrefix)\(token)"
        let ctx = homeLoop(for: clientID)
        internalTokens.withLock { $0[token] = (ctx.index, clientID) }
        // Made during start (before the loops run), it is in place before the
        // messages recovered from the store are routed.
        let add = {
            let session = Session(clientID: clientID, home: ctx)
            session.internalClient = InternalClient(handler: handler)
            session.expiryInterval = UInt32.max
            ctx.sessions[clientID] = session
            let entry = SubscriptionEntry(session: session, options: Subscription(topicFilter: raw, qos: .exactlyOnce),
                                          identifier: nil)
            session.subscriptions[raw] = entry
            ctx.addSubscription(entry, parsed: parsed)
        }
        if loopsRunning.load(ordering: .acquiring) { ctx.loop.execute(add) } else { add() }
        return token
    }

    public func unsubscribe(_ token: Int) {
        guard let (index, clientID) = internalTokens.withLock({ $0.removeValue(forKey: token) }) else { return }
        let ctx = loops[index]
        ctx.loop.execute {
            if let session = ctx.sessions[clientID] { ctx.endSession(session) }
        }
    }

    public func runBlocking(_ work: @escaping @Sendable () -> Void) {
        // Work that must run: past the pool's bound it goes to the shared queue.
        if !workers.submit(work) { DispatchQueue.global().async(execute: work) }
    }

    public func runBounded(_ work: @escaping @Sendable () -> Void) -> Bool {
        workers.submit(work)
    }

    public var storage: PluginStorage {
        guard let database else { fatalError("a plugin without the .storage hook asked for storage") }
        return PluginTables(database)
    }

    public var loopCount: Int { loops.count }

    public func publish(_ message: Message, as client: ClientInfo,
                        completion: @escaping @Sendable (ReasonCode) -> Void)
    {
        let ctx = homeLoop(for: client.clientID)
        ctx.loop.execute { ctx.publish(message, as: client, completion: completion) }
    }

    /// SIGHUP: each plugin gets the settings read again from the file.
    public func reloadPlugins(_ settings: PluginSettings) {
        for plugin in plugins { plugin.reload(settings) }
    }

    public func onLoop(of key: String, _ work: @escaping @Sendable (LoopContext) -> Void) {
        let ctx = homeLoop(for: key)
        ctx.loop.execute { work(LoopContext(ctx, key: key)) }
    }

    public func disconnect(username: String, reason: ReasonCode) {
        for ctx in loops {
            ctx.loop.execute {
                for (_, s) in ctx.sessions where s.username == username {
                    s.connection?.disconnect(reason: reason, "disconnected by the server")
                }
            }
        }
    }

    public func revoke(username: String, topicPrefix: String) {
        let prefix = ByteString(topicPrefix)
        for ctx in loops {
            ctx.loop.execute {
                for (_, s) in ctx.sessions where s.username == username { ctx.revoke(s, below: prefix) }
            }
        }
    }

    public func accessChanged(username: String) {
        for ctx in loops {
            ctx.loop.execute {
                for (_, s) in ctx.sessions where s.username == username { s.recheckDeliveries = true }
            }
        }
    }

    /// Whether a plugin wants each delivery through this subscription checked.
    func checksDeliveries(of filter: TopicFilter, for client: ClientInfo) -> Bool {
        plugins(providing: .authorizeDelivery).contains { $0.checksDeliveries(of: filter, for: client) }
    }

    /// Whether every plugin that checks deliveries lets this session read `topic`.
    func mayDeliver(_ topic: ByteString, to session: Session) -> Bool {
        for plugin in plugins(providing: .authorizeDelivery)
        where !plugin.authorizeDelivery(topic: topic, username: session.username, clientID: session.clientID) {
            return false
        }
        return true
    }

    public func disconnect(clientID: String, reason: ReasonCode) {
        let ctx = homeLoop(for: clientID)
        ctx.loop.execute {
            ctx.sessions[clientID]?.connection?.disconnect(reason: reason, "disconnected by the server")
        }
    }

    // MARK: $SYS

    /// Sums every loop's counters (each loop reports its own, on its own thread).
    func collectStats(_ done: @escaping (LoopStats, Int) -> Void) {
        let parts = Mutex<[LoopStats]>([])
        let subs = Atomic<Int>(0)
        let group = DispatchGroup()
        for ctx in loops {
            group.enter()
            ctx.loop.execute {
                let s = ctx.stats
                parts.withLock { $0.append(s) }
                subs.add(ctx.topics.count, ordering: .relaxed)
                group.leave()
            }
        }
        group.notify(queue: .global()) {
            let total = parts.withLock { $0.reduce(LoopStats(), +) }
            done(total, subs.load(ordering: .relaxed))
        }
    }

    private func publishSys() {
        collectStats { [self] total, subscriptions in
            let uptime = Int(Date().timeIntervalSince(startedAt))
            let values: [(String, String)] = [
                ("version", "parley \(BrokerInfo.version)"),
                ("uptime", "\(uptime) seconds"),
                ("clients/connected", "\(total.clientsConnected)"),
                ("clients/total", "\(total.connectionsAccepted)"),
                ("messages/received", "\(total.messagesReceived)"),
                ("messages/sent", "\(total.messagesSent)"),
                ("publish/messages/received", "\(total.publishReceived)"),
                ("publish/messages/sent", "\(total.publishSent)"),
                ("publish/messages/dropped", "\(total.publishDropped)"),
                ("publish/messages/expired", "\(total.publishExpired)"),
                ("bytes/received", "\(total.bytesReceived)"),
                ("bytes/sent", "\(total.bytesSent)"),
                ("subscriptions/count", "\(subscriptions)"),
                ("retained messages/count", "\(retained.count)"),
                ("store/messages/bytes", "\(queuedBytes.load(ordering: .relaxed))"),
                ("protocol/errors", "\(total.protocolErrors)"),
            ]
            for (name, value) in values {
                publish(topic: "$SYS/broker/\(name)", payload: Array(value.utf8), qos: .atMostOnce, retain: true,
                        properties: .none)
            }
        }
    }
}

/// Build facts shown by `parley version` and `$SYS/broker/version`.
public enum BrokerInfo {
    public static let version = "0.1.0"
}
