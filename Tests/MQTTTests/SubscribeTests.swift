import MQTT
import Testing

@Suite("SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK vectors")
struct SubscribeTests {
    @Test("3.x SUBSCRIBE with each requested QoS", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func subscribe3x(version: ProtocolVersion) {
        expectVector(bytes("82 12 00 0A 00 03 'a/b' 00 00 03 'c/+' 01 00 01 '#' 02"),
                     .subscribe(SubscribePacket(packetID: 10, subscriptions: [
                         Subscription(topicFilter: "a/b", qos: .atMostOnce),
                         Subscription(topicFilter: "c/+", qos: .atLeastOnce),
                         Subscription(topicFilter: "#", qos: .exactlyOnce),
                     ])), version)
    }

    @Test("3.x treats $share/... as an ordinary filter")
    func share3x() {
        expectVector(bytes("82 0E 00 01 00 09 '$share/g/' 00"),
                     .subscribe(SubscribePacket(packetID: 1, subscriptions: [Subscription(topicFilter: "$share/g/")])),
                     .v3_1_1)
    }

    @Test("5.0 SUBSCRIBE options: No Local, Retain As Published, Retain Handling 0/1/2")
    func subscribe5Options() {
        // 0x2D = retain handling 2, RAP, No Local, QoS 1; 0x12 = retain handling 1, QoS 2; 0x08 = RAP, QoS 0.
        let wire = bytes("82 13 00 0A 00 00 03 'a/b' 2D 00 03 'c/d' 12 00 01 'e' 08")
        expectVector(wire, .subscribe(SubscribePacket(packetID: 10, subscriptions: [
            Subscription(topicFilter: "a/b", qos: .atLeastOnce, noLocal: true, retainAsPublished: true,
                         retainHandling: 2),
            Subscription(topicFilter: "c/d", qos: .exactlyOnce, retainHandling: 1),
            Subscription(topicFilter: "e", retainAsPublished: true),
        ])), .v5)
    }

    @Test("5.0 SUBSCRIBE with subscription identifier and user property")
    func subscribe5Properties() {
        var p = Properties()
        p.subscriptionIdentifiers = [16_384]
        p.userProperties = [UserProperty("u", "1")]
        let props = bytes("0B 80 80 01 26 00 01 'u' 00 01 '1'")
        expectVector(frame(0x82, bytes("00 02") + [UInt8(props.count)] + props + str("$share/grp/x/#") + [0x01]),
                     .subscribe(SubscribePacket(packetID: 2, subscriptions: [
                         Subscription(topicFilter: "$share/grp/x/#", qos: .atLeastOnce),
                     ], properties: p)), .v5)
    }

    @Test("3.x encoding drops the 5.0 subscription options")
    func options3x() throws {
        let packet = Packet.subscribe(SubscribePacket(packetID: 1, subscriptions: [
            Subscription(topicFilter: "a", qos: .atLeastOnce, noLocal: true, retainAsPublished: true, retainHandling: 2),
        ]))
        #expect(try packet.encoded(version: .v3_1_1) == bytes("82 06 00 01 00 01 'a' 01"))
    }

    @Test("SUBACK 3.x codes 0, 1, 2, 0x80", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func suback3x(version: ProtocolVersion) {
        expectVector(bytes("90 06 00 0A 00 01 02 80"),
                     .suback(SubackPacket(packetID: 10, reasonCodes: [.grantedQoS0, .grantedQoS1, .grantedQoS2,
                                                                      .unspecifiedError])), version)
    }

    @Test("SUBACK 3.x writes any 5.0 failure code as 0x80")
    func suback3xFailureMapping() throws {
        let packet = Packet.suback(SubackPacket(packetID: 1, reasonCodes: [.topicFilterInvalid, .notAuthorized, .grantedQoS1]))
        #expect(try packet.encoded(version: .v3_1_1) == bytes("90 05 00 01 80 80 01"))
    }

    @Test("SUBACK 5.0 codes", arguments: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2] as [UInt8])
    func suback5(code: UInt8) {
        expectVector([0x90, 0x04, 0x00, 0x0A, 0x00, code],
                     .suback(SubackPacket(packetID: 10, reasonCodes: [ReasonCode(code)])), .v5)
    }

    @Test("SUBACK 5.0 with reason string")
    func suback5Properties() {
        var p = Properties()
        p.reasonString = "why"
        expectVector(bytes("90 0B 00 0A 06 1F 00 03 'why' 00 9E"),
                     .suback(SubackPacket(packetID: 10, reasonCodes: [.grantedQoS0, .sharedSubscriptionsNotSupported],
                                          properties: p)), .v5)
    }

    @Test("UNSUBSCRIBE", arguments: allVersions)
    func unsubscribe(version: ProtocolVersion) {
        let wire = version == .v5
            ? bytes("A2 0B 00 0B 00 00 03 'a/b' 00 01 '#'")
            : bytes("A2 0A 00 0B 00 03 'a/b' 00 01 '#'")
        expectVector(wire, .unsubscribe(UnsubscribePacket(packetID: 11, topicFilters: ["a/b", "#"])), version)
    }

    @Test("5.0 UNSUBSCRIBE with user property and a shared filter")
    func unsubscribe5Properties() {
        var p = Properties()
        p.userProperties = [UserProperty("a", "b")]
        expectVector(bytes("A2 16 00 0B 07 26 00 01 'a' 00 01 'b' 00 0A '$share/g/t'"),
                     .unsubscribe(UnsubscribePacket(packetID: 11, topicFilters: ["$share/g/t"], properties: p)), .v5)
    }

    @Test("UNSUBACK 3.x: packet identifier only", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func unsuback3x(version: ProtocolVersion) {
        expectVector(bytes("B0 02 00 0B"), .unsuback(UnsubackPacket(packetID: 11)), version)
    }

    @Test("UNSUBACK 5.0 codes", arguments: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91] as [UInt8])
    func unsuback5(code: UInt8) {
        expectVector([0xB0, 0x04, 0x00, 0x0B, 0x00, code],
                     .unsuback(UnsubackPacket(packetID: 11, reasonCodes: [ReasonCode(code)])), .v5)
    }

    @Test("UNSUBACK 5.0 with properties and several codes")
    func unsuback5Properties() {
        var p = Properties()
        p.reasonString = "r"
        p.userProperties = [UserProperty("x", "y")]
        expectVector(bytes("B0 10 00 0B 0B 1F 00 01 'r' 26 00 01 'x' 00 01 'y' 00 11"),
                     .unsuback(UnsubackPacket(packetID: 11, reasonCodes: [.success, .noSubscriptionExisted],
                                              properties: p)), .v5)
    }
}

@Suite("PINGREQ, PINGRESP, DISCONNECT, AUTH vectors")
struct ControlPacketTests {
    @Test("PINGREQ and PINGRESP", arguments: allVersions)
    func ping(version: ProtocolVersion) {
        expectVector(bytes("C0 00"), .pingreq, version)
        expectVector(bytes("D0 00"), .pingresp, version)
    }

