import MQTT
import Reactor
import Store

/// What becomes of a PUBLISH once every step has had its say.
enum PublishOutcome {
    /// Acknowledged (v5: 0x10 when nobody subscribes), then routed.
    case route
    /// Acknowledged as a success but not routed (a repeat the broker already has).
    case acceptWithoutRouting
    /// Not routed; v5 publishers hear the reason in their ack.
    case refuse(ReasonCode, String)
    /// Not stored (full disk): v5 publishers hear 0x97; 3.x ones get no ack and send it again.
    case notStored
}

/// A PUBLISH that waits for a plugin or a commit, or for one that arrived before it.
final class PendingPublish {
    /// Topic, QoS and packet id (not the payload, which may point into the read buffer).
    let packet: PublishPacket
    let message: Message?
    var outcome: PublishOutcome?
    init(packet: PublishPacket, message: Message?, outcome: PublishOutcome?) {
        self.packet = packet
        self.message = message
        self.outcome = outcome
    }
}

// An incoming PUBLISH goes through small steps, in this order: resolve its topic
// alias, check the limits, authorize, let plugins transform it, decide (plugin
// verdicts and the commit that makes it durable, both possibly asynchronous),
// then acknowledge and route. Outcomes are applied strictly in arrival order,
// whatever order the asynchronous steps finish in: a client's acks come in the
// order of its PUBLISHes [MQTT-4.6.0-2], and its messages reach subscribers in
// that order too, across its topics [MQTT-4.6.0-6]. The ack goes before the
// routing, so a publisher that subscribes to its own topic gets its PUBACK first.
extension ClientConnection {
    func handlePublish(_ p: PublishPacket) {
        guard let session, let topic = resolveTopic(p), admit(p, topic: topic, session: session) else { return }
        if p.qos == .exactlyOnce && session.incomingQoS2.contains(p.packetID) {
            // A resend of a QoS 2 message already received: acknowledge, never route twice.
            finish(p, message: nil, .acceptWithoutRouting)
            return
        }
        if let refusal = authorize(p, topic: topic) {
            finish(p, message: nil, refusal)
            return
        }
        if p.qos == .atMostOnce && !p.retain && version != .v5 && ctx.broker.forwardsQoS0Directly
            && (extras?.waiting.isEmpty ?? true)
        {
            // Nothing to decide, acknowledge or store, and nothing waits before it.
            ctx.forwardQoS0(topic: topic, payload: p.payload, origin: clientID)
            return
        }
        switch transform(p, topic: topic) {
        case .failure(let refusal): finish(p, message: nil, refusal.outcome)
        case .success(let message): decide(p, message, session)
        }
    }

    // MARK: Steps

    /// The topic, with a v5 topic alias resolved (or recorded); nil when the alias
    /// broke a rule (the client is disconnected).
    private func resolveTopic(_ p: PublishPacket) -> ByteString? {
        guard version == .v5, let alias = p.properties.topicAlias else { return p.topic }
        if alias > ctx.config.topicAliasMaximum {
            disconnect(reason: .topicAliasInvalid, "topic alias \(alias) is above the maximum \(ctx.config.topicAliasMaximum)")
            return nil
        }
        if !p.topic.isEmpty {
            more.inboundAliases[alias] = p.topic.compacted
            return p.topic
        }
        guard let known = extras?.inboundAliases[alias] else {
            disconnect(reason: .protocolError, "topic alias \(alias) has no topic yet")
            return nil
        }
        return known
    }

