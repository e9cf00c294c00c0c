import MQTT
import Testing

/// The properties MQTT 5.0 section 2.2.2.2 allows in each place, written out from the spec
/// table independently of the codec.
let specAllowedProperties: [PropertyContext: Set<UInt8>] = [
    .connect: [0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27],
    .will: [0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
    .connack: [0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A],
    .publish: [0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26],
    .puback: [0x1F, 0x26], .pubrec: [0x1F, 0x26], .pubrel: [0x1F, 0x26], .pubcomp: [0x1F, 0x26],
    .subscribe: [0x0B, 0x26],
    .suback: [0x1F, 0x26],
    .unsubscribe: [0x26],
    .unsuback: [0x1F, 0x26],
    .disconnect: [0x11, 0x1C, 0x1F, 0x26],
    .auth: [0x15, 0x16, 0x1F, 0x26],
]

extension PropertyContext: CustomTestStringConvertible {
    public var testDescription: String { "\(self)" }
}

/// One valid encoding of each property (identifier and value).
let sampleProperty: [UInt8: [UInt8]] = [
    0x01: bytes("01 01"), 0x02: bytes("02 00 00 00 05"), 0x03: bytes("03 00 01 'x'"), 0x08: bytes("08 00 01 'r'"),
    0x09: bytes("09 00 01 01"), 0x0B: bytes("0B 05"), 0x11: bytes("11 00 00 00 05"), 0x12: bytes("12 00 01 'c'"),
    0x13: bytes("13 00 05"), 0x15: bytes("15 00 01 'm'"), 0x16: bytes("16 00 01 01"), 0x17: bytes("17 01"),
    0x18: bytes("18 00 00 00 05"), 0x19: bytes("19 01"), 0x1A: bytes("1A 00 01 'i'"), 0x1C: bytes("1C 00 01 's'"),
    0x1F: bytes("1F 00 01 'r'"), 0x21: bytes("21 00 05"), 0x22: bytes("22 00 05"), 0x23: bytes("23 00 05"),
    0x24: bytes("24 00"), 0x25: bytes("25 01"), 0x26: bytes("26 00 01 'k' 00 01 'v'"), 0x27: bytes("27 00 00 00 05"),
    0x28: bytes("28 01"), 0x29: bytes("29 01"), 0x2A: bytes("2A 01"),
]

/// A v5 packet whose property list (for `context`) is `props`; other fields minimal and valid.
func wireWithProperties(_ context: PropertyContext, _ props: [UInt8]) -> [UInt8] {
    let list = varint(props.count) + props
    switch context {
    case .connect: return frame(0x10, connectHeader(.v5) + [0x02, 0x00, 0x3C] + list + str("c"))
    case .will: return frame(0x10, connectHeader(.v5) + [0x06, 0x00, 0x3C, 0x00] + str("c") + list + str("w") + str("x"))
    case .connack: return frame(0x20, [0x00, 0x00] + list)
    case .publish: return frame(0x30, str("t") + list)
    case .puback: return frame(0x40, [0, 1, 0] + list)
    case .pubrec: return frame(0x50, [0, 1, 0] + list)
    case .pubrel: return frame(0x62, [0, 1, 0] + list)
    case .pubcomp: return frame(0x70, [0, 1, 0] + list)
    case .subscribe: return frame(0x82, [0, 1] + list + str("t") + [0])
    case .suback: return frame(0x90, [0, 1] + list + [0])
    case .unsubscribe: return frame(0xA2, [0, 1] + list + str("t"))
    case .unsuback: return frame(0xB0, [0, 1] + list + [0])
    case .disconnect: return frame(0xE0, [0] + list)
    case .auth: return frame(0xF0, [0] + list)
    }
}

/// The properties of a decoded packet for `context`.
func decodedProperties(_ packet: Packet, _ context: PropertyContext) -> Properties? {
    switch packet {
    case .connect(let p): return context == .will ? p.will?.properties : p.properties
    case .connack(let p): return p.properties
    case .publish(let p): return p.properties
    case .puback(let p), .pubrec(let p), .pubrel(let p), .pubcomp(let p): return p.properties
    case .subscribe(let p): return p.properties
    case .suback(let p): return p.properties
    case .unsubscribe(let p): return p.properties
    case .unsuback(let p): return p.properties
    case .disconnect(let p): return p.properties
    case .auth(let p): return p.properties
    case .pingreq, .pingresp: return nil
    }
}

let allContexts: [PropertyContext] = [
    .connect, .will, .connack, .publish, .puback, .pubrec, .pubrel, .pubcomp, .subscribe, .suback, .unsubscribe,
    .unsuback, .disconnect, .auth,
]

@Suite("MQTT 5.0 properties")
struct PropertiesTests {
    @Test("Each property is accepted where the spec allows it and refused (0x81) elsewhere", arguments: allContexts)
    func allowedTable(context: PropertyContext) throws {
        let allowed = try #require(specAllowedProperties[context])
        for id in PropertyID.allCases {
            let raw = id.rawValue
            var props = try #require(sampleProperty[raw])
            // Authentication Data needs an Authentication Method in CONNECT.
            if raw == 0x16 { props = bytes("15 00 01 'm'") + props }
            let wire = wireWithProperties(context, props)
            if allowed.contains(raw) {
                expectAccepted(wire, .v5)
            } else {
                // 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
                expectRejected(wire, .v5, reason: malformed, rule: nil)
            }
        }
    }

    @Test("filtered(for:) keeps exactly what the spec allows, and is what decoding returns", arguments: allContexts)
    func filteredMatchesDecoder(context: PropertyContext) throws {
        var all = Properties()
        all.payloadFormatIndicator = false
        all.messageExpiryInterval = 1
        all.contentType = "ct"
        all.responseTopic = "rt"
        all.correlationData = [9]
        all.subscriptionIdentifiers = [3]
        all.sessionExpiryInterval = 2
        all.assignedClientIdentifier = "id"
        all.serverKeepAlive = 3
        all.authenticationMethod = "m"
        all.authenticationData = [1]
        all.requestProblemInformation = true
        all.willDelayInterval = 4
        all.requestResponseInformation = false
        all.responseInformation = "ri"
        all.serverReference = "sr"
        all.reasonString = "rs"
        all.receiveMaximum = 5
        all.topicAliasMaximum = 6
        all.topicAlias = 7
        all.maximumQoS = .atMostOnce
        all.retainAvailable = true
        all.userProperties = [UserProperty("a", "b")]
        all.maximumPacketSize = 8
        all.wildcardSubscriptionAvailable = false
        all.subscriptionIdentifierAvailable = true
        all.sharedSubscriptionAvailable = false
        let filtered = all.filtered(for: context)
        let packet: Packet
        switch context {
        case .connect: packet = .connect(ConnectPacket(version: .v5, clientID: "c", properties: all))
        case .will:
            packet = .connect(ConnectPacket(version: .v5, clientID: "c",
                                            will: Will(topic: "w", payload: [0x41], properties: all)))
        case .connack: packet = .connack(ConnackPacket(properties: all))
        case .publish: packet = .publish(PublishPacket(topic: "t", properties: all))
        case .puback: packet = .puback(AckPacket(packetID: 1, properties: all))
        case .pubrec: packet = .pubrec(AckPacket(packetID: 1, properties: all))
        case .pubrel: packet = .pubrel(AckPacket(packetID: 1, properties: all))
        case .pubcomp: packet = .pubcomp(AckPacket(packetID: 1, properties: all))
        case .subscribe: packet = .subscribe(SubscribePacket(packetID: 1, subscriptions: [Subscription(topicFilter: "t")],
                                                             properties: all))
        case .suback: packet = .suback(SubackPacket(packetID: 1, reasonCodes: [.success], properties: all))
        case .unsubscribe: packet = .unsubscribe(UnsubscribePacket(packetID: 1, topicFilters: ["t"], properties: all))
        case .unsuback: packet = .unsuback(UnsubackPacket(packetID: 1, reasonCodes: [.success], properties: all))
        case .disconnect: packet = .disconnect(DisconnectPacket(properties: all))
        case .auth: packet = .auth(AuthPacket(properties: all))
        }
        let decoded = try decodeOne(try packet.encoded(version: .v5), .v5)
        #expect(decodedProperties(decoded, context) == filtered)
        // Which fields survive, by identifier, against the spec table.
        let allowed = try #require(specAllowedProperties[context])
        #expect((filtered.sessionExpiryInterval != nil) == allowed.contains(0x11))
        #expect((filtered.topicAlias != nil) == allowed.contains(0x23))
        #expect((filtered.willDelayInterval != nil) == allowed.contains(0x18))
        #expect((filtered.reasonString != nil) == allowed.contains(0x1F))
        #expect((!filtered.subscriptionIdentifiers.isEmpty) == allowed.contains(0x0B))
        #expect((filtered.maximumQoS != nil) == allowed.contains(0x24))
        #expect((filtered.authenticationMethod != nil) == allowed.contains(0x15))
        #expect(filtered.userProperties == all.userProperties)
    }

    @Test("Unknown property identifiers are malformed",
          arguments: ["00 00", "04 00", "07 00", "0A 00", "10 00", "14 00", "1B 00", "1D 00", "20 00", "2B 00", "7F 00",
                      "80 01 00", "FF 7F 00"])
    func unknownIdentifier(property: String) {
        expectRejected(puback5(props: bytes(property)), .v5, reason: malformed, rule: nil)
        expectRejected(publish5(props: bytes(property)), .v5, reason: malformed, rule: nil)
    }

    @Test("Property not allowed in the packet, e.g. topic alias in CONNECT, session expiry in PUBLISH")
    func notAllowedExamples() {
        expectRejected(connect5(props: bytes("23 00 01")), .v5, reason: malformed, rule: nil)
        expectRejected(publish5(props: bytes("11 00 00 00 01")), .v5, reason: malformed, rule: nil)
        expectRejected(puback5(props: bytes("0B 01")), .v5, reason: malformed, rule: nil)
        expectRejected(connack5(props: bytes("18 00 00 00 01")), .v5, reason: malformed, rule: nil)
    }

    @Test("A property may not appear twice", arguments: [
        (PropertyContext.connect, "11 00 00 00 01 11 00 00 00 02"),
        (.connect, "21 00 01 21 00 01"),
        (.connect, "15 00 01 'm' 15 00 01 'm'"),
        (.connect, "15 00 01 'm' 16 00 00 16 00 00"),
        (.will, "18 00 00 00 01 18 00 00 00 01"),
        (.connack, "24 00 24 00"),
        (.connack, "12 00 01 'a' 12 00 01 'b'"),
        (.publish, "23 00 01 23 00 01"),
        (.publish, "01 00 01 00"),
        (.publish, "09 00 00 09 00 00"),
        (.puback, "1F 00 00 1F 00 00"),
        (.subscribe, "0B 01 0B 02"),
        (.disconnect, "1C 00 01 'a' 1C 00 01 'a'"),
        (.auth, "15 00 01 'm' 15 00 01 'm'"),
    ])
    func duplicates(context: PropertyContext, props: String) {
        expectRejected(wireWithProperties(context, bytes(props)), .v5, reason: protocolError, rule: nil)
    }

    @Test("User property may repeat (same name too), in every packet", arguments: allContexts)
    func userPropertyRepeats(context: PropertyContext) throws {
        let props = bytes("26 00 01 'k' 00 01 '1' 26 00 01 'k' 00 01 '2' 26 00 00 00 00")
        let packet = try decodeOne(wireWithProperties(context, props), .v5)
        #expect(decodedProperties(packet, context)?.userProperties
                == [UserProperty("k", "1"), UserProperty("k", "2"), UserProperty("", "")])
    }

    @Test("Subscription identifier may repeat in a server PUBLISH, in order")
    func subscriptionIdentifierRepeats() throws {
        let packet = try decodeOne(publish5(props: bytes("0B 02 0B 01 0B 02")), .v5, from: .server)
        #expect(decodedProperties(packet, .publish)?.subscriptionIdentifiers == [2, 1, 2])
    }

    @Test("Receive Maximum 0 is a protocol error", arguments: [PropertyContext.connect, .connack])
    func receiveMaximumZero(context: PropertyContext) {
        expectRejected(wireWithProperties(context, bytes("21 00 00")), .v5, reason: protocolError, rule: nil)
    }

    @Test("Maximum Packet Size 0 is a protocol error", arguments: [PropertyContext.connect, .connack])
    func maximumPacketSizeZero(context: PropertyContext) {
        expectRejected(wireWithProperties(context, bytes("27 00 00 00 00")), .v5, reason: protocolError, rule: nil)
    }

    @Test("MQTT-3.3.2-8 Topic Alias 0 is not permitted (0x94)")
    func topicAliasZero() {
        expectRejected(publish5(props: bytes("23 00 00")), .v5, reason: .topicAliasInvalid, rule: "MQTT-3.3.2-8")
    }

    @Test("Subscription Identifier 0 is a protocol error", arguments: [PropertyContext.publish, .subscribe])
    func subscriptionIdentifierZero(context: PropertyContext) {
        expectRejected(wireWithProperties(context, bytes("0B 00")), .v5, reason: protocolError, rule: nil)
    }

    @Test("Subscription Identifier over four bytes is malformed")
    func subscriptionIdentifierTooLong() {
        expectRejected(publish5(props: bytes("0B 80 80 80 80 01")), .v5, reason: malformed, rule: nil)
    }

    @Test("MQTT-1.5.5-1 variable byte integers inside a packet use the fewest bytes")
    func nonMinimalVarintInPacket() {
        expectRejected(publish5(props: bytes("0B 81 00")), .v5, reason: malformed, rule: "MQTT-1.5.5-1")
        // property length 0 written as 80 00
        expectRejected(frame(0x40, bytes("00 01 00 80 00")), .v5, reason: malformed, rule: "MQTT-1.5.5-1")
        expectRejected(frame(0x30, str("t") + bytes("80 00")), .v5, reason: malformed, rule: "MQTT-1.5.5-1")
    }

    @Test("Boolean properties take only 0 or 1", arguments: [
        (PropertyContext.publish, "01 02"), (.will, "01 02"), (.connect, "17 02"), (.connect, "19 02"),
        (.connack, "25 02"), (.connack, "28 02"), (.connack, "29 02"), (.connack, "2A FF"),
    ])
    func booleanValue(context: PropertyContext, props: String) {
        expectRejected(wireWithProperties(context, bytes(props)), .v5, reason: protocolError, rule: nil)
    }

    @Test("Maximum QoS takes only 0 or 1", arguments: ["24 02", "24 03"])
    func maximumQoS(props: String) {
        expectRejected(connack5(props: bytes(props)), .v5, reason: protocolError, rule: nil)
    }

    @Test("Authentication Data without Authentication Method is a protocol error in CONNECT")
    func authDataWithoutMethod() {
        expectRejected(connect5(props: bytes("16 00 01 01")), .v5, reason: protocolError, rule: nil)
        expectAccepted(connect5(props: bytes("16 00 01 01 15 00 01 'm'")), .v5)
    }

    @Test("Property length running past the packet is malformed", arguments: [
        "40 05 00 01 00 05 1F",  // length 5, one byte left
        "40 04 00 01 00 7F",
        "40 05 00 01 00 FF 7F",
        "30 06 00 01 't' 10 01 00",
    ])
    func lengthPastPacket(wire: String) {
        expectRejected(bytes(wire), .v5, reason: malformed, rule: nil)
    }

    @Test("A property running past the property length is malformed")
    func propertyPastLength() {
        // Property length 2 but the reason string takes 5 bytes (the packet has room for it).
        expectRejected(bytes("40 09 00 01 00 02 1F 00 02 'ok'"), .v5, reason: malformed, rule: nil)
        // Property value cut off by the end of the packet.
        expectRejected(bytes("40 06 00 01 00 02 1F 00"), .v5, reason: malformed, rule: nil)
        expectRejected(publish5(props: bytes("02 00 00")), .v5, reason: malformed, rule: nil)
    }

    @Test("MQTT-3.3.2-2 Response Topic must not contain wildcards; must not be empty")
    func responseTopic() {
        expectRejected(publish5(props: bytes("08 00 03 'a/#'")), .v5, reason: .topicNameInvalid, rule: "MQTT-3.3.2-2")
        expectRejected(publish5(props: bytes("08 00 01 '+'")), .v5, reason: .topicNameInvalid, rule: "MQTT-3.3.2-2")
        expectRejected(publish5(props: bytes("08 00 00")), .v5, reason: .topicNameInvalid, rule: "MQTT-4.7.3-1")
    }

    @Test("Encoding refuses out-of-range subscription identifiers")
    func encodeSubscriptionIdentifierRange() {
        for bad: UInt32 in [0, 268_435_456] {
            var p = Properties()
            p.subscriptionIdentifiers = [bad]
            #expect(throws: CodecError.self) {
                try Packet.publish(PublishPacket(topic: "t", properties: p)).encoded(version: .v5)
            }
        }
    }
}
