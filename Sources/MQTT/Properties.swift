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
    @inline(__always)
    var allowed: ByteSet {
        switch self {
        case .connect: return AllowedProperties.connect
        case .will: return AllowedProperties.will
        case .connack: return AllowedProperties.connack
        case .publish: return AllowedProperties.publish
        case .puback, .pubrec, .pubrel, .pubcomp, .suback, .unsuback: return AllowedProperties.acks
        case .subscribe: return AllowedProperties.subscribe
        case .unsubscribe: return AllowedProperties.unsubscribe
        case .disconnect: return AllowedProperties.disconnect
        case .auth: return AllowedProperties.auth
        }
    }
}

/// The identifiers each property context allows, built once.
enum AllowedProperties {
    static let connect: ByteSet = [0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27]
    static let will: ByteSet = [0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26]
    static let connack: ByteSet = [
        0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
    ]
    static let publish: ByteSet = [0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26]
    static let acks: ByteSet = [0x1F, 0x26]
    static let subscribe: ByteSet = [0x0B, 0x26]
    static let unsubscribe: ByteSet = [0x26]
    static let disconnect: ByteSet = [0x11, 0x1C, 0x1F, 0x26]
    static let auth: ByteSet = [0x15, 0x16, 0x1F, 0x26]
}

/// The stored values of a property list.
struct PropertyFields: Equatable, Sendable {
    var contentType: String?
    var responseTopic: String?
    var correlationData: ArraySlice<UInt8>?
    var subscriptionIdentifiers: [UInt32] = []
    var sessionExpiryInterval: UInt32?
    var assignedClientIdentifier: String?
    var serverKeepAlive: UInt16?
    var authenticationMethod: String?
    var authenticationData: ArraySlice<UInt8>?
    var requestProblemInformation: Bool?
    var willDelayInterval: UInt32?
    var requestResponseInformation: Bool?
    var responseInformation: String?
    var serverReference: String?
    var reasonString: String?
    var receiveMaximum: UInt16?
    var topicAliasMaximum: UInt16?
    var maximumQoS: QoS?
    var retainAvailable: Bool?
    var userProperties: [UserProperty] = []
    var maximumPacketSize: UInt32?
    var wildcardSubscriptionAvailable: Bool?
    var subscriptionIdentifierAvailable: Bool?
    var sharedSubscriptionAvailable: Bool?
}

/// The MQTT 5.0 properties of one packet. Unset properties are `nil` (or empty).
/// The decoder only fills those the packet may carry; the encoder only writes those.
///
/// The values live in a shared copy-on-write box, and an empty list has none, so a
/// packet without properties carries one word for them and copying a packet is cheap.
public struct Properties: Equatable, @unchecked Sendable {
    final class Box: @unchecked Sendable {
        var fields: PropertyFields
        init(_ fields: PropertyFields) { self.fields = fields }
    }

    var box: Box?

    public init() {}

    init(fields: PropertyFields) {
        box = fields == PropertyFields() ? nil : Box(fields)
    }

    /// True when no boxed (less common) property is set.
    var boxIsEmpty: Bool { box == nil || box!.fields == PropertyFields() }

    public static let none = Properties()

    /// True when no property is set.
    public var isEmpty: Bool {
        payloadFormatIndicator == nil && messageExpiryInterval == nil && topicAlias == nil && boxIsEmpty
    }

    @inline(__always)
    private mutating func mutate(_ change: (inout PropertyFields) -> Void) {
        if box == nil {
            box = Box(PropertyFields())
        } else if !isKnownUniquelyReferenced(&box!) {
            box = Box(box!.fields)
        }
        change(&box!.fields)
    }

    public static func == (lhs: Properties, rhs: Properties) -> Bool {
        guard lhs.payloadFormatIndicator == rhs.payloadFormatIndicator,
            lhs.messageExpiryInterval == rhs.messageExpiryInterval, lhs.topicAlias == rhs.topicAlias
        else { return false }
        if lhs.box === rhs.box { return true }
        return (lhs.box?.fields ?? PropertyFields()) == (rhs.box?.fields ?? PropertyFields())
    }

    // The numeric properties a PUBLISH most often carries are stored inline, so
    // decoding such a PUBLISH allocates nothing.
    public var payloadFormatIndicator: Bool?

    public var messageExpiryInterval: UInt32?

