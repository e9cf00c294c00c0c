/// A User Property: a name and value pair, passed through unchanged.
public struct UserProperty: Hashable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Property identifiers of MQTT 5.0 section 2.2.2.2.
public enum PropertyID: UInt8, Sendable, CaseIterable {
    case payloadFormatIndicator = 0x01
    case messageExpiryInterval = 0x02
    case contentType = 0x03
    case responseTopic = 0x08
    case correlationData = 0x09
    case subscriptionIdentifier = 0x0B
    case sessionExpiryInterval = 0x11
    case assignedClientIdentifier = 0x12
    case serverKeepAlive = 0x13
    case authenticationMethod = 0x15
    case authenticationData = 0x16
    case requestProblemInformation = 0x17
    case willDelayInterval = 0x18
    case requestResponseInformation = 0x19
    case responseInformation = 0x1A
    case serverReference = 0x1C
    case reasonString = 0x1F
    case receiveMaximum = 0x21
    case topicAliasMaximum = 0x22
    case topicAlias = 0x23
    case maximumQoS = 0x24
    case retainAvailable = 0x25
    case userProperty = 0x26
    case maximumPacketSize = 0x27
    case wildcardSubscriptionAvailable = 0x28
    case subscriptionIdentifierAvailable = 0x29
    case sharedSubscriptionAvailable = 0x2A
}

/// Where a property list appears; each place allows its own set of properties.
public enum PropertyContext: Sendable {
    case connect, will, connack, publish, puback, pubrec, pubrel, pubcomp
    case subscribe, suback, unsubscribe, unsuback, disconnect, auth

    /// The properties MQTT 5.0 allows here (section 2.2.2.2, table of identifiers).
    var allowed: ByteSet {
        switch self {
        case .connect: return [0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27]
        case .will: return [0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26]
        case .connack:
            return [
                0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27,
                0x28, 0x29, 0x2A,
            ]
        case .publish: return [0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26]
        case .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback: return [0x1F, 0x26]
        case .subscribe: return [0x0B, 0x26]
        case .unsubscribe: return [0x26]
        case .disconnect: return [0x11, 0x1C, 0x1F, 0x26]
        case .auth: return [0x15, 0x16, 0x1F, 0x26]
        }
    }
}

/// The MQTT 5.0 properties of one packet. Unset properties are `nil` (or empty).
/// The decoder only fills those the packet may carry; the encoder only writes those.
public struct Properties: Equatable, Sendable {
    public var payloadFormatIndicator: Bool?
    public var messageExpiryInterval: UInt32?
    public var contentType: String?
    public var responseTopic: String?
    public var correlationData: ArraySlice<UInt8>?
    /// Several in a PUBLISH from the server, at most one in SUBSCRIBE; each 1...268,435,455.
    public var subscriptionIdentifiers: [UInt32] = []
    public var sessionExpiryInterval: UInt32?
    public var assignedClientIdentifier: String?
    public var serverKeepAlive: UInt16?
    public var authenticationMethod: String?
    public var authenticationData: ArraySlice<UInt8>?
    public var requestProblemInformation: Bool?
    public var willDelayInterval: UInt32?
    public var requestResponseInformation: Bool?
    public var responseInformation: String?
    public var serverReference: String?
    public var reasonString: String?
    public var receiveMaximum: UInt16?
    public var topicAliasMaximum: UInt16?
    public var topicAlias: UInt16?
    public var maximumQoS: QoS?
    public var retainAvailable: Bool?
    public var userProperties: [UserProperty] = []
    public var maximumPacketSize: UInt32?
    public var wildcardSubscriptionAvailable: Bool?
    public var subscriptionIdentifierAvailable: Bool?
    public var sharedSubscriptionAvailable: Bool?

    public init() {}

    public static let none = Properties()

    /// True when no property is set.
    public var isEmpty: Bool { self == Properties.none }
}

// MARK: - Decoding

