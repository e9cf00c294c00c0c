/// The last-will message a client leaves with CONNECT.
public struct Will: Equatable, Sendable {
    public var topic: ByteString
    public var payload: ArraySlice<UInt8>
    public var qos: QoS
    public var retain: Bool
    /// Will properties (5.0): will delay, payload format, message expiry, content
    /// type, response topic, correlation data, user properties.
    public var properties: Properties

    public init(topic: ByteString, payload: ArraySlice<UInt8>, qos: QoS = .atMostOnce, retain: Bool = false,
                properties: Properties = .none)
    {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
    }
}

/// CONNECT (section 3.1). Its own protocol level decides how the rest is read.
public struct ConnectPacket: Equatable, Sendable {
    public var version: ProtocolVersion
    public var clientID: String
    /// Clean Session (3.x) or Clean Start (5.0).
    public var cleanStart: Bool
    public var keepAlive: UInt16
    public var username: String?
    public var password: ArraySlice<UInt8>?
    public var will: Will?
    public var properties: Properties

    public init(version: ProtocolVersion = .v3_1_1, clientID: String, cleanStart: Bool = true, keepAlive: UInt16 = 60,
                username: String? = nil, password: ArraySlice<UInt8>? = nil, will: Will? = nil,
                properties: Properties = .none)
    {
        self.version = version
        self.clientID = clientID
        self.cleanStart = cleanStart
        self.keepAlive = keepAlive
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties
    }

    static func decode(_ body: ArraySlice<UInt8>) throws(CodecError) -> ConnectPacket {
        // The level is not known until it is read; names are ASCII either way.
        var r = ByteReader(body, version: .v5)
        let name = try r.readUTF8Bytes("protocol name")
        let level = try r.readByte("protocol level")
        let version: ProtocolVersion
        if name.elementsEqual("MQTT".utf8) {
            guard level == 4 || level == 5 else {
                throw CodecError(
                    .unsupportedProtocolVersion, "protocol level \(level) is not supported", rule: "MQTT-3.1.2-2")
            }
            version = ProtocolVersion(rawValue: level)!
        } else if name.elementsEqual("MQIsdp".utf8) {
            guard level == 3 else {
                throw CodecError(
                    .unsupportedProtocolVersion, "protocol level \(level) is not supported with MQIsdp",
                    rule: "MQTT-3.1.2-2")
            }
            version = .v3_1
        } else {
            throw CodecError(
                .unsupportedProtocolVersion,
                "protocol name \"\(String(decoding: name, as: UTF8.self))\" is neither MQTT nor MQIsdp",
                rule: "MQTT-3.1.2-1")
        }
        r = ByteReader(body, version: version)
        r.index = name.endIndex + 1

        let flags = try r.readByte("connect flags")
        if flags & 0x01 != 0 {
            throw CodecError.malformed("CONNECT reserved flag is set", rule: "MQTT-3.1.2-3")
        }
        let cleanStart = flags & 0x02 != 0
        let willFlag = flags & 0x04 != 0
        let willQoSBits = (flags >> 3) & 0x03
        let willRetain = flags & 0x20 != 0
        let passwordFlag = flags & 0x40 != 0
        let usernameFlag = flags & 0x80 != 0
        if !willFlag {
            if willQoSBits != 0 {
                throw CodecError.malformed(
                    "will QoS is set without the will flag", rule: version == .v5 ? "MQTT-3.1.2-11" : "MQTT-3.1.2-13")
            }
            if willRetain {
                throw CodecError.malformed(
                    "will retain is set without the will flag", rule: version == .v5 ? "MQTT-3.1.2-13" : "MQTT-3.1.2-15")
            }
        }
        guard let willQoS = QoS(rawValue: willQoSBits) else {
            throw CodecError.malformed("will QoS is 3", rule: version == .v5 ? "MQTT-3.1.2-12" : "MQTT-3.1.2-14")
        }
        if version != .v5 && passwordFlag && !usernameFlag {
            throw CodecError.malformed("password flag is set without the user name flag", rule: "MQTT-3.1.2-22")
        }
        let keepAlive = try r.readUInt16("keep alive")
        let properties = version == .v5 ? try Properties.decode(&r, context: .connect) : Properties()

        let clientID = try r.readString("client identifier")
        var will: Will? = nil
        if willFlag {
            let willProperties = version == .v5 ? try Properties.decode(&r, context: .will) : Properties()
            let topic = try r.readUTF8Bytes("will topic")
            try TopicRules.validateName(topic, version: version, what: "will topic")
            let payload = try r.readBinary("will payload")
            if willProperties.payloadFormatIndicator == true && !UTF8Validation.isValid(payload) {
                throw CodecError(.payloadFormatInvalid, "will payload is marked UTF-8 but is not")
            }
            will = Will(topic: ByteString(topic), payload: payload, qos: willQoS, retain: willRetain,
                        properties: willProperties)
        }
        let username = usernameFlag ? try r.readString("user name") : nil
        let password = passwordFlag ? try r.readBinary("password") : nil
        if !r.isAtEnd {
            throw CodecError.malformed("CONNECT has \(r.remaining) bytes after its payload")
        }
        return ConnectPacket(version: version, clientID: clientID, cleanStart: cleanStart, keepAlive: keepAlive,
                             username: username, password: password, will: will, properties: properties)
    }

