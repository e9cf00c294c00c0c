/// UNSUBSCRIBE (section 3.10).
public struct UnsubscribePacket: Equatable, Sendable {
    public var packetID: UInt16
    public var topicFilters: [ByteString]
    public var properties: Properties

    public init(packetID: UInt16, topicFilters: [ByteString], properties: Properties = .none) {
        self.packetID = packetID
        self.topicFilters = topicFilters
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError) -> UnsubscribePacket {
        var r = ByteReader(body, version: version)
        let id = try r.readUInt16("packet identifier")
        if id == 0 {
            throw CodecError.malformed("UNSUBSCRIBE has packet identifier 0", rule: version == .v5 ? "MQTT-2.2.1-3" : "MQTT-2.3.1-1")
        }
        let properties = version == .v5 ? try Properties.decode(&r, context: .unsubscribe) : Properties()
        var filters: [ByteString] = []
        while !r.isAtEnd {
            let filter = try r.readUTF8Bytes("topic filter")
            _ = try TopicRules.parseFilter(filter, version: version)
            filters.append(ByteString(filter))
        }
        if filters.isEmpty {
            throw CodecError.protocolError("UNSUBSCRIBE has no topic filter", rule: "MQTT-3.10.3-2")
        }
        return UnsubscribePacket(packetID: id, topicFilters: filters, properties: properties)
    }

    func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) {
        var size = 2
        var propLength = 0
        if version == .v5 {
            try properties.validateForEncoding()
            propLength = properties.encodedLength(context: .unsubscribe)
            size += variableIntSize(propLength) + propLength
        }
        for f in topicFilters {
            try checkFits(f.count, "topic filter")
            size += 2 + f.count
        }
        try writeFixedHeader(into: &out, 0xA2, remaining: size)
        out.appendUInt16(packetID)
        if version == .v5 { properties.encode(into: &out, context: .unsubscribe, length: propLength) }
        for f in topicFilters { out.appendBinary(f.bytes) }
    }
}

/// UNSUBACK (section 3.11). 3.x carries the packet identifier only.
public struct UnsubackPacket: Equatable, Sendable {
    public var packetID: UInt16
    /// 5.0 only: one per filter of the UNSUBSCRIBE.
    public var reasonCodes: [ReasonCode]
    public var properties: Properties

    public init(packetID: UInt16, reasonCodes: [ReasonCode] = [], properties: Properties = .none) {
        self.packetID = packetID
        self.reasonCodes = reasonCodes
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError) -> UnsubackPacket {
        var r = ByteReader(body, version: version)
        let id = try r.readUInt16("packet identifier")
        var packet = UnsubackPacket(packetID: id)
        if version == .v5 {
            packet.properties = try Properties.decode(&r, context: .unsuback)
            while !r.isAtEnd {
                let code = try r.readByte("reason code")
                guard ReasonCode.unsuback.contains(code) else {
                    throw CodecError.protocolError("reason code 0x\(String(code, radix: 16)) is not valid in UNSUBACK")
                }
                packet.reasonCodes.append(ReasonCode(code))
            }
            if packet.reasonCodes.isEmpty { throw CodecError.protocolError("UNSUBACK has no reason code") }
        }
        if !r.isAtEnd { throw CodecError.malformed("UNSUBACK has \(r.remaining) extra bytes") }
        return packet
    }

    func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) {
        if version != .v5 {
            try writeFixedHeader(into: &out, 0xB0, remaining: 2)
            out.appendUInt16(packetID)
            return
        }
        try properties.validateForEncoding()
        let propLength = properties.encodedLength(context: .unsuback)
        try writeFixedHeader(into: &out, 0xB0, remaining: 2 + variableIntSize(propLength) + propLength + reasonCodes.count)
        out.appendUInt16(packetID)
        properties.encode(into: &out, context: .unsuback, length: propLength)
        for code in reasonCodes { out.append(code.rawValue) }
    }
}
