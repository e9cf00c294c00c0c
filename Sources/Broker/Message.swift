import MQTT

/// An application message as the broker routes it: immutable once built, shared by
/// every session it is delivered to (on any loop), and owning exactly its bytes.
public final class Message: @unchecked Sendable {
    public let topic: ByteString
    public let payload: [UInt8]
    public let qos: QoS
    public let retain: Bool
    /// Properties forwarded to subscribers: payload format, content type, response
    /// topic, correlation data, user properties. Never topic alias or subscription ids.
    public let properties: Properties
    /// Monotonic milliseconds after which the message is dropped (v5 message expiry).
    public let expiresAt: UInt64?
    /// The client id of the publisher, for No Local; nil for broker-made messages.
    public let origin: String?
    /// Monotonic milliseconds when the broker received it.
    public let receivedAt: UInt64

    public init(topic: ByteString, payload: [UInt8], qos: QoS, retain: Bool, properties: Properties = .none,
                expiresAt: UInt64? = nil, origin: String?, receivedAt: UInt64)
    {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        var forwarded = properties
        forwarded.topicAlias = nil
        forwarded.subscriptionIdentifiers = []
        forwarded.messageExpiryInterval = nil
        self.properties = forwarded
        self.expiresAt = expiresAt
        self.origin = origin
        self.receivedAt = receivedAt
    }

    /// Builds the routed message from a decoded PUBLISH, copying topic and payload
    /// out of the read buffer.
    public convenience init(publish p: PublishPacket, topic: ByteString, origin: String?, now: UInt64) {
        let expiry = p.properties.messageExpiryInterval.map { now + UInt64($0) * 1000 }
        self.init(topic: topic.compacted, payload: Array(p.payload), qos: p.qos, retain: p.retain,
                  properties: p.properties, expiresAt: expiry, origin: origin, receivedAt: now)
    }

    public func isExpired(now: UInt64) -> Bool {
        if let expiresAt { return now >= expiresAt }
        return false
    }

    /// Seconds of expiry left, rounded up, for the outgoing Message Expiry Interval.
    func remainingExpiry(now: UInt64) -> UInt32? {
        guard let expiresAt else { return nil }
        if now >= expiresAt { return 0 }
        return UInt32((expiresAt - now + 999) / 1000)
    }

    /// A copy with another QoS / retain flag (retained copies, will messages).
    func with(retain: Bool) -> Message {
        Message(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties, expiresAt: expiresAt,
                origin: origin, receivedAt: receivedAt)
    }

    /// Approximate memory held, for queue budgets.
    var byteCost: Int { 128 + topic.count + payload.count }
}
