import Foundation
import MQTT
import Testing

@Suite("QoS 1 and 2 flows, redelivery, packet identifiers")
struct QoSTests {
    @Test("QoS 1 from the client: PUBLISH -> PUBACK with the same packet identifier", arguments: bothVersions)
    func qos1Inbound(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("q1")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        try s.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.send(.publish(PublishPacket(topic: ByteString(topic), payload: [1, 2, 3], qos: .atLeastOnce, packetID: 4242)))
        #expect(try c.expectNext() == .puback(AckPacket(packetID: 4242)))
        let p = try s.expectPublish()
        #expect(p.qos == .atLeastOnce && p.payload.elementsEqual([1, 2, 3]) && !p.dup && p.packetID != 0)
    }

    @Test("QoS 2 from the client: PUBLISH -> PUBREC, PUBREL -> PUBCOMP, delivered once", arguments: bothVersions)
    func qos2Inbound(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("q2")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        s.autoAck = true
        try s.subscribe(topic, qos: .exactlyOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.send(.publish(PublishPacket(topic: ByteString(topic), payload: [9], qos: .exactlyOnce, packetID: 77)))
        #expect(try c.expectNext() == .pubrec(AckPacket(packetID: 77)))
        try c.send(.pubrel(AckPacket(packetID: 77)))
        #expect(try c.expectNext() == .pubcomp(AckPacket(packetID: 77)))
        #expect(try c.receive(timeout: 0.5) == nil)
        let got = try s.collectPublishes(for: 1.5)
        #expect(got.count == 1)
        #expect(got.first?.qos == .exactlyOnce)
    }

    @Test("QoS 2 duplicate PUBLISH (DUP=1) before PUBREL is delivered to subscribers once", arguments: bothVersions)
    func qos2DuplicateBeforePubrel(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("q2dup")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        s.autoAck = true
        try s.subscribe(topic, qos: .exactlyOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        var pub = PublishPacket(topic: ByteString(topic), payload: [5], qos: .exactlyOnce, packetID: 300)
        try c.send(.publish(pub))
        #expect(try c.expectNext() == .pubrec(AckPacket(packetID: 300)))
        pub.dup = true
        try c.send(.publish(pub))
        #expect(try c.expectNext() == .pubrec(AckPacket(packetID: 300)))
        try c.send(.publish(pub))
        #expect(try c.expectNext() == .pubrec(AckPacket(packetID: 300)))
        try c.send(.pubrel(AckPacket(packetID: 300)))
        #expect(try c.expectNext() == .pubcomp(AckPacket(packetID: 300)))
        let got = try s.collectPublishes(for: 1.5)
        #expect(got.count == 1, "delivered \(got.count) times")
        // After PUBREL the id is free again: the same id is a new message.
        pub.dup = false
        try c.send(.publish(pub))
        #expect(try c.expectNext() == .pubrec(AckPacket(packetID: 300)))
        try c.send(.pubrel(AckPacket(packetID: 300)))
        #expect(try c.expectNext() == .pubcomp(AckPacket(packetID: 300)))
        #expect(try s.collectPublishes(for: 1).count == 1)
    }

    @Test("QoS 1 to the client: PUBLISH with a non-zero id, DUP=0; PUBACK completes it", arguments: bothVersions)
    func qos1Outbound(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("q1o")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        try s.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish(topic, "m", qos: .atLeastOnce)
        guard case .publish(let p) = try s.expectNext() else { Issue.record("expected PUBLISH"); return }
        #expect(p.qos == .atLeastOnce && p.packetID != 0 && !p.dup && !p.retain)
        try s.send(.puback(AckPacket(packetID: p.packetID)))
        #expect(try s.receive(timeout: 1) == nil, "nothing more after PUBACK")
    }

    @Test("QoS 2 to the client: PUBLISH -> PUBREC -> PUBREL -> PUBCOMP", arguments: bothVersions)
    func qos2Outbound(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("q2o")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        try s.subscribe(topic, qos: .exactlyOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish(topic, "m", qos: .exactlyOnce)
        guard case .publish(let p) = try s.expectNext() else { Issue.record("expected PUBLISH"); return }
        #expect(p.qos == .exactlyOnce && p.packetID != 0 && !p.dup)
        try s.send(.pubrec(AckPacket(packetID: p.packetID)))
        #expect(try s.expectNext() == .pubrel(AckPacket(packetID: p.packetID)))
        try s.send(.pubcomp(AckPacket(packetID: p.packetID)))
        #expect(try s.receive(timeout: 1) == nil, "nothing more after PUBCOMP")
    }

    @Test("Delivery QoS is the minimum of the published and the subscribed QoS", arguments: bothVersions)
    func qosDowngrade(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("dg")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        s.autoAck = true
        try s.subscribe([sub("\(t)/0", .atMostOnce), sub("\(t)/1", .atLeastOnce)])
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish("\(t)/0", "a", qos: .exactlyOnce)
        #expect(try s.expectPublish().qos == .atMostOnce)
        try c.publish("\(t)/1", "b", qos: .exactlyOnce)
        #expect(try s.expectPublish().qos == .atLeastOnce)
        try c.publish("\(t)/1", "c", qos: .atMostOnce)
        #expect(try s.expectPublish().qos == .atMostOnce)
    }

    @Test("Unacknowledged QoS 1/2 PUBLISHes are resent with DUP=1 and the same ids on session resumption",
          arguments: bothVersions)
    func redeliveryOnReconnect(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rd")
        let id = unique("s")
        var s = try TestClient.connected(port: b.port, version: v, clientID: id, clean: false, properties: persistent(v))
        try s.subscribe([sub("\(t)/+", .exactlyOnce)])
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish("\(t)/a", "one", qos: .atLeastOnce)
        try c.publish("\(t)/b", "two", qos: .exactlyOnce)
        let first = try s.expectPublish()
        let second = try s.expectPublish()
        #expect(first.text == "one" && second.text == "two")
        s.drop()  // no acks
        let (again, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: false,
                                                  properties: persistent(v))
        s = again
        #expect(ack.sessionPresent)
        let r1 = try s.expectPublish()
        let r2 = try s.expectPublish()
        #expect(r1.dup && r1.packetID == first.packetID && r1.text == "one" && r1.qos == .atLeastOnce)
        #expect(r2.dup && r2.packetID == second.packetID && r2.text == "two" && r2.qos == .exactlyOnce)
        try s.send(.puback(AckPacket(packetID: r1.packetID)))
        try s.send(.pubrec(AckPacket(packetID: r2.packetID)))
        #expect(try s.expectNext() == .pubrel(AckPacket(packetID: r2.packetID)))
        try s.send(.pubcomp(AckPacket(packetID: r2.packetID)))
        #expect(try s.receive(timeout: 1) == nil)
    }

    @Test("PUBREL of a released QoS 2 message is resent on session resumption", arguments: bothVersions)
    func pubrelResent(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rel")
        let id = unique("s")
        var s = try TestClient.connected(port: b.port, version: v, clientID: id, clean: false, properties: persistent(v))
        try s.subscribe(t, qos: .exactlyOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish(t, "x", qos: .exactlyOnce)
        let p = try s.expectPublish()
        try s.send(.pubrec(AckPacket(packetID: p.packetID)))
        #expect(try s.expectNext() == .pubrel(AckPacket(packetID: p.packetID)))
        s.drop()  // no PUBCOMP
        let (again, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: false,
                                                  properties: persistent(v))
        s = again
        #expect(ack.sessionPresent)
        #expect(try s.expectNext() == .pubrel(AckPacket(packetID: p.packetID)), "PUBREL resent, not the PUBLISH")
        try s.send(.pubcomp(AckPacket(packetID: p.packetID)))
        #expect(try s.receive(timeout: 1) == nil)
    }

    @Test("Messages for an offline persistent session are queued and delivered in order on reconnect",
          arguments: bothVersions)
    func queuedWhileOffline(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("off")
        let id = unique("s")
        let s = try TestClient.connected(port: b.port, version: v, clientID: id, clean: false, properties: persistent(v))
        try s.subscribe(t, qos: .atLeastOnce)
        s.disconnect()
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        for i in 0..<5 { try c.publish(t, "m\(i)", qos: .atLeastOnce) }
        let again = try TestClient.connected(port: b.port, version: v, clientID: id, clean: false, properties: persistent(v))
        again.autoAck = true
        let got = try again.collectPublishes(for: 1.5)
        #expect(got.map(\.text) == (0..<5).map { "m\($0)" })
        #expect(got.allSatisfy { !$0.dup })
    }

    @Test("Packet identifiers of in-flight messages to a client are non-zero and distinct", arguments: bothVersions)
    func distinctPacketIDs(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("ids")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        try s.subscribe(t, qos: .exactlyOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        for i in 0..<10 { try c.publish(t, "m\(i)", qos: i % 2 == 0 ? .atLeastOnce : .exactlyOnce) }
        var ids: [UInt16] = []
        for _ in 0..<10 { ids.append(try s.expectPublish().packetID) }
        #expect(!ids.contains(0))
        #expect(Set(ids).count == 10, "ids \(ids)")
    }

    @Test("PUBREL for an unknown packet id is answered with PUBCOMP (5.0: 0x92)", arguments: bothVersions)
    func pubrelUnknown(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.send(.pubrel(AckPacket(packetID: 999)))
        let expected = AckPacket(packetID: 999, reasonCode: v == .v5 ? .packetIdentifierNotFound : .success)
        #expect(try c.expectNext() == .pubcomp(expected))
    }

    @Test("5.0: a PUBLISH refused by the broker ($-topic) gets a failure reason code in PUBACK")
    func dollarPublishRefused() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let watcher = try TestClient.connected(port: b.port, version: .v5, clientID: unique("w"))
        try watcher.subscribe("$SYS/test/#", qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        let code = try c.publish("$SYS/test/x", Array("no".utf8), qos: .atLeastOnce)
        #expect(code.isFailure)
        #expect(try watcher.nextPublish(timeout: 1) == nil)
    }
}
