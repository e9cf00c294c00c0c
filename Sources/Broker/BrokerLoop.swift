import MQTT
import Reactor
import Synchronization

/// Work one loop hands to another.
enum RemoteWork {
    /// Match this message against the receiving loop's own subscriptions.
    case route(Message)
    /// Deliver to one session there (a shared-subscription pick, a retained copy).
    case deliver(Message, clientID: String, qos: QoS, retain: Bool, subscriptionIDs: [UInt32])
    /// A user lost access below a topic prefix (after what was routed before it).
    case revoke(username: String, prefix: ByteString)
}

/// The broker's state on one event loop: the sessions whose client ids hash here,
/// their subscriptions, their connections. Only this loop's thread touches it.
final class BrokerLoop {
    let loop: EventLoop
    /// The broker outlives its loops.
    unowned(unsafe) let broker: Broker
    var index: Int { loop.index }
    var sessions: [String: Session] = [:]
    let topics = TopicIndex()
    /// How many subscriptions this loop holds, read by other loops to skip forwarding.
    let subscriptionCount = Atomic<Int>(0)
    /// Connections without a session yet (before and during CONNECT). Connected
    /// clients are reached through their sessions, so they need no entry here.
    var clients: [ObjectIdentifier: ClientConnection] = [:]

    /// Every connection of this loop.
    var allConnections: [ClientConnection] {
        var out = Array(clients.values)
        for (_, s) in sessions { if let c = s.connection { out.append(c) } }
        return out
    }
    @exclusivity(unchecked) var stats = LoopStats()
    let encodings = PublishEncodings()
    /// False while a message goes to a single session: `encodings` would only add a copy.
    @exclusivity(unchecked) var shareEncodings = true
    /// Plugin publishes from this loop, in order per key (`LoopContext.publish`):
    /// a room's posts wait for each other, not for another room's commits.
    var orderedPublishes: [String: [OrderedPublish]] = [:]

    private var outbox: [[RemoteWork]]
    private var outboxScheduled = false
    @exclusivity(unchecked) private var routeStamp: UInt64 = 0
    @exclusivity(unchecked) private var scratch: [PendingDelivery] = []
    /// The broker runs this loop only: nothing is ever routed to another.
    private let alone: Bool
    @exclusivity(unchecked) private var routeTargets: [Int] = []
    /// A QoS 0 PUBLISH encoded once for the several recipients of `forwardQoS0`.
    @exclusivity(unchecked) private var qos0Bytes: [UInt8] = []

    struct PendingDelivery {
        let session: Session
        var qos: QoS
        var retainAsPublished: Bool
        var subscriptionIDs: [UInt32]
    }

    init(loop: EventLoop, broker: Broker, loopCount: Int) {
        self.loop = loop
        self.broker = broker
        self.outbox = Array(repeating: [], count: loopCount)
        self.alone = loopCount == 1
    }

    var config: BrokerConfig { broker.config }
    var now: UInt64 { loop.now }

    // MARK: Routing

    /// Routes a message published on this loop: here, on every other loop that has
    /// subscriptions, and to one member of each matching shared subscription.
    func publish(_ message: Message) {
        stats.publishReceived += 1
        if message.retain {
            broker.retained.update(message)
            // A retained message the ack path did not log (QoS 0) is stored now.
            // ($SYS messages are made anew at every start: they are not stored.)
            if let store, message.storeID.load(ordering: .acquiring) == 0, message.topic.bytes.first != 0x24 {
                let (id, _) = broker.storeID(of: message)
                store.submit([.messageBody(broker.stored(message, id: id, now: now)),
                              .retain(topic: Array(message.topic.bytes), messageID: message.payload.isEmpty ? nil : id)])
            }
        }
        route(message, everywhere: true)
    }

    /// Routes a message here, on every other loop that has subscriptions, and to
    /// one member of each matching shared subscription. A logged message is
    /// marked routed in the store once every loop involved has matched it.
    func route(_ message: Message, everywhere: Bool) {
        // The other loops with subscriptions (none with one loop), in a reused array.
        let loops = broker.loops
        routeTargets.removeAll(keepingCapacity: true)
        if loops.count > 1 {
            for other in loops where other !== self && other.subscriptionCount.load(ordering: .relaxed) > 0 {
                routeTargets.append(other.index)
            }
        }
        let picks = broker.shared.isEmpty ? [] : broker.shared.pick(topic: message.topic, origin: message.origin)
        let logged = store != nil && message.storeID.load(ordering: .acquiring) != 0
        if logged { message.pendingRoutes.store(1 + routeTargets.count + picks.count, ordering: .releasing) }
        // Queued before the local match, which may route again (an internal client
        // publishing) and reuse `routeTargets`; the other loops see it after this turn.
        for i in routeTargets { send(.route(message), to: i) }
        matchLocally(message)
        if logged { finishedRouting(message) }
        for member in picks {
            let work = RemoteWork.deliver(
                message, clientID: member.clientID, qos: min(member.options.qos, message.qos),
                retain: member.options.retainAsPublished ? message.retain : false,
                subscriptionIDs: member.identifier.map { [$0] } ?? [])
            if member.loop == index { perform(work) } else { send(work, to: member.loop) }
        }
    }

