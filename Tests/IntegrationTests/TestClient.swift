// A small blocking MQTT client for the integration tests: one TCP socket, every
// receive bounded by a timeout, packets framed and decoded by our own codec.
import CLinux
import Foundation
import Glibc
import MQTT

struct ClientError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

final class TestClient {
    let version: ProtocolVersion
    private(set) var fd: Int32
    private var decoder = FrameDecoder()
    /// Packets already read but not yet returned (kept by the waiting helpers).
    private var pending: [Packet] = []
    private(set) var closed = false
    private var nextID: UInt16 = 0
    /// Answer PUBLISH QoS 1 (PUBACK), QoS 2 (PUBREC) and PUBREL (PUBCOMP) automatically.
    var autoAck = false
    /// Topic aliases the broker set up towards us (v5).
    var inboundAliases: [UInt16: String] = [:]

    /// Opens a TCP connection to 127.0.0.1:port (nothing is sent yet).
    init(port: UInt16, version: ProtocolVersion = .v3_1_1) throws {
        self.version = version
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            throw ClientError("connect to port \(port): errno \(e)")
        }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Opens the socket, sends CONNECT, and expects CONNACK (any reason code).
    static func connect(port: UInt16, version: ProtocolVersion = .v3_1_1, clientID: String, clean: Bool = true,
                        keepAlive: UInt16 = 60, properties: Properties = .none, will: Will? = nil,
                        username: String? = nil, password: [UInt8]? = nil) throws -> (TestClient, ConnackPacket)
    {
        let c = try TestClient(port: port, version: version)
        let ack = try c.connect(clientID: clientID, clean: clean, keepAlive: keepAlive, properties: properties,
                                will: will, username: username, password: password)
        return (c, ack)
    }

    /// Connects and requires a successful CONNACK.
    static func connected(port: UInt16, version: ProtocolVersion = .v3_1_1, clientID: String, clean: Bool = true,
                          keepAlive: UInt16 = 60, properties: Properties = .none, will: Will? = nil) throws -> TestClient
    {
        let (c, ack) = try connect(port: port, version: version, clientID: clientID, clean: clean, keepAlive: keepAlive,
                                   properties: properties, will: will)
        guard ack.reasonCode == .success else { throw ClientError("CONNACK refused: \(ack.reasonCode)") }
        return c
    }

    @discardableResult
    func connect(clientID: String, clean: Bool = true, keepAlive: UInt16 = 60, properties: Properties = .none,
                 will: Will? = nil, username: String? = nil, password: [UInt8]? = nil,
                 timeout: Double = 5) throws -> ConnackPacket
    {
        let c = ConnectPacket(version: version, clientID: clientID, cleanStart: clean, keepAlive: keepAlive,
                              username: username, password: password.map { $0[...] }, will: will,
                              properties: properties)
        try send(.connect(c))
        guard let p = try receive(timeout: timeout) else { throw ClientError("no CONNACK within \(timeout)s") }
        guard case .connack(let ack) = p else { throw ClientError("expected CONNACK, got \(p)") }
        return ack
    }

    // MARK: Sending

    func newPacketID() -> UInt16 {
        nextID = nextID == 65_535 ? 1 : nextID + 1
        return nextID
    }

