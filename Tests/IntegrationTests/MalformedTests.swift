import Foundation
import MQTT
import Testing

@Suite("Malformed packets and protocol errors")
struct MalformedTests {
    @Test("Garbage bytes instead of CONNECT: closed without a CONNACK (at the latest at connect_timeout)")
    func garbageFirst() throws {
        let b = try BrokerProcess(config: "connect_timeout = 2")
        defer { b.stop() }
        let c = try TestClient(port: b.port)
        // 'G' reads as a PUBACK header claiming 69 bytes: a broker may wait for them,
        // but never longer than its CONNECT time-out.
        try c.sendRaw(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(c.isClosed(within: 4.5))
        #expect(c.received.isEmpty)
        let d = try TestClient(port: b.port)
        try d.sendRaw([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x13, 0x37])
        #expect(d.isClosed(within: 3))
        #expect(d.received.isEmpty)
    }

    @Test("Reserved packet type 0 after CONNECT: closed (5.0: DISCONNECT 0x81)", arguments: bothVersions)
    func reservedPacketType(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw([0x00, 0x00])
        expectViolation(c, .malformedPacket)
    }

    @Test("Garbage bytes after CONNECT: closed (5.0: DISCONNECT with a failure code)", arguments: bothVersions)
    func garbageAfterConnect(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw([0x3F, 0x05, 0xDE, 0xAD, 0xBE, 0xEF, 0x00])
        expectViolation(c, nil)
    }

    @Test("MQTT-3.3.2-2 PUBLISH topic with a wildcard: closed (5.0: DISCONNECT 0x90)", arguments: bothVersions)
    func publishWildcard(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let watcher = try TestClient.connected(port: b.port, version: v, clientID: unique("w"))
        try watcher.subscribe("#")
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.send(.publish(PublishPacket(topic: "a/+/b", payload: [1])))
        expectViolation(c, .topicNameInvalid)
        #expect(try watcher.nextPublish(timeout: 0.5) == nil)
    }

    @Test("MQTT-1.5.3-1 / MQTT-1.5.4-1 ill-formed UTF-8 in a topic: closed (5.0: DISCONNECT 0x81)",
          arguments: bothVersions)
    func invalidUTF8(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw(rawPublish(topic: [0x61, 0xC0, 0xAF], v5Properties: v == .v5 ? [] : nil))
        expectViolation(c, .malformedPacket)
    }

    @Test("UTF-16 surrogate encoded in a topic (ED A0 80): closed", arguments: bothVersions)
    func surrogateInTopic(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw(rawPublish(topic: [0x61, 0xED, 0xA0, 0x80], v5Properties: v == .v5 ? [] : nil))
        expectViolation(c, .malformedPacket)
    }

    @Test("MQTT-4.7.3-2 U+0000 in a topic: closed", arguments: bothVersions)
    func nullInTopic(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw(rawPublish(topic: [0x61, 0x00, 0x62], v5Properties: v == .v5 ? [] : nil))
        expectViolation(c, .malformedPacket)
    }

    @Test("MQTT-3.3.1-4 PUBLISH with QoS 3: closed", arguments: bothVersions)
    func qos3(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw(rawPublish(first: 0x36, topic: Array("t".utf8), packetID: 1, v5Properties: v == .v5 ? [] : nil))
        expectViolation(c, .malformedPacket)
    }

    @Test("MQTT-3.3.1-2 QoS 0 PUBLISH with DUP=1: closed", arguments: bothVersions)
    func dupOnQoS0(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw(rawPublish(first: 0x38, topic: Array("t".utf8), v5Properties: v == .v5 ? [] : nil))
        expectViolation(c, .malformedPacket)
    }

    @Test("MQTT-2.3.1-1 QoS 1 PUBLISH with packet identifier 0: closed")
    func packetIDZero() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("c"))
        try c.sendRaw(rawPublish(first: 0x32, topic: Array("t".utf8), packetID: 0))
        expectViolation(c, nil)
    }

    @Test("MQTT-3.8.1-1 SUBSCRIBE with wrong fixed-header flags: closed", arguments: bothVersions)
    func subscribeFlags(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        var bytes = try Packet.subscribe(SubscribePacket(packetID: 1, subscriptions: [sub("a")])).encoded(version: v)
        bytes[0] = 0x80
        try c.sendRaw(bytes)
        expectViolation(c, .malformedPacket)
    }

    @Test("MQTT-3.8.3-3 (3.1.1) / MQTT-3.8.3-2 (5.0) SUBSCRIBE without a topic filter: closed", arguments: bothVersions)
    func emptySubscribe(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw(v == .v5 ? [0x82, 0x03, 0x00, 0x01, 0x00] : [0x82, 0x02, 0x00, 0x01])
        expectViolation(c, .protocolError)
    }

    @Test("MQTT-3.14.1-1 DISCONNECT with reserved bits set: closed", arguments: bothVersions)
    func disconnectReservedBits(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.sendRaw([0xE1, 0x00])
        expectViolation(c, .malformedPacket)
    }

    @Test("MQTT-3.3.4-6 5.0 PUBLISH from a client with a Subscription Identifier: DISCONNECT 0x82")
    func clientSubscriptionIdentifier() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.sendRaw(rawPublish(topic: Array("t".utf8), v5Properties: [0x0B, 0x05]))
        expectViolation(c, .protocolError)
    }

    @Test("MQTT-1.5.5-1 5.0 remaining length with more bytes than needed: DISCONNECT 0x81")
    func nonMinimalLength() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.sendRaw([0xC0, 0x80, 0x00])  // PINGREQ, remaining length 0 in two bytes
        expectViolation(c, .malformedPacket)
    }

    @Test("A client's violation does not affect other clients", arguments: bothVersions)
    func othersUnaffected(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("iso")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        try s.subscribe(t, qos: .atLeastOnce)
        s.autoAck = true
        let bad = try TestClient.connected(port: b.port, version: v, clientID: unique("bad"))
        try bad.sendRaw([0x00, 0x00])
        #expect(bad.isClosed(within: 3))
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish(t, "fine", qos: .atLeastOnce)
        #expect(try s.expectPublish().text == "fine")
    }
}
