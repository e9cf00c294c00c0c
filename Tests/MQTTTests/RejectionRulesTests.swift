import MQTT
import Testing

/// One test per normative rule the codec enforces, named after the rule. Rule ids are the
/// ones checked in the spec texts (5.0 and 3.1.1 number some rules differently); where the
/// spec gives no id the codec must not invent one (`rule: nil`).

let malformed = ReasonCode.malformedPacket
let protocolError = ReasonCode.protocolError

/// v5 / 3.x rule id.
func rule(_ version: ProtocolVersion, v5: String, v3: String) -> String { version == .v5 ? v5 : v3 }

/// A small valid packet of each type, encoded for `version`.
func samplePacket(_ type: PacketType, _ version: ProtocolVersion) -> Packet {
    switch type {
    case .connect: return .connect(ConnectPacket(version: version, clientID: "c"))
    case .connack: return .connack(ConnackPacket())
    case .publish: return .publish(PublishPacket(topic: "t", qos: .atLeastOnce, packetID: 1))
    case .puback: return .puback(AckPacket(packetID: 1))
    case .pubrec: return .pubrec(AckPacket(packetID: 1))
    case .pubrel: return .pubrel(AckPacket(packetID: 1))
    case .pubcomp: return .pubcomp(AckPacket(packetID: 1))
    case .subscribe: return .subscribe(SubscribePacket(packetID: 1, subscriptions: [Subscription(topicFilter: "t")]))
    case .suback: return .suback(SubackPacket(packetID: 1, reasonCodes: [.grantedQoS0]))
    case .unsubscribe: return .unsubscribe(UnsubscribePacket(packetID: 1, topicFilters: ["t"]))
    case .unsuback: return .unsuback(UnsubackPacket(packetID: 1, reasonCodes: version == .v5 ? [.success] : []))
    case .pingreq: return .pingreq
    case .pingresp: return .pingresp
    case .disconnect: return .disconnect(DisconnectPacket())
    case .auth: return .auth(AuthPacket())
    }
}

func sampleWire(_ type: PacketType, _ version: ProtocolVersion) -> [UInt8] {
    try! samplePacket(type, version).encoded(version: version)
}

/// CONNECT body pieces for a version: protocol name and level.
func connectHeader(_ version: ProtocolVersion) -> [UInt8] { str(version.protocolName) + [version.rawValue] }

/// A CONNECT with the given flags and payload; adds the empty v5 property lists.
func connectWire(_ version: ProtocolVersion, flags: UInt8, clientID: [UInt8] = str("c"), will: [UInt8]? = nil,
                 rest: [UInt8] = []) -> [UInt8]
{
    let v5 = version == .v5
    var body = connectHeader(version) + [flags, 0x00, 0x3C] + (v5 ? [0] : []) + clientID
    if let will { body += (v5 ? [0] : []) + will }
    return frame(0x10, body + rest)
}

/// A v5 PUBLISH QoS 0 to "t" with the given property bytes.
func publish5(props: [UInt8], payload: [UInt8] = []) -> [UInt8] {
    frame(0x30, str("t") + varint(props.count) + props + payload)
}

/// A v5 PUBACK (packet id 1, success) with the given property bytes.
func puback5(props: [UInt8]) -> [UInt8] { frame(0x40, bytes("00 01 00") + varint(props.count) + props) }

/// A v5 CONNECT (client id "c") with the given CONNECT property bytes.
func connect5(props: [UInt8]) -> [UInt8] {
    frame(0x10, connectHeader(.v5) + [0x02, 0x00, 0x3C] + varint(props.count) + props + str("c"))
}

/// A v5 CONNACK (success) with the given property bytes.
func connack5(props: [UInt8]) -> [UInt8] { frame(0x20, [0x00, 0x00] + varint(props.count) + props) }

/// A SUBSCRIBE with one filter and one options byte.
func subscribeWire(_ version: ProtocolVersion, _ filter: [UInt8], options: UInt8, props: [UInt8] = []) -> [UInt8] {
    frame(0x82, bytes("00 01") + (version == .v5 ? varint(props.count) + props : []) + filter + [options])
}

