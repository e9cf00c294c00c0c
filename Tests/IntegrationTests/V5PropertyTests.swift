import Foundation
import MQTT
import Testing

@Suite("5.0 properties, session expiry, request/response, problem information")
struct V5PropertyTests {
    @Test("5.0 user properties (order kept), response topic, correlation data, content type pass through unchanged")
    func passThrough() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("pt")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        s.autoAck = true
        try s.subscribe(t, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        let sent = props {
            $0.userProperties = [UserProperty("a", "1"), UserProperty("b", "x"), UserProperty("a", "2")]
            $0.responseTopic = "reply/here"
            $0.correlationData = [1, 2, 3, 0][...]
            $0.contentType = "text/plain"
            $0.payloadFormatIndicator = true
        }
        try c.publish(t, "hello", qos: .atLeastOnce, properties: sent)
        let p = try s.expectPublish()
        #expect(p.properties.userProperties == sent.userProperties)
        #expect(p.properties.responseTopic == "reply/here")
        #expect(p.properties.correlationData.map(Array.init) == [1, 2, 3, 0])
        #expect(p.properties.contentType == "text/plain")
        #expect(p.properties.payloadFormatIndicator == true)
    }

    @Test("5.0 Payload Format Indicator 1 with a non-UTF-8 payload: refused with 0x99 (PUBACK or DISCONNECT)")
    func payloadFormatInvalid() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("pf")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try s.subscribe(t)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        // Property 0x01 = 1, payload FF FE.
        try c.sendRaw(rawPublish(first: 0x32, topic: Array(t.utf8), packetID: 1, v5Properties: [0x01, 0x01],
                                 payload: [0xFF, 0xFE]))
        let p = try c.expectNext()
        switch p {
        case .puback(let a): #expect(a.reasonCode == .payloadFormatInvalid)
        case .disconnect(let d): #expect(d.reasonCode == .payloadFormatInvalid)
        default: Issue.record("unexpected \(p)")
        }
        #expect(try s.nextPublish(timeout: 0.5) == nil)
    }

    @Test("5.0 Request Problem Information 0: no Reason String on a PUBACK (MQTT-3.1.2-29 behaviour)")
    func noReasonStringWhenNotRequested() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"),
                                         properties: props { $0.requestProblemInformation = false })
        try c.send(.publish(PublishPacket(topic: "$SYS/nope", payload: [1], qos: .atLeastOnce, packetID: 5)))
        guard case .puback(let a) = try c.expectNext() else { Issue.record("no PUBACK"); return }
        #expect(a.reasonCode.isFailure)
        #expect(a.properties.reasonString == nil && a.properties.userProperties.isEmpty)
    }

    @Test("5.0 session expiry set in DISCONNECT after 0 in CONNECT: protocol error (DISCONNECT 0x82)")
    func sessionExpiryAtDisconnect() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.send(.disconnect(DisconnectPacket(properties: props { $0.sessionExpiryInterval = 60 })))
        expectViolation(c, .protocolError)
    }

    @Test("5.0 a session ends after its Session Expiry Interval")
    func sessionExpires() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let id = unique("se")
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: id, properties: persistent(.v5, expiry: 1))
        c.disconnect()
        var (again, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: id, clean: false,
                                                  properties: persistent(.v5, expiry: 1))
        #expect(ack.sessionPresent, "within the interval")
        again.disconnect()
        Thread.sleep(forTimeInterval: 2.5)
        (again, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: id, clean: false,
                                              properties: persistent(.v5, expiry: 1))
        #expect(!ack.sessionPresent, "after the interval")
    }

    @Test("5.0 retained message with message expiry is not sent after it expired")
    func retainedExpiry() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rx")
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, "brief", qos: .atLeastOnce, retain: true, properties: props { $0.messageExpiryInterval = 1 })
        let early = try TestClient.connected(port: b.port, version: .v5, clientID: unique("e"))
        try early.subscribe(t)
        let p = try early.expectPublish()
        #expect(p.retain && (p.properties.messageExpiryInterval ?? 99) <= 1)
        Thread.sleep(forTimeInterval: 2.2)
        let late = try TestClient.connected(port: b.port, version: .v5, clientID: unique("l"))
        try late.subscribe(t)
        #expect(try late.nextPublish(timeout: 1) == nil)
    }

    @Test("5.0 retained message sent on subscribe carries the subscription identifier")
    func retainedWithSubscriptionID() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rs")
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, "r", qos: .atLeastOnce, retain: true)
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try s.subscribe([sub(t)], properties: subID(42))
        #expect(try s.expectPublish().properties.subscriptionIdentifiers == [42])
    }

    @Test("MQTT-3.8.3-4 No Local on a shared subscription: protocol error (DISCONNECT 0x82)")
    func noLocalShared() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.send(.subscribe(SubscribePacket(packetID: 1, subscriptions: [sub("$share/g/x", noLocal: true)])))
        expectViolation(c, .protocolError)
    }

    @Test("5.0 retain_available = false: CONNACK says so; a retained PUBLISH gets DISCONNECT 0x9A")
    func retainNotAvailable() throws {
        let b = try BrokerProcess(config: "retain_available = false")
        defer { b.stop() }
        let (c, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: unique("c"))
        #expect(ack.properties.retainAvailable == false)
        try c.send(.publish(PublishPacket(topic: "r", payload: [1], retain: true)))
        expectViolation(c, .retainNotSupported)
    }

    @Test("5.0 receive maximum 1 with QoS 2: the next message waits for PUBCOMP, not PUBREC")
    func receiveMaximumQoS2() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rm2")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"),
                                         properties: props { $0.receiveMaximum = 1 })
        try s.subscribe(t, qos: .exactlyOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, "1", qos: .exactlyOnce)
        try c.publish(t, "2", qos: .exactlyOnce)
        let p1 = try s.expectPublish()
        #expect(p1.text == "1")
        try s.send(.pubrec(AckPacket(packetID: p1.packetID)))
        #expect(try s.expectNext() == .pubrel(AckPacket(packetID: p1.packetID)))
        #expect(try s.receive(timeout: 0.8) == nil, "second message sent before PUBCOMP")
        try s.send(.pubcomp(AckPacket(packetID: p1.packetID)))
        #expect(try s.expectPublish().text == "2")
    }
}
