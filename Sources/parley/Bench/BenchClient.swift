import Glibc
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
    private var nextPacketID: UInt16 = 1
    private var payload: [UInt8]

    init(fd: Int32, loop: EventLoop, clientID: String, options: BenchOptions, publisher: PublisherState?,
         subscribeTo: ByteString?, stats: BenchLoopStats, onSetup: @escaping (Bool) -> Void)
    {
        self.clientID = clientID
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
        var connect = ConnectPacket(version: options.version, clientID: clientID, cleanStart: true, keepAlive: 0)
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
        let b = p.payload
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
        var id: UInt16 = 0
        if options.qos != .atMostOnce {
            id = nextPacketID
            nextPacketID = nextPacketID == 65_535 ? 1 : nextPacketID + 1
            publisher.inflight += 1
        }
        let packet = PublishPacket(topic: publisher.topic, payload: payload[...], qos: options.qos, packetID: id)
        sendEncoding { out in _ = try? packet.encode(into: &out, version: options.version) }
    }

    /// Totals for the final report.
    func collect(into totals: inout (unique: Int, duplicates: Int, outOfOrder: Int)) {
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
