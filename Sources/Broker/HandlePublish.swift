import MQTT
import Reactor
import Store

/// A PUBLISH waiting for plugins before it is routed and acknowledged.
final class PendingAck {
    let packet: PublishPacket
    let message: Message
    var verdict: ReasonCode?
    init(packet: PublishPacket, message: Message) {
        self.packet = packet
        self.message = message
    }
}

extension ClientConnection {
    /// An incoming PUBLISH: resolve its topic alias, check limits and ACL, let
    /// plugins inspect it, route it, and acknowledge it by its QoS.
    func handlePublish(_ p: PublishPacket) {
        guard let session else { return }
        let config = ctx.config
        var topic = p.topic
        if version == .v5, let alias = p.properties.topicAlias {
            if alias > config.topicAliasMaximum {
                disconnect(reason: .topicAliasInvalid, "topic alias \(alias) is above the maximum \(config.topicAliasMaximum)")
                return
            }
            if topic.isEmpty {
                guard let known = extras?.inboundAliases[alias] else {
                    disconnect(reason: .protocolError, "topic alias \(alias) has no topic yet")
                    return
                }
                topic = known
            } else {
                more.inboundAliases[alias] = topic.compacted
            }
        }
        if topic.count > config.maxTopicLength || Self.levelCount(topic) > config.maxTopicLevels {
            disconnect(reason: .topicNameInvalid, "topic is longer or deeper than this server allows")
            return
        }
        if p.qos != .atMostOnce {
            if p.qos == .exactlyOnce && session.incomingQoS2.contains(p.packetID) {
                // A resend of a QoS 2 message already received: acknowledge, never route twice.
                sendPacket(.pubrec(AckPacket(packetID: p.packetID)))
                return
            }
            if session.incomingQoS2.count + (extras?.pendingAcks ?? 0) >= config.maxInflight {
                disconnect(reason: .receiveMaximumExceeded, "more unacknowledged QoS 1/2 messages than the receive maximum")
                return
            }
        }
        if p.retain && !config.retainAvailable {
            disconnect(reason: .retainNotSupported, "retained messages are not available")
            return
        }
        if topic.bytes.first == 0x24 {  // '$': reserved for the broker
            refusePublish(p, .notAuthorized, "clients may not publish to $-topics")
            return
        }
        let info = clientInfo
        for plugin in ctx.broker.plugins(providing: .authorizePublish) {
            let verdict = plugin.authorizePublish(info, topic: topic, qos: p.qos, retain: p.retain)
            if verdict.isFailure {
                refusePublish(p, verdict, "not authorized to publish to this topic")
                return
            }
        }
        var message: Message
        let inspectors = ctx.broker.plugins(providing: .inspectPublish)
        if inspectors.isEmpty {
            message = Message(publish: p, topic: topic, origin: clientID, now: ctx.now)
        } else {
            var inbound = InboundPublish(topic: topic.compacted, payload: Array(p.payload), qos: p.qos, retain: p.retain,
                                         properties: p.properties)
            for plugin in inspectors {
                let verdict = plugin.inspectPublish(&inbound, from: info)
                if verdict.isFailure {
                    refusePublish(p, verdict, "refused by \(plugin.name)")
                    return
                }
            }
            let expiry = inbound.properties.messageExpiryInterval.map { ctx.now + UInt64($0) * 1000 }
            message = Message(topic: inbound.topic, payload: inbound.payload, qos: inbound.qos, retain: inbound.retain,
                              properties: inbound.properties, expiresAt: expiry, origin: clientID, receivedAt: ctx.now)
        }
        let ackers = p.qos == .atMostOnce ? [] : ctx.broker.plugins(providing: .beforeAck)
        // A QoS 1/2 message that must outlive a crash: retained, wanted by a stored
        // session, or a QoS 2 id of a stored session (exactly once across restarts).
        let store = ctx.store
        let durable = store != nil && p.qos != .atMostOnce
            && (p.retain || ctx.broker.persistentSubscriptions.load(ordering: .relaxed) > 0
                || (p.qos == .exactlyOnce && session.durable != nil))
        if durable && store!.isFull.load(ordering: .relaxed) {
            refuseForStorage(p)
            return
        }
        if ackers.isEmpty && (!durable || !ctx.waitsForCommit) {
            if durable { log(message, p, session, completion: nil) }
            ctx.publish(message)
            acknowledge(p, .success)
            return
        }
        // A plugin acts first (e.g. stores the message); route and ack when it is
        // done, strictly in the order the PUBLISHes arrived, whatever order the
        // plugins answer in ([MQTT-4.6.0-2]: acks in the order of the PUBLISHes).
        more.pendingAcks += 1
        let entry = PendingAck(packet: PublishPacket(topic: topic, qos: p.qos, packetID: p.packetID), message: message)
        more.ackQueue.append(entry)
        runBeforeAck(message, info: info, plugins: ackers[...]) { [self] verdict in
            if verdict.isFailure || !durable {
                entry.verdict = verdict
                releaseAcks()
            } else if !ctx.waitsForCommit {
                log(message, p, session, completion: nil)
                entry.verdict = .success
                releaseAcks()
            } else {
                log(message, p, session) { [self] ok in
                    entry.verdict = ok ? .success : .quotaExceeded
                    releaseAcks()
                }
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

    /// The store cannot take more: v5 publishers hear 0x97; 3.x ones get no ack
    /// (an ack would be a promise the broker cannot keep) and will send it again.
    private func refuseForStorage(_ p: PublishPacket) {
        Log.warning("publish.storage_full", ["client": clientID, "topic": p.topic])
        ctx.stats.publishDropped += 1
        if version == .v5 {
            refusePublish(p, .quotaExceeded, "the broker's storage is full")
        }
    }

    /// Routes and acknowledges the finished PUBLISHes at the head of the queue.
    private func releaseAcks() {
        guard let extras else { return }
        while let head = extras.ackQueue.first, let verdict = head.verdict {
            extras.ackQueue.removeFirst()
            extras.pendingAcks -= 1
            if session == nil || session!.ended { continue }
            if verdict == .quotaExceeded && version != .v5 {
                // Not stored: no ack for a 3.x client, which will send it again.
                Log.warning("publish.not_stored", ["client": clientID, "topic": head.packet.topic])
            } else if verdict.isFailure {
                acknowledge(head.packet, verdict)
            } else {
                ctx.publish(head.message)
                acknowledge(head.packet, .success)
            }
        }
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

    /// A PUBLISH the broker will not route: v5 clients learn why in the ack; 3.x
    /// clients get an ordinary ack (they have no way to hear a refusal).
    func refusePublish(_ p: PublishPacket, _ reason: ReasonCode, _ text: String) {
        Log.debug("publish.refused", ["client": clientID, "topic": p.topic, "reason": reason])
        ctx.stats.publishDropped += 1
        if version == .v5 {
            switch p.qos {
            case .atMostOnce: return
            case .atLeastOnce:
                sendPacket(.puback(AckPacket(packetID: p.packetID, reasonCode: reason, properties: reasonProperties(text))))
            case .exactlyOnce:
                sendPacket(.pubrec(AckPacket(packetID: p.packetID, reasonCode: reason, properties: reasonProperties(text))))
            }
        } else {
            acknowledge(p, .success)
        }
    }

    static func levelCount(_ topic: ByteString) -> Int {
        var n = 1
        for b in topic.bytes where b == 0x2F { n += 1 }
        return n
    }
}
