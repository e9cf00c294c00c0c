import MQTT
import Testing

@Suite("PUBLISH vectors")
struct PublishTests {
    @Test("QoS 0, no packet identifier", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func qos0(version: ProtocolVersion) {
        expectVector(bytes("30 0A 00 03 'a/b' 'hello'"),
                     .publish(PublishPacket(topic: "a/b", payload: Array("hello".utf8)[...])), version)
    }

    @Test("encodeQoS0 writes what encode does for a 3.x QoS 0 PUBLISH, at every remaining-length size",
          arguments: [0, 1, 5, 122, 123, 124, 16_378, 16_379, 16_380, 2_097_146, 2_097_147])
    func directQoS0(payloadSize: Int) throws {
        let topic = ByteString("a/b")
        let payload = (0..<payloadSize).map { UInt8(truncatingIfNeeded: $0 &* 13) }[...]
        for version in [ProtocolVersion.v3_1, .v3_1_1] {
            var expected: [UInt8] = [0xEE]
            try PublishPacket(topic: topic, payload: payload).encode(into: &expected, version: version)
            var direct: [UInt8] = [0xEE]
            let n = PublishPacket.encodeQoS0(topic: topic, payload: payload, into: &direct)
            #expect(direct == expected)
            #expect(n == expected.count - 1)
        }
    }

    @Test("encodeQoS0 of a decoded 3.x PUBLISH (topic and payload side by side in one frame) gives back its bytes",
          arguments: [0, 1, 5, 123, 124, 16_380])
    func directQoS0FromFrame(payloadSize: Int) throws {
        let payload = (0..<payloadSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }[...]
        var wire: [UInt8] = []
        try PublishPacket(topic: "room/42/chat", payload: payload).encode(into: &wire, version: .v3_1_1)
        var decoder = FrameDecoder()
        wire.withUnsafeBytes { decoder.append($0) }
        let frame = try #require(try decoder.next())
        let p = try PublishPacket.decode(flags: frame.header & 0x0F, frame.body, version: .v3_1_1, sender: .client)
        var out: [UInt8] = [0xEE]
        #expect(PublishPacket.encodeQoS0(topic: p.topic, payload: p.payload, into: &out) == wire.count)
        #expect(out == [0xEE] + wire)
        // Slices of one array that are not side by side take the other path.
        let joined = Array("room/42/chatXX".utf8) + Array(payload)
        var apart: [UInt8] = []
        _ = PublishPacket.encodeQoS0(topic: ByteString(joined[0..<12]), payload: joined[14...], into: &apart)
        #expect(apart == wire)
    }

    @Test("encodeQoS0 writes nothing for a topic too long to encode")
    func directQoS0TooLong() {
        var out: [UInt8] = [1]
        #expect(PublishPacket.encodeQoS0(topic: ByteString([UInt8](repeating: 0x61, count: 65_536)), payload: [],
                                         into: &out) == 0)
        #expect(out == [1])
    }

    @Test("QoS 0 with an empty payload", arguments: allVersions)
    func emptyPayload(version: ProtocolVersion) {
        let wire = version == .v5 ? bytes("30 06 00 03 'a/b' 00") : bytes("30 05 00 03 'a/b'")
        expectVector(wire, .publish(PublishPacket(topic: "a/b")), version)
    }

    @Test("QoS 1, DUP and RETAIN", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func qos1DupRetain(version: ProtocolVersion) {
        expectVector(bytes("3B 0C 00 03 'a/b' 00 0A 'hello'"),
                     .publish(PublishPacket(topic: "a/b", payload: Array("hello".utf8)[...], qos: .atLeastOnce,
                                            retain: true, dup: true, packetID: 10)), version)
    }

    @Test("QoS 2, packet identifier 65535, no payload", arguments: allVersions)
    func qos2(version: ProtocolVersion) {
        let wire = version == .v5 ? bytes("34 08 00 03 'a/b' FF FF 00") : bytes("34 07 00 03 'a/b' FF FF")
        expectVector(wire, .publish(PublishPacket(topic: "a/b", qos: .exactlyOnce, packetID: 65535)), version)
    }

    @Test("5.0 QoS 0 with property length 0")
    func v5NoProperties() {
        expectVector(bytes("30 0B 00 03 'a/b' 00 'hello'"),
                     .publish(PublishPacket(topic: "a/b", payload: Array("hello".utf8)[...])), .v5)
    }

    @Test("5.0 PUBLISH with every PUBLISH property")
    func v5AllProperties() {
        let props = bytes("""
            01 01  02 00 00 0E 10  03 00 0A 'text/plain'  08 00 05 'reply'  09 00 03 01 02 03  0B 7F
            23 00 07  26 00 02 'k1' 00 02 'v1'  26 00 02 'k1' 00 02 'v2'
            """)
        #expect(props.count == 2 + 5 + 13 + 8 + 6 + 2 + 3 + 9 + 9)
        let wire = frame(0x3D, bytes("00 03 'a/b' 12 34") + [UInt8(props.count)] + props + Array("héllo".utf8))
        var p = Properties()
        p.payloadFormatIndicator = true
        p.messageExpiryInterval = 3600
        p.contentType = "text/plain"
        p.responseTopic = "reply"
        p.correlationData = [1, 2, 3]
        p.subscriptionIdentifiers = [127]
        p.topicAlias = 7
        p.userProperties = [UserProperty("k1", "v1"), UserProperty("k1", "v2")]
        expectVector(wire, .publish(PublishPacket(topic: "a/b", payload: Array("héllo".utf8)[...], qos: .exactlyOnce,
                                                  retain: true, dup: true, packetID: 0x1234, properties: p)), .v5)
    }

    @Test("5.0 empty topic name with a topic alias")
    func v5TopicAliasOnly() {
        var p = Properties()
        p.topicAlias = 5
        expectVector(bytes("30 07 00 00 03 23 00 05 'x'"),
                     .publish(PublishPacket(topic: "", payload: Array("x".utf8)[...], properties: p)), .v5)
    }

    @Test("5.0 server PUBLISH with several subscription identifiers (1, 2 and 4 byte values)")
    func v5SubscriptionIdentifiers() throws {
        let wire = bytes("30 0E 00 01 't' 0A 0B 01 0B 80 01 0B FF FF FF 7F")
        var p = Properties()
        p.subscriptionIdentifiers = [1, 128, 268_435_455]
        expectVector(wire, .publish(PublishPacket(topic: "t", properties: p)), .v5)
        #expect(try decodeOne(wire, .v5, from: .server) == .publish(PublishPacket(topic: "t", properties: p)))
    }

    @Test("Properties are not written for 3.x")
    func noPropertiesIn3x() throws {
        var p = Properties()
        p.messageExpiryInterval = 5
        let packet = Packet.publish(PublishPacket(topic: "a/b", payload: [1], properties: p))
        #expect(try packet.encoded(version: .v3_1_1) == bytes("30 06 00 03 'a/b' 01"))
    }

    @Test("Properties a PUBLISH may not carry are not written")
    func filteredOnEncode() throws {
        var p = Properties()
        p.sessionExpiryInterval = 5
        p.reasonString = "no"
        let packet = Packet.publish(PublishPacket(topic: "a/b", properties: p))
        #expect(try packet.encoded(version: .v5) == bytes("30 06 00 03 'a/b' 00"))
    }

    @Test("encode(into:) returns the packet identifier's offset for re-stamping")
    func packetIDOffset() throws {
        var out: [UInt8] = [0xEE]
        let offset = try PublishPacket(topic: "a/b", qos: .atLeastOnce, packetID: 0x0102).encode(into: &out, version: .v3_1_1)
        #expect(offset == 1 + 2 + 5)
        #expect(out[8] == 0x01 && out[9] == 0x02)
        var out0: [UInt8] = []
        #expect(try PublishPacket(topic: "a/b").encode(into: &out0, version: .v5) == nil)
    }

    @Test("MQTT-4.7.3-3 topic names up to 65535 bytes; longer ones cannot be encoded")
    func topicLengthLimit() throws {
        let longest = ByteString([UInt8](repeating: 0x61, count: 65535))
        let packet = Packet.publish(PublishPacket(topic: longest, payload: [1, 2]))
        let wire = try packet.encoded(version: .v3_1_1)
        #expect(Array(wire.prefix(6)) == bytes("30 83 80 04 FF FF"))
        #expect(try decodeOne(wire, .v3_1_1) == packet)
        let tooLong = ByteString([UInt8](repeating: 0x61, count: 65536))
        #expect(throws: CodecError.self) {
            try Packet.publish(PublishPacket(topic: tooLong)).encoded(version: .v5)
        }
        var p = Properties()
        p.reasonString = String(repeating: "r", count: 65536)
        #expect(throws: CodecError.self) {
            try Packet.puback(AckPacket(packetID: 1, properties: p)).encoded(version: .v5)
        }
    }

    @Test("Encoding QoS > 0 with packet identifier 0 is refused")
    func encodeZeroPacketID() {
        #expect(throws: CodecError.self) {
            try Packet.publish(PublishPacket(topic: "a", qos: .atLeastOnce, packetID: 0)).encoded(version: .v5)
        }
    }

    @Test("PUBLISH from either side decodes with sender .client and .server", arguments: allVersions)
    func bothDirections(version: ProtocolVersion) throws {
        let wire = frame(0x30, str("a/b") + (version == .v5 ? [0] : []))
        #expect(try decodeOne(wire, version, from: .client) == .publish(PublishPacket(topic: "a/b")))
        #expect(try decodeOne(wire, version, from: .server) == .publish(PublishPacket(topic: "a/b")))
    }
}

