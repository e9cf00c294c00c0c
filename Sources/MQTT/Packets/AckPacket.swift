/// PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4 to 3.7): a packet identifier,
/// and in 5.0 a reason code and properties, both left out when there is nothing to say.
public struct AckPacket: Equatable, Sendable {
    public var packetID: UInt16
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(packetID: UInt16, reasonCode: ReasonCode = .success, properties: Properties = .none) {
        self.packetID = packetID
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(_ type: PacketType, _ body: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError)
        -> AckPacket
    {
        var r = ByteReader(body, version: version)
        let id = try r.readUInt16("packet identifier")
        if id == 0 {
            throw CodecError.malformed("\(type) has packet identifier 0", rule: version == .v5 ? "MQTT-2.2.1-3" : "MQTT-2.3.1-1")
        }
        var packet = AckPacket(packetID: id)
        if version == .v5 && !r.isAtEnd {
            let code = try r.readByte("reason code")
            let allowed = type == .puback || type == .pubrec ? ReasonCode.pubackPubrec : ReasonCode.pubrelPubcomp
            guard allowed.contains(code) else {
                throw CodecError.protocolError("reason code 0x\(String(code, radix: 16)) is not valid in \(type)")
            }
            packet.reasonCode = ReasonCode(code)
            if !r.isAtEnd { packet.properties = try Properties.decode(&r, context: type.propertyContext) }
        }
        if !r.isAtEnd { throw CodecError.malformed("\(type) has \(r.remaining) extra bytes") }
        return packet
    }

    func encode(into out: inout [UInt8], type: PacketType, version: ProtocolVersion) throws(CodecError) {
        let first = type.rawValue << 4 | type.requiredFlags
        if version != .v5 {
            try writeFixedHeader(into: &out, first, remaining: 2)
            out.appendUInt16(packetID)
            return
        }
        try properties.validateForEncoding()
        let context = type.propertyContext
        let propLength = properties.encodedLength(context: context)
        if propLength == 0 && reasonCode == .success {
            try writeFixedHeader(into: &out, first, remaining: 2)
            out.appendUInt16(packetID)
        } else if propLength == 0 {
            try writeFixedHeader(into: &out, first, remaining: 3)
            out.appendUInt16(packetID)
            out.append(reasonCode.rawValue)
        } else {
            try writeFixedHeader(into: &out, first, remaining: 3 + variableIntSize(propLength) + propLength)
            out.appendUInt16(packetID)
            out.append(reasonCode.rawValue)
            properties.encode(into: &out, context: context, length: propLength)
        }
    }
}

extension PacketType {
    var propertyContext: PropertyContext {
        switch self {
        case .connect: return .connect
        case .connack: return .connack
        case .publish: return .publish
        case .puback: return .puback
        case .pubrec: return .pubrec
        case .pubrel: return .pubrel
        case .pubcomp: return .pubcomp
        case .subscribe: return .subscribe
        case .suback: return .suback
        case .unsubscribe: return .unsubscribe
        case .unsuback: return .unsuback
        case .disconnect, .pingreq, .pingresp: return .disconnect
        case .auth: return .auth
        }
    }
}
