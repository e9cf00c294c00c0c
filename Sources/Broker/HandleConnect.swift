import MQTT
import Reactor
import Store

extension ClientConnection {
    // MARK: CONNECT

    func handleConnectFrame(_ frame: Frame) {
        guard frame.header >> 4 == PacketType.connect.rawValue else {
            // [MQTT-3.1.0-1] the first packet must be CONNECT: close without a word.
            Log.info("client.no_connect", ["peer": peer.map { "\($0)" } ?? "-"])
            closeNow()
            return
        }
        let connect: ConnectPacket
        do {
            guard case .connect(let c) = try Packet.decode(frame, version: .v5, from: .client) else { return }
            connect = c
        } catch {
            refuseConnect(error, level: Self.peekProtocolLevel(frame.body))
            return
        }
        version = connect.version
        problemInformation = connect.properties.requestProblemInformation ?? true
        if version == .v5 { clientMaximumPacketSize = connect.properties.maximumPacketSize ?? UInt32.max }
        let config = ctx.config

        // Client identifier rules.
        var clientID = connect.clientID
        var assigned = false
        if clientID.isEmpty {
            if version == .v3_1 || (version == .v3_1_1 && !connect.cleanStart) {
                sendConnack(.clientIdentifierNotValid, "an empty client id needs clean session")
                closeNow()
                return
            }
            clientID = "auto-" + Self.randomID()
            assigned = true
        } else if clientID.hasPrefix(Broker.internalClientPrefix) {
            // The broker's own clients cannot be taken over from the network.
            sendConnack(.clientIdentifierNotValid, "client ids starting with \(Broker.internalClientPrefix) are the broker's")
            closeNow()
            return
        } else if version == .v3_1 && clientID.utf8.count > 23 {
            sendConnack(.clientIdentifierNotValid, "MQTT 3.1 client ids are 1 to 23 characters")
            closeNow()
            return
        }
        if ctx.broker.connectionCount.load(ordering: .relaxed) > config.maxConnections {
            sendConnack(.serverBusy, "too many connections")
            closeNow()
            return
        }
        self.clientID = clientID
        state = .authenticating
        paused = true
        let identity = tls?.peerCommonName
        if ctx.config.useIdentityAsUsername && identity == nil {
            sendConnack(.notAuthorized, "a client certificate is required")
            closeNow()
            return
        }
        // With use_identity_as_username the certificate speaks for the client.
        let claimedName = ctx.config.useIdentityAsUsername ? identity : connect.username
        let request = ConnectRequest(
            clientID: clientID, username: claimedName, password: connect.password.map { Array($0) }, peer: peer,
            tlsIdentity: identity, protocolVersion: version)
        authenticate(request, plugins: ctx.broker.plugins(providing: .authenticate)[...]) { [self] decision in
            switch decision {
            case .deny(let reason):
                Log.info("client.auth_denied", ["client": clientID, "peer": peer.map { "\($0)" } ?? "-", "reason": reason])
                sendConnack(reason, "not authorized")
                closeNow()
            case .allow(let name):
                accept(connect, clientID: clientID, assigned: assigned, username: name ?? claimedName)
            case .abstain:
                if ctx.config.useIdentityAsUsername {
                    accept(connect, clientID: clientID, assigned: assigned, username: claimedName)
                } else if ctx.config.allowAnonymous || connect.username != nil {
                    accept(connect, clientID: clientID, assigned: assigned, username: connect.username)
                } else {
                    sendConnack(.notAuthorized, "anonymous connections are off")
                    closeNow()
                }
            }
        }
    }

    /// Asks each authenticating plugin in turn until one decides.
    private func authenticate(_ request: ConnectRequest, plugins: ArraySlice<BrokerPlugin>,
                              _ done: @escaping (AuthDecision) -> Void)
    {
        guard let plugin = plugins.first else {
            done(.abstain)
            return
        }
        let loop = self.loop
        plugin.authenticate(request) { [self] decision in
            loop.execute { [self] in
                if isClosed { return }
                if case .abstain = decision {
                    authenticate(request, plugins: plugins.dropFirst(), done)
                } else {
                    done(decision)
                }
            }
        }
    }

    /// Authenticated: continue on the loop that owns this client id's session.
    private func accept(_ connect: ConnectPacket, clientID: String, assigned: Bool, username: String?) {
        let home = ctx.broker.homeLoop(for: clientID)
        if home === ctx {
            finishConnect(connect, clientID: clientID, assigned: assigned, username: username)
            return
        }
        // The same object moves: its socket, TLS state and unread bytes go along.
        // Hand over only once this loop is done with the connection for this turn,
        // so that the two loops never touch it at the same time. That includes the
        // end-of-turn flush of output queued before the CONNECT (a WebSocket client's
        // 101 answer): a loop runs its end-of-turn tasks before its flushes, so the
        // hand-over waits one more round, until after them.
        leaveLoop()
        ctx.clients[ObjectIdentifier(self)] = nil
        let here = loop
        here.atEndOfTurn { [self] in
            here.atEndOfTurn { [self] in home.loop.execute { [self] in moved(to: home, connect, clientID, assigned, username) } }
        }
    }