    public var contentType: String? {
        get { box?.fields.contentType }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.contentType = newValue }
        }
    }

    public var responseTopic: String? {
        get { box?.fields.responseTopic }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.responseTopic = newValue }
        }
    }

    public var correlationData: ArraySlice<UInt8>? {
        get { box?.fields.correlationData }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.correlationData = newValue }
        }
    }

    public var subscriptionIdentifiers: [UInt32] {
        get { box?.fields.subscriptionIdentifiers ?? [] }
        set {
            if box == nil && newValue.isEmpty { return }
            mutate { $0.subscriptionIdentifiers = newValue }
        }
    }

    public var sessionExpiryInterval: UInt32? {
        get { box?.fields.sessionExpiryInterval }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.sessionExpiryInterval = newValue }
        }
    }

    public var assignedClientIdentifier: String? {
        get { box?.fields.assignedClientIdentifier }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.assignedClientIdentifier = newValue }
        }
    }

    public var serverKeepAlive: UInt16? {
        get { box?.fields.serverKeepAlive }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.serverKeepAlive = newValue }
        }
    }

    public var authenticationMethod: String? {
        get { box?.fields.authenticationMethod }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.authenticationMethod = newValue }
        }
    }

    public var authenticationData: ArraySlice<UInt8>? {
        get { box?.fields.authenticationData }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.authenticationData = newValue }
        }
    }

    public var requestProblemInformation: Bool? {
        get { box?.fields.requestProblemInformation }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.requestProblemInformation = newValue }
        }
    }

    public var willDelayInterval: UInt32? {
        get { box?.fields.willDelayInterval }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.willDelayInterval = newValue }
        }
    }

    public var requestResponseInformation: Bool? {
        get { box?.fields.requestResponseInformation }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.requestResponseInformation = newValue }
        }
    }

    public var responseInformation: String? {
        get { box?.fields.responseInformation }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.responseInformation = newValue }
        }
    }

    public var serverReference: String? {
        get { box?.fields.serverReference }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.serverReference = newValue }
        }
    }

    public var reasonString: String? {
        get { box?.fields.reasonString }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.reasonString = newValue }
        }
    }

    public var receiveMaximum: UInt16? {
        get { box?.fields.receiveMaximum }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.receiveMaximum = newValue }
        }
    }

    public var topicAliasMaximum: UInt16? {
        get { box?.fields.topicAliasMaximum }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.topicAliasMaximum = newValue }
        }
    }

    public var topicAlias: UInt16?

    public var maximumQoS: QoS? {
        get { box?.fields.maximumQoS }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.maximumQoS = newValue }
        }
    }

    public var retainAvailable: Bool? {
        get { box?.fields.retainAvailable }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.retainAvailable = newValue }
        }
    }

    public var userProperties: [UserProperty] {
        get { box?.fields.userProperties ?? [] }
        set {
            if box == nil && newValue.isEmpty { return }
            mutate { $0.userProperties = newValue }
        }
    }

    public var maximumPacketSize: UInt32? {
        get { box?.fields.maximumPacketSize }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.maximumPacketSize = newValue }
        }
    }

    public var wildcardSubscriptionAvailable: Bool? {
        get { box?.fields.wildcardSubscriptionAvailable }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.wildcardSubscriptionAvailable = newValue }
        }
    }

    public var subscriptionIdentifierAvailable: Bool? {
        get { box?.fields.subscriptionIdentifierAvailable }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.subscriptionIdentifierAvailable = newValue }
        }
    }

    public var sharedSubscriptionAvailable: Bool? {
        get { box?.fields.sharedSubscriptionAvailable }
        set {
            if box == nil && newValue == nil { return }
            mutate { $0.sharedSubscriptionAvailable = newValue }
        }
    }
}

// MARK: - Decoding

