import MQTT
import Testing

@Suite("CONNECT vectors")
struct ConnectTests {
    @Test("3.1 (MQIsdp) minimal CONNECT")
    func minimal31() {
        expectVector(bytes("10 11 00 06 'MQIsdp' 03 02 00 3C 00 03 'abc'"),
                     .connect(ConnectPacket(version: .v3_1, clientID: "abc")), .v3_1)
    }

    @Test("3.1.1 minimal CONNECT")
    func minimal311() {
        expectVector(bytes("10 0F 00 04 'MQTT' 04 02 00 3C 00 03 'abc'"),
                     .connect(ConnectPacket(version: .v3_1_1, clientID: "abc")), .v3_1_1)
    }

    @Test("5.0 minimal CONNECT (property length 0)")
    func minimal5() {
        expectVector(bytes("10 10 00 04 'MQTT' 05 02 00 3C 00 00 03 'abc'"),
                     .connect(ConnectPacket(version: .v5, clientID: "abc")), .v5)
    }

    @Test("CONNECT carries its own level whatever version the decoder is given", arguments: allVersions)
    func connectCarriesItsLevel(assumed: ProtocolVersion) throws {
        let p = try decodeOne(bytes("10 10 00 04 'MQTT' 05 02 00 3C 00 00 03 'abc'"), assumed)
        #expect(p == .connect(ConnectPacket(version: .v5, clientID: "abc")))
        let q = try decodeOne(bytes("10 11 00 06 'MQIsdp' 03 02 00 3C 00 03 'abc'"), assumed)
        #expect(q == .connect(ConnectPacket(version: .v3_1, clientID: "abc")))
    }

    @Test("3.1.1 empty client id, clean session, keep alive 0")
    func emptyClientID() {
        expectVector(bytes("10 0C 00 04 'MQTT' 04 02 00 00 00 00"),
                     .connect(ConnectPacket(version: .v3_1_1, clientID: "", keepAlive: 0)), .v3_1_1)
    }

    @Test("3.1.1 clean session 0, keep alive 65535")
    func persistentSession() {
        expectVector(bytes("10 0F 00 04 'MQTT' 04 00 FF FF 00 03 'abc'"),
                     .connect(ConnectPacket(version: .v3_1_1, clientID: "abc", cleanStart: false, keepAlive: 65535)),
                     .v3_1_1)
    }

    @Test("User name only", arguments: allVersions)
    func usernameOnly(version: ProtocolVersion) {
        let body = str(version.protocolName) + [version.rawValue, 0x82, 0x00, 0x3C] + (version == .v5 ? [0] : [])
            + str("abc") + str("user")
        expectVector(frame(0x10, body),
                     .connect(ConnectPacket(version: version, clientID: "abc", username: "user")), version)
    }

    @Test("User name and binary password", arguments: allVersions)
    func usernameAndPassword(version: ProtocolVersion) {
        let body = str(version.protocolName) + [version.rawValue, 0xC2, 0x00, 0x3C] + (version == .v5 ? [0] : [])
            + str("abc") + str("user") + bytes("00 03 00 FF 80")
        expectVector(frame(0x10, body),
                     .connect(ConnectPacket(version: version, clientID: "abc", username: "user",
                                            password: [0x00, 0xFF, 0x80])), version)
    }

    @Test("5.0 password without user name is allowed")
    func passwordWithoutUsername5() {
        expectVector(bytes("10 14 00 04 'MQTT' 05 42 00 3C 00 00 03 'abc' 00 02 'pw'"),
                     .connect(ConnectPacket(version: .v5, clientID: "abc", password: Array("pw".utf8)[...])), .v5)
    }

    @Test("3.1.1 will, QoS 2, retained")
    func will311() {
        expectVector(bytes("10 18 00 04 'MQTT' 04 36 00 3C 00 03 'abc' 00 03 'w/t' 00 02 'hi'"),
                     .connect(ConnectPacket(version: .v3_1_1, clientID: "abc",
                                            will: Will(topic: "w/t", payload: Array("hi".utf8)[...],
                                                       qos: .exactlyOnce, retain: true))), .v3_1_1)
    }

