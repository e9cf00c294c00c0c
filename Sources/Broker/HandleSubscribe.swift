import MQTT
import Reactor
import Store

extension ClientConnection {
    /// SUBSCRIBE: authorise each filter, store it, answer SUBACK, then send the
    /// retained messages its retain handling asks for.
    func handleSubscribe(_ packet: SubscribePacket) {
        guard let session else { return }
        let config = ctx.config
        let info = clientInfo
        let identifier = packet.properties.subscriptionIdentifiers.first
        var codes: [ReasonCode] = []
        var retainedToSend: [(Message, QoS, [UInt32])] = []
        var ops: [StoreOp] = []
        for sub in packet.subscriptions {
            // Shared subscriptions are a 5.0 feature, offered to 3.x clients too (as
            // most brokers do): `$share/<group>/<filter>` is parsed the 5.0 way for all.
            guard let parsed = try? TopicRules.parseFilter(sub.topicFilter.bytes, version: .v5) else {
                codes.append(.topicFilterInvalid)
                continue
            }
            if sub.topicFilter.count > config.maxTopicLength || Self.levelCount(parsed.filter) > config.maxTopicLevels {
                codes.append(.topicFilterInvalid)
                continue
            }
            var granted = sub.qos
            var refused: ReasonCode? = nil
            for plugin in ctx.broker.plugins(providing: .authorizeSubscribe) {
                let verdict = plugin.authorizeSubscribe(info, filter: parsed, requested: sub.qos)
                if verdict.isFailure {
                    refused = verdict
                    break
                }
                granted = min(granted, QoS(rawValue: verdict.rawValue) ?? granted)
            }
            if let refused {
                codes.append(refused)
                continue
            }
            var options = sub
            options.qos = granted
            options.topicFilter = sub.topicFilter.compacted
            var entry = SubscriptionEntry(session: session, options: options, identifier: identifier)
            entry.checkDeliveries = ctx.broker.checksDeliveries(of: parsed, for: info)
            let existed = session.subscriptions[options.topicFilter] != nil
            if session.durable != nil && ctx.store != nil {
                var packed = options.qos.rawValue | (options.noLocal ? 0x04 : 0) | (options.retainAsPublished ? 0x08 : 0)
                packed |= (options.retainHandling & 0x03) << 4
                ops.append(.subscribe(StoredSubscription(clientID: clientID, filter: Array(options.topicFilter.bytes),
                                                         options: packed, identifier: identifier)))
            }
            session.subscriptions[options.topicFilter] = entry
            ctx.addSubscription(entry, parsed: parsed)
            if parsed.shareGroup == nil {
                // Retain handling: 0 always, 1 only for a new subscription, 2 never.
                if sub.retainHandling == 0 || (sub.retainHandling == 1 && !existed) {
                    for m in ctx.broker.retained.matching(parsed, now: ctx.now) {
                        if sub.noLocal && m.origin == clientID { continue }
                        if entry.checkDeliveries && !ctx.broker.mayDeliver(m.topic, to: session) { continue }
                        retainedToSend.append((m, min(m.qos, granted), identifier.map { [$0] } ?? []))
                    }
                }
            }
            codes.append(ReasonCode(granted.rawValue))
        }
        let finish = { [self] in
            sendPacket(.suback(SubackPacket(packetID: packet.packetID, reasonCodes: codes)))
            for (m, qos, ids) in retainedToSend {
                // Retained messages always carry RETAIN when sent because of a subscription.
                ctx.deliver(m, to: session, qos: qos, retain: true, subscriptionIDs: ids)
            }
        }
        // A stored session's subscriptions are on disk before SUBACK confirms them.
        if let store = ctx.store, !ops.isEmpty {
            if ctx.waitsForCommit {
                paused = true
                store.submit(ops, executor: ctx.executor) { [self] _ in
                    if isClosed { return }
                    finish()
                    paused = false
                    processFrames()
                }
                return
            }
            store.submit(ops)
        }
        finish()
    }

    func handleUnsubscribe(_ packet: UnsubscribePacket) {
        guard let session else { return }
        var codes: [ReasonCode] = []
        var ops: [StoreOp] = []
        for filter in packet.topicFilters {
            if let entry = session.subscriptions.removeValue(forKey: filter) {
                ctx.removeSubscription(raw: filter, entry: entry, session: session)
                if session.durable != nil && ctx.store != nil {
                    ops.append(.unsubscribe(clientID: clientID, filter: Array(filter.bytes)))
                }
                codes.append(.success)
            } else {
                codes.append(.noSubscriptionExisted)
            }
        }
        let unsuback = Packet.unsuback(UnsubackPacket(packetID: packet.packetID, reasonCodes: codes))
        // A stored session's subscriptions are gone from disk before UNSUBACK says so.
        if let store = ctx.store, !ops.isEmpty {
            if ctx.waitsForCommit {
                paused = true
                store.submit(ops, executor: ctx.executor) { [self] _ in
                    if isClosed { return }
                    sendPacket(unsuback)
                    paused = false
                    processFrames()
                }
                return
            }
            store.submit(ops)
        }
        sendPacket(unsuback)
    }

    /// A client's DISCONNECT: v5 may ask for its will (0x04) and change the session expiry.
    func handleDisconnect(_ d: DisconnectPacket) {
        if let session, version == .v5 {
            if let expiry = d.properties.sessionExpiryInterval {
                if session.expiryInterval == 0 && expiry != 0 {
                    violation(CodecError(.protocolError, "session expiry set at DISCONNECT after 0 in CONNECT",
                                         rule: "MQTT-3.14.2-2"))
                    return
                }
                session.expiryInterval = min(expiry, ctx.config.maxSessionExpiry)
            }
        }
        publishWillOnClose = version == .v5 && d.reasonCode == .disconnectWithWillMessage
        closeNow()
    }
}
