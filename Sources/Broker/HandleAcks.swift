import MQTT

extension ClientConnection {
    /// QoS 1 delivery to the client completed.
    func handlePuback(_ a: AckPacket) {
        guard let session else { return }
        if let d = session.inflight[a.packetID], d.qos == .atLeastOnce {
            session.removeInflight(a.packetID)
            deliveredHook(d.message)
            ctx.pump(session)
        }
    }

    /// QoS 2, step 2 of 4: the client has the message; release it.
    func handlePubrec(_ a: AckPacket) {
        guard let session else { return }
        guard let d = session.inflight[a.packetID], d.qos == .exactlyOnce else {
            sendPacket(.pubrel(AckPacket(packetID: a.packetID, reasonCode: version == .v5 ? .packetIdentifierNotFound : .success)))
            return
        }
        if a.reasonCode.isFailure {
            // The client refused it: the exchange ends here.
            session.removeInflight(a.packetID)
            ctx.pump(session)
            return
        }
        _ = session.markReleased(a.packetID)
        sendPacket(.pubrel(AckPacket(packetID: a.packetID)))
    }

    /// QoS 2 from the client, step 3 of 4: forget the packet id, confirm.
    func handlePubrel(_ a: AckPacket) {
        guard let session else { return }
        if session.incomingQoS2.remove(a.packetID) != nil || version != .v5 {
            sendPacket(.pubcomp(AckPacket(packetID: a.packetID)))
        } else {
            sendPacket(.pubcomp(AckPacket(packetID: a.packetID, reasonCode: .packetIdentifierNotFound)))
        }
    }

    /// QoS 2 delivery to the client completed.
    func handlePubcomp(_ a: AckPacket) {
        guard let session else { return }
        if let d = session.inflight[a.packetID], d.qos == .exactlyOnce {
            session.removeInflight(a.packetID)
            deliveredHook(d.message)
            ctx.pump(session)
        }
    }

    private func deliveredHook(_ message: Message) {
        let plugins = ctx.broker.plugins(providing: .delivered)
        if plugins.isEmpty { return }
        let info = clientInfo
        for plugin in plugins { plugin.delivered(message, to: info) }
    }
}
