import Glibc
import Gateway
import MQTT
import Reactor
import Synchronization

/// What one publisher has done; read across loops.
final class PublisherState: @unchecked Sendable {
    let index: Int
    let topic: ByteString
    let fanout: Int
    /// Written by the publisher's loop only.
    var sent = 0
    var inflight = 0
    var acked = 0
    /// Deliveries of this publisher's messages, counted by subscribers on any loop.
    let delivered = Atomic<Int>(0)

    init(index: Int, topic: ByteString, fanout: Int) {
        self.index = index
        self.topic = topic
        self.fanout = fanout
    }
}

/// Sequence bookkeeping of one publisher's messages at one subscriber: exact
/// counts of unique, duplicate and out-of-order deliveries.
struct SequenceTracker {
    private var seen: [UInt64] = []
    private var highest: Int = -1
    private(set) var unique = 0
    private(set) var duplicates = 0
    private(set) var outOfOrder = 0

    mutating func record(_ seq: Int) {
        let word = seq >> 6
        if word >= seen.count { seen.append(contentsOf: repeatElement(0, count: max(word + 1 - seen.count, seen.count))) }
        let bit = UInt64(1) << UInt64(seq & 63)
        if seen[word] & bit != 0 {
            duplicates += 1
            return
        }
        seen[word] |= bit
        unique += 1
        if seq < highest { outOfOrder += 1 } else { highest = seq }
    }
}

/// Counters of one generator loop.
final class BenchLoopStats: @unchecked Sendable {
    let delivered = Atomic<Int>(0)
    var histogram = LatencyHistogram()
    var errors: [String] = []
}

/// One MQTT connection of the load generator.
final class BenchClient: Connection {
    let clientID: String
    let options: BenchOptions
    let publisher: PublisherState?
    let subscribeTo: ByteString?
    let stats: BenchLoopStats
    /// Called once: true when the client is ready (CONNACK, SUBACK), false when its
    /// connection ended before that (a refused handshake, say).
    let onSetup: (Bool) -> Void
    private var setupReported = false
    private var decoder = FrameDecoder()
    private(set) var ready = false
    private var trackers: [Int: SequenceTracker] = [:]
    private let credentials: (String, String)?
    /// Chat: the last envelope id seen, and the envelopes whose id was not the next one.
    private var lastEnvelopeID: Int64 = 0
    private(set) var idErrors = 0
    private var nextPacketID: UInt16 = 1
    private var payload: [UInt8]

    init(fd: Int32, loop: EventLoop, clientID: String, options: BenchOptions, credentials: (String, String)? = nil,
         publisher: PublisherState?, subscribeTo: ByteString?, stats: BenchLoopStats, onSetup: @escaping (Bool) -> Void)
    {
        self.clientID = clientID
        self.credentials = credentials
        self.options = options
        self.publisher = publisher
        self.subscribeTo = subscribeTo
        self.stats = stats
        self.onSetup = onSetup
        self.payload = [UInt8](repeating: 0x2E, count: options.payloadSize)
        super.init(fd: fd, loop: loop, peer: nil)
    }