extension Properties {
    /// Reads a property length and the list it announces, checking every identifier
    /// against `context`, and the rules on duplicates and values.
    static func decode(_ reader: inout ByteReader, context: PropertyContext) throws(CodecError) -> Properties {
        let length = Int(try reader.readVariableInt("property length"))
        var p = Properties()
        if length == 0 { return p }
        guard length <= reader.remaining else {
            throw CodecError.malformed("property length \(length) runs past the end of the packet")
        }
        let stop = reader.index + length
        let allowed = context.allowed
        var seen = ByteSet()
        while reader.index < stop {
            let rawID = try reader.readVariableInt("property identifier")
            guard rawID <= 0x7F, let id = PropertyID(rawValue: UInt8(rawID)) else {
                throw CodecError.malformed("unknown property identifier 0x\(String(rawID, radix: 16))")
            }
            let byte = id.rawValue
            guard allowed.contains(byte) else {
                throw CodecError.protocolError("property \(id) is not allowed in \(context)")
            }
            let repeatable = id == .userProperty || (id == .subscriptionIdentifier && context == .publish)
            if seen.contains(byte) && !repeatable {
                throw CodecError.protocolError("property \(id) appears more than once in \(context)")
            }
            seen.insert(byte)
            switch id {
            case .payloadFormatIndicator:
                p.payloadFormatIndicator = try readFlag(&reader, id)
            case .messageExpiryInterval:
                p.messageExpiryInterval = try reader.readUInt32("message expiry interval")
            case .contentType:
                p.contentType = try reader.readString("content type")
            case .responseTopic:
                let topic = try reader.readUTF8Bytes("response topic")
                try TopicRules.validateName(topic, version: .v5, what: "response topic")
                p.responseTopic = String(decoding: topic, as: UTF8.self)
            case .correlationData:
                p.correlationData = try reader.readBinary("correlation data")
            case .subscriptionIdentifier:
                let value = try reader.readVariableInt("subscription identifier")
                guard value != 0 else {
                    throw CodecError.protocolError("subscription identifier 0", rule: "MQTT-3.8.2.1.2")
                }
                p.subscriptionIdentifiers.append(value)
            case .sessionExpiryInterval:
                p.sessionExpiryInterval = try reader.readUInt32("session expiry interval")
            case .assignedClientIdentifier:
                p.assignedClientIdentifier = try reader.readString("assigned client identifier")
            case .serverKeepAlive:
                p.serverKeepAlive = try reader.readUInt16("server keep alive")
            case .authenticationMethod:
                p.authenticationMethod = try reader.readString("authentication method")
            case .authenticationData:
                p.authenticationData = try reader.readBinary("authentication data")
            case .requestProblemInformation:
                p.requestProblemInformation = try readFlag(&reader, id)
            case .willDelayInterval:
                p.willDelayInterval = try reader.readUInt32("will delay interval")
            case .requestResponseInformation:
                p.requestResponseInformation = try readFlag(&reader, id)
            case .responseInformation:
                p.responseInformation = try reader.readString("response information")
            case .serverReference:
                p.serverReference = try reader.readString("server reference")
            case .reasonString:
                p.reasonString = try reader.readString("reason string")
            case .receiveMaximum:
                let value = try reader.readUInt16("receive maximum")
                guard value != 0 else { throw CodecError.protocolError("receive maximum 0") }
                p.receiveMaximum = value
            case .topicAliasMaximum:
                p.topicAliasMaximum = try reader.readUInt16("topic alias maximum")
            case .topicAlias:
                let value = try reader.readUInt16("topic alias")
                guard value != 0 else {
                    throw CodecError(.topicAliasInvalid, "topic alias 0", rule: "MQTT-3.3.2-8")
                }
                p.topicAlias = value
            case .maximumQoS:
                let value = try reader.readByte("maximum QoS")
                guard value <= 1 else { throw CodecError.protocolError("maximum QoS \(value)") }
                p.maximumQoS = QoS(rawValue: value)
            case .retainAvailable:
                p.retainAvailable = try readFlag(&reader, id)
            case .userProperty:
                let name = try reader.readString("user property name")
                let value = try reader.readString("user property value")
                p.userProperties.append(UserProperty(name, value))
            case .maximumPacketSize:
                let value = try reader.readUInt32("maximum packet size")
                guard value != 0 else { throw CodecError.protocolError("maximum packet size 0") }
                p.maximumPacketSize = value
            case .wildcardSubscriptionAvailable:
                p.wildcardSubscriptionAvailable = try readFlag(&reader, id)
            case .subscriptionIdentifierAvailable:
                p.subscriptionIdentifierAvailable = try readFlag(&reader, id)
            case .sharedSubscriptionAvailable:
                p.sharedSubscriptionAvailable = try readFlag(&reader, id)
            }
            guard reader.index <= stop else {
                throw CodecError.malformed("property \(id) runs past the property length")
            }
        }
        if context == .connect && p.authenticationData != nil && p.authenticationMethod == nil {
            throw CodecError.protocolError("authentication data without an authentication method")
        }
        return p
    }

