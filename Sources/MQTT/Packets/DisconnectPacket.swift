/// DISCONNECT (section 3.14). 3.x DISCONNECT is empty; a 5.0 one may carry a
/// reason code and properties, each left out when it is the default.
public struct DisconnectPacket: Equatable, Sendable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .normalDisconnection, properties: Properties = .none) {
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>, version: ProtocolVersion, sender: Sender) throws(CodecError)
        -> DisconnectPacket
    {
        var packet = DisconnectPacket()
        if version != .v5 {
            if !body.isEmpty { throw CodecError.malformed("DISCONNECT has \(body.count) bytes; 3.x allows none") }
            return packet
        }
        var r = ByteReader(body, version: version)
        if !r.isAtEnd {
            let code = try r.readByte("reason code")
            guard ReasonCode.disconnect.contains(code) else {
                throw CodecError.protocolError("reason code 0x\(String(code, radix: 16)) is not valid in DISCONNECT")
            }
            packet.reasonCode = ReasonCode(code)
            if !r.isAtEnd { packet.properties = try Properties.decode(&r, context: .disconnect) }
        }
        if !r.isAtEnd { throw CodecError.malformed("DISCONNECT has \(r.remaining) extra bytes") }
        if sender == .server && packet.properties.sessionExpiryInterval != nil {
            throw CodecError.protocolError("a server DISCONNECT carries a session expiry interval", rule: "MQTT-3.14.2-2")
        }
        return packet
    }

    func encode(into out: inout [UInt8], version: ProtocolVersion) throws(CodecError) {
        if version != .v5 {
            try writeFixedHeader(into: &out, 0xE0, remaining: 0)
            return
        }
        try properties.validateForEncoding()
        let propLength = properties.encodedLength(context: .disconnect)
        if propLength == 0 && reasonCode == .normalDisconnection {
            try writeFixedHeader(into: &out, 0xE0, remaining: 0)
        } else if propLength == 0 {
            try writeFixedHeader(into: &out, 0xE0, remaining: 1)
            out.append(reasonCode.rawValue)
        } else {
            try writeFixedHeader(into: &out, 0xE0, remaining: 1 + variableIntSize(propLength) + propLength)
            out.append(reasonCode.rawValue)
            properties.encode(into: &out, context: .disconnect, length: propLength)
        }
    }
}

/// AUTH (section 3.15, 5.0 only): enhanced authentication exchanges.
public struct AuthPacket: Equatable, Sendable {
    public var reasonCode: ReasonCode
    public var properties: Properties

    public init(reasonCode: ReasonCode = .success, properties: Properties = .none) {
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>) throws(CodecError) -> AuthPacket {
        var packet = AuthPacket()
        var r = ByteReader(body, version: .v5)
        if !r.isAtEnd {
            let code = try r.readByte("reason code")
            guard ReasonCode.auth.contains(code) else {
                throw CodecError.protocolError("reason code 0x\(String(code, radix: 16)) is not valid in AUTH")
            }
            packet.reasonCode = ReasonCode(code)
            if !r.isAtEnd { packet.properties = try Properties.decode(&r, context: .auth) }
        }
        if !r.isAtEnd { throw CodecError.malformed("AUTH has \(r.remaining) extra bytes") }
        return packet
    }

    func encode(into out: inout [UInt8]) throws(CodecError) {
        try properties.validateForEncoding()
        let propLength = properties.encodedLength(context: .auth)
        if propLength == 0 && reasonCode == .success {
            try writeFixedHeader(into: &out, 0xF0, remaining: 0)
        } else {
            try writeFixedHeader(into: &out, 0xF0, remaining: 1 + variableIntSize(propLength) + propLength)
            out.append(reasonCode.rawValue)
            properties.encode(into: &out, context: .auth, length: propLength)
        }
    }
}
