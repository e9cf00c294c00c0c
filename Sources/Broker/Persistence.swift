import Foundation
import MQTT
import Reactor
import Store

// How the broker uses the store (SPEC section 6): a QoS 1/2 PUBLISH that must
// outlive a crash is logged, and acknowledged only after the commit that holds
// it (durability = full); every loop then records the deliveries it owes to
// stored sessions. Sessions, subscriptions, in-flight state both ways and
// retained messages are written as they change. At start the store is read
// back before any listener opens.

extension Broker {
    /// Wall-clock milliseconds (the store outlives the monotonic clock).
    static func wallMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func wall(fromMonotonic mono: UInt64, now: UInt64) -> Int64 {
        Broker.wallMillis() + Int64(mono) - Int64(now)
    }

    func monotonic(fromWall wall: Int64, now: UInt64) -> UInt64 {
        UInt64(max(0, Int64(now) + wall - Broker.wallMillis()))
    }

    /// The message's store id, given on first use.
    func storeID(of message: Message) -> (id: Int64, new: Bool) {
        let current = message.storeID.load(ordering: .acquiring)
        if current != 0 { return (current, false) }
        let fresh = nextMessageID.add(1, ordering: .relaxed).newValue
        let (exchanged, original) = message.storeID.compareExchange(expected: 0, desired: fresh, ordering: .acquiringAndReleasing)
        return exchanged ? (fresh, true) : (original, false)
    }

    func stored(_ m: Message, id: Int64, now: UInt64) -> StoredMessage {
        StoredMessage(id: id, topic: Array(m.topic.bytes), payload: Array(m.payload), qos: m.qos.rawValue, retain: m.retain,
                      properties: m.properties.encodedList(for: .publish),
                      expiresAt: m.expiresAt.map { wall(fromMonotonic: $0, now: now) }, origin: m.origin)
    }

    func message(from s: StoredMessage, now: UInt64, context: PropertyContext = .publish) -> Message {
        let properties = (try? Properties.decodeList(s.properties, for: context)) ?? Properties()
        let m = Message(topic: ByteString(s.topic), payload: s.payload, qos: QoS(rawValue: s.qos) ?? .atLeastOnce,
                        retain: s.retain, properties: properties,
                        expiresAt: s.expiresAt.map { monotonic(fromWall: $0, now: now) }, origin: s.origin, receivedAt: now)
        if s.id != 0 { m.storeID.store(s.id, ordering: .relaxed) }
        return m
    }

    /// A session record as the store keeps it.
    func storedSession(_ s: Session, connected: Bool, now: UInt64) -> StoredSession {
        var will: StoredMessage? = nil
        if let w = s.will {
            will = StoredMessage(id: 0, topic: Array(w.topic.bytes), payload: Array(w.payload), qos: w.qos.rawValue,
                                 retain: w.retain, properties: w.properties.encodedList(for: .will),
                                 expiresAt: w.expiresAt.map { wall(fromMonotonic: $0, now: now) }, origin: w.origin)
        }
        return StoredSession(clientID: s.clientID, expiryInterval: s.expiryInterval,
                             expiresAt: connected ? nil : expiryWall(s), username: s.username,
                             version: s.version.rawValue, will: will, willDelay: s.willDelay)
    }

    /// When a disconnected session expires, in wall-clock milliseconds.
    func expiryWall(_ s: Session) -> Int64 {
        s.expiryInterval == UInt32.max ? Int64.max : Broker.wallMillis() + Int64(s.expiryInterval) * 1000
    }

    // MARK: Restore