    @Test("Will with each QoS", arguments: allVersions, [QoS.atMostOnce, .atLeastOnce, .exactlyOnce])
    func willQoS(version: ProtocolVersion, qos: QoS) {
        let flags: UInt8 = 0x02 | 0x04 | qos.rawValue << 3
        let v5 = version == .v5
        let body = str(version.protocolName) + [version.rawValue, flags, 0x00, 0x3C] + (v5 ? [0] : [])
            + str("abc") + (v5 ? [0] : []) + str("w") + bytes("00 00")
        expectVector(frame(0x10, body),
                     .connect(ConnectPacket(version: version, clientID: "abc",
                                            will: Will(topic: "w", payload: [], qos: qos))), version)
    }

    @Test("5.0 CONNECT with every CONNECT property and every will property")
    func allProperties5() {
        let connectProps = bytes("""
            11 00 00 00 0A  15 00 05 'SCRAM'  16 00 02 01 02  17 00  19 01  21 00 0A  22 00 05
            26 00 01 'k' 00 01 'v'  27 00 00 10 00
            """)
        #expect(connectProps.count == 40)
        let willProps = bytes("""
            01 01  02 00 00 00 3C  03 00 04 'text'  08 00 03 'r/t'  09 00 02 CA FE  18 00 00 00 05
            26 00 01 'a' 00 01 'b'
            """)
        #expect(willProps.count == 37)
        let body = bytes("00 04 'MQTT' 05 C6 00 3C") + [40] + connectProps + str("abc") + [37] + willProps
            + str("w/t") + str("hello") + str("user") + str("pw")
        var p = Properties()
        p.sessionExpiryInterval = 10
        p.authenticationMethod = "SCRAM"
        p.authenticationData = [1, 2]
        p.requestProblemInformation = false
        p.requestResponseInformation = true
        p.receiveMaximum = 10
        p.topicAliasMaximum = 5
        p.userProperties = [UserProperty("k", "v")]
        p.maximumPacketSize = 4096
        var w = Properties()
        w.payloadFormatIndicator = true
        w.messageExpiryInterval = 60
        w.contentType = "text"
        w.responseTopic = "r/t"
        w.correlationData = [0xCA, 0xFE]
        w.willDelayInterval = 5
        w.userProperties = [UserProperty("a", "b")]
        let packet = ConnectPacket(version: .v5, clientID: "abc", username: "user", password: Array("pw".utf8)[...],
                                   will: Will(topic: "w/t", payload: Array("hello".utf8)[...], properties: w),
                                   properties: p)
        expectVector(frame(0x10, body), .connect(packet), .v5)
    }

    @Test("3.x encoding drops properties; 5.0 keeps them")
    func propertiesOnlyInV5() throws {
        var p = Properties()
        p.sessionExpiryInterval = 10
        let packet = ConnectPacket(version: .v3_1_1, clientID: "abc", properties: p)
        #expect(try Packet.connect(packet).encoded(version: .v3_1_1) == bytes("10 0F 00 04 'MQTT' 04 02 00 3C 00 03 'abc'"))
    }

    @Test("Encoding refuses a CONNECT whose version differs from the requested one")
    func versionMismatch() {
        #expect(throws: CodecError.self) {
            try Packet.connect(ConnectPacket(version: .v5, clientID: "a")).encoded(version: .v3_1_1)
        }
    }

    @Test("Encoding refuses a 3.x password without user name (MQTT-3.1.2-22)")
    func encodePasswordWithoutUsername() {
        do {
            _ = try Packet.connect(ConnectPacket(version: .v3_1_1, clientID: "a", password: [1])).encoded(version: .v3_1_1)
            Issue.record("expected an error")
        } catch {
            #expect(error.rule == "MQTT-3.1.2-22")
        }
    }
}

