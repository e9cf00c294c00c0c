/// One topic filter of a SUBSCRIBE with its subscription options.
public struct Subscription: Equatable, Sendable {
    /// The filter as sent, `$share/<group>/` included; `TopicRules.parseFilter` splits it.
    public var topicFilter: ByteString
    public var qos: QoS
    /// 5.0: do not send this client its own messages.
    public var noLocal: Bool
    /// 5.0: keep the RETAIN flag of forwarded messages.
    public var retainAsPublished: Bool
    /// 5.0: 0 send retained messages on subscribe, 1 only for a new subscription, 2 never.
    public var retainHandling: UInt8

    public init(topicFilter: ByteString, qos: QoS = .atMostOnce, noLocal: Bool = false,
                retainAsPublished: Bool = false, retainHandling: UInt8 = 0)
    {
        self.topicFilter = topicFilter
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }
}

/// SUBSCRIBE (section 3.8).
public struct SubscribePacket: Equatable, Sendable {
    public var packetID: UInt16
    public var subscriptions: [Subscription]
    /// 5.0: at most one subscription identifier, and user properties.
    public var properties: Properties

    public init(packetID: UInt16, subscriptions: [Subscription], properties: Properties = .none) {
        self.packetID = packetID
        self.subscriptions = subscriptions
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError) -> SubscribePacket {
        var r = ByteReader(body, version: version)
        let id = try r.readUInt16("packet identifier")
        if id == 0 {
            throw CodecError.malformed("SUBSCRIBE has packet identifier 0", rule: version == .v5 ? "MQTT-2.2.1-3" : "MQTT-2.3.1-1")
        }
        let properties = version == .v5 ? try Properties.decode(&r, context: .subscribe) : Properties()
        var subscriptions: [Subscription] = []
        while !r.isAtEnd {
            let filter = try r.readUTF8Bytes("topic filter")
            let parsed = try TopicRules.parseFilter(filter, version: version)
            let options = try r.readByte("subscription options")
            guard let qos = QoS(rawValue: options & 0x03) else {
                // 5.0 section 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
                if version == .v5 { throw CodecError.protocolError("subscription requests QoS 3") }
                throw CodecError.malformed("subscription requests QoS 3", rule: "MQTT-3-8.3-4")
            }
            var subscription = Subscription(topicFilter: ByteString(filter), qos: qos)
            if version == .v5 {
                if options & 0xC0 != 0 {
                    throw CodecError.malformed("subscription options reserved bits are set", rule: "MQTT-3.8.3-5")
                }
                subscription.noLocal = options & 0x04 != 0
                subscription.retainAsPublished = options & 0x08 != 0
                subscription.retainHandling = (options >> 4) & 0x03
                if subscription.retainHandling == 3 {
                    throw CodecError.protocolError("retain handling 3 is reserved")
                }
                if subscription.noLocal && parsed.shareGroup != nil {
                    throw CodecError.protocolError("No Local on a shared subscription", rule: "MQTT-3.8.3-4")
                }
            } else if options & 0xFC != 0 {
                throw CodecError.malformed("requested QoS byte has reserved bits set", rule: "MQTT-3-8.3-4")
            }
            subscriptions.append(subscription)
        }
        if subscriptions.isEmpty {
            throw CodecError.protocolError(
                "SUBSCRIBE has no topic filter", rule: version == .v5 ? "MQTT-3.8.3-2" : "MQTT-3.8.3-3")
        }
        return SubscribePacket(packetID: id, subscriptions: subscriptions, properties: properties)
    }

    func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) {
        var size = 2
        var propLength = 0
        if version == .v5 {
            try properties.validateForEncoding()
            propLength = properties.encodedLength(context: .subscribe)
            size += variableIntSize(propLength) + propLength
        }
        for s in subscriptions {
            try checkFits(s.topicFilter.count, "topic filter")
            size += 3 + s.topicFilter.count
        }
        try writeFixedHeader(into: &out, 0x82, remaining: size)
        out.appendUInt16(packetID)
        if version == .v5 { properties.encode(into: &out, context: .subscribe, length: propLength) }
        for s in subscriptions {
            out.appendBinary(s.topicFilter.bytes)
            var options = s.qos.rawValue
            if version == .v5 {
                if s.noLocal { options |= 0x04 }
                if s.retainAsPublished { options |= 0x08 }
                options |= (s.retainHandling & 0x03) << 4
            }
            out.append(options)
        }
    }
}

/// SUBACK (section 3.9): one reason code per requested filter.
public struct SubackPacket: Equatable, Sendable {
    public var packetID: UInt16
    /// Granted QoS (0x00-0x02) or a failure code; 3.x knows only 0x80 as failure.
    public var reasonCodes: [ReasonCode]
    public var properties: Properties

    public init(packetID: UInt16, reasonCodes: [ReasonCode], properties: Properties = .none) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError) -> SubackPacket {
        var r = ByteReader(body, version: version)
        let id = try r.readUInt16("packet identifier")
        let properties = version == .v5 ? try Properties.decode(&r, context: .suback) : Properties()
        var codes: [ReasonCode] = []
        codes.reserveCapacity(r.remaining)
        while !r.isAtEnd {
            let code = try r.readByte("reason code")
            let valid = version == .v5 ? ReasonCode.suback.contains(code) : (code <= 2 || code == 0x80)
            guard valid else {
                throw CodecError.protocolError("reason code 0x\(String(code, radix: 16)) is not valid in SUBACK")
            }
            codes.append(ReasonCode(code))
        }
        if codes.isEmpty { throw CodecError.protocolError("SUBACK has no reason code") }
        return SubackPacket(packetID: id, reasonCodes: codes, properties: properties)
    }

    func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) {
        var size = 2 + reasonCodes.count
        var propLength = 0
        if version == .v5 {
            try properties.validateForEncoding()
            propLength = properties.encodedLength(context: .suback)
            size += variableIntSize(propLength) + propLength
        }
        try writeFixedHeader(into: &out, 0x90, remaining: size)
        out.appendUInt16(packetID)
        if version == .v5 { properties.encode(into: &out, context: .suback, length: propLength) }
        for code in reasonCodes {
            // 3.x has a single failure code.
            out.append(version == .v5 || code.rawValue <= 2 ? code.rawValue : 0x80)
        }
    }
}