    /// The limits a PUBLISH must keep; false when it broke one (the client is disconnected).
    private func admit(_ p: PublishPacket, topic: ByteString, session: Session) -> Bool {
        let config = ctx.config
        if topic.count > config.maxTopicLength || Self.levelCount(topic) > config.maxTopicLevels {
            disconnect(reason: .topicNameInvalid, "topic is longer or deeper than this server allows")
            return false
        }
        // Receive Maximum is a 5.0 promise; a 3.x client is slowed down instead (see `wait`).
        if version == .v5 && p.qos != .atMostOnce && !session.incomingQoS2.contains(p.packetID)
            && session.incomingQoS2.count + (extras?.pendingAcks ?? 0) >= config.maxInflight
        {
            disconnect(reason: .receiveMaximumExceeded, "more unacknowledged QoS 1/2 messages than the receive maximum")
            return false
        }
        if p.retain && !config.retainAvailable {
            disconnect(reason: .retainNotSupported, "retained messages are not available")
            return false
        }
        return true
    }

    /// The `$`-topic rule and the plugins' publish checks; nil when allowed.
    private func authorize(_ p: PublishPacket, topic: ByteString) -> PublishOutcome? {
        if topic.bytes.first == 0x24 {  // '$': reserved for the broker
            return .refuse(.notAuthorized, "clients may not publish to $-topics")
        }
        let plugins = ctx.broker.plugins(providing: .authorizePublish)
        if !plugins.contains(where: { !$0.allowsEveryPublish }) { return nil }
        let info = clientInfo
        for plugin in plugins where !plugin.allowsEveryPublish {
            let verdict = plugin.authorizePublish(info, topic: topic, qos: p.qos, retain: p.retain)
            if verdict.isFailure { return .refuse(verdict, "not authorized to publish to this topic") }
        }
        return nil
    }

    struct Refusal: Error { let outcome: PublishOutcome }

    /// The message to route, as the inspecting plugins rewrote it.
    private func transform(_ p: PublishPacket, topic: ByteString) -> Result<Message, Refusal> {
        let inspectors = ctx.broker.plugins(providing: .inspectPublish)
        if inspectors.isEmpty { return .success(Message(publish: p, topic: topic, origin: clientID, now: ctx.now)) }
        var inbound = InboundPublish(topic: topic.compacted, payload: Array(p.payload), qos: p.qos, retain: p.retain,
                                     properties: p.properties)
        let info = clientInfo
        for plugin in inspectors {
            let verdict = plugin.inspectPublish(&inbound, from: info)
            if verdict.isFailure { return .failure(Refusal(outcome: .refuse(verdict, "refused by \(plugin.name)"))) }
        }
        let expiry = inbound.properties.messageExpiryInterval.map { ctx.now + UInt64($0) * 1000 }
        return .success(Message(topic: inbound.topic, payload: inbound.payload, qos: inbound.qos, retain: inbound.retain,
                                properties: inbound.properties, expiresAt: expiry, origin: clientID, receivedAt: ctx.now))
    }

    /// The plugins' verdicts (`decidePublish`), possibly asynchronous.
    private func decide(_ p: PublishPacket, _ message: Message, _ session: Session) {
        let deciders = ctx.broker.plugins(providing: .decidePublish)
        if deciders.isEmpty {
            commitOrRoute(p, message, session, nil)
            return
        }
        var entry: PendingPublish? = nil
        let apply = { [self] (verdict: PublishVerdict) in
            switch verdict {
            case .accept: commitOrRoute(p, message, session, entry)
            case .acceptWithoutRouting: settle(entry, p, nil, .acceptWithoutRouting)
            case .refuse(let code): settle(entry, p, nil, .refuse(code, "refused by a plugin"))
            }
        }
        if let verdict = ctx.decide(message, from: clientInfo, plugins: deciders[...], later: { apply($0) }) {
            apply(verdict)
        } else {
            // Decided later (on this loop, so after this assignment): hold its place.
            entry = wait(p, message: message, outcome: nil)
        }
    }