    private static func readFlag(_ reader: inout ByteReader, _ id: PropertyID) throws(CodecError) -> Bool {
        let value = try reader.readByte("property value")
        guard value <= 1 else { throw CodecError.protocolError("property \(id) has value \(value); only 0 or 1") }
        return value == 1
    }
}

// MARK: - Encoding

extension Properties {
    /// The bytes of the property list alone (without its length prefix), for the
    /// properties that `context` allows.
    func encodedLength(context: PropertyContext) -> Int {
        if isEmptyFast { return 0 }
        let allowed = context.allowed
        var n = 0
        @inline(__always) func has(_ id: PropertyID) -> Bool { allowed.contains(id.rawValue) }
        if payloadFormatIndicator != nil, has(.payloadFormatIndicator) { n += 2 }
        if messageExpiryInterval != nil, has(.messageExpiryInterval) { n += 5 }
        if let v = contentType, has(.contentType) { n += 3 + v.utf8.count }
        if let v = responseTopic, has(.responseTopic) { n += 3 + v.utf8.count }
        if let v = correlationData, has(.correlationData) { n += 3 + v.count }
        if has(.subscriptionIdentifier) {
            for id in subscriptionIdentifiers { n += 1 + variableIntSize(Int(id)) }
        }
        if sessionExpiryInterval != nil, has(.sessionExpiryInterval) { n += 5 }
        if let v = assignedClientIdentifier, has(.assignedClientIdentifier) { n += 3 + v.utf8.count }
        if serverKeepAlive != nil, has(.serverKeepAlive) { n += 3 }
        if let v = authenticationMethod, has(.authenticationMethod) { n += 3 + v.utf8.count }
        if let v = authenticationData, has(.authenticationData) { n += 3 + v.count }
        if requestProblemInformation != nil, has(.requestProblemInformation) { n += 2 }
        if willDelayInterval != nil, has(.willDelayInterval) { n += 5 }
        if requestResponseInformation != nil, has(.requestResponseInformation) { n += 2 }
        if let v = responseInformation, has(.responseInformation) { n += 3 + v.utf8.count }
        if let v = serverReference, has(.serverReference) { n += 3 + v.utf8.count }
        if let v = reasonString, has(.reasonString) { n += 3 + v.utf8.count }
        if receiveMaximum != nil, has(.receiveMaximum) { n += 3 }
        if topicAliasMaximum != nil, has(.topicAliasMaximum) { n += 3 }
        if topicAlias != nil, has(.topicAlias) { n += 3 }
        if maximumQoS != nil, has(.maximumQoS) { n += 2 }
        if retainAvailable != nil, has(.retainAvailable) { n += 2 }
        for u in userProperties { n += 5 + u.name.utf8.count + u.value.utf8.count }
        if maximumPacketSize != nil, has(.maximumPacketSize) { n += 5 }
        if wildcardSubscriptionAvailable != nil, has(.wildcardSubscriptionAvailable) { n += 2 }
        if subscriptionIdentifierAvailable != nil, has(.subscriptionIdentifierAvailable) { n += 2 }
        if sharedSubscriptionAvailable != nil, has(.sharedSubscriptionAvailable) { n += 2 }
        return n
    }

