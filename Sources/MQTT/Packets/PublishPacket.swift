/// PUBLISH (section 3.3). The topic and payload share the decoded buffer's storage.
public struct PublishPacket: Equatable, Sendable {
    /// Empty only in a 5.0 PUBLISH that names its topic by a topic alias.
    public var topic: ByteString
    public var payload: ArraySlice<UInt8>
    public var qos: QoS
    public var retain: Bool
    public var dup: Bool
    /// 0 for QoS 0, otherwise 1...65535.
    public var packetID: UInt16
    public var properties: Properties

    public init(topic: ByteString, payload: ArraySlice<UInt8> = [], qos: QoS = .atMostOnce, retain: Bool = false,
                dup: Bool = false, packetID: UInt16 = 0, properties: Properties = .none)
    {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
        self.properties = properties
    }

    /// Decodes the body of a PUBLISH frame (`flags`: the low nibble of its first byte),
    /// as `Packet.decode` does for one.
    public static func decode(flags: UInt8, _ body: ArraySlice<UInt8>, version: ProtocolVersion, sender: Sender)
        throws(CodecError) -> PublishPacket
    {
        guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else {
            throw CodecError.malformed("PUBLISH has QoS 3", rule: "MQTT-3.3.1-4")
        }
        let dup = flags & 0x08 != 0
        if dup && qos == .atMostOnce {
            throw CodecError.malformed("PUBLISH with QoS 0 has the DUP flag set", rule: "MQTT-3.3.1-2")
        }
        var r = ByteReader(body, version: version)
        let topicLength = Int(try r.readUInt16("topic name"))
        let topic = try r.readSlice(topicLength, "topic name")
        var packetID: UInt16 = 0
        if qos != .atMostOnce {
            packetID = try r.readUInt16("packet identifier")
            if packetID == 0 {
                throw CodecError.malformed(
                    "PUBLISH with QoS > 0 has packet identifier 0", rule: version == .v5 ? "MQTT-2.2.1-3" : "MQTT-2.3.1-1")
            }
        }
        var properties = Properties()
        if version == .v5 {
            properties = try Properties.decode(&r, context: .publish)
            if sender == .client && !properties.subscriptionIdentifiers.isEmpty {
                throw CodecError.protocolError(
                    "a PUBLISH from a client carries a subscription identifier", rule: "MQTT-3.3.4-6")
            }
            if topic.isEmpty && properties.topicAlias == nil {
                throw CodecError.protocolError("PUBLISH has neither a topic name nor a topic alias", rule: "MQTT-3.3.2-1")
            }
        }
        if !(topic.isEmpty && version == .v5) {
            try TopicRules.validateName(topic, version: version)
        }
        let payload = r.rest()
        if properties.payloadFormatIndicator == true && !UTF8Validation.isValid(payload) {
            throw CodecError(.payloadFormatInvalid, "payload is marked UTF-8 but is not")
        }
        return PublishPacket(topic: ByteString(topic), payload: payload, qos: qos, retain: flags & 0x01 != 0, dup: dup,
                             packetID: packetID, properties: properties)
    }

    /// The first byte of the fixed header.
    public var firstByte: UInt8 {
        0x30 | (dup ? 0x08 : 0) | qos.rawValue << 1 | (retain ? 0x01 : 0)
    }

    /// What `encode` writes for a QoS 0 PUBLISH without DUP or retain flag in 3.1 or
    /// 3.1.1 (no properties), straight from a topic and a payload, without a packet
    /// value to build: the broker forwards a 3.x client's QoS 0 messages this way.
    /// Returns the bytes written; 0 (nothing written) when they cannot make a PUBLISH.
    @inline(__always)
    public static func encodeQoS0(topic: ByteString, payload: ArraySlice<UInt8>, into out: inout [UInt8]) -> Int {
        let t = topic.count
        var remaining = 2 + t + payload.count
        guard t <= 65_535, remaining <= maximumVariableInt else { return 0 }
        // The fixed header and the topic's length, at most 7 bytes, written at once.
        var head: UInt64 = 0x30
        var n = 1
        repeat {
            let digit = UInt64(remaining & 0x7F)
            remaining >>= 7
            head |= (remaining > 0 ? digit | 0x80 : digit) << (8 * n)
            n += 1
        } while remaining > 0
        head |= UInt64(t >> 8) << (8 * n) | UInt64(t & 0xFF) << (8 * (n + 1))
        n += 2
        let start = out.count
        let needed = start + n + t + payload.count
        if out.capacity < needed { out.reserveCapacity(Swift.max(needed, out.capacity * 2)) }
        withUnsafeBytes(of: head.littleEndian) { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        topic.bytes.withUnsafeBufferPointer { t in
            payload.withUnsafeBufferPointer { p in
                // Decoded from one frame, the payload follows the topic: one copy for both.
                if let t0 = t.baseAddress, let p0 = p.baseAddress, t0 + t.count == p0 {
                    out.append(contentsOf: UnsafeBufferPointer(start: t0, count: t.count + p.count))
                } else {
                    out.append(contentsOf: t)
                    out.append(contentsOf: p)
                }
            }
        }
        return out.count - start
    }

    /// Encodes the packet and returns the offset of its packet identifier in `out`
    /// (nil for QoS 0), so that a packet encoded once can be re-stamped per subscriber.
    @discardableResult
    public func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) -> Int? {
        try checkFits(topic.count, "topic name")
        if qos != .atMostOnce && packetID == 0 {
            throw CodecError.malformed("PUBLISH with QoS > 0 needs a packet identifier", rule: "MQTT-2.2.1-3")
        }
        var size = 2 + topic.count + (qos == .atMostOnce ? 0 : 2) + payload.count
        var propLength = 0
        if version == .v5 {
            try properties.validateForEncoding()
            propLength = properties.encodedLength(context: .publish)
            size += variableIntSize(propLength) + propLength
        }
        try writeFixedHeader(into: &out, firstByte, remaining: size)
        out.appendBinary(topic.bytes)
        var idOffset: Int? = nil
        if qos != .atMostOnce {
            idOffset = out.count
            out.appendUInt16(packetID)
        }
        if version == .v5 { properties.encode(into: &out, context: .publish, length: propLength) }
        out.append(contentsOf: payload)
        return idOffset
    }
}