    func start(tls: TLSContext?) {
        if let tls, !startTLS(tls, asClient: true, serverName: options.serverName ?? options.broker.host) {
            fail("TLS setup failed")
            return
        }
        do { try activate() } catch {
            fail("register: \(error)")
            return
        }
        beginTLSHandshake()
        if let path = options.websocketPath {
            // The upgrade first; CONNECT once the broker answered 101.
            upgradeAnswer = []
            send(Array(("GET \(path) HTTP/1.1\r\nHost: \(options.broker)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + "Sec-WebSocket-Protocol: mqtt\r\n\r\n").utf8))
            return
        }
        sendConnect()
    }

    /// The upgrade answer while it arrives (WebSocket only).
    private var upgradeAnswer: [UInt8]?

    private func upgradeArrived(_ bytes: UnsafeRawBufferPointer) {
        upgradeAnswer!.append(contentsOf: bytes)
        let answer = upgradeAnswer!
        guard let end = (0..<max(0, answer.count - 3)).first(where: {
            answer[$0] == 13 && answer[$0 + 1] == 10 && answer[$0 + 2] == 13 && answer[$0 + 3] == 10
        }) else {
            if answer.count > 16_384 { fail("no end to the upgrade answer") }
            return
        }
        guard answer.starts(with: Array("HTTP/1.1 101".utf8)) else {
            return fail("upgrade refused: \(String(decoding: answer.prefix(40), as: UTF8.self))")
        }
        upgradeAnswer = nil
        setLayer(WebSocketLayer(mode: .stream, maxFrame: 64 << 20, client: true))
        sendConnect()
        Array(answer[(end + 4)...]).withUnsafeBytes { deliver($0) }
    }

    private func sendConnect() {
        var connect = ConnectPacket(version: options.version, clientID: clientID, cleanStart: true, keepAlive: 0)
        if let (user, secret) = credentials {
            connect.username = user
            connect.password = Array(secret.utf8)[...]
        }
        if options.persistent && subscribeTo != nil {
            connect.cleanStart = options.version == .v5
            if options.version == .v5 { connect.properties.sessionExpiryInterval = 600 }
        }
        sendEncoding { out in try? Packet.connect(connect).encode(into: &out, version: options.version) }
    }

    private func fail(_ text: String) {
        if stats.errors.count < 20 { stats.errors.append("\(clientID): \(text)") }
        close()
    }

    private func reportSetup(_ ok: Bool) {
        if setupReported { return }
        setupReported = true
        onSetup(ok)
    }

    override func didClose(_ reason: CloseReason) {
        if !ready { reportSetup(false) }
        if case .local = reason { return }
        if stats.errors.count < 20 { stats.errors.append("\(clientID): connection closed (\(reason))") }
    }

    override func received(_ bytes: UnsafeRawBufferPointer) {
        if upgradeAnswer != nil { return upgradeArrived(bytes) }
        decoder.append(bytes)
        while true {
            let frame: Frame?
            do { frame = try decoder.next() } catch {
                fail("bad frame: \(error)")
                return
            }
            guard let frame else { return }
            guard let packet = try? Packet.decode(frame, version: options.version, from: .server) else {
                fail("bad packet")
                return
            }
            handle(packet)
        }
    }

    private func handle(_ packet: Packet) {
        switch packet {
        case .connack(let c):
            guard c.reasonCode == .success else {
                fail("CONNACK \(c.reasonCode)")
                return
            }
            if let filter = subscribeTo {
                let sub = SubscribePacket(packetID: 1, subscriptions: [Subscription(topicFilter: filter, qos: options.qos)])
                sendEncoding { out in try? Packet.subscribe(sub).encode(into: &out, version: options.version) }
            } else {
                becomeReady()
            }
        case .suback(let s):
            if s.reasonCodes.first?.isFailure ?? true { fail("SUBACK refused") } else { becomeReady() }
        case .publish(let p):
            receivedPublish(p)
        case .puback(let a), .pubcomp(let a):
            acknowledged(a.packetID)
        case .pubrec(let a):
            sendEncoding { out in try? Packet.pubrel(AckPacket(packetID: a.packetID)).encode(into: &out, version: options.version) }
        case .pubrel(let a):
            sendEncoding { out in try? Packet.pubcomp(AckPacket(packetID: a.packetID)).encode(into: &out, version: options.version) }
        case .disconnect(let d):
            fail("DISCONNECT \(d.reasonCode)")
        default:
            break
        }
    }

    private func becomeReady() {
        if ready { return }
        ready = true
        reportSetup(true)
    }

    private func receivedPublish(_ p: PublishPacket) {
        let now = BenchClient.nanoseconds()
        var b = p.payload
        if options.chat {
            // An envelope: {"id":N,...,"body":"<40 hex digits>...."}: check the id, read the body.
            guard let (id, header) = Self.envelope(b) else {
                fail("not a chat envelope")
                return
            }
            if id != lastEnvelopeID + 1 && lastEnvelopeID != 0 { idErrors += 1 }
            lastEnvelopeID = id
            b = header[...]
        }
        if b.count >= 20 {
            let s = b.startIndex
            var pub = 0
            for k in 0..<4 { pub = pub << 8 | Int(b[s + k]) }
            var seq = 0
            for k in 4..<12 { seq = seq << 8 | Int(b[s + k]) }
            var sentAt: UInt64 = 0
            for k in 12..<20 { sentAt = sentAt << 8 | UInt64(b[s + k]) }
            if now > sentAt { stats.histogram.record(now - sentAt) }
            trackers[pub, default: SequenceTracker()].record(seq)
            LoadGenerator.current?.publishers[pub].delivered.add(1, ordering: .relaxed)
        }
        stats.delivered.add(1, ordering: .relaxed)
        switch p.qos {
        case .atMostOnce: break
        case .atLeastOnce:
            sendEncoding { out in try? Packet.puback(AckPacket(packetID: p.packetID)).encode(into: &out, version: options.version) }
        case .exactlyOnce:
            sendEncoding { out in try? Packet.pubrec(AckPacket(packetID: p.packetID)).encode(into: &out, version: options.version) }
        }
    }

    private func acknowledged(_ id: UInt16) {
        guard let publisher else { return }
        publisher.inflight -= 1
        publisher.acked += 1
        if options.rate == 0 { publishAvailable(limit: 16) }
    }

    /// Publishes as many messages as the window allows, up to `limit`.
    func publishAvailable(limit: Int) {
        guard let publisher, ready, LoadGenerator.publishing.load(ordering: .relaxed) else { return }
        var budget = limit
        while budget > 0 && pendingOutput < 262_144 {
            // The window bounds messages not yet delivered to every subscriber (and, for
            // QoS 1/2, not yet acknowledged), so a saturation run measures the broker's
            // pace instead of overflowing its queues.
            let outstanding = publisher.sent * publisher.fanout - publisher.delivered.load(ordering: .relaxed)
            if outstanding >= options.window * publisher.fanout { return }
            if options.qos != .atMostOnce && publisher.inflight >= options.window { return }
            publishOne()
            budget -= 1
        }
    }

    /// Publishes one message now (paced mode calls this directly).
    func publishOne() {
        guard let publisher else { return }
        let seq = publisher.sent
        publisher.sent += 1
        let now = BenchClient.nanoseconds()
        var pub = UInt32(publisher.index).bigEndian
        var s = UInt64(seq).bigEndian
        var t = now.bigEndian
        payload.withUnsafeMutableBytes { p in
            withUnsafeBytes(of: &pub) { p.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 4) }
            withUnsafeBytes(of: &s) { (p.baseAddress! + 4).copyMemory(from: $0.baseAddress!, byteCount: 8) }
            withUnsafeBytes(of: &t) { (p.baseAddress! + 12).copyMemory(from: $0.baseAddress!, byteCount: 8) }
        }
        if options.chat {
            // A chat body is text: the 20 header bytes as 40 hex digits, then dots.
            let hex = Array("0123456789abcdef".utf8)
            for k in stride(from: 19, through: 0, by: -1) {
                let byte = payload[k]
                payload[2 * k] = hex[Int(byte >> 4)]
                payload[2 * k + 1] = hex[Int(byte & 15)]
            }
        }
        var id: UInt16 = 0
        if options.qos != .atMostOnce {
            id = nextPacketID
            nextPacketID = nextPacketID == 65_535 ? 1 : nextPacketID + 1
            publisher.inflight += 1
        }
        let packet = PublishPacket(topic: publisher.topic, payload: payload[...], qos: options.qos, packetID: id)
        sendEncoding { out in _ = try? packet.encode(into: &out, version: options.version) }
    }

    /// The id and the 20 header bytes of a chat envelope.
    static func envelope(_ b: ArraySlice<UInt8>) -> (Int64, [UInt8])? {
        let idKey = Array(#""id":"#.utf8), bodyKey = Array(#""body":""#.utf8)
        guard let idAt = find(idKey, in: b), let bodyAt = find(bodyKey, in: b) else { return nil }
        var id: Int64 = 0
        var i = idAt + idKey.count
        while i < b.endIndex, (0x30...0x39).contains(b[i]) {
            id = id * 10 + Int64(b[i] - 0x30)
            i += 1
        }
        let start = bodyAt + bodyKey.count
        guard b.endIndex - start >= 40 else { return nil }
        var header = [UInt8](repeating: 0, count: 20)
        for k in 0..<20 {
            guard let hi = nibble(b[start + 2 * k]), let lo = nibble(b[start + 2 * k + 1]) else { return nil }
            header[k] = hi << 4 | lo
        }
        return (id, header)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    private static func find(_ needle: [UInt8], in b: ArraySlice<UInt8>) -> Int? {
        guard b.count >= needle.count else { return nil }
        var i = b.startIndex
        while i <= b.endIndex - needle.count {
            if b[i] == needle[0] && b[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// Totals for the final report.
    func collect(into totals: inout (unique: Int, duplicates: Int, outOfOrder: Int, idErrors: Int)) {
        totals.idErrors += idErrors
        for (_, t) in trackers {
            totals.unique += t.unique
            totals.duplicates += t.duplicates
            totals.outOfOrder += t.outOfOrder
        }
    }

    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