    /// A quick test that skips the work for the common empty list.
    var isEmptyFast: Bool {
        payloadFormatIndicator == nil && messageExpiryInterval == nil && contentType == nil
            && responseTopic == nil && correlationData == nil && subscriptionIdentifiers.isEmpty
            && sessionExpiryInterval == nil && assignedClientIdentifier == nil && serverKeepAlive == nil
            && authenticationMethod == nil && authenticationData == nil && requestProblemInformation == nil
            && willDelayInterval == nil && requestResponseInformation == nil && responseInformation == nil
            && serverReference == nil && reasonString == nil && receiveMaximum == nil
            && topicAliasMaximum == nil && topicAlias == nil && maximumQoS == nil && retainAvailable == nil
            && userProperties.isEmpty && maximumPacketSize == nil && wildcardSubscriptionAvailable == nil
            && subscriptionIdentifierAvailable == nil && sharedSubscriptionAvailable == nil
    }

    /// Checks that every string and binary value fits its two-byte length.
    func validateForEncoding() throws(CodecError) {
        func fits(_ count: Int?, _ what: String) throws(CodecError) {
            if let count, count > 65_535 {
                throw CodecError.malformed("\(what) is \(count) bytes; at most 65535 fit")
            }
        }
        try fits(contentType?.utf8.count, "content type")
        try fits(responseTopic?.utf8.count, "response topic")
        try fits(correlationData?.count, "correlation data")
        try fits(assignedClientIdentifier?.utf8.count, "assigned client identifier")
        try fits(authenticationMethod?.utf8.count, "authentication method")
        try fits(authenticationData?.count, "authentication data")
        try fits(responseInformation?.utf8.count, "response information")
        try fits(serverReference?.utf8.count, "server reference")
        try fits(reasonString?.utf8.count, "reason string")
        for u in userProperties {
            try fits(u.name.utf8.count, "user property name")
            try fits(u.value.utf8.count, "user property value")
        }
        for id in subscriptionIdentifiers where id == 0 || id > maximumVariableInt {
            throw CodecError.protocolError("subscription identifier \(id) is out of range")
        }
    }

    /// Writes the property length and the list; `length` is `encodedLength(context:)`.
    func encode(into out: inout [UInt8], context: PropertyContext, length: Int) {
        out.appendVariableInt(length)
        if length == 0 { return }
        let allowed = context.allowed
        @inline(__always) func has(_ id: PropertyID) -> Bool { allowed.contains(id.rawValue) }
        if let v = payloadFormatIndicator, has(.payloadFormatIndicator) { out.append(0x01); out.append(v ? 1 : 0) }
        if let v = messageExpiryInterval, has(.messageExpiryInterval) { out.append(0x02); out.appendUInt32(v) }
        if let v = contentType, has(.contentType) { out.append(0x03); out.appendString(v) }
        if let v = responseTopic, has(.responseTopic) { out.append(0x08); out.appendString(v) }
        if let v = correlationData, has(.correlationData) { out.append(0x09); out.appendBinary(v) }
        if has(.subscriptionIdentifier) {
            for id in subscriptionIdentifiers { out.append(0x0B); out.appendVariableInt(Int(id)) }
        }
        if let v = sessionExpiryInterval, has(.sessionExpiryInterval) { out.append(0x11); out.appendUInt32(v) }
        if let v = assignedClientIdentifier, has(.assignedClientIdentifier) { out.append(0x12); out.appendString(v) }
        if let v = serverKeepAlive, has(.serverKeepAlive) { out.append(0x13); out.appendUInt16(v) }
        if let v = authenticationMethod, has(.authenticationMethod) { out.append(0x15); out.appendString(v) }
        if let v = authenticationData, has(.authenticationData) { out.append(0x16); out.appendBinary(v) }
        if let v = requestProblemInformation, has(.requestProblemInformation) { out.append(0x17); out.append(v ? 1 : 0) }
        if let v = willDelayInterval, has(.willDelayInterval) { out.append(0x18); out.appendUInt32(v) }
        if let v = requestResponseInformation, has(.requestResponseInformation) { out.append(0x19); out.append(v ? 1 : 0) }
        if let v = responseInformation, has(.responseInformation) { out.append(0x1A); out.appendString(v) }
        if let v = serverReference, has(.serverReference) { out.append(0x1C); out.appendString(v) }
        if let v = reasonString, has(.reasonString) { out.append(0x1F); out.appendString(v) }
        if let v = receiveMaximum, has(.receiveMaximum) { out.append(0x21); out.appendUInt16(v) }
        if let v = topicAliasMaximum, has(.topicAliasMaximum) { out.append(0x22); out.appendUInt16(v) }
        if let v = topicAlias, has(.topicAlias) { out.append(0x23); out.appendUInt16(v) }
        if let v = maximumQoS, has(.maximumQoS) { out.append(0x24); out.append(v.rawValue) }
        if let v = retainAvailable, has(.retainAvailable) { out.append(0x25); out.append(v ? 1 : 0) }
        for u in userProperties { out.append(0x26); out.appendString(u.name); out.appendString(u.value) }
        if let v = maximumPacketSize, has(.maximumPacketSize) { out.append(0x27); out.appendUInt32(v) }
        if let v = wildcardSubscriptionAvailable, has(.wildcardSubscriptionAvailable) { out.append(0x28); out.append(v ? 1 : 0) }
        if let v = subscriptionIdentifierAvailable, has(.subscriptionIdentifierAvailable) { out.append(0x29); out.append(v ? 1 : 0) }
        if let v = sharedSubscriptionAvailable, has(.sharedSubscriptionAvailable) { out.append(0x2A); out.append(v ? 1 : 0) }
    }

