/// CONNACK (section 3.2). For 3.x clients the reason code travels as the nearest
/// CONNECT return code and properties are not sent.
public struct ConnackPacket: Equatable, Sendable {
    public var sessionPresent: Bool
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(sessionPresent: Bool = false, reasonCode: ReasonCode = .success, properties: Properties = .none) {
        self.sessionPresent = sessionPresent
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError) -> ConnackPacket {
        var r = ByteReader(body, version: version)
        let flags = try r.readByte("connect acknowledge flags")
        // MQTT 3.1 has no session-present bit; the byte is unused there.
        if version != .v3_1 && flags & 0xFE != 0 {
            throw CodecError.malformed("CONNACK reserved flags are set", rule: version == .v5 ? "MQTT-3.2.2-1" : nil)
        }
        let code = try r.readByte("reason code")
        var packet = ConnackPacket(sessionPresent: version != .v3_1 && flags & 0x01 != 0)
        if version == .v5 {
            guard ReasonCode.connack.contains(code) else {
                throw CodecError.protocolError("reason code 0x\(String(code, radix: 16)) is not valid in CONNACK")
            }
            packet.reasonCode = ReasonCode(code)
            packet.properties = try Properties.decode(&r, context: .connack)
        } else {
            guard let returnCode = ConnectReturnCode(rawValue: code) else {
                throw CodecError.protocolError("CONNACK return code \(code) is reserved")
            }
            packet.reasonCode = returnCode.reasonCode
        }
        if packet.sessionPresent && packet.reasonCode.isFailure {
            throw CodecError.protocolError("CONNACK refuses the connection but claims a session")
        }
        if !r.isAtEnd { throw CodecError.malformed("CONNACK has \(r.remaining) extra bytes") }
        return packet
    }

    func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) {
        let flags: UInt8 = sessionPresent && version != .v3_1 ? 1 : 0
        if version == .v5 {
            try properties.validateForEncoding()
            let propLength = properties.encodedLength(context: .connack)
            try writeFixedHeader(into: &out, 0x20, remaining: 2 + variableIntSize(propLength) + propLength)
            out.append(flags)
            out.append(reasonCode.rawValue)
            properties.encode(into: &out, context: .connack, length: propLength)
        } else {
            try writeFixedHeader(into: &out, 0x20, remaining: 2)
            out.append(flags)
            out.append(ConnectReturnCode(reasonCode).rawValue)
        }
    }
}