    /// Matches `message` against this loop's subscriptions and delivers it once to
    /// each session, at the highest QoS of its matching subscriptions.
    func matchLocally(_ message: Message) {
        collectRecipients(message.topic, origin: message.origin)
        deliverToRecipients(message)
    }

    /// Fills `scratch` with the sessions of this loop that `topic` reaches, once
    /// each, with the highest QoS and every identifier of their matching subscriptions.
    private func collectRecipients(_ topic: ByteString, origin: String?) {
        routeStamp &+= 1
        let stamp = routeStamp
        // Not removeAll(keepingCapacity:), which goes through a generic replaceSubrange.
        while !scratch.isEmpty { scratch.removeLast() }
        topics.match(topic) { entry in
            let s = entry.session
            if entry.options.noLocal, let origin, origin == s.clientID { return }
            if entry.checkDeliveries && !broker.mayDeliver(topic, to: s) { return }
            if s.routeStamp == stamp {
                scratch[Int(s.routeSlot)].qos = max(scratch[Int(s.routeSlot)].qos, entry.options.qos)
                if entry.options.retainAsPublished { scratch[Int(s.routeSlot)].retainAsPublished = true }
                if let id = entry.identifier { scratch[Int(s.routeSlot)].subscriptionIDs.append(id) }
            } else {
                s.routeStamp = stamp
                s.routeSlot = Int32(scratch.count)
                scratch.append(PendingDelivery(
                    session: s, qos: entry.options.qos, retainAsPublished: entry.options.retainAsPublished,
                    subscriptionIDs: entry.identifier.map { [$0] } ?? []))
            }
        }
    }

    /// Delivers `message` to the sessions `collectRecipients` found.
    private func deliverToRecipients(_ message: Message) {
        if scratch.isEmpty { return }
        // One recipient: its bytes are encoded straight into its output, not shared.
        if scratch.count == 1 { shareEncodings = false }
        for d in scratch {
            deliver(message, to: d.session, qos: min(message.qos, d.qos),
                    retain: d.retainAsPublished ? message.retain : false, subscriptionIDs: d.subscriptionIDs)
        }
        shareEncodings = true
    }

    // MARK: QoS 0 without a message

    /// Routes a QoS 0, non-retained PUBLISH of a 3.x client (`Broker.forwardsQoS0Directly`
    /// said no plugin inspects or decides publishes) without building a `Message` when
    /// nothing has to keep one: no other loop or shared subscription to hand it to,
    /// and every recipient a connected 3.x client, whose PUBLISH is the same bytes
    /// whatever its subscription (QoS 0, no retain flag, no properties). Otherwise
    /// the message is built and delivered as `publish` would.
    func forwardQoS0(topic: ByteString, payload: ArraySlice<UInt8>, origin: String) {
        if !broker.shared.isEmpty || othersHaveSubscriptions {
            publish(Message(qos0Topic: topic, payload: payload, origin: origin, now: now))
            return
        }
        stats.publishReceived += 1
        collectRecipients(topic, origin: origin)
        for d in scratch where !takesBytesAsTheyAre(d.session) {
            deliverToRecipients(Message(qos0Topic: topic, payload: payload, origin: origin, now: now))
            return
        }
        // One recipient: encoded straight into its output. More: encoded once, copied to each.
        let many = scratch.count > 1
        if many {
            while !qos0Bytes.isEmpty { qos0Bytes.removeLast() }
            if PublishPacket.encodeQoS0(topic: topic, payload: payload, into: &qos0Bytes) == 0 { return }
        }
        for d in scratch {
            guard !d.session.ended, let conn = d.session.connection, conn.isReady else { continue }  // as `deliver`
            if conn.pendingOutput > config.slowConsumerBytes {
                stats.publishDropped += 1
                continue
            }
            if many { conn.sendEncodedQoS0Publish(qos0Bytes) } else { conn.sendQoS0Publish(topic: topic, payload: payload) }
        }
    }

