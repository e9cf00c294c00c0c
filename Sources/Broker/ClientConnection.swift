import MQTT
import Reactor

/// One MQTT client's socket: frames bytes into packets, hands each to its handler
/// (HandleConnect, HandlePublish, HandleSubscribe, HandleAcks, HandleDisconnect),
/// and encodes what the broker sends back.
/// The kinds of listener an MQTT client can come in on.
enum ListenerKind: UInt8, CaseIterable {
    case mqtt, mqtts, ws, wss

    // Switches, not subscripted array literals: `clientInfo` reads the first two for
    // every PUBLISH a plugin authorizes, and a literal array is allocated and freed
    // on each read.

    /// The listener's name as `ClientInfo.listener` gives it.
    var listener: String {
        switch self {
        case .mqtt: "mqtt"
        case .mqtts: "mqtts"
        case .ws: "http"
        case .wss: "https"
        }
    }

    var transport: String {
        switch self {
        case .mqtt: "tcp"
        case .mqtts: "tls"
        case .ws: "ws"
        case .wss: "wss"
        }
    }

    /// The name the metrics give it.
    var metricsName: String {
        switch self {
        case .mqtt: "mqtt"
        case .mqtts: "mqtts"
        case .ws: "ws"
        case .wss: "wss"
        }
    }
}

final class ClientConnection: Connection {
    enum State { case awaitingConnect, authenticating, connected, closing }

    // Field order keeps the object small (an idle client costs what is stored here):
    // words first, then the small numbers and flags packed together.
    /// Loops live as long as the broker; connections never outlive them. It
    /// changes once, when the connection moves to its session's loop.
    @exclusivity(unchecked) unowned(unsafe) var ctx: BrokerLoop
    @exclusivity(unchecked) var decoder: FrameDecoder
    var session: Session?
    var clientID = ""
    let acceptedAt: UInt64
    @exclusivity(unchecked) var lastReceivedAt: UInt64
    /// Topic aliases and plugin-deferred acks: made only for clients that use them.
    var extras: ConnectionExtras?
    /// Keep alive in milliseconds, 0 = none.
    var keepAliveMillis: UInt32 = 0
    // What the client told us in CONNECT (v5).
    var clientMaximumPacketSize = UInt32.max
    var clientReceiveMaximum: UInt16 = 65_535
    var clientTopicAliasMaximum: UInt16 = 0
    var state = State.awaitingConnect
    /// Which kind of listener the client came in on.
    var listenerKind = ListenerKind.mqtt
    var version = ProtocolVersion.v3_1_1
    /// Packet processing waits (authentication, an async ack) while set.
    var paused = false
    var problemInformation = true
    /// Whether the will is published when the connection ends (cleared by a normal DISCONNECT).
    var publishWillOnClose = true
    /// Set when another connection took over the session.
    var takenOver = false
    /// Until the CONNACK is written: then the buffers of the handshake are freed at
    /// once, so that they leave no holes between long-lived objects.
    var justConnected = false

    /// The user name the session was authenticated as.
    var username: String? { session?.username }

    /// The extras, made on first use.
    var more: ConnectionExtras {
        if let extras { return extras }
        let made = ConnectionExtras()
        extras = made
        return made
    }

    init(fd: Int32, ctx: BrokerLoop, peer: SocketAddress?) {
        self.ctx = ctx
        self.acceptedAt = ctx.now
        self.lastReceivedAt = ctx.now
        self.decoder = FrameDecoder(maximumPacketSize: ctx.config.maxPacketSize)
        super.init(fd: fd, loop: ctx.loop, peer: peer)
    }

    var isReady: Bool { state == .connected && !isClosed }

    /// How many QoS 1/2 messages may be in flight to this client.
    var sendWindow: Int { min(Int(clientReceiveMaximum), ctx.config.maxInflight) }

    var clientInfo: ClientInfo {
        ClientInfo(clientID: clientID, username: username, peer: peer, protocolVersion: version,
                   tlsIdentity: tls?.peerCommonName, isInternal: false,
                   listener: listenerKind.listener, transport: listenerKind.transport)
    }

    // MARK: Input

    override func received(_ bytes: UnsafeRawBufferPointer) {
        lastReceivedAt = ctx.now
        ctx.stats.bytesReceived += bytes.count
        decoder.append(bytes)
        if state == .awaitingConnect, let first = decoder.nextHeaderByte, first != 0x10 {
            // [MQTT-3.1.0-1] the first packet must be CONNECT; its first byte already
            // says whether it is, so do not wait for the rest (port scanners, HTTP).
            Log.info("client.no_connect", ["peer": peer.map { "\($0)" } ?? "-"])
            closeNow()
            return
        }
        processFrames()
    }