    @Test("DISCONNECT with no body", arguments: allVersions)
    func disconnectEmpty(version: ProtocolVersion) {
        expectVector(bytes("E0 00"), .disconnect(DisconnectPacket()), version)
    }

    @Test("3.x DISCONNECT drops a reason code when encoding")
    func disconnect3xEncoding() throws {
        #expect(try Packet.disconnect(DisconnectPacket(reasonCode: .serverShuttingDown)).encoded(version: .v3_1_1)
            == bytes("E0 00"))
    }

    @Test("5.0 DISCONNECT with one byte: reason code only")
    func disconnectReasonOnly() {
        expectVector(bytes("E0 01 04"), .disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage)), .v5)
        expectVector(bytes("E0 01 8E"), .disconnect(DisconnectPacket(reasonCode: .sessionTakenOver)), .v5)
        expectVector(bytes("E0 01 00"), .disconnect(DisconnectPacket()), .v5, encodes: false)
        expectVector(bytes("E0 02 00 00"), .disconnect(DisconnectPacket()), .v5, encodes: false)
    }

    @Test("5.0 DISCONNECT with properties")
    func disconnectProperties() {
        var p = Properties()
        p.sessionExpiryInterval = 0
        p.serverReference = "other"
        p.reasonString = "bye"
        p.userProperties = [UserProperty("k", "v")]
        let props = bytes("11 00 00 00 00 1C 00 05 'other' 1F 00 03 'bye' 26 00 01 'k' 00 01 'v'")
        #expect(props.count == 26)
        expectVector(bytes("E0 1C 00 1A") + props, .disconnect(DisconnectPacket(properties: p)), .v5)
    }

    @Test("AUTH: empty means success")
    func authEmpty() {
        expectVector(bytes("F0 00"), .auth(AuthPacket()), .v5)
    }

    @Test("AUTH with reason code and no properties")
    func authReasonOnly() {
        expectVector(bytes("F0 02 18 00"), .auth(AuthPacket(reasonCode: .continueAuthentication)), .v5)
        expectVector(bytes("F0 01 19"), .auth(AuthPacket(reasonCode: .reAuthenticate)), .v5, encodes: false)
    }

    @Test("AUTH with method, data, reason string, user property")
    func authProperties() {
        var p = Properties()
        p.authenticationMethod = "SCRAM"
        p.authenticationData = [1, 2, 3]
        p.reasonString = "go"
        p.userProperties = [UserProperty("a", "")]
        let props = bytes("15 00 05 'SCRAM' 16 00 03 01 02 03 1F 00 02 'go' 26 00 01 'a' 00 00")
        #expect(props.count == 8 + 6 + 5 + 6)
        expectVector(bytes("F0 1B 18 19") + props,
                     .auth(AuthPacket(reasonCode: .continueAuthentication, properties: p)), .v5)
    }

    @Test("AUTH cannot be encoded for 3.x", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func authNot3x(version: ProtocolVersion) {
        #expect(throws: CodecError.self) { try Packet.auth(AuthPacket()).encoded(version: version) }
    }
}