    /// Rebuilds sessions, subscriptions, queues, in-flight state and retained
    /// messages from the store. Runs before the loops start.
    func restore(from snapshot: StoreSnapshot) {
        let now = loops[0].now
        nextMessageID.store(snapshot.maxMessageID, ordering: .relaxed)
        for r in snapshot.retained {
            retained.update(message(from: r, now: now))
        }
        var sessions: [String: Session] = [:]
        for s in snapshot.sessions {
            let ctx = homeLoop(for: s.clientID)
            let session = Session(clientID: s.clientID, home: ctx)
            session.expiryInterval = s.expiryInterval
            session.username = s.username
            session.version = ProtocolVersion(rawValue: s.version) ?? .v3_1_1
            session.durable = DurableQueue(nextSeq: (snapshot.maxSeq[s.clientID] ?? 0) + 1)
            session.durable!.backlog = snapshot.backlog[s.clientID] ?? 0
            if let w = s.will { session.will = message(from: w, now: now, context: .will) }
            session.willDelay = s.willDelay
            ctx.sessions[s.clientID] = session
            sessions[s.clientID] = session
            // Connected when the broker stopped: its expiry starts now.
            let expiresAt = s.expiresAt ?? (s.expiryInterval == UInt32.max ? Int64.max
                : Broker.wallMillis() + Int64(s.expiryInterval) * 1000)
            if expiresAt != Int64.max {
                let delay = UInt64(max(0, expiresAt - Broker.wallMillis()))
                session.expiryTimer = ctx.loop.schedule(afterMilliseconds: delay) { [ctx] in
                    session.expiryTimer = .none
                    if session.will != nil { ctx.publishWill(of: session) }
                    ctx.endSession(session)
                }
            }
            if session.will != nil {
                let remaining = expiresAt == Int64.max ? UInt64.max : UInt64(max(0, expiresAt - Broker.wallMillis()))
                let delay = min(UInt64(session.willDelay) * 1000, remaining)
                session.willTimer = ctx.loop.schedule(afterMilliseconds: delay) { [ctx] in
                    session.willTimer = .none
                    ctx.publishWill(of: session)
                }
            }
        }
        for sub in snapshot.subscriptions {
            guard let session = sessions[sub.clientID] else { continue }
            let ctx = session.home
            let raw = ByteString(sub.filter)
            var options = Subscription(topicFilter: raw, qos: QoS(rawValue: sub.options & 0x03) ?? .atMostOnce)
            options.noLocal = sub.options & 0x04 != 0
            options.retainAsPublished = sub.options & 0x08 != 0
            options.retainHandling = (sub.options >> 4) & 0x03
            var entry = SubscriptionEntry(session: session, options: options, identifier: sub.identifier)
            guard let parsed = try? TopicRules.parseFilter(raw.bytes, version: .v5) else { continue }
            let info = ClientInfo(clientID: session.clientID, username: session.username, peer: nil,
                                  protocolVersion: session.version, tlsIdentity: nil, isInternal: false)
            entry.checkDeliveries = checksDeliveries(of: parsed, for: info)
            session.subscriptions[raw] = entry
            ctx.addSubscription(entry, parsed: parsed)
        }
        for d in snapshot.deliveries {
            guard let session = sessions[d.clientID], let body = snapshot.messages[d.messageID] else { continue }
            let m = message(from: body, now: now)
            let qos = QoS(rawValue: d.qos) ?? .atLeastOnce
            switch d.state {
            case .sent, .released:
                guard let id = d.packetID else { fallthrough }
                session.addInflight(id, InflightDelivery(
                    seq: d.seq, message: m, qos: qos, retain: d.retain, subscriptionIDs: d.subscriptionIDs,
                    state: d.state == .released ? .released : .sent))
            case .queued:
                session.restoreQueued(QueuedDelivery(seq: d.seq, message: m, qos: qos, retain: d.retain,
                                                     subscriptionIDs: d.subscriptionIDs))
                queuedBytes.add(m.byteCost, ordering: .relaxed)
            }
            session.durable?.lastLoadedSeq = max(session.durable?.lastLoadedSeq ?? 0, d.seq)
        }
        for (clientID, packetID) in snapshot.incoming {
            sessions[clientID]?.incomingQoS2.insert(packetID)
        }
        recovered = snapshot.unrouted.map { message(from: $0, now: now) }
        Log.info("store.restored", [
            "sessions": snapshot.sessions.count, "subscriptions": snapshot.subscriptions.count,
            "deliveries": snapshot.deliveries.count + snapshot.backlog.values.reduce(0, +),
            "retained": snapshot.retained.count, "unrouted": snapshot.unrouted.count,
        ])
    }
}

extension BrokerLoop {
    var store: Store? { broker.store }

    /// Runs completions of store work on this loop.
    var executor: (@escaping () -> Void) -> Void {
        let loop = self.loop
        return { work in loop.execute(work) }
    }

    /// True when acks must wait for the commit.
    var waitsForCommit: Bool { broker.store?.durability == .full }