func unsubscribeWire(_ version: ProtocolVersion, _ filter: [UInt8]) -> [UInt8] {
    frame(0xA2, bytes("00 01") + (version == .v5 ? [0] : []) + filter)
}

func publishWire(_ version: ProtocolVersion, topic: [UInt8], first: UInt8 = 0x30) -> [UInt8] {
    let qos = (first >> 1) & 3
    return frame(first, topic + (qos > 0 ? [0, 1] : []) + (version == .v5 ? [0] : []))
}

let nonPublishTypes: [PacketType] = PacketType.allCases.filter { $0 != .publish }

@Suite("Rejection: fixed header")
struct FixedHeaderRejectionTests {
    static func required(_ type: PacketType) -> UInt8 {
        [.pubrel, .subscribe, .unsubscribe].contains(type) ? 0x02 : 0x00
    }

    @Test("MQTT-2.2.2-1 reserved fixed-header flags must have their listed values (3.1.1)",
          arguments: nonPublishTypes.filter { $0 != .auth })
    func reservedFlags311(type: PacketType) {
        var wire = sampleWire(type, .v3_1_1)
        expectAccepted(wire, .v3_1_1)
        for flags: UInt8 in 0...15 where flags != Self.required(type) {
            wire[0] = type.rawValue << 4 | flags
            expectRejected(wire, .v3_1_1, reason: malformed, rule: "MQTT-2.2.2-1")
        }
    }

    @Test("MQTT-2.1.3-1 reserved fixed-header flags must have their listed values (5.0)", arguments: nonPublishTypes)
    func reservedFlags5(type: PacketType) {
        var wire = sampleWire(type, .v5)
        expectAccepted(wire, .v5)
        for flags: UInt8 in 0...15 where flags != Self.required(type) {
            wire[0] = type.rawValue << 4 | flags
            expectRejected(wire, .v5, reason: malformed, rule: "MQTT-2.1.3-1")
        }
    }

    @Test("3.1 re-delivered PUBREL, SUBSCRIBE, UNSUBSCRIBE may carry the DUP flag",
          arguments: [PacketType.pubrel, .subscribe, .unsubscribe])
    func dupIn31(type: PacketType) throws {
        var wire = sampleWire(type, .v3_1)
        wire[0] |= 0x08
        #expect(try decodeOne(wire, .v3_1) == samplePacket(type, .v3_1))
        expectRejected(wire, .v3_1_1, reason: malformed, rule: "MQTT-2.2.2-1")
    }

    @Test("Packet type 0 is reserved", arguments: allVersions)
    func type0(version: ProtocolVersion) {
        expectRejected(bytes("00 00"), version, reason: malformed, rule: nil)
        expectRejected(bytes("00 02 00 01"), version, reason: malformed, rule: nil)
    }