    func encode(into out: inout [UInt8]) throws(CodecError) {
        if version != .v5 && password != nil && username == nil {
            throw CodecError.malformed("a 3.x CONNECT cannot carry a password without a user name", rule: "MQTT-3.1.2-22")
        }
        try properties.validateForEncoding()
        try will?.properties.validateForEncoding()
        let name = version.protocolName
        var size = 2 + name.utf8.count + 1 + 1 + 2
        var propLength = 0
        var willPropLength = 0
        if version == .v5 {
            propLength = properties.encodedLength(context: .connect)
            size += variableIntSize(propLength) + propLength
        }
        try checkFits(clientID.utf8.count, "client identifier")
        size += 2 + clientID.utf8.count
        if let will {
            if version == .v5 {
                willPropLength = will.properties.encodedLength(context: .will)
                size += variableIntSize(willPropLength) + willPropLength
            }
            try checkFits(will.topic.count, "will topic")
            try checkFits(will.payload.count, "will payload")
            size += 4 + will.topic.count + will.payload.count
        }
        if let username {
            try checkFits(username.utf8.count, "user name")
            size += 2 + username.utf8.count
        }
        if let password {
            try checkFits(password.count, "password")
            size += 2 + password.count
        }
        try writeFixedHeader(into: &out, PacketType.connect.rawValue << 4, remaining: size)
        out.appendString(name)
        out.append(version.rawValue)
        var flags: UInt8 = cleanStart ? 0x02 : 0
        if let will {
            flags |= 0x04 | will.qos.rawValue << 3
            if will.retain { flags |= 0x20 }
        }
        if password != nil { flags |= 0x40 }
        if username != nil { flags |= 0x80 }
        out.append(flags)
        out.appendUInt16(keepAlive)
        if version == .v5 { properties.encode(into: &out, context: .connect, length: propLength) }
        out.appendString(clientID)
        if let will {
            if version == .v5 { will.properties.encode(into: &out, context: .will, length: willPropLength) }
            out.appendBinary(will.topic.bytes)
            out.appendBinary(will.payload)
        }
        if let username { out.appendString(username) }
        if let password { out.appendBinary(password) }
    }
}

// MARK: - Helpers shared by the encoders

@inline(__always)
func checkFits(_ count: Int, _ what: StaticString) throws(CodecError) {
    if count > 65_535 { throw CodecError.malformed("\(what) is \(count) bytes; at most 65535 fit") }
}

/// Writes the first byte and the remaining length, reserving room for the body.
@inline(__always)
func writeFixedHeader(into out: inout [UInt8], _ first: UInt8, remaining: Int) throws(CodecError) {
    guard remaining <= maximumVariableInt else {
        throw CodecError(.packetTooLarge, "packet body of \(remaining) bytes exceeds the MQTT maximum")
    }
    let needed = out.count + 5 + remaining
    // Grow geometrically: reserving the exact size on every append would copy each time.
    if out.capacity < needed { out.reserveCapacity(Swift.max(needed, out.capacity * 2)) }
    out.append(first)
    out.appendVariableInt(remaining)
}
