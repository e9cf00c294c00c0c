import MQTT
import Store

extension ClientConnection {
    /// QoS 1 delivery to the client completed.
    func handlePuback(_ a: AckPacket) {
        guard let session else { return }
        if let d = session.inflight[a.packetID], d.qos == .exactlyOnce {
            wrongAck("PUBACK", for: d)
            return
        }
        // An unknown id is ignored (a late ack of a delivery that was dropped or completed).
        if let d = session.inflight[a.packetID] {
            session.removeInflight(a.packetID)
            if d.seq != 0 { ctx.store?.submit([.deliveryDone(clientID: session.clientID, seq: d.seq)]) }
            deliveredHook(d.message)
            ctx.pump(session)
        }
    }

    /// QoS 2, step 2 of 4: the client has the message; release it.
    func handlePubrec(_ a: AckPacket) {
        guard let session else { return }
        guard let d = session.inflight[a.packetID] else {
            sendPacket(.pubrel(AckPacket(packetID: a.packetID, reasonCode: version == .v5 ? .packetIdentifierNotFound : .success)))
            return
        }
        if d.qos != .exactlyOnce {
            wrongAck("PUBREC", for: d)
            return
        }
        if a.reasonCode.isFailure {
            // The client refused it: the exchange ends here.
            session.removeInflight(a.packetID)
            if d.seq != 0 { ctx.store?.submit([.deliveryDone(clientID: session.clientID, seq: d.seq)]) }
            ctx.pump(session)
            return
        }
        if d.state == .released {
            sendPacket(.pubrel(AckPacket(packetID: a.packetID)))
            return
        }
        _ = session.markReleased(a.packetID)
        guard d.seq != 0, let store = ctx.store else {
            sendPacket(.pubrel(AckPacket(packetID: a.packetID)))
            return
        }
        // Once PUBREL is out the client forgets the message: "released" must be on
        // disk first, or a restart would send the PUBLISH again (a duplicate).
        let op = StoreOp.deliveryReleased(clientID: session.clientID, seq: d.seq)
        if ctx.waitsForCommit {
            let id = a.packetID
            store.submit([op], executor: ctx.executor) { [self] _ in
                if !isClosed { sendPacket(.pubrel(AckPacket(packetID: id))) }
            }
        } else {
            store.submit([op])
            sendPacket(.pubrel(AckPacket(packetID: a.packetID)))
        }
    }

    /// QoS 2 from the client, step 3 of 4: forget the packet id, confirm.
    func handlePubrel(_ a: AckPacket) {
        guard let session else { return }
        let known = session.incomingQoS2.remove(a.packetID) != nil
        if known, session.durable != nil, let store = ctx.store {
            // The id must be forgotten on disk before PUBCOMP: the client may reuse it
            // at once, and a stale record would swallow that new message.
            let op = StoreOp.incomingDone(clientID: session.clientID, packetID: a.packetID)
            if ctx.waitsForCommit {
                let id = a.packetID
                store.submit([op], executor: ctx.executor) { [self] _ in
                    if !isClosed { sendPacket(.pubcomp(AckPacket(packetID: id))) }
                }
                return
            }
            store.submit([op])
        }
        if known || version != .v5 {
            sendPacket(.pubcomp(AckPacket(packetID: a.packetID)))
        } else {
            sendPacket(.pubcomp(AckPacket(packetID: a.packetID, reasonCode: .packetIdentifierNotFound)))
        }
    }

    /// QoS 2 delivery to the client completed.
    func handlePubcomp(_ a: AckPacket) {
        guard let session else { return }
        // Only a released delivery completes; a PUBCOMP for a QoS 1 delivery, or one
        // still waiting for its PUBREC, breaks the protocol. An unknown id is ignored.
        guard let d = session.inflight[a.packetID] else { return }
        if d.qos != .exactlyOnce || d.state != .released {
            wrongAck("PUBCOMP", for: d)
            return
        }
        session.removeInflight(a.packetID)
        if d.seq != 0 { ctx.store?.submit([.deliveryDone(clientID: session.clientID, seq: d.seq)]) }
        deliveredHook(d.message)
        ctx.pump(session)
    }

    /// An ack that does not fit the delivery's QoS or state is a protocol error
    /// (section 4.13): v5 clients get DISCONNECT 0x82, then the connection closes.
    private func wrongAck(_ kind: String, for d: InflightDelivery) {
        let state = d.qos == .atLeastOnce ? "a QoS 1 delivery" : (d.state == .sent ? "a QoS 2 delivery before PUBREC" : "a released QoS 2 delivery")
        violation(CodecError(.protocolError, "\(kind) for \(state)"))
    }

    func deliveredHook(_ message: Message) {
        let all = ctx.broker.plugins(providing: .delivered)
        let marked = message.reportsDeliveries ? ctx.broker.plugins(providing: .markedDeliveries) : []
        if all.isEmpty && marked.isEmpty { return }
        let info = clientInfo
        for plugin in all { plugin.delivered(message, to: info) }
        for plugin in marked { plugin.delivered(message, to: info) }
    }
}
