import MQTT
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random valid packets for one protocol level, from a seeded SplitMix64 so that a failure
/// reproduces from the printed seed.
struct PacketGenerator {
    var rng: SplitMix64
    let version: ProtocolVersion
    var v5: Bool { version == .v5 }

    init(seed: UInt64, version: ProtocolVersion) {
        rng = SplitMix64(seed: seed)
        self.version = version
    }

    mutating func bool() -> Bool { rng.below(2) == 1 }
    mutating func chance(_ percent: Int) -> Bool { rng.chance(percent) }
    mutating func u16(_ r: ClosedRange<Int> = 0...65535) -> UInt16 { UInt16(rng.range(r)) }
    mutating func u32() -> UInt32 {
        // Favour the edges.
        switch rng.below(4) {
        case 0: return UInt32(rng.below(256))
        case 1: return rng.pick([0, 1, UInt32.max, UInt32.max - 1, 65535, 65536])
        default: return UInt32(truncatingIfNeeded: rng.next())
        }
    }

    mutating func string(max: Int = 8, min: Int = 0) -> String { randomString(&rng, maxScalars: max, minScalars: min) }

    mutating func data(max: Int = 16) -> ArraySlice<UInt8> {
        let count = rng.chance(3) ? rng.range(0...700) : rng.range(0...max)
        return ArraySlice((0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
    }

    /// A topic level: any valid text but '/', '+', '#'.
    mutating func level() -> String { randomString(&rng, maxScalars: 4, excluding: [0x2F, 0x2B, 0x23]) }

    mutating func topicName() -> String {
        var levels = (0..<rng.range(1...4)).map { _ in level() }
        if chance(5) { levels.insert("$SYS", at: 0) }
        let name = levels.joined(separator: "/")
        return name.isEmpty ? "t" : name
    }

    mutating func topicFilter() -> String {
        var levels: [String] = (0..<rng.range(1...4)).map { _ in chance(25) ? "+" : level() }
        if chance(25) { levels.append("#") }
        var filter = levels.joined(separator: "/")
        if filter.isEmpty { filter = "f" }
        if v5 && chance(20) {
            let group = randomString(&rng, maxScalars: 4, minScalars: 1, excluding: [0x2F, 0x2B, 0x23])
            filter = "$share/\(group)/\(filter)"
        }
        return filter
    }

    mutating func subscriptionIdentifier() -> UInt32 {
        UInt32(rng.pick([1...127, 128...16383, 16384...2_097_151, 2_097_152...268_435_455]).randomElement(using: &rng)!)
    }

    mutating func properties(_ context: PropertyContext) -> Properties {
        var p = Properties()
        guard v5, let allowed = specAllowedProperties[context] else { return p }
        let density = rng.pick([0, 10, 40, 90])
        func want(_ id: UInt8, _ gen: inout PacketGenerator) -> Bool { allowed.contains(id) && gen.chance(density) }
        if want(0x01, &self) { p.payloadFormatIndicator = bool() }
        if want(0x02, &self) { p.messageExpiryInterval = u32() }
        if want(0x03, &self) { p.contentType = string() }
        if want(0x08, &self) { p.responseTopic = topicName() }
        if want(0x09, &self) { p.correlationData = data() }
        if want(0x0B, &self) {
            let count = context == .publish ? rng.range(1...3) : 1
            p.subscriptionIdentifiers = (0..<count).map { _ in subscriptionIdentifier() }
        }
        if want(0x11, &self) { p.sessionExpiryInterval = u32() }
        if want(0x12, &self) { p.assignedClientIdentifier = string() }
        if want(0x13, &self) { p.serverKeepAlive = u16() }
        if want(0x15, &self) {
            p.authenticationMethod = string(min: 1)
            if chance(60) { p.authenticationData = data() }
        }
        if want(0x17, &self) { p.requestProblemInformation = bool() }
        if want(0x18, &self) { p.willDelayInterval = u32() }
        if want(0x19, &self) { p.requestResponseInformation = bool() }
        if want(0x1A, &self) { p.responseInformation = string() }
        if want(0x1C, &self) { p.serverReference = string() }
        if want(0x1F, &self) { p.reasonString = string(max: 20) }
        if want(0x21, &self) { p.receiveMaximum = u16(1...65535) }
        if want(0x22, &self) { p.topicAliasMaximum = u16() }
        if want(0x23, &self) { p.topicAlias = u16(1...65535) }
        if want(0x24, &self) { p.maximumQoS = bool() ? .atLeastOnce : .atMostOnce }
        if want(0x25, &self) { p.retainAvailable = bool() }
        if want(0x26, &self) {
            p.userProperties = (0..<rng.range(1...3)).map { _ in UserProperty(string(), string()) }
        }
        if want(0x27, &self) { p.maximumPacketSize = UInt32(rng.range(1...Int(UInt32.max))) }
        if want(0x28, &self) { p.wildcardSubscriptionAvailable = bool() }
        if want(0x29, &self) { p.subscriptionIdentifierAvailable = bool() }
        if want(0x2A, &self) { p.sharedSubscriptionAvailable = bool() }
        return p
    }

    /// A payload; UTF-8 text when the properties say so.
    mutating func payload(for properties: Properties) -> ArraySlice<UInt8> {
        properties.payloadFormatIndicator == true ? ArraySlice(string(max: 30).utf8) : data(max: 40)
    }

    mutating func qos() -> QoS { rng.pick(QoS.allCases) }
    mutating func packetID() -> UInt16 { chance(10) ? rng.pick([1, 65535]) : u16(1...65535) }

    mutating func reason(_ codes: [UInt8]) -> ReasonCode { ReasonCode(rng.pick(codes)) }

    mutating func packet() -> Packet {
        let types: [PacketType] = PacketType.allCases.filter { v5 || $0 != .auth }
        switch rng.pick(types) {
        case .connect:
            var will: Will? = nil
            if chance(40) {
                let props = properties(.will)
                will = Will(topic: ByteString(topicName()), payload: payload(for: props), qos: qos(), retain: bool(),
                            properties: props)
            }
            let username = chance(50) ? string() : nil
            let password = (v5 || username != nil) && chance(50) ? data() : nil
            return .connect(ConnectPacket(version: version, clientID: string(max: 23), cleanStart: bool(),
                                          keepAlive: u16(), username: username, password: password, will: will,
                                          properties: properties(.connect)))
        case .connack:
            if v5 {
                let code = chance(50) ? ReasonCode.success : reason([
                    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
                ])
                return .connack(ConnackPacket(sessionPresent: code == .success && bool(), reasonCode: code,
                                              properties: properties(.connack)))
            }
            let code = reason([0x00, 0x84, 0x85, 0x88, 0x86, 0x87])  // the six 3.x return codes
            let sessionPresent = version == .v3_1_1 && code == .success && bool()
            return .connack(ConnackPacket(sessionPresent: sessionPresent, reasonCode: code))
        case .publish:
            let q = qos()
            var props = properties(.publish)
            var topic = ByteString(topicName())
            if v5 && props.topicAlias != nil && chance(30) { topic = "" }
            if v5 && chance(5) {
                props.topicAlias = u16(1...65535)
                topic = ""
            }
            return .publish(PublishPacket(topic: topic, payload: payload(for: props), qos: q, retain: bool(),
                                          dup: q != .atMostOnce && bool(), packetID: q == .atMostOnce ? 0 : packetID(),
                                          properties: props))
        case .puback:
            return .puback(AckPacket(packetID: packetID(), reasonCode: v5 ? reason([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]) : .success,
                                     properties: properties(.puback)))
        case .pubrec:
            return .pubrec(AckPacket(packetID: packetID(), reasonCode: v5 ? reason([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]) : .success,
                                     properties: properties(.pubrec)))
        case .pubrel:
            return .pubrel(AckPacket(packetID: packetID(), reasonCode: v5 ? reason([0x00, 0x92]) : .success,
                                     properties: properties(.pubrel)))
        case .pubcomp:
            return .pubcomp(AckPacket(packetID: packetID(), reasonCode: v5 ? reason([0x00, 0x92]) : .success,
                                      properties: properties(.pubcomp)))
        case .subscribe:
            let subs = (0..<rng.range(1...4)).map { _ -> Subscription in
                let filter = topicFilter()
                var s = Subscription(topicFilter: ByteString(filter), qos: qos())
                if v5 {
                    s.noLocal = !filter.utf8.starts(with: "$share/".utf8) && bool()  // bytes: a combining mark may follow the slash
                    s.retainAsPublished = bool()
                    s.retainHandling = UInt8(rng.below(3))
                }
                return s
            }
            return .subscribe(SubscribePacket(packetID: packetID(), subscriptions: subs, properties: properties(.subscribe)))
        case .suback:
            let codes: [UInt8] = v5 ? [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2] : [0, 1, 2, 0x80]
            return .suback(SubackPacket(packetID: packetID(), reasonCodes: (0..<rng.range(1...5)).map { _ in reason(codes) },
                                        properties: properties(.suback)))
        case .unsubscribe:
            return .unsubscribe(UnsubscribePacket(packetID: packetID(),
                                                  topicFilters: (0..<rng.range(1...4)).map { _ in ByteString(topicFilter()) },
                                                  properties: properties(.unsubscribe)))
        case .unsuback:
            let codes = v5 ? (0..<rng.range(1...5)).map { _ in reason([0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]) } : []
            return .unsuback(UnsubackPacket(packetID: packetID(), reasonCodes: codes, properties: properties(.unsuback)))
        case .pingreq: return .pingreq
        case .pingresp: return .pingresp
        case .disconnect:
            guard v5 else { return .disconnect(DisconnectPacket()) }
            return .disconnect(DisconnectPacket(
                reasonCode: chance(40) ? .normalDisconnection : reason([
                    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
                    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
                ]),
                properties: properties(.disconnect)))
        case .auth:
            return .auth(AuthPacket(reasonCode: reason([0x00, 0x18, 0x19]), properties: properties(.auth)))
        }
    }
}

/// The seed: `MQTT_TEST_SEED` in the environment, or a fixed default, mixed with the version.
func roundTripSeed(_ version: ProtocolVersion) -> UInt64 {
    var base: UInt64 = 0xC0DE_C0DE_2025
    if let text = getenvString("MQTT_TEST_SEED"), let value = UInt64(text) { base = value }
    return base &+ UInt64(version.rawValue)
}

func getenvString(_ name: String) -> String? {
    guard let p = getenv(name) else { return nil }
    return String(cString: p)
}

@Suite("Round trip: decode(encode(p)) == p on random packets")
struct RoundTripTests {
    static let packetsPerVersion = 4000

    @Test("Random packets round-trip through encode and decode", arguments: allVersions)
    func roundTrip(version: ProtocolVersion) throws {
        let seed = roundTripSeed(version)
        var gen = PacketGenerator(seed: seed, version: version)
        var failures = 0
        var seenTypes = Set<UInt8>()
        for i in 0..<Self.packetsPerVersion {
            let packet = gen.packet()
            seenTypes.insert(packet.type.rawValue)
            let context = "seed \(seed) (MQTT_TEST_SEED=\(seed &- UInt64(version.rawValue))) packet #\(i) v\(version): \(packet)"
            let wire: [UInt8]
            do {
                wire = try packet.encoded(version: version)
            } catch {
                Issue.record("encoding failed with \(error); \(context)")
                failures += 1
                if failures > 5 { return }
                continue
            }
            let outcome = decodeWire(wire, version)
            if outcome != .packet(packet) {
                Issue.record("decoded \(outcome) from \(hexString(wire.prefix(64))); \(context)")
                failures += 1
                if failures > 5 { return }
            }
            // Encoding the decoded packet gives the same bytes again.
            if case .packet(let decoded) = outcome {
                #expect(try decoded.encoded(version: version) == wire, "\(context)")
            }
        }
        #expect(seenTypes.count == (version == .v5 ? 15 : 14), "seed \(seed)")
    }

    @Test("A stream of random packets fed in random chunk sizes gives the same packets", arguments: allVersions)
    func streamInChunks(version: ProtocolVersion) throws {
        let seed = roundTripSeed(version) &+ 1000
        var gen = PacketGenerator(seed: seed, version: version)
        var chunkRNG = SplitMix64(seed: seed ^ 0xABCDEF)
        for round in 0..<20 {
            let packets = (0..<200).map { _ in gen.packet() }
            var wire: [UInt8] = []
            for p in packets { try p.encode(into: &wire, version: version) }
            var decoder = FrameDecoder()
            var decoded: [Packet] = []
            var offset = 0
            // Chunk sizes from 1 byte to the whole stream.
            let mode = round % 4
            while offset < wire.count {
                let left = wire.count - offset
                let size: Int
                switch mode {
                case 0: size = 1
                case 1: size = min(left, chunkRNG.range(1...7))
                case 2: size = min(left, chunkRNG.range(1...300))
                default: size = chunkRNG.chance(20) ? left : min(left, chunkRNG.range(1...2000))
                }
                decoder.append(wire[offset..<(offset + size)])
                offset += size
                while let f = try decoder.next() {
                    decoded.append(try Packet.decode(f, version: version))
                }
            }
            #expect(decoder.bufferedByteCount == 0, "seed \(seed) round \(round)")
            #expect(decoded.count == packets.count, "seed \(seed) round \(round)")
            for (i, (a, b)) in zip(decoded, packets).enumerated() where a != b {
                Issue.record("seed \(seed) round \(round) packet #\(i): decoded \(a), sent \(b)")
                return
            }
        }
    }
}
