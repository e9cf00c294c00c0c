import Foundation
import MQTT
import Testing

@Suite("5.0 topic aliases, flow control, packet size limits, message expiry")
struct FlowAndAliasTests {
    @Test("5.0 inbound topic alias: a PUBLISH with an empty topic and a known alias goes to the aliased topic")
    func inboundAlias() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("ta")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try s.subscribe(t, qos: .atLeastOnce)
        s.autoAck = true
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, "first", qos: .atLeastOnce, properties: props { $0.topicAlias = 3 })
        try c.publish("", "second", qos: .atLeastOnce, properties: props { $0.topicAlias = 3 })
        let got = try s.collectPublishes(for: 1.5)
        #expect(got.map { "\($0.topic):\($0.text)" } == ["\(t):first", "\(t):second"])
        #expect(got.allSatisfy { $0.properties.topicAlias == nil }, "aliases are per connection")
    }

    @Test("5.0 topic alias above the server's Topic Alias Maximum: DISCONNECT 0x94")
    func aliasAboveMaximum() throws {
        let b = try BrokerProcess(config: "topic_alias_maximum = 2")
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.send(.publish(PublishPacket(topic: "x", payload: [1], properties: props { $0.topicAlias = 3 })))
        expectViolation(c, .topicAliasInvalid)
    }

    @Test("5.0 topic alias 0: DISCONNECT 0x94")
    func aliasZero() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        // Property 0x23 (topic alias) with value 0, written by hand.
        try c.sendRaw(rawPublish(topic: Array("x".utf8), v5Properties: [0x23, 0x00, 0x00]))
        expectViolation(c, .topicAliasInvalid)
    }

    @Test("5.0 empty topic with an alias never set up: DISCONNECT 0x82 (or 0x94)")
    func unknownInboundAlias() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.send(.publish(PublishPacket(topic: ByteString([UInt8]()), payload: [1], properties: props { $0.topicAlias = 1 })))
        #expect(c.isClosed(within: 3))
        let d = c.received.compactMap { p -> DisconnectPacket? in if case .disconnect(let d) = p { return d }; return nil }
        #expect(d.count == 1)
        #expect([ReasonCode.protocolError, .topicAliasInvalid].contains(d.first?.reasonCode ?? .success))
    }

    @Test("5.0 outbound topic alias: the broker sets up an alias, then sends an empty topic with it")
    func outboundAlias() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("oa")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"),
                                         properties: props { $0.topicAliasMaximum = 5 })
        s.autoAck = true
        try s.subscribe("\(t)/+", qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish("\(t)/a", "1", qos: .atLeastOnce)
        try c.publish("\(t)/a", "2", qos: .atLeastOnce)
        try c.publish("\(t)/b", "3", qos: .atMostOnce)
        try c.publish("\(t)/b", "4", qos: .atMostOnce)
        let got = try s.collectPublishes(for: 1.5)
        #expect(got.count == 4)
        guard got.count == 4 else { return }
        let a1 = got[0].properties.topicAlias, a2 = got[1].properties.topicAlias
        #expect(got[0].topic.string == "\(t)/a" && a1 != nil)
        #expect(got[1].topic.isEmpty && a2 == a1, "second message to the same topic: empty topic + alias")
        #expect(a1.map { (1...5).contains($0) } ?? false)
        #expect(s.topic(of: got[2]) == "\(t)/b" && s.topic(of: got[3]) == "\(t)/b")
        #expect(got[2].properties.topicAlias != a1)
        #expect(got.map(\.text) == ["1", "2", "3", "4"])
    }

    @Test("5.0: no topic aliases to a client that allows none")
    func noOutboundAliasWithoutPermission() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("na")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try s.subscribe(t)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        for _ in 0..<3 { try c.publish(t, "m") }
        let got = try s.collectPublishes(for: 1)
        #expect(got.count == 3)
        #expect(got.allSatisfy { $0.properties.topicAlias == nil && $0.topic.string == t })
    }

    @Test("5.0 receive maximum: never more unacknowledged QoS 1 than the client's Receive Maximum; the rest follow acks")
    func clientReceiveMaximum() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rm")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"),
                                         properties: props { $0.receiveMaximum = 2 })
        try s.subscribe(t, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        for i in 0..<6 { try c.publish(t, "m\(i)", qos: .atLeastOnce) }
        var got: [PublishPacket] = try s.collectPublishes(for: 1)
        #expect(got.count == 2, "in flight before any ack: \(got.count)")
        var all = got
        for _ in 0..<4 {
            guard let first = got.first else { break }
            try s.send(.puback(AckPacket(packetID: first.packetID)))
            got.removeFirst()
            let more = try s.collectPublishes(for: 0.6)
            #expect(more.count == 1, "one ack frees one slot: got \(more.count)")
            got += more
            all += more
        }
        for p in got { try s.send(.puback(AckPacket(packetID: p.packetID))) }
        #expect(all.map(\.text) == (0..<6).map { "m\($0)" })
    }

    @Test("5.0 client exceeding the server's Receive Maximum (unreleased QoS 2): DISCONNECT 0x93")
    func serverReceiveMaximumExceeded() throws {
        let b = try BrokerProcess(config: "max_inflight = 2")
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        for id: UInt16 in 1...2 {
            try c.send(.publish(PublishPacket(topic: "rmx", payload: [1], qos: .exactlyOnce, packetID: id)))
            // Nobody subscribes to rmx: accepted with 0x10 (no matching subscribers).
            #expect(try c.expectNext() == .pubrec(AckPacket(packetID: id, reasonCode: .noMatchingSubscribers)))
        }
        try c.send(.publish(PublishPacket(topic: "rmx", payload: [1], qos: .exactlyOnce, packetID: 3)))
        expectViolation(c, .receiveMaximumExceeded)
    }

    @Test("5.0 client Maximum Packet Size: a larger message is not sent to it, smaller ones are")
    func clientMaximumPacketSize() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("mps")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"),
                                         properties: props { $0.maximumPacketSize = 200 })
        s.autoAck = true
        try s.subscribe(t, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, [UInt8](repeating: 0x61, count: 500), qos: .atLeastOnce)
        try c.publish(t, [UInt8](repeating: 0x61, count: 500), qos: .atMostOnce)
        try c.publish(t, "small", qos: .atLeastOnce)
        let got = try s.collectPublishes(for: 1.5)
        #expect(got.map(\.text) == ["small"])
    }

    @Test("Oversized packet from the client: closed (5.0: DISCONNECT 0x95)", arguments: bothVersions)
    func oversizedInbound(v: ProtocolVersion) throws {
        let b = try BrokerProcess(config: "max_packet_size = 1024")
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish("big", [UInt8](repeating: 1, count: 2000), qos: .atMostOnce)
        expectViolation(c, .packetTooLarge)
    }

    @Test("5.0 message expiry: a queued message is delivered with its remaining lifetime; an expired one is dropped")
    func messageExpiry() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("exp")
        let id = unique("s")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: id, clean: true, properties: persistent(.v5))
        try s.subscribe(t, qos: .atLeastOnce)
        s.disconnect()
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, "short", qos: .atLeastOnce, properties: props { $0.messageExpiryInterval = 1 })
        try c.publish(t, "long", qos: .atLeastOnce, properties: props { $0.messageExpiryInterval = 30 })
        try c.publish(t, "forever", qos: .atLeastOnce)
        Thread.sleep(forTimeInterval: 2.5)
        let again = try TestClient.connected(port: b.port, version: .v5, clientID: id, clean: false, properties: persistent(.v5))
        again.autoAck = true
        let got = try again.collectPublishes(for: 1.5)
        #expect(got.map(\.text) == ["long", "forever"])
        if let long = got.first(where: { $0.text == "long" }) {
            let left = long.properties.messageExpiryInterval ?? 0
            #expect(left >= 1 && left <= 28, "remaining expiry \(left) not decremented")
        }
        #expect(got.first(where: { $0.text == "forever" })?.properties.messageExpiryInterval == nil)
    }
}