    @Test("Packet type 15 is reserved in 3.x (AUTH exists only in 5.0)", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func type15(version: ProtocolVersion) {
        expectRejected(bytes("F0 00"), version, reason: malformed, rule: nil)
        expectAccepted(bytes("F0 00"), .v5)
    }

    @Test("MQTT-3.3.1-4 PUBLISH must not have QoS 3", arguments: allVersions)
    func qos3(version: ProtocolVersion) {
        for first: UInt8 in [0x36, 0x37, 0x3E, 0x3F] {
            expectRejected(publishWire(version, topic: str("t"), first: 0x32).replacingFirst(first), version,
                           reason: malformed, rule: "MQTT-3.3.1-4")
        }
    }

    @Test("MQTT-3.3.1-2 DUP must be 0 for QoS 0", arguments: allVersions)
    func dupQoS0(version: ProtocolVersion) {
        expectRejected(publishWire(version, topic: str("t"), first: 0x38), version, reason: malformed, rule: "MQTT-3.3.1-2")
        expectRejected(publishWire(version, topic: str("t"), first: 0x39), version, reason: malformed, rule: "MQTT-3.3.1-2")
        expectAccepted(publishWire(version, topic: str("t"), first: 0x3A), version)
    }

    @Test("Sender direction: packets only a server sends are refused from a client", arguments: allVersions)
    func serverOnlyFromClient(version: ProtocolVersion) {
        for type in [PacketType.connack, .suback, .unsuback, .pingresp] {
            let wire = sampleWire(type, version)
            expectRejected(wire, version, from: .client, reason: protocolError, rule: nil)
            expectAccepted(wire, version, from: .server)
        }
    }

    @Test("Sender direction: packets only a client sends are refused from a server", arguments: allVersions)
    func clientOnlyFromServer(version: ProtocolVersion) {
        for type in [PacketType.connect, .subscribe, .unsubscribe, .pingreq] {
            let wire = sampleWire(type, version)
            expectRejected(wire, version, from: .server, reason: protocolError, rule: nil)
            expectAccepted(wire, version, from: .client)
        }
    }

    @Test("PINGREQ and PINGRESP must have no body", arguments: allVersions)
    func pingWithBody(version: ProtocolVersion) {
        expectRejected(bytes("C0 01 00"), version, reason: malformed, rule: nil)
        expectRejected(bytes("D0 02 00 00"), version, reason: malformed, rule: nil)
    }

    @Test("3.x DISCONNECT must have no body", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func disconnectWithBody(version: ProtocolVersion) {
        expectRejected(bytes("E0 01 00"), version, reason: malformed, rule: nil)
    }
}

extension Array where Element == UInt8 {
    func replacingFirst(_ byte: UInt8) -> [UInt8] {
        var copy = self
        copy[0] = byte
        return copy
    }
}

@Suite("Rejection: packet identifiers")
struct PacketIdentifierRejectionTests {
    @Test("MQTT-2.3.1-1 / MQTT-2.2.1-3 PUBLISH QoS > 0 needs a non-zero packet identifier", arguments: allVersions)
    func publish(version: ProtocolVersion) {
        for first: UInt8 in [0x32, 0x34, 0x3A] {
            let wire = frame(first, str("t") + [0, 0] + (version == .v5 ? [0] : []))
            expectRejected(wire, version, reason: malformed, rule: rule(version, v5: "MQTT-2.2.1-3", v3: "MQTT-2.3.1-1"))
        }
    }

    @Test("MQTT-2.3.1-1 / MQTT-2.2.1-3 SUBSCRIBE and UNSUBSCRIBE need a non-zero packet identifier",
          arguments: allVersions)
    func subscribe(version: ProtocolVersion) {
        for type in [PacketType.subscribe, .unsubscribe] {
            var wire = sampleWire(type, version)
            wire[2] = 0
            wire[3] = 0
            expectRejected(wire, version, reason: malformed, rule: rule(version, v5: "MQTT-2.2.1-3", v3: "MQTT-2.3.1-1"))
        }
    }

    @Test("PUBACK, PUBREC, PUBREL, PUBCOMP with packet identifier 0 are refused", arguments: allVersions)
    func acks(version: ProtocolVersion) {
        for first: UInt8 in [0x40, 0x50, 0x62, 0x70] {
            expectRejected([first, 2, 0, 0], version, reason: malformed,
                           rule: rule(version, v5: "MQTT-2.2.1-3", v3: "MQTT-2.3.1-1"))
        }
    }

    @Test("PUBLISH with QoS > 0 that ends before its packet identifier", arguments: allVersions)
    func missingPacketID(version: ProtocolVersion) {
        expectRejected(frame(0x32, str("a/b") + [0x00]), version, reason: malformed, rule: nil)
    }
}

@Suite("Rejection: CONNECT")
struct ConnectRejectionTests {
    @Test("MQTT-3.1.2-1 protocol name must be MQTT (or MQIsdp for 3.1)")
    func protocolName() {
        for name in ["MQTX", "mqtt", "MQIsdP", "MQ", ""] {
            let wire = frame(0x10, str(name) + [0x04, 0x02, 0x00, 0x3C] + str("c"))
            expectRejected(wire, .v3_1_1, reason: .unsupportedProtocolVersion, rule: "MQTT-3.1.2-1")
        }
    }

    @Test("MQTT-3.1.2-2 unsupported protocol level")
    func protocolLevel() {
        for (name, level) in [("MQTT", 3), ("MQTT", 6), ("MQTT", 0), ("MQTT", 0x84), ("MQIsdp", 4), ("MQIsdp", 5)] {
            let wire = frame(0x10, str(name) + [UInt8(level), 0x02, 0x00, 0x3C] + [0] + str("c"))
            expectRejected(wire, .v3_1_1, reason: .unsupportedProtocolVersion, rule: "MQTT-3.1.2-2")
        }
    }

    @Test("MQTT-3.1.2-3 the CONNECT reserved flag must be zero", arguments: allVersions)
    func reservedFlag(version: ProtocolVersion) {
        expectRejected(connectWire(version, flags: 0x03), version, reason: malformed, rule: "MQTT-3.1.2-3")
        expectRejected(connectWire(version, flags: 0x01), version, reason: malformed, rule: "MQTT-3.1.2-3")
    }

    @Test("MQTT-3.1.2-13 (3.1.1) / MQTT-3.1.2-11 (5.0) will QoS must be 0 without the will flag", arguments: allVersions)
    func willQoSWithoutWill(version: ProtocolVersion) {
        for flags: UInt8 in [0x0A, 0x12, 0x1A] {
            expectRejected(connectWire(version, flags: flags), version, reason: malformed,
                           rule: rule(version, v5: "MQTT-3.1.2-11", v3: "MQTT-3.1.2-13"))
        }
    }

    @Test("MQTT-3.1.2-15 (3.1.1) / MQTT-3.1.2-13 (5.0) will retain must be 0 without the will flag",
          arguments: allVersions)
    func willRetainWithoutWill(version: ProtocolVersion) {
        expectRejected(connectWire(version, flags: 0x22), version, reason: malformed,
                       rule: rule(version, v5: "MQTT-3.1.2-13", v3: "MQTT-3.1.2-15"))
    }

    @Test("MQTT-3.1.2-14 (3.1.1) / MQTT-3.1.2-12 (5.0) will QoS must not be 3", arguments: allVersions)
    func willQoS3(version: ProtocolVersion) {
        let will = str("w") + str("x")
        expectRejected(connectWire(version, flags: 0x1E, will: will), version, reason: malformed,
                       rule: rule(version, v5: "MQTT-3.1.2-12", v3: "MQTT-3.1.2-14"))
        expectAccepted(connectWire(version, flags: 0x16, will: will), version)
    }

    @Test("MQTT-3.1.2-22 3.x password flag needs the user name flag; 5.0 allows it", arguments: allVersions)
    func passwordWithoutUsername(version: ProtocolVersion) {
        let wire = connectWire(version, flags: 0x42, rest: str("pw"))
        if version == .v5 {
            expectAccepted(wire, version)
        } else {
            expectRejected(wire, version, reason: malformed, rule: "MQTT-3.1.2-22")
        }
    }

    @Test("CONNECT with bytes after its payload", arguments: allVersions)
    func trailingBytes(version: ProtocolVersion) {
        expectRejected(connectWire(version, flags: 0x02, rest: [0x00]), version, reason: malformed, rule: nil)
        expectRejected(connectWire(version, flags: 0x82, rest: str("user") + [0x00, 0x00]), version,
                       reason: malformed, rule: nil)
    }

    @Test("CONNECT flags announce fields the payload lacks", arguments: allVersions)
    func missingFields(version: ProtocolVersion) {
        expectRejected(connectWire(version, flags: 0x82), version, reason: malformed, rule: nil)  // no user name
        expectRejected(connectWire(version, flags: 0xC2, rest: str("u")), version, reason: malformed, rule: nil)
        expectRejected(connectWire(version, flags: 0x06), version, reason: malformed, rule: nil)  // no will
        expectRejected(frame(0x10, connectHeader(version) + [0x02, 0x00]), version, reason: malformed, rule: nil)
    }

    @Test("Will topic is a topic name: no wildcards, not empty", arguments: allVersions)
    func willTopic(version: ProtocolVersion) {
        expectRejected(connectWire(version, flags: 0x06, will: str("a/+") + str("x")), version,
                       reason: .topicNameInvalid, rule: "MQTT-3.3.2-2")
        expectRejected(connectWire(version, flags: 0x06, will: str("") + str("x")), version,
                       reason: .topicNameInvalid, rule: "MQTT-4.7.3-1")
    }

    @Test("5.0 will payload marked UTF-8 (payload format indicator 1) must be valid UTF-8")
    func willPayloadFormat() {
        let wire = frame(0x10, connectHeader(.v5) + [0x06, 0x00, 0x3C, 0x00] + str("c") + [0x02, 0x01, 0x01]
                         + str("w") + bytes("00 02 C3 28"))
        expectRejected(wire, .v5, reason: .payloadFormatInvalid, rule: nil)
        let unspecified = frame(0x10, connectHeader(.v5) + [0x06, 0x00, 0x3C, 0x00] + str("c") + [0x02, 0x01, 0x00]
                                + str("w") + bytes("00 02 C3 28"))
        expectAccepted(unspecified, .v5)
    }
}

@Suite("Rejection: CONNACK and reason codes")
struct ReasonCodeRejectionTests {
    @Test("MQTT-3.2.2-1 (5.0) CONNACK acknowledge flags bits 7-1 are reserved")
    func connackFlags5() {
        expectRejected(bytes("20 03 02 00 00"), .v5, reason: malformed, rule: "MQTT-3.2.2-1")
        expectRejected(bytes("20 03 80 00 00"), .v5, reason: malformed, rule: "MQTT-3.2.2-1")
    }

    @Test("3.1.1 CONNACK acknowledge flags bits 7-1 are reserved (no rule id in 3.1.1)")
    func connackFlags311() {
        expectRejected(bytes("20 02 02 00"), .v3_1_1, reason: malformed, rule: nil)
    }

    @Test("CONNACK refusing the connection must not claim a session")
    func sessionPresentWithFailure() {
        expectRejected(bytes("20 02 01 05"), .v3_1_1, reason: protocolError, rule: nil)
        expectRejected(bytes("20 03 01 87 00"), .v5, reason: protocolError, rule: nil)
    }

    @Test("3.x CONNACK return codes above 5 are reserved", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func connackReturnCode(version: ProtocolVersion) {
        for code: UInt8 in [6, 0x80, 0xFF] {
            expectRejected([0x20, 0x02, 0x00, code], version, reason: protocolError, rule: nil)
        }
        expectRejected(bytes("20 03 00 00 00"), version, reason: malformed, rule: nil)
        expectRejected(bytes("20 01 00"), version, reason: malformed, rule: nil)
    }

    @Test("Reason codes not allowed in a packet", arguments: [
        "20 03 00 01 00",  // CONNACK 0x01
        "20 03 00 8E 00",  // CONNACK session taken over
        "40 03 00 01 01",  // PUBACK granted QoS 1
        "50 03 00 01 92",  // PUBREC packet identifier not found
        "62 03 00 01 10",  // PUBREL no matching subscribers
        "70 03 00 01 80",  // PUBCOMP unspecified error
        "90 04 00 01 00 03",  // SUBACK 0x03
        "90 04 00 01 00 81",  // SUBACK malformed
        "B0 04 00 01 00 01",  // UNSUBACK 0x01
        "E0 01 01",  // DISCONNECT 0x01
        "E0 01 18",  // DISCONNECT continue authentication
        "F0 01 80",  // AUTH unspecified error
        "F0 01 01",  // AUTH 0x01
    ])
    func notAllowed(wire: String) {
        expectRejected(bytes(wire), .v5, reason: protocolError, rule: nil)
    }

    @Test("3.x SUBACK knows only 0, 1, 2 and 0x80", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func suback3x(version: ProtocolVersion) {
        for code: UInt8 in [0x03, 0x8F, 0x87, 0xFF] {
            expectRejected([0x90, 0x03, 0x00, 0x01, code], version, reason: protocolError, rule: nil)
        }
    }

    @Test("SUBACK and 5.0 UNSUBACK need at least one reason code")
    func noCodes() {
        expectRejected(bytes("90 02 00 01"), .v3_1_1, reason: protocolError, rule: nil)
        expectRejected(bytes("90 03 00 01 00"), .v5, reason: protocolError, rule: nil)
        expectRejected(bytes("B0 03 00 01 00"), .v5, reason: protocolError, rule: nil)
    }

    @Test("3.x acks and UNSUBACK carry exactly a packet identifier", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func ackLength3x(version: ProtocolVersion) {
        for first: UInt8 in [0x40, 0x50, 0x62, 0x70, 0xB0] {
            expectRejected([first, 3, 0, 1, 0], version, reason: malformed, rule: nil)
            expectRejected([first, 1, 0], version, reason: malformed, rule: nil)
        }
    }

    @Test("MQTT-3.14.2-2 a server DISCONNECT must not carry a session expiry interval")
    func serverSessionExpiry() {
        let wire = bytes("E0 07 00 05 11 00 00 00 0A")
        expectRejected(wire, .v5, from: .server, reason: protocolError, rule: "MQTT-3.14.2-2")
        expectAccepted(wire, .v5, from: .client)
    }
}

@Suite("Rejection: topic names and filters in packets")
struct TopicRejectionTests {
    @Test("MQTT-4.7.3-1 topic name must be at least one character (3.x)", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func emptyTopic3x(version: ProtocolVersion) {
        expectRejected(publishWire(version, topic: str("")), version, reason: .topicNameInvalid, rule: "MQTT-4.7.3-1")
    }

    @Test("5.0 PUBLISH with an empty topic name needs a topic alias")
    func emptyTopic5() {
        expectRejected(publishWire(.v5, topic: str("")), .v5, reason: protocolError, rule: "MQTT-3.3.2-1")
        expectAccepted(frame(0x30, str("") + bytes("03 23 00 01")), .v5)
    }

    @Test("MQTT-3.3.2-2 topic name must not contain wildcards", arguments: allVersions,
          ["+", "#", "a/+", "a/#", "sport+", "#/a", "a/+/b"])
    func wildcardsInName(version: ProtocolVersion, topic: String) {
        expectRejected(publishWire(version, topic: str(topic)), version, reason: .topicNameInvalid, rule: "MQTT-3.3.2-2")
    }

    @Test("MQTT-4.7.3-2 topic name must not contain U+0000", arguments: allVersions)
    func nullInName(version: ProtocolVersion) {
        expectRejected(publishWire(version, topic: bytes("00 03 61 00 62")), version, reason: malformed,
                       rule: "MQTT-4.7.3-2")
    }

    @Test("MQTT-4.7.3-1 topic filter must be at least one character", arguments: allVersions)
    func emptyFilter(version: ProtocolVersion) {
        expectRejected(subscribeWire(version, str(""), options: 0), version, reason: .malformedPacket,
                       rule: "MQTT-4.7.3-1")
        expectRejected(unsubscribeWire(version, str("")), version, reason: .malformedPacket, rule: "MQTT-4.7.3-1")
    }

    @Test("MQTT-4.7.1-2 (3.1.1) / MQTT-4.7.1-1 (5.0) '#' must be a whole last level",
          arguments: allVersions, ["a/#/b", "a#", "#/", "##", "a/b#", "#a", "a/#/"])
    func multiLevel(version: ProtocolVersion, filter: String) {
        let r = rule(version, v5: "MQTT-4.7.1-1", v3: "MQTT-4.7.1-2")
        expectRejected(subscribeWire(version, str(filter), options: 0), version, reason: .malformedPacket, rule: r)
        expectRejected(unsubscribeWire(version, str(filter)), version, reason: .malformedPacket, rule: r)
    }

    @Test("MQTT-4.7.1-3 (3.1.1) / MQTT-4.7.1-2 (5.0) '+' must be a whole level",
          arguments: allVersions, ["a+", "+a/b", "a/b+", "a/+b", "++", "a/++/b"])
    func singleLevel(version: ProtocolVersion, filter: String) {
        let r = rule(version, v5: "MQTT-4.7.1-2", v3: "MQTT-4.7.1-3")
        expectRejected(subscribeWire(version, str(filter), options: 0), version, reason: .malformedPacket, rule: r)
        expectRejected(unsubscribeWire(version, str(filter)), version, reason: .malformedPacket, rule: r)
    }

    /// Filters are read as UTF-8 strings first, so the general U+0000 rule is the one cited.
    @Test("MQTT-1.5.3-2 / MQTT-1.5.4-2 (and MQTT-4.7.3-2) topic filter must not contain U+0000", arguments: allVersions)
    func nullInFilter(version: ProtocolVersion) {
        let r = rule(version, v5: "MQTT-1.5.4-2", v3: "MQTT-1.5.3-2")
        expectRejected(subscribeWire(version, bytes("00 03 61 00 62"), options: 0), version, reason: malformed, rule: r)
        expectRejected(unsubscribeWire(version, bytes("00 01 00")), version, reason: malformed, rule: r)
    }

    @Test("MQTT-4.8.2-1 shared subscription needs a non-empty share name")
    func emptyShareName() {
        expectRejected(subscribeWire(.v5, str("$share//a"), options: 0), .v5, reason: .malformedPacket,
                       rule: "MQTT-4.8.2-1")
        expectRejected(unsubscribeWire(.v5, str("$share//a")), .v5, reason: .malformedPacket, rule: "MQTT-4.8.2-1")
    }

    @Test("MQTT-4.8.2-2 share name without + or #, followed by / and a topic filter",
          arguments: ["$share/g+/a", "$share/g#/a", "$share/+/a", "$share/#/a", "$share/g", "$share/g/", "$share/"])
    func shareNameRules(filter: String) {
        expectRejected(subscribeWire(.v5, str(filter), options: 0), .v5, reason: .malformedPacket, rule: "MQTT-4.8.2-2")
        expectRejected(unsubscribeWire(.v5, str(filter)), .v5, reason: .malformedPacket, rule: "MQTT-4.8.2-2")
    }

    @Test("Shared subscription filter after the share name follows the wildcard rules")
    func shareFilterWildcards() {
        expectRejected(subscribeWire(.v5, str("$share/g/a#"), options: 0), .v5, reason: .malformedPacket,
                       rule: "MQTT-4.7.1-1")
        expectRejected(subscribeWire(.v5, str("$share/g/a+"), options: 0), .v5, reason: .malformedPacket,
                       rule: "MQTT-4.7.1-2")
        for ok in ["$share/g/#", "$share/g/+/x", "$share/g//", "$share/group.1/a/b"] {
            expectAccepted(subscribeWire(.v5, str(ok), options: 1), .v5)
        }
    }
}

@Suite("Rejection: SUBSCRIBE and UNSUBSCRIBE")
struct SubscribeRejectionTests {
    @Test("MQTT-3.8.3-3 (3.1.1) / MQTT-3.8.3-2 (5.0) SUBSCRIBE needs at least one filter", arguments: allVersions)
    func noFilters(version: ProtocolVersion) {
        let wire = frame(0x82, bytes("00 01") + (version == .v5 ? [0] : []))
        expectRejected(wire, version, reason: protocolError, rule: rule(version, v5: "MQTT-3.8.3-2", v3: "MQTT-3.8.3-3"))
    }

    @Test("MQTT-3.10.3-2 UNSUBSCRIBE needs at least one filter", arguments: allVersions)
    func unsubscribeNoFilters(version: ProtocolVersion) {
        let wire = frame(0xA2, bytes("00 01") + (version == .v5 ? [0] : []))
        expectRejected(wire, version, reason: protocolError, rule: "MQTT-3.10.3-2")
    }

    @Test("MQTT-3-8.3-4 (3.1.1) requested QoS byte: reserved bits zero, QoS not 3",
          arguments: [ProtocolVersion.v3_1, .v3_1_1], [0x03, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF] as [UInt8])
    func options311(version: ProtocolVersion, options: UInt8) {
        expectRejected(subscribeWire(version, str("a"), options: options), version, reason: malformed,
                       rule: "MQTT-3-8.3-4")
    }

    @Test("MQTT-3.8.3-5 (5.0) subscription options reserved bits must be zero", arguments: [0x40, 0x80, 0xC0, 0xC1] as [UInt8])
    func reservedBits5(options: UInt8) {
        expectRejected(subscribeWire(.v5, str("a"), options: options), .v5, reason: malformed, rule: "MQTT-3.8.3-5")
    }

    @Test("5.0 subscription options: Maximum QoS 3 is a protocol error (3.8.3.1, no id)")
    func maximumQoS3() {
        expectRejected(subscribeWire(.v5, str("a"), options: 0x03), .v5, reason: protocolError, rule: nil)
    }

    @Test("5.0 subscription options: Retain Handling 3 is a protocol error (3.8.3.1, no id)")
    func retainHandling3() {
        expectRejected(subscribeWire(.v5, str("a"), options: 0x30), .v5, reason: protocolError, rule: nil)
        expectAccepted(subscribeWire(.v5, str("a"), options: 0x20), .v5)
    }

    @Test("MQTT-3.8.3-4 (5.0) No Local must not be set on a shared subscription")
    func noLocalShared() {
        expectRejected(subscribeWire(.v5, str("$share/g/a"), options: 0x04), .v5, reason: protocolError,
                       rule: "MQTT-3.8.3-4")
        expectAccepted(subscribeWire(.v5, str("a"), options: 0x04), .v5)
        expectAccepted(subscribeWire(.v5, str("$share/g/a"), options: 0x08), .v5)
    }

    @Test("SUBSCRIBE filter without its options byte", arguments: allVersions)
    func missingOptions(version: ProtocolVersion) {
        let wire = frame(0x82, bytes("00 01") + (version == .v5 ? [0] : []) + str("a"))
        expectRejected(wire, version, reason: malformed, rule: nil)
    }
}

@Suite("Rejection: PUBLISH")
struct PublishRejectionTests {
    @Test("MQTT-3.3.4-6 a PUBLISH from a client must not carry a subscription identifier")
    func subscriptionIDFromClient() {
        let wire = publish5(props: bytes("0B 01"))
        expectRejected(wire, .v5, from: .client, reason: protocolError, rule: "MQTT-3.3.4-6")
        expectAccepted(wire, .v5, from: .server)
        expectAccepted(wire, .v5, from: .either)
    }

    @Test("Payload format indicator 1 needs a UTF-8 payload (0x99)")
    func payloadFormat() {
        for payload in [bytes("C3 28"), bytes("ED A0 80"), bytes("FF"), bytes("E2 82")] {
            expectRejected(publish5(props: bytes("01 01"), payload: payload), .v5, reason: .payloadFormatInvalid, rule: nil)
            expectAccepted(publish5(props: bytes("01 00"), payload: payload), .v5)
            expectAccepted(publish5(props: [], payload: payload), .v5)
        }
        expectAccepted(publish5(props: bytes("01 01"), payload: Array("ok ü 𪛔".utf8)), .v5)
    }

    @Test("Topic length running past the packet", arguments: allVersions)
    func topicPastEnd(version: ProtocolVersion) {
        expectRejected(bytes("30 03 00 05 61"), version, reason: malformed, rule: nil)
        expectRejected(bytes("30 01 00"), version, reason: malformed, rule: nil)
    }
}
