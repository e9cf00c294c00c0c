// The seed inputs of the three harnesses, one file per input:
//   corpus/frame/<level>-<packet>-<n>      [level+sender byte, chunk seed] + wire bytes
//   corpus/roundtrip/<level>-<packet>-<n>  [level+sender byte, first byte] + body
//   corpus/topic/<n>                       [level byte, split byte] + name + filter
// Every packet seed is checked to decode (with the level and sender it names)
// before it is written. The level+sender byte is level index (0: 3.1, 1: 3.1.1,
// 2: 5.0) + 3 * sender index (0: client, 1: server, 2: either).
import Foundation
import MQTT

let versions: [ProtocolVersion] = [.v3_1, .v3_1_1, .v5]
let senders: [Sender] = [.client, .server, .either]

func name(_ v: ProtocolVersion) -> String {
    switch v {
    case .v3_1: return "v3.1"
    case .v3_1_1: return "v3.1.1"
    case .v5: return "v5"
    }
}

func bytes(_ s: String) -> ArraySlice<UInt8> { Array(s.utf8)[...] }

/// Every property, each set once to a value that is valid; the encoder writes the
/// ones the packet's context allows.
func allProperties() -> Properties {
    var p = Properties()
    p.payloadFormatIndicator = true
    p.messageExpiryInterval = 3600
    p.contentType = "text/plain"
    p.responseTopic = "reply/alice"
    p.correlationData = [1, 2, 3, 4]
    p.subscriptionIdentifiers = [268_435_455]
    p.sessionExpiryInterval = 0xFFFF_FFFF
    p.assignedClientIdentifier = "auto-1"
    p.serverKeepAlive = 30
    p.authenticationMethod = "SCRAM-SHA-1"
    p.authenticationData = [0xDE, 0xAD]
    p.requestProblemInformation = false
    p.willDelayInterval = 10
    p.requestResponseInformation = true
    p.responseInformation = "resp"
    p.serverReference = "other.example"
    p.reasonString = "because"
    p.receiveMaximum = 100
    p.topicAliasMaximum = 10
    p.topicAlias = 3
    p.maximumQoS = .atLeastOnce
    p.retainAvailable = false
    p.userProperties = [UserProperty("k", "v"), UserProperty("k", "v2"), UserProperty("ü", "")]
    p.maximumPacketSize = 65_536
    p.wildcardSubscriptionAvailable = true
    p.subscriptionIdentifierAvailable = false
    p.sharedSubscriptionAvailable = true
    return p
}