    /// The same properties with only those `context` allows; what the decoder would return.
    public func filtered(for context: PropertyContext) -> Properties {
        let allowed = context.allowed
        var p = Properties()
        @inline(__always) func has(_ id: PropertyID) -> Bool { allowed.contains(id.rawValue) }
        if has(.payloadFormatIndicator) { p.payloadFormatIndicator = payloadFormatIndicator }
        if has(.messageExpiryInterval) { p.messageExpiryInterval = messageExpiryInterval }
        if has(.contentType) { p.contentType = contentType }
        if has(.responseTopic) { p.responseTopic = responseTopic }
        if has(.correlationData) { p.correlationData = correlationData }
        if has(.subscriptionIdentifier) { p.subscriptionIdentifiers = subscriptionIdentifiers }
        if has(.sessionExpiryInterval) { p.sessionExpiryInterval = sessionExpiryInterval }
        if has(.assignedClientIdentifier) { p.assignedClientIdentifier = assignedClientIdentifier }
        if has(.serverKeepAlive) { p.serverKeepAlive = serverKeepAlive }
        if has(.authenticationMethod) { p.authenticationMethod = authenticationMethod }
        if has(.authenticationData) { p.authenticationData = authenticationData }
        if has(.requestProblemInformation) { p.requestProblemInformation = requestProblemInformation }
        if has(.willDelayInterval) { p.willDelayInterval = willDelayInterval }
        if has(.requestResponseInformation) { p.requestResponseInformation = requestResponseInformation }
        if has(.responseInformation) { p.responseInformation = responseInformation }
        if has(.serverReference) { p.serverReference = serverReference }
        if has(.reasonString) { p.reasonString = reasonString }
        if has(.receiveMaximum) { p.receiveMaximum = receiveMaximum }
        if has(.topicAliasMaximum) { p.topicAliasMaximum = topicAliasMaximum }
        if has(.topicAlias) { p.topicAlias = topicAlias }
        if has(.maximumQoS) { p.maximumQoS = maximumQoS }
        if has(.retainAvailable) { p.retainAvailable = retainAvailable }
        p.userProperties = userProperties
        if has(.maximumPacketSize) { p.maximumPacketSize = maximumPacketSize }
        if has(.wildcardSubscriptionAvailable) { p.wildcardSubscriptionAvailable = wildcardSubscriptionAvailable }
        if has(.subscriptionIdentifierAvailable) { p.subscriptionIdentifierAvailable = subscriptionIdentifierAvailable }
        if has(.sharedSubscriptionAvailable) { p.sharedSubscriptionAvailable = sharedSubscriptionAvailable }
        return p
    }
}