    /// On the home loop: watch the socket here and finish CONNECT.
    private func moved(to home: BrokerLoop, _ connect: ConnectPacket, _ clientID: String, _ assigned: Bool,
                       _ username: String?)
    {
        do {
            ctx = home
            home.clients[ObjectIdentifier(self)] = self
            try joinLoop(home.loop)
        } catch {
            Log.error("client.handoff_failed", ["client": clientID, "error": error])
            closeNow()
            return
        }
        finishConnect(connect, clientID: clientID, assigned: assigned, username: username)
    }

    /// Attaches (or creates) the session, answers CONNACK, resends what was in flight.
    private func finishConnect(_ connect: ConnectPacket, clientID: String, assigned: Bool, username: String?) {
        let config = ctx.config
        var sessionPresent = false
        var session: Session
        if let existing = ctx.sessions[clientID] {
            if let old = existing.connection {
                // Take-over: the old connection goes, with v5 reason 0x8E.
                Log.info("client.takeover", ["client": clientID])
                old.takenOver = true
                old.publishWillOnClose = false
                old.disconnect(reason: .sessionTakenOver, "another connection took over this session")
                existing.connection = nil
                // The old will: the session ends or the will has no delay: publish it.
                if existing.will != nil && (connect.cleanStart || existing.expiryInterval == 0 || existing.willDelay == 0) {
                    ctx.publishWill(of: existing)
                }
            }
            // A session that ends with its connection (3.x clean session, v5 expiry 0)
            // is never carried into a later one, even one that takes it over [MQTT-3.1.2-6].
            if connect.cleanStart || existing.expiryInterval == 0 {
                ctx.endSession(existing)
                session = Session(clientID: clientID, home: ctx)
                ctx.sessions[clientID] = session
            } else {
                session = existing
                sessionPresent = true
                loop.cancel(session.expiryTimer)
                session.expiryTimer = .none
                // Reconnected within the will delay: the will is not sent.
                loop.cancel(session.willTimer)
                session.willTimer = .none
                session.will = nil
            }
        } else {
            session = Session(clientID: clientID, home: ctx)
            ctx.sessions[clientID] = session
        }
        session.version = version
        session.username = username

        // Session expiry.
        var connack = ConnackPacket(sessionPresent: sessionPresent)
        if version == .v5 {
            let requested = connect.properties.sessionExpiryInterval ?? 0
            session.expiryInterval = min(requested, config.maxSessionExpiry)
            if session.expiryInterval != requested { connack.properties.sessionExpiryInterval = session.expiryInterval }
        } else {
            session.expiryInterval = connect.cleanStart ? 0 : config.persistentSessionExpiry
        }

        // Will.
        if let will = connect.will {
            let expiry = will.properties.messageExpiryInterval.map { ctx.now + UInt64($0) * 1000 }
            session.will = Message(topic: will.topic.compacted, payload: Array(will.payload), qos: will.qos,
                                   retain: will.retain && config.retainAvailable, properties: will.properties,
                                   expiresAt: expiry, origin: clientID, receivedAt: ctx.now)
            session.willDelay = will.properties.willDelayInterval ?? 0
        } else {
            session.will = nil
        }

        // Keep alive.
        var keepAlive = connect.keepAlive
        if version == .v5 && (keepAlive > config.maxKeepAlive || (keepAlive == 0 && !config.allowZeroKeepAlive)) {
            keepAlive = config.maxKeepAlive
            connack.properties.serverKeepAlive = keepAlive
        }
        keepAliveMillis = UInt32(keepAlive) * 1000

        // Flow control and limits, both ways.
        if version == .v5 {
            clientReceiveMaximum = connect.properties.receiveMaximum ?? 65_535
            clientTopicAliasMaximum = connect.properties.topicAliasMaximum ?? 0
            connack.properties.receiveMaximum = UInt16(clamping: config.maxInflight)
            connack.properties.maximumPacketSize = UInt32(clamping: config.maxPacketSize)
            connack.properties.topicAliasMaximum = config.topicAliasMaximum
            if !config.retainAvailable { connack.properties.retainAvailable = false }
            if assigned { connack.properties.assignedClientIdentifier = clientID }
        }

        session.connection = self
        self.session = session
        ctx.clients[ObjectIdentifier(self)] = nil
        // Not `.connected` until CONNACK is out: deliveries in between wait in the
        // session's queue, behind what it already owes the client.
        justConnected = true
        ctx.stats.clientsConnected += 1

        // A session that outlives its connection is written before CONNACK says so.
        // A stored session resumed with expiry 0 stays stored while connected (its
        // queue is on disk [MQTT-3.1.2-4]); it ends, and leaves the store, when the
        // connection does, and a restart finds it expired.
        var ops: [StoreOp] = []
        if ctx.store != nil && (session.expiryInterval > 0 || session.durable != nil) {
            if session.durable == nil { session.durable = DurableQueue() }
            ops.append(.session(ctx.broker.storedSession(session, connected: true, now: ctx.now)))
        }
        if let store = ctx.store, !ops.isEmpty {
            if ctx.waitsForCommit {
                store.submit(ops, executor: ctx.executor, failable: true) { [self] ok in
                    if isClosed { return }
                    if !ok {
                        sendConnack(version == .v5 ? .quotaExceeded : .serverUnavailable, "the broker's storage is full")
                        closeNow()
                        return
                    }
                    completeConnect(session, connack: connack, sessionPresent: sessionPresent, clean: connect.cleanStart)
                }
                return
            }
            store.submit(ops)
        }
        completeConnect(session, connack: connack, sessionPresent: sessionPresent, clean: connect.cleanStart)
    }

