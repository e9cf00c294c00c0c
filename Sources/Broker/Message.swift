import MQTT
import Synchronization

/// An application message as the broker routes it: immutable once built, shared by
/// every session it is delivered to (on any loop), and owning exactly its bytes.
public final class Message: @unchecked Sendable {
    public let topic: ByteString
    public let payload: ArraySlice<UInt8>
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
    /// The message's id in the store, 0 until it is first written there.
    let storeID = Atomic<Int64>(0)
    /// Loops still to match it; the last one marks it routed in the store.
    let pendingRoutes = Atomic<Int>(0)
    /// Set by `reportDeliveries()`: plugins with the `.markedDeliveries` hook hear
    /// of each of its deliveries.
    let deliveriesReported = Atomic<Bool>(false)

    /// Asks for `delivered` calls for this message to the plugins that provide
    /// `.markedDeliveries` (e.g. a notification bridge watching who saw a post),
    /// so that other messages cost them nothing. Call before it is published.
    public func reportDeliveries() { deliveriesReported.store(true, ordering: .relaxed) }
    public var reportsDeliveries: Bool { deliveriesReported.load(ordering: .relaxed) }

    public convenience init(topic: ByteString, payload: [UInt8], qos: QoS, retain: Bool, properties: Properties = .none,
                            expiresAt: UInt64? = nil, origin: String?, receivedAt: UInt64)
    {
        self.init(topic: topic, payload: payload[...], qos: qos, retain: retain, properties: properties,
                  expiresAt: expiresAt, origin: origin, receivedAt: receivedAt)
    }

    public init(topic: ByteString, payload: ArraySlice<UInt8>, qos: QoS, retain: Bool, properties: Properties = .none,
                expiresAt: UInt64? = nil, origin: String?, receivedAt: UInt64)
    {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        var forwarded = properties
        if forwarded.topicAlias != nil { forwarded.topicAlias = nil }
        if !forwarded.subscriptionIdentifiers.isEmpty { forwarded.subscriptionIdentifiers = [] }
        if forwarded.messageExpiryInterval != nil { forwarded.messageExpiryInterval = nil }
        self.properties = forwarded
        self.expiresAt = expiresAt
        self.origin = origin
        self.receivedAt = receivedAt
    }

    /// Builds the routed message from a decoded PUBLISH, copying topic and payload
    /// out of the read buffer into one allocation that they share.
    public convenience init(publish p: PublishPacket, topic: ByteString, origin: String?, now: UInt64) {
        let expiry = p.properties.messageExpiryInterval.map { now + UInt64($0) * 1000 }
        let t = topic.count
        let storage = Self.joined(topic.bytes, p.payload)
        self.init(topic: ByteString(storage[0..<t]), payload: storage[t...], qos: p.qos, retain: p.retain,
                  properties: p.properties, expiresAt: expiry, origin: origin, receivedAt: now)
    }

    /// A QoS 0 message without retain flag or properties (a 3.x client's), its topic
    /// and payload copied out of the read buffer into one allocation.
    convenience init(qos0Topic topic: ByteString, payload: ArraySlice<UInt8>, origin: String?, now: UInt64) {
        let t = topic.count
        let storage = Self.joined(topic.bytes, payload)
        self.init(topic: ByteString(storage[0..<t]), payload: storage[t...], qos: .atMostOnce, retain: false,
                  origin: origin, receivedAt: now)
    }

    /// Topic and payload in one new array. Up to `smallMessage` bytes, the two are
    /// first copied side by side on the stack and the array is made from that
    /// buffer: the copy is specialized for bytes, whereas every other way to make an
    /// array of a given size goes through the standard library's unspecialized
    /// allocation, which looks the storage type up at run time (about 360
    /// instructions, a third of what the rest of building a message costs).
    static func joined(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> [UInt8] {
        let n = a.count + b.count
        if n > smallMessage { return Array(a) + b }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(n, 1)) { buffer in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            a.withUnsafeBytes { if $0.count > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            b.withUnsafeBytes { if $0.count > 0 { (base + a.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            return Array(UnsafeBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    static let smallMessage = 1024

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