@Suite("CONNACK vectors")
struct ConnackTests {
    static let returnCodes: [(UInt8, ReasonCode)] = [
        (0, .success), (1, .unsupportedProtocolVersion), (2, .clientIdentifierNotValid),
        (3, .serverUnavailable), (4, .badUserNameOrPassword), (5, .notAuthorized),
    ]

    @Test("3.1 and 3.1.1 CONNACK return codes 0...5", arguments: [ProtocolVersion.v3_1, .v3_1_1], returnCodes)
    func returnCodes3x(version: ProtocolVersion, code: (UInt8, ReasonCode)) {
        expectVector([0x20, 0x02, 0x00, code.0], .connack(ConnackPacket(reasonCode: code.1)), version)
    }

    @Test("3.1.1 CONNACK with session present")
    func sessionPresent311() {
        expectVector(bytes("20 02 01 00"), .connack(ConnackPacket(sessionPresent: true)), .v3_1_1)
    }

    @Test("3.1 CONNACK has no session-present bit: never encoded, ignored when read")
    func noSessionPresentIn31() throws {
        #expect(try Packet.connack(ConnackPacket(sessionPresent: true)).encoded(version: .v3_1) == bytes("20 02 00 00"))
        #expect(try decodeOne(bytes("20 02 01 00"), .v3_1) == .connack(ConnackPacket(sessionPresent: false)))
    }

    @Test("3.x CONNACK maps 5.0 reason codes to the nearest return code")
    func mapsReasonCodes() throws {
        let cases: [(ReasonCode, UInt8)] = [
            (.success, 0), (.unsupportedProtocolVersion, 1), (.clientIdentifierNotValid, 2),
            (.serverUnavailable, 3), (.serverBusy, 3), (.unspecifiedError, 3), (.badUserNameOrPassword, 4),
            (.badAuthenticationMethod, 4), (.notAuthorized, 5), (.banned, 5),
        ]
        for (reason, code) in cases {
            #expect(try Packet.connack(ConnackPacket(reasonCode: reason)).encoded(version: .v3_1_1) == [0x20, 2, 0, code])
        }
    }

    @Test("5.0 CONNACK without properties")
    func plain5() {
        expectVector(bytes("20 03 00 00 00"), .connack(ConnackPacket()), .v5)
        expectVector(bytes("20 03 01 00 00"), .connack(ConnackPacket(sessionPresent: true)), .v5)
        expectVector(bytes("20 03 00 87 00"), .connack(ConnackPacket(reasonCode: .notAuthorized)), .v5)
        expectVector(bytes("20 03 00 9C 00"), .connack(ConnackPacket(reasonCode: .useAnotherServer)), .v5)
    }

    @Test("5.0 CONNACK with every CONNACK property")
    func allProperties5() {
        let props = bytes("""
            11 00 00 00 3C  12 00 03 'xyz'  13 00 1E  15 00 01 'M'  16 00 01 FF  1A 00 02 'ri'
            1C 00 02 'sr'  1F 00 02 'ok'  21 00 14  22 00 0A  24 01  25 00  26 00 01 'k' 00 01 'v'
            27 00 01 00 00  28 01  29 00  2A 01
            """)
        #expect(props.count == 65)
        var p = Properties()
        p.sessionExpiryInterval = 60
        p.assignedClientIdentifier = "xyz"
        p.serverKeepAlive = 30
        p.authenticationMethod = "M"
        p.authenticationData = [0xFF]
        p.responseInformation = "ri"
        p.serverReference = "sr"
        p.reasonString = "ok"
        p.receiveMaximum = 20
        p.topicAliasMaximum = 10
        p.maximumQoS = .atLeastOnce
        p.retainAvailable = false
        p.userProperties = [UserProperty("k", "v")]
        p.maximumPacketSize = 65536
        p.wildcardSubscriptionAvailable = true
        p.subscriptionIdentifierAvailable = false
        p.sharedSubscriptionAvailable = true
        expectVector(bytes("20 44 01 00 41") + props, .connack(ConnackPacket(sessionPresent: true, properties: p)), .v5)
    }
}