    /// Plugin acts (beforeAck) and the commit of a message that must outlive a
    /// crash: retained, wanted by a stored session, or a QoS 2 id of a stored session.
    private func commitOrRoute(_ p: PublishPacket, _ message: Message, _ session: Session, _ waiting: PendingPublish?) {
        let ackers = p.qos == .atMostOnce ? [] : ctx.broker.plugins(providing: .beforeAck)
        let durable = ctx.store != nil && p.qos != .atMostOnce
            && (p.retain || ctx.broker.persistentSubscriptions.load(ordering: .relaxed) > 0
                || (p.qos == .exactlyOnce && session.durable != nil))
        if durable && ctx.store!.isFull.load(ordering: .relaxed) {
            Log.warning("publish.storage_full", ["client": clientID, "topic": p.topic])
            settle(waiting, p, nil, .notStored)
            return
        }
        if ackers.isEmpty && (!durable || !ctx.waitsForCommit) {
            if durable { log(message, p, session, completion: nil) }
            settle(waiting, p, message, .route)
            return
        }
        let entry = waiting ?? wait(p, message: message, outcome: nil)
        runBeforeAck(message, info: clientInfo, plugins: ackers[...]) { [self] verdict in
            if verdict.isFailure {
                settle(entry, p, nil, .refuse(verdict, "refused by a plugin"))
            } else if !durable || !ctx.waitsForCommit {
                if durable { log(message, p, session, completion: nil) }
                settle(entry, p, message, .route)
            } else {
                log(message, p, session) { [self] ok in
                    settle(entry, p, message, ok ? .route : .notStored)
                }
            }
        }
    }

    /// The outcome of a PUBLISH that waits in the queue (`entry`), or of one that
    /// did not have to wait.
    private func settle(_ entry: PendingPublish?, _ p: PublishPacket, _ message: Message?, _ outcome: PublishOutcome) {
        guard let entry else {
            finish(p, message: message, outcome)
            return
        }
        entry.outcome = outcome
        releaseFinished()
    }

    private func runBeforeAck(_ message: Message, info: ClientInfo, plugins: ArraySlice<BrokerPlugin>,
                              _ done: @escaping (ReasonCode) -> Void)
    {
        guard let plugin = plugins.first else {
            done(.success)
            return
        }
        let loop = self.loop
        plugin.beforeAck(message, from: info) { [self] verdict in
            loop.execute { [self] in
                if verdict.isFailure { done(verdict) } else { runBeforeAck(message, info: info, plugins: plugins.dropFirst(), done) }
            }
        }
    }

    /// Writes the message (and its retained entry, and a QoS 2 id of a stored
    /// session) to the store; `completion` runs on this loop after the commit.
    private func log(_ message: Message, _ p: PublishPacket, _ session: Session, completion: ((Bool) -> Void)?) {
        guard let store = ctx.store else { return }
        let (id, _) = ctx.broker.storeID(of: message)
        var ops: [StoreOp] = [.message(ctx.broker.stored(message, id: id, now: ctx.now))]
        if message.retain {
            ops.append(.retain(topic: Array(message.topic.bytes), messageID: message.payload.isEmpty ? nil : id))
        }
        if p.qos == .exactlyOnce && session.durable != nil {
            ops.append(.incoming(clientID: session.clientID, packetID: p.packetID))
        }
        // Not yet acknowledged: refused (0x97) rather than kept waiting when the disk is full.
        store.submit(ops, executor: completion == nil ? nil : ctx.executor, failable: completion != nil,
                     completion: completion)
    }

    // MARK: Outcomes, in arrival order

    /// Applies an outcome now, or after the PUBLISHes still waiting before it.
    private func finish(_ p: PublishPacket, message: Message?, _ outcome: PublishOutcome) {
        if let extras, !extras.waiting.isEmpty {
            _ = wait(p, message: message, outcome: outcome)
            return
        }
        apply(outcome, p, message)
    }

    /// Queues a PUBLISH behind those still waiting (its outcome may already be known).
    private func wait(_ p: PublishPacket, message: Message?, outcome: PublishOutcome?) -> PendingPublish {
        let entry = PendingPublish(packet: PublishPacket(topic: p.topic.compacted, qos: p.qos, packetID: p.packetID),
                                   message: message, outcome: outcome)
        let extras = more
        if p.qos != .atMostOnce { extras.pendingAcks += 1 }
        extras.waiting.append(entry)
        // A client whose PUBLISHes pile up behind a slow commit or plugin is read no
        // further until they drain (3.x has no Receive Maximum to hold it back).
        if extras.waiting.count >= ctx.config.maxInflight && !paused {
            paused = true
            extras.pausedForOrder = true
        }
        return entry
    }