    /// Handles every complete packet buffered, unless paused.
    func processFrames() {
        while !paused && !isClosed && state != .closing {
            guard let frame = nextFrame() else { return }
            ctx.stats.messagesReceived += 1
            if state == .awaitingConnect {
                handleConnectFrame(frame)
                continue
            }
            if frame.header >> 4 == PacketType.publish.rawValue {
                // Most of the traffic: decoded and handled without a `Packet` around it.
                guard let p = decodePublish(frame) else { return }
                handlePublish(p)
                continue
            }
            guard let packet = decode(frame) else { return }
            handle(packet)
        }
    }

    // The two steps return optionals that are bound at once: an optional variable
    // assigned in a `do` block is destroyed through a generic value witness, a
    // measurable part of handling a small PUBLISH.

    /// The next complete frame; nil when there is none yet, or after a violation.
    private func nextFrame() -> Frame? {
        do {
            return try decoder.next()
        } catch {
            violation(error)
            return nil
        }
    }

    /// The frame's packet; nil after a violation.
    private func decode(_ frame: Frame) -> Packet? {
        do {
            return try Packet.decode(frame, version: version, from: .client)
        } catch {
            violation(error)
            return nil
        }
    }

    /// The frame's PUBLISH (what `Packet.decode` makes of a PUBLISH frame); nil after a violation.
    private func decodePublish(_ frame: Frame) -> PublishPacket? {
        do {
            return try PublishPacket.decode(flags: frame.header & 0x0F, frame.body, version: version, sender: .client)
        } catch {
            violation(error)
            return nil
        }
    }

    private func handle(_ packet: Packet) {
        switch packet {
        case .publish(let p): handlePublish(p)
        case .puback(let a): handlePuback(a)
        case .pubrec(let a): handlePubrec(a)
        case .pubrel(let a): handlePubrel(a)
        case .pubcomp(let a): handlePubcomp(a)
        case .subscribe(let s): handleSubscribe(s)
        case .unsubscribe(let u): handleUnsubscribe(u)
        case .pingreq: sendPacket(.pingresp)
        case .disconnect(let d): handleDisconnect(d)
        case .connect:
            violation(CodecError(.protocolError, "a second CONNECT", rule: version == .v5 ? "MQTT-3.1.0-2" : "MQTT-3.1.0-2"))
        case .auth:
            // Enhanced authentication is not offered; AUTH without an authentication
            // method in CONNECT is a protocol error.
            violation(CodecError(.protocolError, "AUTH without an authentication method in CONNECT"))
        case .connack, .suback, .unsuback, .pingresp:
            violation(CodecError(.protocolError, "\(packet.type) may not be sent by a client"))
        }
    }

    // MARK: Output

    /// Sends a packet within the client's Maximum Packet Size [MQTT-3.1.2-24]: over
    /// it, without reason string and user properties; when even that does not fit,
    /// the connection closes instead.
    func sendPacket(_ packet: Packet) {
        var fits = true
        sendEncoding { out in
            let start = out.count
            do {
                try packet.encode(into: &out, version: version)
                if out.count - start > Int(clientMaximumPacketSize) {
                    out.removeSubrange(start...)
                    try packet.withoutDiagnostics.encode(into: &out, version: version)
                    if out.count - start > Int(clientMaximumPacketSize) {
                        out.removeSubrange(start...)
                        fits = false
                    }
                }
            } catch {
                out.removeSubrange(start...)
                Log.error("encode.failed", ["client": clientID, "packet": packet.type, "error": error])
            }
        }
        if !fits {
            Log.info("client.packet_too_large", ["client": clientID.isEmpty ? "-" : clientID, "packet": packet.type,
                                                 "maximum": clientMaximumPacketSize])
            closeNow()
            return
        }
        ctx.stats.messagesSent += 1
    }

    /// A reason string, only when the client allows them (v5 Request Problem Information).
    func reasonProperties(_ text: String) -> Properties {
        var p = Properties()
        if version == .v5 && problemInformation && ctx.config.reasonStrings { p.reasonString = text }
        return p
    }