@Suite("PUBACK, PUBREC, PUBREL, PUBCOMP vectors")
struct AckTests {
    enum Kind: String, CaseIterable, Sendable { case puback, pubrec, pubrel, pubcomp }

    static func first(_ kind: Kind) -> UInt8 {
        switch kind {
        case .puback: return 0x40
        case .pubrec: return 0x50
        case .pubrel: return 0x62
        case .pubcomp: return 0x70
        }
    }

    static func packet(_ kind: Kind, _ ack: AckPacket) -> Packet {
        switch kind {
        case .puback: return .puback(ack)
        case .pubrec: return .pubrec(ack)
        case .pubrel: return .pubrel(ack)
        case .pubcomp: return .pubcomp(ack)
        }
    }

    /// A failure code each kind may carry.
    static func failure(_ kind: Kind) -> ReasonCode {
        kind == .puback || kind == .pubrec ? .noMatchingSubscribers : .packetIdentifierNotFound
    }

    @Test("Packet identifier only (remaining length 2), every version", arguments: Kind.allCases, allVersions)
    func idOnly(kind: Kind, version: ProtocolVersion) {
        expectVector([Self.first(kind), 0x02, 0x12, 0x34], Self.packet(kind, AckPacket(packetID: 0x1234)), version)
    }

    @Test("5.0 remaining length 3: reason code, no property length", arguments: Kind.allCases)
    func reasonOnly(kind: Kind) {
        let code = Self.failure(kind)
        expectVector([Self.first(kind), 0x03, 0x00, 0x01, code.rawValue],
                     Self.packet(kind, AckPacket(packetID: 1, reasonCode: code)), .v5)
    }