/// The packets of one protocol level, with the side that sends them.
func packets(_ v: ProtocolVersion) -> [(String, Sender, Packet)] {
    let v5 = v == .v5
    let props = v5 ? allProperties() : Properties()
    var list: [(String, Sender, Packet)] = []
    func add(_ n: String, _ s: Sender, _ p: Packet) { list.append((n, s, p)) }

    // CONNECT
    add("connect", .client, .connect(ConnectPacket(version: v, clientID: "client-1")))
    add("connect", .client, .connect(ConnectPacket(version: v, clientID: "", cleanStart: false, keepAlive: 0)))
    var willProps = props
    willProps.subscriptionIdentifiers = []
    add("connect", .client, .connect(ConnectPacket(
        version: v, clientID: "ü-client", cleanStart: true, keepAlive: 0xFFFF, username: "alice",
        password: [0, 1, 2, 0xFF],
        will: Will(topic: "clients/alice/status", payload: bytes("offline"), qos: .exactlyOnce, retain: true,
                   properties: willProps),
        properties: props)))
    add("connect", .client, .connect(ConnectPacket(
        version: v, clientID: "c", username: "u",
        will: Will(topic: "w", payload: [], qos: .atLeastOnce))))

    // CONNACK
    add("connack", .server, .connack(ConnackPacket()))
    add("connack", .server, .connack(ConnackPacket(sessionPresent: true, properties: props)))
    add("connack", .server, .connack(ConnackPacket(reasonCode: .notAuthorized, properties: props)))
    add("connack", .server, .connack(ConnackPacket(reasonCode: v5 ? .serverMoved : .badUserNameOrPassword)))

    // PUBLISH
    add("publish", .either, .publish(PublishPacket(topic: "a/b", payload: bytes("hello"))))
    add("publish", .either, .publish(PublishPacket(
        topic: "rooms/general/messages", payload: bytes("{\"text\":\"hi\"}"), qos: .atLeastOnce, retain: true,
        packetID: 1)))
    var publishProps = props
    publishProps.subscriptionIdentifiers = []
    add("publish", .either, .publish(PublishPacket(
        topic: "$SYS/€/𝄞", payload: bytes("ünïcödé"), qos: .exactlyOnce, dup: true, packetID: 0xFFFF,
        properties: publishProps)))
    add("publish", .either, .publish(PublishPacket(topic: "/", payload: [], qos: .atMostOnce)))
    if v5 {
        var alias = Properties()
        alias.topicAlias = 1
        add("publish", .client, .publish(PublishPacket(topic: "", payload: [0xFF, 0], properties: alias)))
        var ids = Properties()
        ids.subscriptionIdentifiers = [1, 127, 128, 16_383, 16_384, 268_435_455]
        ids.payloadFormatIndicator = false
        add("publish", .server, .publish(PublishPacket(topic: "t", payload: bytes("x"), qos: .atLeastOnce,
                                                        packetID: 7, properties: ids)))
    }

    // PUBACK, PUBREC, PUBREL, PUBCOMP
    for (n, make) in [
        ("puback", Packet.puback), ("pubrec", Packet.pubrec), ("pubrel", Packet.pubrel), ("pubcomp", Packet.pubcomp),
    ] {
        add(n, .either, make(AckPacket(packetID: 1)))
        add(n, .either, make(AckPacket(packetID: 0xFFFF)))
        if v5 {
            let failure: ReasonCode = n == "puback" || n == "pubrec" ? .noMatchingSubscribers : .packetIdentifierNotFound
            add(n, .either, make(AckPacket(packetID: 2, reasonCode: failure)))
            add(n, .either, make(AckPacket(packetID: 3, reasonCode: failure, properties: props)))
            add(n, .either, make(AckPacket(packetID: 4, properties: props)))
        }
    }

    // SUBSCRIBE
    var subs = [
        Subscription(topicFilter: "a/+", qos: .atMostOnce),
        Subscription(topicFilter: "#", qos: .atLeastOnce),
        Subscription(topicFilter: "+/+/#", qos: .exactlyOnce),
        Subscription(topicFilter: "$SYS/#"),
        Subscription(topicFilter: "sport/tennis/player1/#"),
    ]
    if v5 {
        subs.append(Subscription(topicFilter: "$share/group/rooms/+/messages", qos: .atLeastOnce,
                                 retainAsPublished: true, retainHandling: 2))
        subs.append(Subscription(topicFilter: "x/y", qos: .exactlyOnce, noLocal: true, retainAsPublished: true,
                                 retainHandling: 1))
    }
    add("subscribe", .client, .subscribe(SubscribePacket(packetID: 10, subscriptions: [subs[0]])))
    add("subscribe", .client, .subscribe(SubscribePacket(packetID: 0xFFFF, subscriptions: subs, properties: props)))

    // SUBACK
    add("suback", .server, .suback(SubackPacket(packetID: 10, reasonCodes: [.grantedQoS0])))
    let codes: [ReasonCode] = v5
        ? [.grantedQoS0, .grantedQoS1, .grantedQoS2, .unspecifiedError, .topicFilterInvalid,
           .sharedSubscriptionsNotSupported, .wildcardSubscriptionsNotSupported]
        : [.grantedQoS0, .grantedQoS1, .grantedQoS2, .unspecifiedError]
    add("suback", .server, .suback(SubackPacket(packetID: 11, reasonCodes: codes, properties: props)))

    // UNSUBSCRIBE
    add("unsubscribe", .client, .unsubscribe(UnsubscribePacket(packetID: 12, topicFilters: ["a/+"])))
    add("unsubscribe", .client, .unsubscribe(UnsubscribePacket(
        packetID: 13, topicFilters: ["#", "$share/g/a/#", "ü/€"],  // $share/ is a plain filter in 3.x
        properties: props)))

    // UNSUBACK
    add("unsuback", .server, .unsuback(UnsubackPacket(packetID: 12, reasonCodes: v5 ? [.success] : [])))
    if v5 {
        add("unsuback", .server, .unsuback(UnsubackPacket(
            packetID: 13, reasonCodes: [.success, .noSubscriptionExisted, .notAuthorized], properties: props)))
    }

    // PINGREQ, PINGRESP
    add("pingreq", .client, .pingreq)
    add("pingresp", .server, .pingresp)

    // DISCONNECT
    add("disconnect", .either, .disconnect(DisconnectPacket()))
    if v5 {
        add("disconnect", .either, .disconnect(DisconnectPacket(reasonCode: .disconnectWithWillMessage)))
        add("disconnect", .client, .disconnect(DisconnectPacket(reasonCode: .serverMoved, properties: props)))
        var serverProps = props
        serverProps.sessionExpiryInterval = nil
        add("disconnect", .server, .disconnect(DisconnectPacket(reasonCode: .sessionTakenOver, properties: serverProps)))
    }

    // AUTH
    if v5 {
        add("auth", .either, .auth(AuthPacket()))
        add("auth", .either, .auth(AuthPacket(reasonCode: .continueAuthentication, properties: props)))
        add("auth", .either, .auth(AuthPacket(reasonCode: .reAuthenticate, properties: props)))
    }
    return list
}