    /// Sends one PUBLISH to this client, reusing an encoding shared by all
    /// subscribers of the same shape when nothing in it is specific to this client.
    func sendPublish(_ message: Message, qos: QoS, retain: Bool, packetID: UInt16, dup: Bool,
                     subscriptionIDs: [UInt32])
    {
        let ctx = self.ctx  // one reference for the whole delivery, not one per use
        let v5 = version == .v5
        let shared = !dup && ctx.shareEncodings
            && (!v5 || (subscriptionIDs.isEmpty && message.expiresAt == nil && clientTopicAliasMaximum == 0))
        var size = 0
        if shared {
            let key = PublishEncodings.key(v5: v5, qos: qos, retain: retain)
            let version = self.version
            let (bytes, offset) = ctx.encodings.encoding(of: message, key: key) { out in
                let packet = PublishPacket(topic: message.topic, payload: message.payload, qos: qos, retain: retain,
                                           packetID: qos == .atMostOnce ? 0 : 1, properties: message.properties)
                return (try? packet.encode(into: &out, version: version)) ?? nil
            }
            size = bytes.count
            if size > Int(clientMaximumPacketSize) {
                droppedTooLarge(packetID)
                return
            }
            if offset >= 0 { send(bytes, patchingUInt16: packetID, at: offset) } else { send(bytes) }
        } else {
            var properties = message.properties
            if v5 {
                properties.subscriptionIdentifiers = subscriptionIDs
                properties.messageExpiryInterval = message.remainingExpiry(now: ctx.now)
            }
            var topic = message.topic
            if v5 && clientTopicAliasMaximum > 0 {
                let more = self.more
                if let alias = more.outboundAliases[message.topic] {
                    properties.topicAlias = alias
                    topic = ByteString([UInt8]())
                } else if more.nextOutboundAlias <= clientTopicAliasMaximum {
                    properties.topicAlias = more.nextOutboundAlias
                    more.outboundAliases[message.topic] = more.nextOutboundAlias
                    more.nextOutboundAlias += 1
                }
            }
            let packet = PublishPacket(topic: topic, payload: message.payload, qos: qos, retain: retain, dup: dup,
                                       packetID: packetID, properties: properties)
            var tooLarge = false
            sendEncoding { out in
                let start = out.count
                _ = try? packet.encode(into: &out, version: version)
                size = out.count - start
                if size > Int(clientMaximumPacketSize) {
                    out.removeSubrange(start...)
                    tooLarge = true
                }
            }
            if tooLarge {
                if properties.topicAlias != nil && !topic.isEmpty { extras?.outboundAliases[message.topic] = nil }
                droppedTooLarge(packetID)
                return
            }
        }
        ctx.stats.messagesSent += 1
        ctx.stats.publishSent += 1
        ctx.stats.bytesSent += size
        // A QoS 0 delivery is done once written (QoS 1/2 ones when acknowledged).
        if qos == .atMostOnce && (ctx.broker.hasDeliveredHooks || message.reportsDeliveries) { deliveredHook(message) }
    }

    /// The spec's rule for a message larger than the client's maximum: it is not
    /// sent, and counts as delivered.
    private func droppedTooLarge(_ packetID: UInt16) {
        ctx.stats.publishDropped += 1
        if packetID != 0 { session?.removeInflight(packetID) }
    }

    // MARK: Errors and closing

    /// A protocol violation: v5 clients are told why with DISCONNECT (or CONNACK
    /// before the session exists); then the connection closes.
    func violation(_ error: CodecError) {
        ctx.stats.protocolErrors += 1
        Log.info("client.violation", ["client": clientID, "peer": peer.map { "\($0)" } ?? "-", "reason": error])
        if state == .connected && version == .v5 {
            sendPacket(.disconnect(DisconnectPacket(reasonCode: error.reason, properties: reasonProperties(error.message))))
        }
        closeNow()
    }

    /// Sends a v5 DISCONNECT with `reason` (3.x clients are just closed) and closes.
    func disconnect(reason: ReasonCode, _ text: String) {
        if state == .connected && version == .v5 {
            sendPacket(.disconnect(DisconnectPacket(reasonCode: reason, properties: reasonProperties(text))))
        }
        closeNow()
    }

    func closeNow() {
        state = .closing
        close(reason: .local)
    }

