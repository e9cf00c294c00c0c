import MQTT
import Testing

/// The byte examples printed in the OASIS texts (3.1, 3.1.1, 5.0), checked both ways.
@Suite("OASIS spec examples")
struct SpecExamplesTests {
    /// 3.1.1 section 3.1.2.10, figure 3.6: `00 04 'M' 'Q' 'T' 'T' 04 CE 00 0A`
    /// (user name, password, will QoS 1, will flag, clean session; keep alive 10).
    @Test("3.1.1 CONNECT variable header example 00 04 MQTT 04 CE 00 0A")
    func connect311Example() {
        let variableHeader = bytes("00 04 4D 51 54 54 04 CE 00 0A")
        #expect(variableHeader == bytes("00 04 'MQTT' 04 CE 00 0A"))
        let payload = str("client") + str("will/topic") + str("bye") + str("user") + str("pass")
        let wire = frame(0x10, variableHeader + payload)
        let packet = ConnectPacket(
            version: .v3_1_1, clientID: "client", cleanStart: true, keepAlive: 10, username: "user",
            password: Array("pass".utf8)[...],
            will: Will(topic: "will/topic", payload: Array("bye".utf8)[...], qos: .atLeastOnce, retain: false))
        expectVector(wire, .connect(packet), .v3_1_1)
    }

    /// MQTT 3.1: protocol name `MQIsdp`, level 3, same flags.
    @Test("3.1 CONNECT variable header example 00 06 MQIsdp 03 CE 00 0A")
    func connect31Example() {
        let variableHeader = bytes("00 06 4D 51 49 73 64 70 03 CE 00 0A")
        #expect(variableHeader == bytes("00 06 'MQIsdp' 03 CE 00 0A"))
        let payload = str("client") + str("will/topic") + str("bye") + str("user") + str("pass")
        let packet = ConnectPacket(
            version: .v3_1, clientID: "client", cleanStart: true, keepAlive: 10, username: "user",
            password: Array("pass".utf8)[...],
            will: Will(topic: "will/topic", payload: Array("bye".utf8)[...], qos: .atLeastOnce))
        expectVector(frame(0x10, variableHeader + payload), .connect(packet), .v3_1)
    }

    /// 5.0 section 3.1.2.12, figure 3-6: the same flags plus properties
    /// `05 11 00 00 00 0A` (length 5, Session Expiry Interval 10).
    @Test("5.0 CONNECT variable header example with Session Expiry Interval 10")
    func connect5Example() {
        let variableHeader = bytes("00 04 4D 51 54 54 05 CE 00 0A 05 11 00 00 00 0A")
        let payload = str("client") + [0x00] + str("will/topic") + str("bye") + str("user") + str("pass")
        var properties = Properties()
        properties.sessionExpiryInterval = 10
        let packet = ConnectPacket(
            version: .v5, clientID: "client", cleanStart: true, keepAlive: 10, username: "user",
            password: Array("pass".utf8)[...],
            will: Will(topic: "will/topic", payload: Array("bye".utf8)[...], qos: .atLeastOnce),
            properties: properties)
        expectVector(frame(0x10, variableHeader + payload), .connect(packet), .v5)
    }

    /// 3.1.1 section 1.5.3 figure 1.3 / 5.0 section 1.5.4 figure 1-1: "A" U+2A6D4 is
    /// `00 05 41 F0 AA 9B 94`.
    @Test("UTF-8 example: A U+2A6D4 is 00 05 41 F0 AA 9B 94", arguments: allVersions)
    func utf8Example(version: ProtocolVersion) throws {
        let encoded = bytes("00 05 41 F0 AA 9B 94")
        #expect(str("A\u{2A6D4}") == encoded)
        #expect(UTF8Validation.check(encoded[2...]) == .valid)
        // As a topic name in PUBLISH and as a client identifier in CONNECT.
        let publish = frame(0x30, encoded + (version == .v5 ? [0x00] : []) + [0x21])
        expectVector(publish, .publish(PublishPacket(topic: "A\u{2A6D4}", payload: [0x21])), version)
        let name = version.protocolName
        let connectBody = str(name) + [version.rawValue, 0x02, 0x00, 0x3C] + (version == .v5 ? [0x00] : []) + encoded
        let connect = try decodeOne(frame(0x10, connectBody), version)
        #expect(connect == .connect(ConnectPacket(version: version, clientID: "A\u{2A6D4}")))
    }

    /// MQTT-1.5.3-3 / MQTT-1.5.4-3: a BOM (EF BB BF) is kept, not stripped.
    @Test("MQTT-1.5.4-3 U+FEFF is not stripped by the receiver", arguments: allVersions)
    func bomIsKept(version: ProtocolVersion) {
        let topic = "\u{FEFF}a/b"
        let wire = frame(0x30, bytes("00 06 EF BB BF 'a/b'") + (version == .v5 ? [0x00] : []))
        expectVector(wire, .publish(PublishPacket(topic: ByteString(topic))), version)
        guard case .packet(.publish(let p)) = decodeWire(wire, version) else { return }
        #expect(Array(p.topic.bytes.prefix(3)) == [0xEF, 0xBB, 0xBF])
    }