extension Properties {
    /// Reads a property length and the list it announces, checking every identifier
    /// against `context`, and the rules on duplicates and values.
    static func decode(_ reader: inout ByteReader, context: PropertyContext) throws(CodecError) -> Properties {
        let length = Int(try reader.readVariableInt("property length"))
        var result = Properties()
        if length == 0 { return result }
        // Less common properties go to a box, made when the first one appears.
        var box: Box? = nil
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
                // 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
                throw CodecError.malformed("property \(id) is not allowed in \(context)")
            }
            let repeatable = id == .userProperty || (id == .subscriptionIdentifier && context == .publish)
            if seen.contains(byte) && !repeatable {
                throw CodecError.protocolError("property \(id) appears more than once in \(context)")
            }
            seen.insert(byte)
            switch id {
            case .payloadFormatIndicator:
                result.payloadFormatIndicator = try readFlag(&reader, id)
            case .messageExpiryInterval:
                result.messageExpiryInterval = try reader.readUInt32("message expiry interval")
            case .contentType:
                ensure(&box).fields.contentType = try reader.readString("content type")
            case .responseTopic:
                let topic = try reader.readUTF8Bytes("response topic")
                try TopicRules.validateName(topic, version: .v5, what: "response topic")
                ensure(&box).fields.responseTopic = String(decoding: topic, as: UTF8.self)
            case .correlationData:
                ensure(&box).fields.correlationData = try reader.readBinary("correlation data")
            case .subscriptionIdentifier:
                let value = try reader.readVariableInt("subscription identifier")
                guard value != 0 else {
                    throw CodecError.protocolError("subscription identifier 0")
                }
                ensure(&box).fields.subscriptionIdentifiers.append(value)
            case .sessionExpiryInterval:
                ensure(&box).fields.sessionExpiryInterval = try reader.readUInt32("session expiry interval")
            case .assignedClientIdentifier:
                ensure(&box).fields.assignedClientIdentifier = try reader.readString("assigned client identifier")
            case .serverKeepAlive:
                ensure(&box).fields.serverKeepAlive = try reader.readUInt16("server keep alive")
            case .authenticationMethod:
                ensure(&box).fields.authenticationMethod = try reader.readString("authentication method")
            case .authenticationData:
                ensure(&box).fields.authenticationData = try reader.readBinary("authentication data")
            case .requestProblemInformation:
                ensure(&box).fields.requestProblemInformation = try readFlag(&reader, id)
            case .willDelayInterval:
                ensure(&box).fields.willDelayInterval = try reader.readUInt32("will delay interval")
            case .requestResponseInformation:
                ensure(&box).fields.requestResponseInformation = try readFlag(&reader, id)
            case .responseInformation:
                ensure(&box).fields.responseInformation = try reader.readString("response information")
            case .serverReference:
                ensure(&box).fields.serverReference = try reader.readString("server reference")
            case .reasonString:
                ensure(&box).fields.reasonString = try reader.readString("reason string")
            case .receiveMaximum:
                let value = try reader.readUInt16("receive maximum")
                guard value != 0 else { throw CodecError.protocolError("receive maximum 0") }
                ensure(&box).fields.receiveMaximum = value
            case .topicAliasMaximum:
                ensure(&box).fields.topicAliasMaximum = try reader.readUInt16("topic alias maximum")
            case .topicAlias:
                let value = try reader.readUInt16("topic alias")
                guard value != 0 else {
                    throw CodecError(.topicAliasInvalid, "topic alias 0", rule: "MQTT-3.3.2-8")
                }
                result.topicAlias = value
            case .maximumQoS:
                let value = try reader.readByte("maximum QoS")
                guard value <= 1 else { throw CodecError.protocolError("maximum QoS \(value)") }
                ensure(&box).fields.maximumQoS = QoS(rawValue: value)
            case .retainAvailable:
                ensure(&box).fields.retainAvailable = try readFlag(&reader, id)
            case .userProperty:
                let name = try reader.readString("user property name")
                let value = try reader.readString("user property value")
                ensure(&box).fields.userProperties.append(UserProperty(name, value))
            case .maximumPacketSize:
                let value = try reader.readUInt32("maximum packet size")
                guard value != 0 else { throw CodecError.protocolError("maximum packet size 0") }
                ensure(&box).fields.maximumPacketSize = value
            case .wildcardSubscriptionAvailable:
                ensure(&box).fields.wildcardSubscriptionAvailable = try readFlag(&reader, id)
            case .subscriptionIdentifierAvailable:
                ensure(&box).fields.subscriptionIdentifierAvailable = try readFlag(&reader, id)
            case .sharedSubscriptionAvailable:
                ensure(&box).fields.sharedSubscriptionAvailable = try readFlag(&reader, id)
            }
            guard reader.index <= stop else {
                throw CodecError.malformed("property \(id) runs past the property length")
            }
        }
        if context == .connect, let box, box.fields.authenticationData != nil && box.fields.authenticationMethod == nil {
            throw CodecError.protocolError("authentication data without an authentication method")
        }
        result.box = box
        return result
    }

    @inline(__always)
    private static func ensure(_ box: inout Box?) -> Box {
        if let box { return box }
        let made = Box(PropertyFields())
        box = made
        return made
    }

    private static func readFlag(_ reader: inout ByteReader, _ id: PropertyID) throws(CodecError) -> Bool {
        let value = try reader.readByte("property value")
        guard value <= 1 else { throw CodecError.protocolError("property \(id) has value \(value); only 0 or 1") }
        return value == 1
    }
}

// MARK: - Encoding