    /// CONNACK, then what the session owes the client, then the packets that waited.
    private func completeConnect(_ session: Session, connack: ConnackPacket, sessionPresent: Bool, clean: Bool) {
        state = .connected
        sendPacket(.connack(connack))
        Log.debug("client.connect", ["client": clientID, "version": version, "clean": clean,
                                     "session_present": sessionPresent])
        ctx.broker.shared.setOnline(clientID: session.clientID, true)
        for plugin in ctx.broker.plugins(providing: .sessionEvents) { plugin.sessionOnline(clientInfo) }

        // Resend what was in flight, in order, then what waited in the queue.
        if sessionPresent {
            for (id, d) in session.inflightInOrder {
                if d.state == .released {
                    sendPacket(.pubrel(AckPacket(packetID: id)))
                } else {
                    sendPublish(d.message, qos: d.qos, retain: d.retain, packetID: id, dup: true,
                                subscriptionIDs: d.subscriptionIDs)
                }
            }
            ctx.pump(session)
        }
        paused = false
        processFrames()
    }

    /// The session loses its connection: will, expiry.
    func detachSession(_ session: Session) {
        session.connection = nil
        ctx.stats.clientsConnected -= 1
        if session.durable != nil, session.expiryInterval > 0, let store = ctx.store {
            store.submit([.sessionDisconnected(clientID: session.clientID, expiresAt: ctx.broker.expiryWall(session))])
        }
        ctx.broker.shared.setOnline(clientID: session.clientID, false)
        for plugin in ctx.broker.plugins(providing: .sessionEvents) { plugin.sessionOffline(clientInfo) }
        if takenOver { return }
        if session.will != nil {
            if publishWillOnClose {
                let delay = min(session.willDelay, session.expiryInterval)
                if delay == 0 {
                    ctx.publishWill(of: session)
                } else {
                    session.willTimer = loop.schedule(afterMilliseconds: UInt64(delay) * 1000) { [ctx] in
                        session.willTimer = .none
                        ctx.publishWill(of: session)
                    }
                }
            } else {
                session.will = nil
            }
        }
        if session.expiryInterval == 0 {
            // The will (if any and delayed) goes now: the session ends with the connection.
            if session.will != nil { ctx.publishWill(of: session) }
            ctx.endSession(session)
        } else if session.expiryInterval != UInt32.max {
            session.expiryTimer = loop.schedule(afterMilliseconds: UInt64(session.expiryInterval) * 1000) { [ctx] in
                session.expiryTimer = .none
                if session.will != nil { ctx.publishWill(of: session) }
                ctx.endSession(session)
            }
        }
    }

    // MARK: Refusals

    func sendConnack(_ reason: ReasonCode, _ text: String) {
        var connack = ConnackPacket(reasonCode: reason)
        if version == .v5 { connack.properties = reasonProperties(text) }
        sendPacket(.connack(connack))
    }

    /// A CONNECT that did not decode. An unsupported level gets the CONNACK its
    /// client can read; other v5 errors get a CONNACK with the reason; 3.x ones a close.
    private func refuseConnect(_ error: CodecError, level: UInt8?) {
        ctx.stats.protocolErrors += 1
        Log.info("client.bad_connect", ["peer": peer.map { "\($0)" } ?? "-", "reason": error])
        if error.reason == .unsupportedProtocolVersion {
            version = level == 5 ? .v5 : .v3_1_1
            sendConnack(.unsupportedProtocolVersion, error.message)
        } else if level == 5 {
            version = .v5
            sendConnack(error.reason, error.message)
        }
        closeNow()
    }

    /// The protocol level byte of a CONNECT body, if it has one.
    static func peekProtocolLevel(_ body: ArraySlice<UInt8>) -> UInt8? {
        guard body.count >= 2 else { return nil }
        let nameLength = Int(body[body.startIndex]) << 8 | Int(body[body.startIndex + 1])
        let at = body.startIndex + 2 + nameLength
        return at < body.endIndex ? body[at] : nil
    }

    static func randomID() -> String {
        var g = SystemRandomNumberGenerator()
        let a = g.next() as UInt64
        let b = g.next() as UInt64
        return String(a, radix: 36) + String(b, radix: 36)
    }
}
