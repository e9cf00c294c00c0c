/// Any MQTT control packet. `decode` turns a frame into a fully validated packet;
/// `encode` writes one for a given protocol level.
public enum Packet: Equatable, Sendable {
    // CONNECT is large and rare: kept out of line so every other packet stays small.
    indirect case connect(ConnectPacket)
    case connack(ConnackPacket)
    case publish(PublishPacket)
    case puback(AckPacket)
    case pubrec(AckPacket)
    case pubrel(AckPacket)
    case pubcomp(AckPacket)
    case subscribe(SubscribePacket)
    case suback(SubackPacket)
    case unsubscribe(UnsubscribePacket)
    case unsuback(UnsubackPacket)
    case pingreq
    case pingresp
    case disconnect(DisconnectPacket)
    case auth(AuthPacket)

    public var type: PacketType {
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
        case .pingreq: return .pingreq
        case .pingresp: return .pingresp
        case .disconnect: return .disconnect
        case .auth: return .auth
        }
    }

    /// Decodes one frame. `version` is the level agreed in CONNECT (a CONNECT frame
    /// carries its own); `sender` lets the codec refuse packets that travel the
    /// wrong way (a client sending CONNACK, a subscription identifier from a client).
    public static func decode(_ frame: Frame, version: ProtocolVersion, from sender: Sender = .either)
        throws(CodecError) -> Packet
    {
        try decode(header: frame.header, body: frame.body, version: version, from: sender)
    }

    public static func decode(header: UInt8, body: ArraySlice<UInt8>, version: ProtocolVersion,
                              from sender: Sender = .either) throws(CodecError) -> Packet
    {
        let flags = header & 0x0F
        guard let type = PacketType(rawValue: header >> 4), type != .auth || version == .v5 else {
            throw CodecError.malformed("packet type \(header >> 4) is reserved")
        }
        // MQTT 3.1 sets DUP on re-delivered PUBREL, SUBSCRIBE and UNSUBSCRIBE.
        let checkedFlags = version == .v3_1 && type.requiredFlags != 0 ? flags & 0x07 : flags
        if type != .publish && checkedFlags != type.requiredFlags {
            throw CodecError.malformed(
                "\(type) has fixed-header flags \(flags); they must be \(type.requiredFlags)",
                rule: version == .v5 ? "MQTT-2.1.3-1" : "MQTT-2.2.2-1")
        }
        if sender != .either && type.sentBy != .either && type.sentBy != sender {
            throw CodecError.protocolError("\(type) may not be sent by the \(sender == .client ? "client" : "server")")
        }
        switch type {
        case .publish: return .publish(try PublishPacket.decode(flags: flags, body, version: version, sender: sender))
        case .puback: return .puback(try AckPacket.decode(.puback, body, version: version))
        case .pubrec: return .pubrec(try AckPacket.decode(.pubrec, body, version: version))
        case .pubrel: return .pubrel(try AckPacket.decode(.pubrel, body, version: version))
        case .pubcomp: return .pubcomp(try AckPacket.decode(.pubcomp, body, version: version))
        case .connect: return .connect(try ConnectPacket.decode(body))
        case .connack: return .connack(try ConnackPacket.decode(body, version: version))
        case .subscribe: return .subscribe(try SubscribePacket.decode(body, version: version))
        case .suback: return .suback(try SubackPacket.decode(body, version: version))
        case .unsubscribe: return .unsubscribe(try UnsubscribePacket.decode(body, version: version))
        case .unsuback: return .unsuback(try UnsubackPacket.decode(body, version: version))
        case .pingreq, .pingresp:
            if !body.isEmpty { throw CodecError.malformed("\(type) must have no body") }
            return type == .pingreq ? .pingreq : .pingresp
        case .disconnect: return .disconnect(try DisconnectPacket.decode(body, version: version, sender: sender))
        case .auth: return .auth(try AuthPacket.decode(body))
        }
    }

    /// Appends the encoded packet to `out`.
    public func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) {
        switch self {
        case .connect(let p):
            guard p.version == version else {
                throw CodecError.protocolError("CONNECT for \(p.version) encoded as \(version)")
            }
            try p.encode(into: &out)
        case .connack(let p): try p.encode(into: &out, version: version)
        case .publish(let p): try p.encode(into: &out, version: version)
        case .puback(let p): try p.encode(into: &out, type: .puback, version: version)
        case .pubrec(let p): try p.encode(into: &out, type: .pubrec, version: version)
        case .pubrel(let p): try p.encode(into: &out, type: .pubrel, version: version)
        case .pubcomp(let p): try p.encode(into: &out, type: .pubcomp, version: version)
        case .subscribe(let p): try p.encode(into: &out, version: version)
        case .suback(let p): try p.encode(into: &out, version: version)
        case .unsubscribe(let p): try p.encode(into: &out, version: version)
        case .unsuback(let p): try p.encode(into: &out, version: version)
        case .pingreq: out.append(0xC0); out.append(0)
        case .pingresp: out.append(0xD0); out.append(0)
        case .disconnect(let p): try p.encode(into: &out, version: version)
        case .auth(let p):
            guard version == .v5 else { throw CodecError.protocolError("AUTH exists only in MQTT 5.0") }
            try p.encode(into: &out)
        }
    }

    /// The encoded bytes as a new array.
    public func encoded(version: ProtocolVersion) throws(CodecError) -> [UInt8] {
        var out: [UInt8] = []
        try encode(into: &out, version: version)
        return out
    }
}