    /// Whether any other loop holds subscriptions (a message would have to go there).
    private var othersHaveSubscriptions: Bool {
        if alone { return false }
        let loops = broker.loops
        for other in loops where other !== self && other.subscriptionCount.load(ordering: .relaxed) > 0 { return true }
        return false
    }

    /// A session that `deliver` would hand a QoS 0 message to without keeping it:
    /// a connected 3.x client, or one whose QoS 0 messages are dropped while it is away.
    private func takesBytesAsTheyAre(_ s: Session) -> Bool {
        if s.ended { return true }
        if s.internalClient != nil { return false }
        guard let conn = s.connection, conn.isReady else { return !config.queueQoS0Messages }
        return conn.version != .v5
    }

    func perform(_ work: RemoteWork) {
        switch work {
        case .route(let message):
            matchLocally(message)
            finishedRouting(message)
        case .deliver(let message, let clientID, let qos, let retain, let ids):
            if let session = sessions[clientID] {
                deliver(message, to: session, qos: qos, retain: retain, subscriptionIDs: ids)
            }
            finishedRouting(message)
        case .revoke(let username, let prefix):
            for (_, s) in sessions where s.username == username {
                revoke(s, below: prefix)
                s.recheckDeliveries = true
            }
        }
    }

    /// Revokes a user's access below `prefix` on every loop, in order with what this
    /// loop routed before: a message routed here first still reaches them.
    func revokeEverywhere(username: String, prefix: ByteString) {
        for other in broker.loops {
            let work = RemoteWork.revoke(username: username, prefix: prefix)
            if other === self { perform(work) } else { send(work, to: other.index) }
        }
    }

    /// Queues work for another loop; everything queued in one turn goes in one hand-off.
    func send(_ work: RemoteWork, to loopIndex: Int) {
        outbox[loopIndex].append(work)
        if !outboxScheduled {
            outboxScheduled = true
            loop.atEndOfTurn { [unowned self] in self.flushOutbox() }
        }
    }

    /// A hand-off this small is done here when its loop is parked: at moderate rates
    /// a turn carries a message or two, and waking another thread for them costs
    /// more than the work. Larger ones (a loaded loop's turn) go to the other loop's
    /// thread, which works them in parallel.
    static let workDoneInPlace = 32

    private func flushOutbox() {
        outboxScheduled = false
        for i in outbox.indices where !outbox[i].isEmpty {
            let target = broker.loops[i]
            if outbox[i].count <= Self.workDoneInPlace, target.loop.runIfParked({
                for work in outbox[i] { target.perform(work) }
            }) {
                outbox[i].removeAll(keepingCapacity: true)
                continue
            }
            let batch = outbox[i]
            outbox[i].removeAll(keepingCapacity: true)
            target.loop.execute {
                for work in batch { target.perform(work) }
            }
        }
    }

    // MARK: Delivery

    /// Sends a message to a session now, or queues it (window full, slow reader,
    /// client offline), within the session's and the broker's limits.
    func deliver(_ message: Message, to session: Session, qos: QoS, retain: Bool, subscriptionIDs: [UInt32],
                 )
    {
        if session.ended { return }
        if message.isExpired(now: now) {
            stats.publishExpired += 1
            return
        }
        if let client = session.internalClient {
            client.handler(message)
            return
        }
        if qos != .atMostOnce, let durable = session.durable, let store {
            deliverDurably(message, to: session, durable: durable, store: store, qos: qos, retain: retain,
                           subscriptionIDs: subscriptionIDs)
            return
        }
        if let conn = session.connection, conn.isReady {
            if qos == .atMostOnce {
                if conn.pendingOutput > config.slowConsumerBytes {
                    stats.publishDropped += 1
                    return
                }
                conn.sendPublish(message, qos: .atMostOnce, retain: retain, packetID: 0, dup: false,
                                 subscriptionIDs: subscriptionIDs)
                return
            }
            if session.queuedCount == 0 && session.inflightCount < conn.sendWindow
                && conn.pendingOutput <= config.slowConsumerBytes, let id = session.allocatePacketID()
            {
                session.addInflight(
                    id, InflightDelivery(message: message, qos: qos, retain: retain, subscriptionIDs: subscriptionIDs,
                                         state: .sent))
                conn.sendPublish(message, qos: qos, retain: retain, packetID: id, dup: false,
                                 subscriptionIDs: subscriptionIDs)
                return
            }
        } else if qos == .atMostOnce && !config.queueQoS0Messages {
            return
        }
        enqueue(QueuedDelivery(message: message, qos: qos, retain: retain, subscriptionIDs: subscriptionIDs),
                for: session)
    }