    func send(_ packet: Packet) throws {
        try sendRaw(try packet.encoded(version: version))
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { usleep(1000); continue }
                throw ClientError("send: errno \(errno)")
            }
            off += n
        }
    }

    /// Closes the TCP connection without DISCONNECT (an abnormal end for the broker).
    func drop() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        closed = true
    }

    /// Sends DISCONNECT (v5 with `reason`) and closes.
    func disconnect(reason: ReasonCode = .normalDisconnection, properties: Properties = .none) {
        try? send(.disconnect(DisconnectPacket(reasonCode: reason, properties: properties)))
        drop()
    }

    // MARK: Receiving

    /// The next packet, or nil when none arrives within `timeout` seconds.
    /// Throws when the broker closed the connection or sent undecodable bytes.
    func receive(timeout: Double = 2) throws -> Packet? {
        if !pending.isEmpty { return pending.removeFirst() }
        return try readPacket(timeout: timeout)
    }

    private func readPacket(timeout: Double) throws -> Packet? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let frame = try decoder.next() {
                let packet = try Packet.decode(frame, version: version, from: .server)
                handleAuto(packet)
                return packet
            }
            if closed || fd < 0 { throw ClientError("connection closed") }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, Int32(max(1, min(left * 1000, 60_000))))
            if r < 0 {
                if errno == EINTR { continue }
                throw ClientError("poll: errno \(errno)")
            }
            if r == 0 { continue }
            var buf = [UInt8](repeating: 0, count: 65_536)
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                closed = true
                throw ClientError("connection closed")
            }
            if n > 0 { decoder.append(buf[0..<n]) }
        }
    }

    private func handleAuto(_ packet: Packet) {
        if case .publish(let p) = packet, version == .v5, let alias = p.properties.topicAlias, !p.topic.isEmpty {
            inboundAliases[alias] = p.topic.string
        }
        guard autoAck else { return }
        switch packet {
        case .publish(let p) where p.qos == .atLeastOnce: try? send(.puback(AckPacket(packetID: p.packetID)))
        case .publish(let p) where p.qos == .exactlyOnce: try? send(.pubrec(AckPacket(packetID: p.packetID)))
        case .pubrel(let a): try? send(.pubcomp(AckPacket(packetID: a.packetID)))
        default: break
        }
    }

    /// The topic of a received PUBLISH, with its alias resolved.
    func topic(of p: PublishPacket) -> String {
        if !p.topic.isEmpty { return p.topic.string }
        if let a = p.properties.topicAlias, let t = inboundAliases[a] { return t }
        return ""
    }

    /// Waits for the first packet that `match` accepts; others are kept for `receive`.
    func waitFor(timeout: Double = 3, _ what: String = "packet", _ match: (Packet) -> Bool) throws -> Packet {
        if let i = pending.firstIndex(where: match) { return pending.remove(at: i) }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let p = try readPacket(timeout: left) else {
                throw ClientError("no \(what) within \(timeout)s (kept: \(pending))")
            }
            if match(p) { return p }
            pending.append(p)
        }
    }

    /// The next packet, required to be one (nothing else in between).
    func expectNext(timeout: Double = 3) throws -> Packet {
        guard let p = try receive(timeout: timeout) else { throw ClientError("no packet within \(timeout)s") }
        return p
    }

    func expectPublish(timeout: Double = 3) throws -> PublishPacket {
        let p = try waitFor(timeout: timeout, "PUBLISH") { if case .publish = $0 { return true }; return false }
        guard case .publish(let pub) = p else { fatalError() }
        return pub
    }

    /// Waits for the next PUBLISH; nil if none within `timeout` (non-PUBLISH packets are kept).
    func nextPublish(timeout: Double) throws -> PublishPacket? {
        do { return try expectPublish(timeout: timeout) } catch let e as ClientError where e.description.hasPrefix("no ") {
            return nil
        }
    }

    /// Every PUBLISH arriving within `timeout`.
    func collectPublishes(for timeout: Double) throws -> [PublishPacket] {
        var out: [PublishPacket] = []
        let deadline = Date().addingTimeInterval(timeout)
        while deadline.timeIntervalSinceNow > 0 {
            if let p = try nextPublish(timeout: deadline.timeIntervalSinceNow) { out.append(p) }
        }
        return out
    }

    func expectDisconnect(timeout: Double = 3) throws -> DisconnectPacket {
        let p = try expectNext(timeout: timeout)
        guard case .disconnect(let d) = p else { throw ClientError("expected DISCONNECT, got \(p)") }
        return d
    }

    /// True when the broker closes the connection within `within` seconds. Packets
    /// that arrive first are kept in `received`.
    private(set) var received: [Packet] = []
    func isClosed(within: Double) -> Bool {
        if closed { return true }
        let deadline = Date().addingTimeInterval(within)
        while deadline.timeIntervalSinceNow > 0 {
            do {
                if let p = try readPacket(timeout: deadline.timeIntervalSinceNow) { received.append(p) }
            } catch {
                return true
            }
        }
        return false
    }

    // MARK: Conveniences

    /// Publishes and completes the QoS handshake; returns the PUBACK/PUBREC reason code.
    @discardableResult
    func publish(_ topic: String, _ payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false,
                 properties: Properties = .none) throws -> ReasonCode
    {
        let id = qos == .atMostOnce ? 0 : newPacketID()
        try send(.publish(PublishPacket(topic: ByteString(topic), payload: payload[...], qos: qos, retain: retain,
                                        packetID: id, properties: properties)))
        switch qos {
        case .atMostOnce:
            return .success
        case .atLeastOnce:
            let p = try waitFor(timeout: 3, "PUBACK \(id)") { if case .puback(let a) = $0 { return a.packetID == id }; return false }
            guard case .puback(let a) = p else { fatalError() }
            return a.reasonCode
        case .exactlyOnce:
            let p = try waitFor(timeout: 3, "PUBREC \(id)") { if case .pubrec(let a) = $0 { return a.packetID == id }; return false }
            guard case .pubrec(let a) = p else { fatalError() }
            if a.reasonCode.isFailure { return a.reasonCode }
            try send(.pubrel(AckPacket(packetID: id)))
            _ = try waitFor(timeout: 3, "PUBCOMP \(id)") { if case .pubcomp(let c) = $0 { return c.packetID == id }; return false }
            return a.reasonCode
        }
    }

    @discardableResult
    func publish(_ topic: String, _ text: String, qos: QoS = .atMostOnce, retain: Bool = false,
                 properties: Properties = .none) throws -> ReasonCode
    {
        try publish(topic, Array(text.utf8), qos: qos, retain: retain, properties: properties)
    }

    /// Subscribes and returns the SUBACK (its packet id is checked).
    @discardableResult
    func subscribe(_ subs: [Subscription], properties: Properties = .none) throws -> SubackPacket {
        let id = newPacketID()
        try send(.subscribe(SubscribePacket(packetID: id, subscriptions: subs, properties: properties)))
        let p = try waitFor(timeout: 3, "SUBACK \(id)") { if case .suback = $0 { return true }; return false }
        guard case .suback(let s) = p else { fatalError() }
        guard s.packetID == id else { throw ClientError("SUBACK id \(s.packetID), expected \(id)") }
        return s
    }

    @discardableResult
    func subscribe(_ filter: String, qos: QoS = .atMostOnce) throws -> SubackPacket {
        try subscribe([Subscription(topicFilter: ByteString(filter), qos: qos)])
    }

    @discardableResult
    func unsubscribe(_ filters: [String]) throws -> UnsubackPacket {
        let id = newPacketID()
        try send(.unsubscribe(UnsubscribePacket(packetID: id, topicFilters: filters.map { ByteString($0) })))
        let p = try waitFor(timeout: 3, "UNSUBACK \(id)") { if case .unsuback = $0 { return true }; return false }
        guard case .unsuback(let u) = p else { fatalError() }
        return u
    }

    /// A PINGREQ/PINGRESP round trip: everything the broker sent before it has arrived.
    func sync(timeout: Double = 3) throws {
        try send(.pingreq)
        _ = try waitFor(timeout: timeout, "PINGRESP") { $0 == .pingresp }
    }
}

extension PublishPacket {
    var text: String { String(decoding: payload, as: UTF8.self) }
}

/// A unique name per test, so tests never share topics or client ids by accident.
func unique(_ prefix: String) -> String {
    "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
}

/// Properties built inline.
func props(_ build: (inout Properties) -> Void) -> Properties {
    var p = Properties()
    build(&p)
    return p
}