extension PropertyFields {
    /// The bytes of the property list alone (without its length prefix), for the
    /// properties that `context` allows.
    func encodedLength(context: PropertyContext) -> Int {
        let allowed = context.allowed
        var n = 0
        @inline(__always) func has(_ id: PropertyID) -> Bool { allowed.contains(id.rawValue) }
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
        if maximumQoS != nil, has(.maximumQoS) { n += 2 }
        if retainAvailable != nil, has(.retainAvailable) { n += 2 }
        for u in userProperties { n += 5 + u.name.utf8.count + u.value.utf8.count }
        if maximumPacketSize != nil, has(.maximumPacketSize) { n += 5 }
        if wildcardSubscriptionAvailable != nil, has(.wildcardSubscriptionAvailable) { n += 2 }
        if subscriptionIdentifierAvailable != nil, has(.subscriptionIdentifierAvailable) { n += 2 }
        if sharedSubscriptionAvailable != nil, has(.sharedSubscriptionAvailable) { n += 2 }
        return n
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

    /// Writes the boxed properties with identifiers below the topic alias (0x23)
    /// or, with `above`, those after it, so the list stays in identifier order.
    func encode(into out: inout [UInt8], context: PropertyContext, above: Bool) {
        let allowed = context.allowed
        @inline(__always) func has(_ id: PropertyID) -> Bool { allowed.contains(id.rawValue) }
        if !above {
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
        }
        if above {
        if let v = maximumQoS, has(.maximumQoS) { out.append(0x24); out.append(v.rawValue) }
        if let v = retainAvailable, has(.retainAvailable) { out.append(0x25); out.append(v ? 1 : 0) }
        for u in userProperties { out.append(0x26); out.appendString(u.name); out.appendString(u.value) }
        if let v = maximumPacketSize, has(.maximumPacketSize) { out.append(0x27); out.appendUInt32(v) }
        if let v = wildcardSubscriptionAvailable, has(.wildcardSubscriptionAvailable) { out.append(0x28); out.append(v ? 1 : 0) }
        if let v = subscriptionIdentifierAvailable, has(.subscriptionIdentifierAvailable) { out.append(0x29); out.append(v ? 1 : 0) }
        if let v = sharedSubscriptionAvailable, has(.sharedSubscriptionAvailable) { out.append(0x2A); out.append(v ? 1 : 0) }
        }
    }

    func filtered(for context: PropertyContext) -> PropertyFields {
        let allowed = context.allowed
        var p = PropertyFields()
        @inline(__always) func has(_ id: PropertyID) -> Bool { allowed.contains(id.rawValue) }
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

extension Properties {
    /// The bytes of the property list alone (without its length prefix).
    @inline(__always)
    func encodedLength(context: PropertyContext) -> Int {
        let allowed = context.allowed
        var n = 0
        if payloadFormatIndicator != nil && allowed.contains(0x01) { n += 2 }
        if messageExpiryInterval != nil && allowed.contains(0x02) { n += 5 }
        if topicAlias != nil && allowed.contains(0x23) { n += 3 }
        if let box { n += box.fields.encodedLength(context: context) }
        return n
    }

    @inline(__always)
    func validateForEncoding() throws(CodecError) {
        guard let box else { return }
        try box.fields.validateForEncoding()
    }

    /// Writes the property length and the list; `length` is `encodedLength(context:)`.
    @inline(__always)
    func encode(into out: inout [UInt8], context: PropertyContext, length: Int) {
        out.appendVariableInt(length)
        if length == 0 { return }
        let allowed = context.allowed
        if let v = payloadFormatIndicator, allowed.contains(0x01) { out.append(0x01); out.append(v ? 1 : 0) }
        if let v = messageExpiryInterval, allowed.contains(0x02) { out.append(0x02); out.appendUInt32(v) }
        box?.fields.encode(into: &out, context: context, above: false)
        if let v = topicAlias, allowed.contains(0x23) { out.append(0x23); out.appendUInt16(v) }
        box?.fields.encode(into: &out, context: context, above: true)
    }

    /// The same properties with only those `context` allows; what the decoder would return.
    public func filtered(for context: PropertyContext) -> Properties {
        let allowed = context.allowed
        var p = box.map { Properties(fields: $0.fields.filtered(for: context)) } ?? Properties()
        if allowed.contains(0x01) { p.payloadFormatIndicator = payloadFormatIndicator }
        if allowed.contains(0x02) { p.messageExpiryInterval = messageExpiryInterval }
        if allowed.contains(0x23) { p.topicAlias = topicAlias }
        return p
    }
}

// MARK: - Storage

extension Properties {
    /// The property list alone (no length prefix), as a PUBLISH or will carries it:
    /// how the store keeps a message's properties.
    public func encodedList(for context: PropertyContext) -> [UInt8] {
        let length = encodedLength(context: context)
        if length == 0 { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(length + 4)
        encode(into: &out, context: context, length: length)
        // Drop the variable-byte length prefix.
        return Array(out[variableIntSize(length)...])
    }

    /// Reads back what `encodedList(for:)` wrote.
    public static func decodeList(_ bytes: [UInt8], for context: PropertyContext) throws(CodecError) -> Properties {
        if bytes.isEmpty { return Properties() }
        var framed: [UInt8] = []
        framed.appendVariableInt(bytes.count)
        framed += bytes
        var reader = ByteReader(framed[...], version: .v5)
        return try decode(&reader, context: context)
    }
}
