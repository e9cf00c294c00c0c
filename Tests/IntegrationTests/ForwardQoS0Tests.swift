// A 3.x client's QoS 0 PUBLISH is forwarded without building a message when every
// recipient is a connected 3.x client (`BrokerLoop.forwardQoS0`); otherwise the
// message is built as before. Both ways must deliver the same thing, in the same
// order, to everyone the topic reaches.
import Foundation
import MQTT
import Testing

@Suite("QoS 0 forwarded without a message")
struct ForwardQoS0Tests {
    /// Payload sizes around the remaining-length boundaries of 1, 2 and 3 bytes.
    static func payloads(topic: String) -> [[UInt8]] {
        let t = 2 + topic.utf8.count
        return [0, 1, 64, 127 - t, 128 - t, 16_383 - t, 16_384 - t, 70_000].map { n in
            (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ n) }
        }
    }

    /// Publishes every payload from a 3.1.1 client and checks that `subscriber` got
    /// them all, in order, as QoS 0 without retain flag.
    static func expectAll(_ subscribers: [TestClient], port: UInt16, topic: String) throws -> [[PublishPacket]] {
        let c = try TestClient.connected(port: port, version: .v3_1_1, clientID: unique("pub"))
        let sent = payloads(topic: topic)
        for p in sent { try c.publish(topic, p) }
        var all: [[PublishPacket]] = []
        for s in subscribers {
            var got: [PublishPacket] = []
            for _ in sent { got.append(try s.expectPublish(timeout: 5)) }
            #expect(got.map { Array($0.payload) } == sent, "payloads differ for a \(s.version) subscriber")
            #expect(got.allSatisfy { s.topic(of: $0) == topic && $0.qos == .atMostOnce && !$0.retain && !$0.dup })
            #expect(try s.nextPublish(timeout: 0.3) == nil, "more than one copy")
            all.append(got)
        }
        return all
    }

    @Test("3.1 and 3.1.1 subscribers get the publisher's topic and payload exactly, every size")
    func threeXSubscribers() throws {
        let b = try BrokerProcess(loops: 1)
        defer { b.stop() }
        let topic = unique("f/a")
        let s31 = try TestClient.connected(port: b.port, version: .v3_1, clientID: unique("s31"))
        let s311 = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("s311"))
        // Two matching filters at different QoS: still one copy, at QoS 0.
        _ = try s311.subscribe([sub(topic, .atLeastOnce), sub("\(topic.split(separator: "/")[0])/+")])
        _ = try s31.subscribe(topic)
        _ = try Self.expectAll([s31, s311], port: b.port, topic: topic)
    }

    @Test("a 5.0 subscriber beside a 3.1.1 one: both get it, the 5.0 one with its subscription identifier")
    func mixedVersions() throws {
        let b = try BrokerProcess(loops: 1)
        defer { b.stop() }
        let topic = unique("f/m")
        let s3 = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("s3"))
        _ = try s3.subscribe(topic)
        let s5 = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s5"))
        _ = try s5.subscribe([sub(topic)], properties: subID(7))
        let got = try Self.expectAll([s3, s5], port: b.port, topic: topic)
        #expect(got[1].allSatisfy { $0.properties.subscriptionIdentifiers == [7] })
    }

    @Test("with two loops, subscribers on either loop get it")
    func bothLoops() throws {
        let b = try BrokerProcess(loops: 2)
        defer { b.stop() }
        let topic = unique("f/l")
        // Client ids hash to loops: a dozen puts subscribers on both.
        let subs = try (0..<12).map { i in
            let s = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("s\(i)"))
            _ = try s.subscribe(topic)
            return s
        }
        _ = try Self.expectAll(subs, port: b.port, topic: topic)
    }

    @Test("a QoS 0 message does not overtake a QoS 1 one from the same client that waits for its commit")
    func orderBehindACommit() throws {
        let b = try BrokerProcess(config: "durability = full", loops: 1)
        defer { b.stop() }
        let t = unique("f/o")
        // A stored session's subscription makes QoS 1 messages wait for their commit.
        let s = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("s"), clean: false)
        s.autoAck = true
        _ = try s.subscribe([sub("\(t)/#", .atLeastOnce)])
        let c = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("c"))
        // Each pair in one write: the QoS 0 one is read while the QoS 1 one still waits.
        var expected: [String] = []
        for i in 0..<20 {
            var bytes: [UInt8] = []
            _ = try PublishPacket(topic: ByteString("\(t)/one"), payload: Array("q1-\(i)".utf8)[...], qos: .atLeastOnce,
                                  packetID: UInt16(i + 1)).encode(into: &bytes, version: .v3_1_1)
            _ = try PublishPacket(topic: ByteString("\(t)/zero"), payload: Array("q0-\(i)".utf8)[...])
                .encode(into: &bytes, version: .v3_1_1)
            try c.sendRaw(bytes)
            expected += ["q1-\(i)", "q0-\(i)"]
        }
        var got: [String] = []
        for _ in expected { got.append(String(decoding: try s.expectPublish(timeout: 5).payload, as: UTF8.self)) }
        #expect(got == expected)
    }

    @Test("queued for an away session when queue_qos0_messages is on, dropped when it is off", arguments: [true, false])
    func awaySession(queue: Bool) throws {
        let b = try BrokerProcess(config: "queue_qos0_messages = \(queue)", loops: 1)
        defer { b.stop() }
        let topic = unique("f/q")
        let id = unique("away")
        let s = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: id, clean: false)
        _ = try s.subscribe(topic)
        s.disconnect()
        let here = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("here"))
        _ = try here.subscribe(topic)
        let c = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("c"))
        for i in 0..<3 { try c.publish(topic, "m\(i)") }
        for i in 0..<3 { #expect(String(decoding: try here.expectPublish().payload, as: UTF8.self) == "m\(i)") }
        let back = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: id, clean: false)
        let got = try back.collectPublishes(for: 1).map { String(decoding: $0.payload, as: UTF8.self) }
        #expect(got == (queue ? ["m0", "m1", "m2"] : []))
    }

    @Test("a shared subscription's group gets each message once, beside a plain subscriber")
    func sharedGroup() throws {
        let b = try BrokerProcess(loops: 1)
        defer { b.stop() }
        let topic = unique("f/s")
        let m1 = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("m1"))
        let m2 = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("m2"))
        let plain = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("p"))
        _ = try m1.subscribe("$share/g/\(topic)")
        _ = try m2.subscribe("$share/g/\(topic)")
        _ = try plain.subscribe(topic)
        let c = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("c"))
        for i in 0..<10 { try c.publish(topic, "m\(i)") }
        #expect(try plain.collectPublishes(for: 1).count == 10)
        let group = try m1.collectPublishes(for: 0.5).count + m2.collectPublishes(for: 0.5).count
        #expect(group == 10)
    }
}