/// Byte sequences that are not packets the encoder writes: framing edge cases.
let rawFrames: [(String, [UInt8])] = [
    ("remaining-length-1-byte-max", [0x30, 0x7F] + [0x00, 0x01, 0x61] + [UInt8](repeating: 0x41, count: 124)),
    ("remaining-length-2-bytes", [0x30, 0x80, 0x01] + [0x00, 0x01, 0x61] + [UInt8](repeating: 0x42, count: 125)),
    ("remaining-length-max", [0x30, 0xFF, 0xFF, 0xFF, 0x7F]),
    ("remaining-length-5-bytes", [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    ("remaining-length-not-minimal", [0xC0, 0x80, 0x00]),
    ("two-pings", [0xC0, 0x00, 0xD0, 0x00]),
    ("reserved-type-0", [0x00, 0x00]),
    ("publish-qos3", [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]),
    ("connect-bad-name", [0x10, 0x0C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x3C, 0x00, 0x00]),
]

let outDir = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "corpus"
let fm = FileManager.default
for sub in ["frame", "roundtrip", "topic"] {
    let dir = "\(outDir)/\(sub)"
    try? fm.removeItem(atPath: dir)
    try! fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
}

func write(_ path: String, _ data: [UInt8]) {
    guard fm.createFile(atPath: "\(outDir)/\(path)", contents: Data(data)) else {
        fatalError("cannot write \(outDir)/\(path)")
    }
}

var written = [String: Int]()
var failures = 0
for (vi, v) in versions.enumerated() {
    var counts = [String: Int]()
    var session: [UInt8] = []
    for (packetName, sender, packet) in packets(v) {
        let si = senders.firstIndex(of: sender)!
        let selector = UInt8(vi + 3 * si)
        let wire: [UInt8]
        do {
            wire = try packet.encoded(version: v)
        } catch {
            print("seedgen: \(name(v)) \(packetName) does not encode: \(error)")
            failures += 1
            continue
        }
        var decoder = FrameDecoder()
        decoder.append(wire)
        do {
            guard let frame = try decoder.next() else { throw CodecError(.malformedPacket, "incomplete") }
            _ = try Packet.decode(frame, version: v, from: sender)
        } catch {
            print("seedgen: \(name(v)) \(packetName) does not decode: \(error)")
            failures += 1
            continue
        }
        counts[packetName, default: 0] += 1
        let file = "\(name(v))-\(packetName)-\(counts[packetName]!)"
        var headerLength = 2
        while wire[headerLength - 1] & 0x80 != 0 { headerLength += 1 }
        write("roundtrip/\(file)", [selector, wire[0]] + wire[headerLength...])
        // One append, chunks up to 256 bytes, or chunks of 1-8 bytes.
        let chunkSeed: UInt8 = [0x00, 0x11, 0x93][counts[packetName]! % 3]
        write("frame/\(file)", [selector, chunkSeed] + wire)
        if sender != .server { session += wire }
    }
    // A client's whole session in one stream, with small chunks.
    write("frame/\(name(v))-client-session", [UInt8(vi + 3 * 0), 0x85] + session)
    for (n, raw) in rawFrames {
        write("frame/\(name(v))-raw-\(n)", [UInt8(vi + 3 * 2), 0x07] + raw)
    }
    written[name(v)] = counts.values.reduce(0, +)
}

// Topic names and filters, most from the examples of MQTT 5.0 section 4.7.
let topics: [(String, String)] = [
    ("sport/tennis/player1", "sport/tennis/player1/#"),
    ("sport/tennis/player1/ranking", "sport/tennis/player1/#"),
    ("sport", "sport/#"),
    ("sport/tennis", "sport/tennis/+"),
    ("sport/tennis/player1", "sport/+"),
    ("sport/", "sport/+"),
    ("/finance", "+/+"),
    ("/finance", "/+"),
    ("/finance", "+"),
    ("$SYS/monitor/Clients", "#"),
    ("$SYS/monitor/Clients", "$SYS/#"),
    ("$SYS/monitor/Clients", "+/monitor/Clients"),
    ("rooms/general/messages", "$share/consumer1/rooms/+/messages"),
    ("a//b", "a/+/b"),
    ("/", "+/+"),
    ("ü/€/𝄞", "ü/+/𝄞"),
    ("a/b", "a/b"),
    ("a", "sport/tennis#"),
    ("a", "sport/tennis/#/ranking"),
    ("a+", "sport+"),
    ("a", "$share/g"),
    ("a", "$share//a"),
    ("a", "$share/g+/a"),
    ("a\u{0}b", "a/\u{0}"),
]
for (i, (n, f)) in topics.enumerated() {
    let nb = Array(n.utf8)
    let fb = Array(f.utf8)
    let total = nb.count + fb.count
    // The split byte s gives name length total * s / 256.
    guard let split = (0...255).first(where: { total * $0 / 256 == nb.count }) else {
        print("seedgen: no split byte for \(n) | \(f)")
        failures += 1
        continue
    }
    write("topic/\(String(format: "%02d", i))-v5", [2, UInt8(split)] + nb + fb)
    write("topic/\(String(format: "%02d", i))-v3.1.1", [1, UInt8(split)] + nb + fb)
}
// Ill-formed UTF-8: overlong, surrogate, above U+10FFFF, truncated, lone continuation.
let badUTF8: [[UInt8]] = [[0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
                          [0xE2, 0x82], [0x80], [0xF0, 0x9F, 0x98, 0x80], [0xEF, 0xBF, 0xBF]]
for (i, b) in badUTF8.enumerated() {
    write("topic/utf8-\(i)", [2, 128] + Array("a/".utf8) + b + Array("/#".utf8) + b)
}

print("seedgen: wrote \(written.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value) packets" }.joined(separator: ", ")), \(topics.count * 2 + badUTF8.count) topic inputs to \(outDir)/")
exit(failures == 0 ? 0 : 1)