    private func enqueue(_ delivery: QueuedDelivery, for session: Session) {
        let cost = delivery.message.byteCost
        func full() -> Bool {
            (config.maxQueuedMessages > 0 && session.queuedCount >= config.maxQueuedMessages)
                || session.queuedBytes + cost > config.maxQueuedBytes
                || broker.queuedBytes.load(ordering: .relaxed) + cost > config.queueMemoryBudget
        }
        if full() {
            // Policy: queued QoS 0 messages give way to a QoS 1/2 one, oldest first;
            // the new message is dropped when nothing (more) can give way.
            if delivery.qos == .atMostOnce {
                stats.publishDropped += 1
                return
            }
            while full() && session.dropOldestQoS0(counting: broker) { stats.publishDropped += 1 }
            if full() {
                stats.publishDropped += 1
                return
            }
        }
        session.enqueue(delivery)
        broker.queuedBytes.add(cost, ordering: .relaxed)
    }

    /// Sends queued messages while the window and the socket allow.
    func pump(_ session: Session) {
        guard let conn = session.connection, conn.isReady else { return }
        while session.queuedCount > 0 && conn.pendingOutput <= config.slowConsumerBytes {
            if session.queue[session.queueHeadIndex].qos != .atMostOnce && session.inflightCount >= conn.sendWindow {
                return
            }
            guard let d = session.dequeue() else { return }
            broker.queuedBytes.subtract(d.message.byteCost, ordering: .relaxed)
            if session.recheckDeliveries && !broker.mayDeliver(d.message.topic, to: session) {
                stats.publishDropped += 1
                if d.seq != 0 { store?.submit([.deliveryDone(clientID: session.clientID, seq: d.seq)]) }
                continue
            }
            if d.message.isExpired(now: now) {
                stats.publishExpired += 1
                if d.seq != 0 { store?.submit([.deliveryDone(clientID: session.clientID, seq: d.seq)]) }
                continue
            }
            if d.qos == .atMostOnce {
                conn.sendPublish(d.message, qos: .atMostOnce, retain: d.retain, packetID: 0, dup: false,
                                 subscriptionIDs: d.subscriptionIDs)
            } else if let id = session.allocatePacketID() {
                send(d, packetID: id, to: session, conn: conn)
            }
        }
        if session.queuedCount == 0 { pageIn(session) }
    }

    // MARK: Sessions

    /// Ends a session: its subscriptions go, its queues are freed.
    func endSession(_ session: Session) {
        guard !session.ended else { return }
        session.ended = true
        if session.durable != nil {
            store?.submit([.deleteSession(clientID: session.clientID)])
        }
        loop.cancel(session.expiryTimer)
        loop.cancel(session.willTimer)
        for (raw, entry) in session.subscriptions {
            removeSubscription(raw: raw, entry: entry, session: session)
        }
        session.subscriptions.removeAll()
        broker.queuedBytes.subtract(session.queuedBytes, ordering: .relaxed)
        session.clearQueues()
        if sessions[session.clientID] === session { sessions[session.clientID] = nil }
    }

    /// Adds or replaces a session's subscription: in this loop's index (and the
    /// broker's census and counters), or in its shared group. Returns true when it
    /// replaced one.
    @discardableResult
    func addSubscription(_ entry: SubscriptionEntry, parsed: TopicFilter) -> Bool {
        let session = entry.session
        if let group = parsed.shareGroup {
            return broker.shared.add(
                group: group, filter: parsed.filter,
                member: SharedSubscriptions.Member(clientID: session.clientID, loop: index, options: entry.options,
                                                   identifier: entry.identifier,
                                                   online: session.isConnected || session.internalClient != nil))
        }
        if topics.insert(filter: entry.options.topicFilter, entry: entry) { return true }
        subscriptionCount.add(1, ordering: .relaxed)
        if session.durable != nil { broker.persistentSubscriptions.add(1, ordering: .relaxed) }
        broker.census.add(entry.options.topicFilter)
        return false
    }

    func removeSubscription(raw: ByteString, entry: SubscriptionEntry, session: Session) {
        if let parsed = try? TopicRules.parseFilter(raw.bytes, version: .v5), let group = parsed.shareGroup {
            broker.shared.remove(group: group, filter: parsed.filter, clientID: session.clientID)
        } else if topics.remove(filter: raw, session: session) {
            subscriptionCount.subtract(1, ordering: .relaxed)
            if session.durable != nil { broker.persistentSubscriptions.subtract(1, ordering: .relaxed) }
            broker.census.remove(raw)
        }
    }