    /// Applies the outcomes at the head of the queue that are known.
    private func releaseFinished() {
        guard let extras else { return }
        while let head = extras.waiting.first, let outcome = head.outcome {
            extras.waiting.removeFirst()
            if head.packet.qos != .atMostOnce { extras.pendingAcks -= 1 }
            if session == nil || session!.ended { continue }
            apply(outcome, head.packet, head.message)
        }
        if extras.pausedForOrder && extras.waiting.count < ctx.config.maxInflight / 2 + 1 {
            extras.pausedForOrder = false
            paused = false
            processFrames()
        }
    }

    private func apply(_ outcome: PublishOutcome, _ p: PublishPacket, _ message: Message?) {
        switch outcome {
        case .route:
            guard let message else { return }
            if version == .v5 && p.qos != .atMostOnce && !ctx.hasSubscribers(message.topic) {
                acknowledge(p, .noMatchingSubscribers)
            } else {
                acknowledge(p, .success)
            }
            ctx.publish(message)
        case .acceptWithoutRouting:
            acknowledge(p, .success)
        case .refuse(let reason, let text):
            refusePublish(p, reason, text)
        case .notStored:
            if version == .v5 {
                refusePublish(p, .quotaExceeded, "the broker's storage is full")
            } else {
                // An ack would be a promise the broker cannot keep: the client sends it again.
                ctx.stats.publishDropped += 1
                Log.warning("publish.not_stored", ["client": clientID, "topic": p.topic])
            }
        }
    }

    /// PUBACK / PUBREC for a PUBLISH with this outcome.
    private func acknowledge(_ p: PublishPacket, _ reason: ReasonCode) {
        switch p.qos {
        case .atMostOnce:
            return
        case .atLeastOnce:
            sendPacket(.puback(AckPacket(packetID: p.packetID, reasonCode: reason)))
        case .exactlyOnce:
            if !reason.isFailure { session?.incomingQoS2.insert(p.packetID) }
            sendPacket(.pubrec(AckPacket(packetID: p.packetID, reasonCode: reason)))
        }
    }

    /// A PUBLISH the broker will not route: v5 clients learn why in the ack. A 3.x
    /// client has no way to hear a refusal, and a success ack would be a lie: its
    /// QoS 0 message is dropped (logged), and for QoS 1/2 the connection is closed
    /// instead, which MQTT-3.3.5-2 allows.
    private func refusePublish(_ p: PublishPacket, _ reason: ReasonCode, _ text: String) {
        ctx.stats.publishDropped += 1
        if version != .v5 {
            Log.info("publish.refused", ["client": clientID, "topic": p.topic, "reason": reason,
                                         "action": p.qos == .atMostOnce ? "dropped" : "closed"])
            if p.qos != .atMostOnce { closeNow() }
            return
        }
        Log.debug("publish.refused", ["client": clientID, "topic": p.topic, "reason": reason])
        // A plugin's code that a PUBACK cannot carry would make an ack that cannot be sent.
        let reason = reason.isValidForPuback ? reason : .unspecifiedError
        if version == .v5 {
            switch p.qos {
            case .atMostOnce: return
            case .atLeastOnce:
                sendPacket(.puback(AckPacket(packetID: p.packetID, reasonCode: reason, properties: reasonProperties(text))))
            case .exactlyOnce:
                sendPacket(.pubrec(AckPacket(packetID: p.packetID, reasonCode: reason, properties: reasonProperties(text))))
            }
        }
    }

    static func levelCount(_ topic: ByteString) -> Int {
        var n = 1
        for b in topic.bytes where b == 0x2F { n += 1 }
        return n
    }
}