    @Test("5.0 remaining length 4 and more: reason code and properties", arguments: Kind.allCases)
    func withProperties(kind: Kind) {
        let props = bytes("1F 00 02 'ok' 26 00 01 'k' 00 00")
        var p = Properties()
        p.reasonString = "ok"
        p.userProperties = [UserProperty("k", "")]
        expectVector(frame(Self.first(kind), bytes("00 01 00") + [UInt8(props.count)] + props),
                     Self.packet(kind, AckPacket(packetID: 1, properties: p)), .v5)
    }

    @Test("5.0 non-canonical forms decode: success code written out, empty property list", arguments: Kind.allCases)
    func nonCanonical(kind: Kind) {
        let expected = Self.packet(kind, AckPacket(packetID: 1))
        expectVector([Self.first(kind), 0x03, 0x00, 0x01, 0x00], expected, .v5, encodes: false)
        expectVector([Self.first(kind), 0x04, 0x00, 0x01, 0x00, 0x00], expected, .v5, encodes: false)
        let code = Self.failure(kind)
        expectVector([Self.first(kind), 0x04, 0x00, 0x01, code.rawValue, 0x00],
                     Self.packet(kind, AckPacket(packetID: 1, reasonCode: code)), .v5, encodes: false)
    }

    @Test("5.0 PUBACK/PUBREC accept each of their reason codes", arguments: [
        0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99,
    ] as [UInt8])
    func pubackCodes(code: UInt8) {
        for kind in [Kind.puback, .pubrec] {
            let expected = Self.packet(kind, AckPacket(packetID: 9, reasonCode: ReasonCode(code)))
            expectVector([Self.first(kind), 0x03, 0x00, 0x09, code], expected, .v5, encodes: code != 0)
        }
    }

    @Test("3.x acks ignore a reason code when encoding", arguments: Kind.allCases)
    func reasonDroppedIn3x(kind: Kind) throws {
        let packet = Self.packet(kind, AckPacket(packetID: 1, reasonCode: Self.failure(kind)))
        #expect(try packet.encoded(version: .v3_1_1) == [Self.first(kind), 0x02, 0x00, 0x01])
    }
}