    /// Whether anybody (any loop's sessions, a shared group, an internal client)
    /// subscribes to `topic`: a v5 publisher hears 0x10 when nobody does.
    func hasSubscribers(_ topic: ByteString) -> Bool {
        broker.census.matches(topic) || (!broker.shared.isEmpty && broker.shared.matchesAny(topic: topic))
    }

    /// Publishes a session's will, through the same checks as any PUBLISH.
    func publishWill(of session: Session) {
        guard let will = session.will else { return }
        session.will = nil
        if session.durable != nil { store?.submit([.clearWill(clientID: session.clientID)]) }
        if will.topic.bytes.first == 0x24 { return }  // clients never publish to $-topics
        loop.cancel(session.willTimer)
        session.willTimer = .none
        let info = ClientInfo(clientID: session.clientID, username: session.username, peer: nil,
                              protocolVersion: session.version, tlsIdentity: nil, isInternal: false)
        for plugin in broker.plugins(providing: .authorizePublish)
        where plugin.authorizePublish(info, topic: will.topic, qos: will.qos, retain: will.retain).isFailure {
            Log.info("will.denied", ["client": session.clientID, "topic": will.topic])
            return
        }
        // The same verdicts as a PUBLISH (a will on a chat topic is stamped, or refused).
        let apply = { [self] (verdict: PublishVerdict) in
            switch verdict {
            case .accept: publish(will)
            case .acceptWithoutRouting: break
            case .refuse(let reason):
                Log.info("will.refused", ["client": session.clientID, "topic": will.topic, "reason": reason])
            }
        }
        if let verdict = decide(will, from: info, plugins: broker.plugins(providing: .decidePublish)[...], later: apply) {
            apply(verdict)
        }
    }

    /// Asks the plugins' `decidePublish` in turn until one says other than accept
    /// (or none is left: accept). Answers given during the call are taken at once
    /// and returned (the common case: a plain topic costs no hop); when one comes
    /// later, nil is returned and `later` gets the verdict on this loop.
    @discardableResult
    func decide(_ message: Message, from info: ClientInfo, plugins: ArraySlice<BrokerPlugin>,
                later: @escaping (PublishVerdict) -> Void) -> PublishVerdict?
    {
        var rest = plugins
        while let plugin = rest.first {
            rest = rest.dropFirst()
            let answer = PendingVerdict()
            let remaining = rest
            plugin.decidePublish(message, from: info) { [self] verdict in
                guard answer.deliverLater(verdict) else { return }
                loop.execute { [self] in
                    if case .accept = verdict {
                        if let v = decide(message, from: info, plugins: remaining, later: later) { later(v) }
                    } else {
                        later(verdict)
                    }
                }
            }
            guard let verdict = answer.takeNow() else { return nil }
            if case .accept = verdict { continue }
            return verdict
        }
        return .accept
    }

    // MARK: Timers

    /// Once a second: keep alive, CONNECT time-outs, idle buffers, plugin ticks.
    func sweep() {
        let t = now
        for (_, c) in clients { c.checkTimers(now: t) }
        for (_, s) in sessions { s.connection?.checkTimers(now: t) }
        if index == 0 {
            for plugin in broker.plugins(providing: .tick) { plugin.tick(now: t) }
        }
    }
}

extension Session {
    var queueHeadIndex: Int { queue.count - queuedCount }

    /// Drops the oldest queued QoS 0 message, keeping the broker's total right.
    func dropOldestQoS0(counting broker: Broker) -> Bool {
        let before = queuedBytes
        guard dropOldestQoS0() else { return false }
        broker.queuedBytes.subtract(before - queuedBytes, ordering: .relaxed)
        return true
    }
}

/// A plugin's verdict given either during the `decidePublish` call (taken by the
/// caller at once) or later, from any thread (then handed to the loop).
final class PendingVerdict: @unchecked Sendable {
    private let lock = Mutex<(returned: Bool, verdict: PublishVerdict?)>((false, nil))

    /// Called by the completion: false when the caller has not returned yet and
    /// will take the verdict itself.
    func deliverLater(_ verdict: PublishVerdict) -> Bool {
        lock.withLock { s in
            if s.returned { return true }
            s.verdict = verdict
            return false
        }
    }

    /// Called once the plugin's call returned: the verdict if it came during it.
    func takeNow() -> PublishVerdict? {
        lock.withLock { s in
            s.returned = true
            return s.verdict
        }
    }
}