    override func didClose(_ reason: CloseReason) {
        switch reason {
        case .error(let e) where tls.map({ !$0.handshakeDone }) ?? false:
            // Refused certificates, plaintext or garbage on a TLS port, old protocol versions.
            Log.info("tls.handshake_failed", ["peer": peer.map { "\($0)" } ?? "-", "error": e])
        case .error(let e):
            Log.info("client.closed", ["client": clientID.isEmpty ? "-" : clientID,
                                       "peer": peer.map { "\($0)" } ?? "-", "tls": tls != nil, "error": e])
        case .peerClosed, .local:
            // Ordinary closes: only at debug level, and nothing is formatted otherwise.
            if Log.enabled(.debug) {
                let by: String
                if case .local = reason { by = "broker" } else { by = "peer" }
                Log.debug("client.closed", ["client": clientID.isEmpty ? "-" : clientID,
                                            "peer": peer.map { "\($0)" } ?? "-", "tls": tls != nil, "by": by])
            }
        }
        ctx.clients[ObjectIdentifier(self)] = nil
        ctx.broker.connectionCount.subtract(1, ordering: .relaxed)
        ctx.stats.open[Int(listenerKind.rawValue)] -= 1
        guard let session, session.connection === self else { return }
        detachSession(session)
    }

    override func writeDrained() {
        if justConnected {
            justConnected = false
            if decoder.bufferedByteCount == 0 { decoder.shrink() }
            releaseIdleBuffers()
        }
        if let session, session.queuedCount > 0 { ctx.pump(session) }
    }

    // MARK: Timers

    func checkTimers(now: UInt64) {
        switch state {
        case .awaitingConnect, .authenticating:
            if now - acceptedAt > UInt64(ctx.config.connectTimeout) * 1000 {
                Log.info("client.connect_timeout", ["peer": peer.map { "\($0)" } ?? "-"])
                closeNow()
            }
        case .connected:
            if keepAliveMillis > 0 && now - lastReceivedAt > UInt64(keepAliveMillis) * 3 / 2 {
                Log.info("client.keepalive_timeout", ["client": clientID])
                disconnect(reason: .keepAliveTimeout, "keep alive timeout")
                return
            }
            if pendingOutput == 0 && decoder.bufferedByteCount == 0 {
                decoder.shrink()
                releaseIdleBuffers()
            }
        case .closing:
            break
        }
    }
}

/// Per-connection state that most clients never need.
final class ConnectionExtras {
    var inboundAliases: [UInt16: ByteString] = [:]
    var outboundAliases: [ByteString: UInt16] = [:]
    var nextOutboundAlias: UInt16 = 1
    /// PUBLISHes waiting for a plugin or a commit, or behind one that does, in
    /// arrival order; `pendingAcks` counts the QoS 1/2 ones among them.
    var pendingAcks = 0
    var waiting: [PendingPublish] = []
    /// Frame processing stopped because `waiting` grew long.
    var pausedForOrder = false
}

/// Encodings of one message shared by the subscribers that get identical bytes
/// (same protocol family, QoS and retain flag; packet ids are patched in place).
/// One per loop; its buffers are reused from message to message. Hot, loop-confined
/// fields here and in the other per-loop classes skip the runtime exclusivity check.
final class PublishEncodings {
    @exclusivity(unchecked) private var message: Message?
    @exclusivity(unchecked) private var buffers = [[UInt8]](repeating: [], count: 16)
    @exclusivity(unchecked) private var offsets = [Int](repeating: -1, count: 16)
    @exclusivity(unchecked) private var valid = [Bool](repeating: false, count: 16)
    @exclusivity(unchecked) private var used: [Int] = []

    static func key(v5: Bool, qos: QoS, retain: Bool) -> Int {
        (v5 ? 8 : 0) | Int(qos.rawValue) << 1 | (retain ? 1 : 0)
    }

    /// The encoding of `message` for `key`, made with `encode` the first time.
    /// Holding the message keeps its identity from being reused while cached.
    @inline(__always)
    func encoding(of message: Message, key: Int, _ encode: (inout [UInt8]) -> Int?) -> (bytes: [UInt8], idOffset: Int) {
        if self.message !== message {
            for k in used { valid[k] = false }
            used.removeAll(keepingCapacity: true)
            self.message = message
        }
        if !valid[key] {
            buffers[key].removeAll(keepingCapacity: true)
            offsets[key] = encode(&buffers[key]) ?? -1
            valid[key] = true
            used.append(key)
        }
        return (buffers[key], offsets[key])
    }

    /// Lets go of the last message (so its memory can be freed).
    func reset() {
        for k in used { valid[k] = false }
        used.removeAll(keepingCapacity: true)
        message = nil
    }
}