    /// 3.1.1 figure 3.11 / 5.0 figure 3-9: PUBLISH variable header, topic "a/b", packet id 10
    /// (5.0 adds property length 0).
    @Test("PUBLISH variable header example: a/b, packet identifier 10", arguments: allVersions)
    func publishExample(version: ProtocolVersion) {
        let variableHeader = version == .v5 ? bytes("00 03 61 2F 62 00 0A 00") : bytes("00 03 61 2F 62 00 0A")
        let wire = frame(0x32, variableHeader)
        expectVector(wire, .publish(PublishPacket(topic: "a/b", qos: .atLeastOnce, packetID: 10)), version)
    }

    /// 3.1.1 figure 3.22 / 5.0 figure 3-21: SUBSCRIBE payload "a/b" QoS 1, "c/d" QoS 2.
    @Test("SUBSCRIBE payload example: a/b QoS 1, c/d QoS 2", arguments: allVersions)
    func subscribeExample(version: ProtocolVersion) {
        let variableHeader = version == .v5 ? bytes("00 0A 00") : bytes("00 0A")
        let payload = bytes("00 03 'a/b' 01 00 03 'c/d' 02")
        let packet = SubscribePacket(packetID: 10, subscriptions: [
            Subscription(topicFilter: "a/b", qos: .atLeastOnce),
            Subscription(topicFilter: "c/d", qos: .exactlyOnce),
        ])
        expectVector(frame(0x82, variableHeader + payload), .subscribe(packet), version)
    }

    /// 3.1.1 figure 3.26: SUBACK payload "Success - Maximum QoS 0", "Success - Maximum QoS 2", "Failure".
    @Test("SUBACK payload example: 00 02 80", arguments: allVersions)
    func subackExample(version: ProtocolVersion) {
        let wire = frame(0x90, bytes("00 0A") + (version == .v5 ? [0x00] : []) + bytes("00 02 80"))
        let packet = SubackPacket(packetID: 10, reasonCodes: [.grantedQoS0, .grantedQoS2, .unspecifiedError])
        expectVector(wire, .suback(packet), version)
    }

    /// 3.1.1 figure 3.30: UNSUBSCRIBE payload "a/b", "c/d".
    @Test("UNSUBSCRIBE payload example: a/b, c/d", arguments: allVersions)
    func unsubscribeExample(version: ProtocolVersion) {
        let wire = frame(0xA2, bytes("00 0A") + (version == .v5 ? [0x00] : []) + bytes("00 03 'a/b' 00 03 'c/d'"))
        expectVector(wire, .unsubscribe(UnsubscribePacket(packetID: 10, topicFilters: ["a/b", "c/d"])), version)
    }

    /// 3.1.1 table 2.4 / 5.0 table 1-1: Variable Byte Integer sizes.
    @Test("Variable byte integer boundaries (1 to 4 bytes)", arguments: [
        (0, "00"), (127, "7F"), (128, "80 01"), (16_383, "FF 7F"), (16_384, "80 80 01"),
        (2_097_151, "FF FF 7F"), (2_097_152, "80 80 80 01"), (268_435_455, "FF FF FF 7F"),
    ])
    func variableByteIntegerTable(value: Int, encoding: String) throws {
        let lengthBytes = bytes(encoding)
        #expect(varint(value) == lengthBytes)
        let packetSize = 1 + lengthBytes.count + value
        // The decoder reads the length exactly: a limit one below the packet size refuses it,
        // the exact size waits for the body.
        var exact = FrameDecoder(maximumPacketSize: packetSize)
        exact.append([0x30] + lengthBytes)
        if value == 0 {
            // A PUBLISH with an empty body frames fine (the packet decoder refuses it later).
            let f = try #require(try exact.next())
            #expect(f.body.isEmpty)
        } else {
            #expect(try exact.next() == nil)
        }
        var tooSmall = FrameDecoder(maximumPacketSize: packetSize - 1)
        tooSmall.append([0x30] + lengthBytes)
        #expect(throws: CodecError.self) { try tooSmall.next() }
        do { _ = try tooSmall.next() } catch { #expect(error.reason == .packetTooLarge) }

        // The encoder writes the same header, for sizes a test can afford to build.
        if value >= 3 && value <= 2_097_152 {
            let packet = Packet.publish(PublishPacket(topic: "a", payload: ArraySlice(repeating: 0x41, count: value - 3)))
            for version in allVersions where version != .v5 {
                let encoded = try packet.encoded(version: version)
                #expect(Array(encoded.prefix(1 + lengthBytes.count)) == [0x30] + lengthBytes)
                #expect(encoded.count == packetSize)
            }
        }
    }
}
