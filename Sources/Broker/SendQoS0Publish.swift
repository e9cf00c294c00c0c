import MQTT

extension ClientConnection {
    /// Sends a QoS 0 PUBLISH without retain flag to a 3.x client, encoded straight
    /// from the publisher's topic and payload (`BrokerLoop.forwardQoS0`), with the
    /// statistics of `sendPublish`.
    func sendQoS0Publish(topic: ByteString, payload: ArraySlice<UInt8>) {
        var size = 0
        sendEncoding { out in size = PublishPacket.encodeQoS0(topic: topic, payload: payload, into: &out) }
        if size > 0 { countSent(size) }
    }

    /// The same, already encoded by `PublishPacket.encodeQoS0` (for several recipients).
    func sendEncodedQoS0Publish(_ bytes: [UInt8]) {
        send(bytes)
        countSent(bytes.count)
    }

    private func countSent(_ size: Int) {
        let ctx = self.ctx
        ctx.stats.messagesSent += 1
        ctx.stats.publishSent += 1
        ctx.stats.bytesSent += size
    }
}