    /// One loop has finished matching a logged message; the last marks it routed.
    func finishedRouting(_ message: Message) {
        guard let store else { return }
        if message.pendingRoutes.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            let id = message.storeID.load(ordering: .acquiring)
            if id != 0 { store.submit([.routed(id)]) }
        }
    }

    /// A QoS 1/2 delivery to a stored session: written to its queue on disk; kept
    /// in memory only while the session is online and its queue is short.
    func deliverDurably(_ message: Message, to session: Session, durable: DurableQueue, store: Store, qos: QoS,
                        retain: Bool, subscriptionIDs: [UInt32])
    {
        // A stored session's queue is on disk: its limit is a disk budget, not the
        // in-memory max_queued_messages.
        let limit = config.maxStoredMessages
        if limit > 0 && session.queuedCount + durable.backlog >= limit {
            stats.publishDropped += 1
            return
        }
        let seq = durable.nextSeq
        durable.nextSeq += 1
        let (id, new) = broker.storeID(of: message)
        var ops: [StoreOp] = []
        if new { ops.append(.messageBody(broker.stored(message, id: id, now: now))) }
        ops.append(.enqueue(StoredDelivery(clientID: session.clientID, seq: seq, messageID: id, qos: qos.rawValue,
                                           retain: retain, subscriptionIDs: subscriptionIDs, packetID: nil,
                                           state: .queued)))
        store.submit(ops)
        guard let conn = session.connection, conn.isReady, durable.backlog == 0,
              session.queuedCount < DurableQueue.memoryPage
        else {
            durable.backlog += 1
            if durable.loading { durable.addedWhileLoading += 1 }
            return
        }
        durable.lastLoadedSeq = seq
        if session.queuedCount == 0 && session.inflightCount < conn.sendWindow
            && conn.pendingOutput <= config.slowConsumerBytes, let packetID = session.allocatePacketID()
        {
            send(QueuedDelivery(seq: seq, message: message, qos: qos, retain: retain, subscriptionIDs: subscriptionIDs),
                 packetID: packetID, to: session, conn: conn)
        } else {
            session.enqueue(QueuedDelivery(seq: seq, message: message, qos: qos, retain: retain,
                                           subscriptionIDs: subscriptionIDs))
            broker.queuedBytes.add(message.byteCost, ordering: .relaxed)
        }
    }

    /// Sends a QoS 1/2 delivery with a fresh packet id, recording it as sent.
    func send(_ d: QueuedDelivery, packetID: UInt16, to session: Session, conn: ClientConnection) {
        if d.seq != 0, let durable = session.durable {
            if d.seq <= durable.lastSentSeq {
                Log.warning("durable.order", ["client": session.clientID, "seq": d.seq, "after": durable.lastSentSeq])
            }
            durable.lastSentSeq = d.seq
        }
        session.addInflight(packetID, InflightDelivery(seq: d.seq, message: d.message, qos: d.qos, retain: d.retain,
                                                       subscriptionIDs: d.subscriptionIDs, state: .sent))
        if d.seq != 0, let store {
            store.submit([.deliverySent(clientID: session.clientID, seq: d.seq, packetID: packetID)])
        }
        conn.sendPublish(d.message, qos: d.qos, retain: d.retain, packetID: packetID, dup: false,
                         subscriptionIDs: d.subscriptionIDs)
    }

    /// Reads the next page of a stored session's queue when memory runs dry.
    func pageIn(_ session: Session) {
        guard let durable = session.durable, durable.backlog > 0, !durable.loading, let store,
              session.queuedCount == 0, session.connection != nil
        else { return }
        durable.loading = true
        durable.addedWhileLoading = 0
        let now = self.now
        let limit = DurableQueue.memoryPage
        store.loadDeliveries(clientID: session.clientID, after: durable.lastLoadedSeq, limit: DurableQueue.memoryPage,
                             executor: executor) { [self] rows, bodies in
            durable.loading = false
            if session.ended { return }
            // The rows are a prefix (in order) of what is on disk after lastLoadedSeq.
            // A short page read everything that was written; only what was added
            // while it ran may still be waiting. The count may come out high (a
            // repeat the store ignored), never low: a low one would skip a message.
            if rows.count < limit {
                durable.backlog = durable.addedWhileLoading
            } else {
                durable.backlog = max(durable.addedWhileLoading, durable.backlog - rows.count)
            }
            for d in rows {
                durable.lastLoadedSeq = max(durable.lastLoadedSeq, d.seq)
                guard let body = bodies[d.messageID] else {
                    Log.error("store.missing_body", ["client": session.clientID, "seq": d.seq, "message": d.messageID])
                    continue
                }
                let m = broker.message(from: body, now: now)
                session.enqueue(QueuedDelivery(seq: d.seq, message: m, qos: QoS(rawValue: d.qos) ?? .atLeastOnce,
                                               retain: d.retain, subscriptionIDs: d.subscriptionIDs))
                broker.queuedBytes.add(m.byteCost, ordering: .relaxed)
            }
            pump(session)
        }
    }
}

extension DurableQueue {
    /// Deliveries of a stored session kept in memory at most; the rest wait on disk.
    static let memoryPage = 1000
}
