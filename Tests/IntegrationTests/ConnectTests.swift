import Foundation
import MQTT
import Testing

@Suite("CONNECT, CONNACK, sessions, keep alive, take-over")
struct ConnectTests {
    @Test("MQTT-3.1.0-1 first packet not CONNECT: closed without CONNACK", arguments: bothVersions)
    func firstPacketNotConnect(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient(port: b.port, version: v)
        try c.send(.subscribe(SubscribePacket(packetID: 1, subscriptions: [sub("a")])))
        #expect(c.isClosed(within: 3))
        #expect(c.received.isEmpty, "nothing may be sent before CONNECT: \(c.received)")
    }

    @Test("MQTT-3.1.0-2 second CONNECT closes the connection", arguments: bothVersions)
    func secondConnect(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.send(.connect(ConnectPacket(version: v, clientID: unique("d"))))
        expectViolation(c, .protocolError)
    }

    @Test("MQTT-3.1.2-2 unsupported protocol level 6: CONNACK 0x01 in 3.1.1 format, then close")
    func unsupportedLevel() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient(port: b.port, version: .v3_1_1)
        try c.sendRaw(rawConnect(level: 6))
        // Decoding as 3.1.1 also checks the format: exactly 20 02 00 01.
        let p = try c.expectNext()
        #expect(p == .connack(ConnackPacket(sessionPresent: false, reasonCode: .unsupportedProtocolVersion)))
        #expect(c.isClosed(within: 3))
    }

    @Test("MQTT-3.1.2-1 (5.0) protocol name not MQTT at level 5: CONNACK 0x84, then close")
    func badProtocolNameV5() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient(port: b.port, version: .v5)
        try c.sendRaw(rawConnect(name: "MQTX", level: 5, v5Properties: true))
        guard case .connack(let ack) = try c.expectNext() else { Issue.record("no CONNACK"); return }
        #expect(ack.reasonCode == .unsupportedProtocolVersion)
        #expect(c.isClosed(within: 3))
    }

    @Test("MQTT-3.1.2-3 CONNECT reserved flag set: closed (3.1.1) / CONNACK 0x81 then closed (5.0)",
          arguments: bothVersions)
    func connectReservedFlag(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient(port: b.port, version: v)
        try c.sendRaw(rawConnect(level: v.rawValue, flags: 0x03, v5Properties: v == .v5))
        #expect(c.isClosed(within: 3))
        if v == .v5 {
            // The CONNACK 0x81 is optional (MQTT-4.13.1-1 lets the server just close); nothing else may come.
            #expect(c.received.count <= 1)
            if let p = c.received.first {
                guard case .connack(let a) = p else { Issue.record("unexpected \(p)"); return }
                #expect(a.reasonCode == .malformedPacket && !a.sessionPresent)
            }
        } else {
            #expect(c.received.isEmpty)
        }
    }

    @Test("MQTT-3.1.3-8 zero-byte client id with clean session 0: CONNACK 0x02, then close")
    func emptyClientIDPersistent() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let (c, ack) = try TestClient.connect(port: b.port, version: .v3_1_1, clientID: "", clean: false)
        #expect(ack.reasonCode == .clientIdentifierNotValid)
        #expect(!ack.sessionPresent)
        #expect(c.isClosed(within: 3))
    }

    @Test("3.1.1: zero-byte client id with clean session 1 is accepted")
    func emptyClientIDClean() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let (c, ack) = try TestClient.connect(port: b.port, version: .v3_1_1, clientID: "", clean: true)
        #expect(ack.reasonCode == .success)
        try c.sync()
    }

    @Test("5.0: empty client id gets an Assigned Client Identifier in CONNACK")
    func assignedClientID() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let (c, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: "")
        #expect(ack.reasonCode == .success)
        let id = ack.properties.assignedClientIdentifier
        #expect(id != nil && !id!.isEmpty)
        try c.sync()
    }

    @Test("5.0 CONNACK carries receive maximum, maximum packet size, topic alias maximum, server keep alive")
    func connackProperties() throws {
        let b = try BrokerProcess(config: """
            max_inflight = 7
            max_packet_size = 4096
            topic_alias_maximum = 5
            max_keepalive = 30
            """)
        defer { b.stop() }
        let (_, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: unique("c"), keepAlive: 60)
        #expect(ack.reasonCode == .success)
        #expect(ack.properties.receiveMaximum == 7)
        #expect(ack.properties.maximumPacketSize == 4096)
        #expect(ack.properties.topicAliasMaximum == 5)
        #expect(ack.properties.serverKeepAlive == 30)
        #expect(ack.properties.assignedClientIdentifier == nil)
    }

    @Test("5.0 CONNACK defaults: receive maximum 100, maximum packet size 1 MiB, topic alias maximum 64")
    func connackDefaults() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let (_, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: unique("c"))
        #expect(ack.properties.receiveMaximum == 100)
        #expect(ack.properties.maximumPacketSize == 1_048_576)
        #expect(ack.properties.topicAliasMaximum == 64)
    }

    @Test("Session present: 0 for a new or clean session, 1 when a stored session resumes", arguments: bothVersions)
    func sessionPresent(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let id = unique("sp")
        let p = persistent(v)
        var (c, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: false, properties: p)
        #expect(ack.reasonCode == .success && !ack.sessionPresent)
        c.disconnect()
        (c, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: false, properties: p)
        #expect(ack.sessionPresent, "resumed session")
        c.disconnect()
        (c, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: true, properties: p)
        #expect(!ack.sessionPresent, "clean start discards the session")
        c.disconnect()
        if v == .v5 {
            // Session expiry 0: the session ends with the connection.
            (c, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: false)
            c.disconnect()
            (c, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: false)
            #expect(!ack.sessionPresent, "session expiry 0 ends the session at disconnect")
        } else {
            (c, ack) = try TestClient.connect(port: b.port, version: v, clientID: id, clean: false)
            #expect(!ack.sessionPresent, "the clean session before ended the stored one")
        }
    }

    @Test("MQTT 3.1 (MQIsdp) client connects, subscribes and publishes")
    func mqtt31() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let (c, ack) = try TestClient.connect(port: b.port, version: .v3_1, clientID: "mqisdp-client")
        #expect(ack.reasonCode == .success)
        let s = try c.subscribe("legacy/+", qos: .atLeastOnce)
        #expect(s.reasonCodes == [.grantedQoS1])
        let other = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("p"))
        try other.publish("legacy/t", "hello", qos: .atLeastOnce)
        let p = try c.expectPublish()
        #expect(p.topic == "legacy/t" && p.text == "hello" && p.qos == .atLeastOnce)
        try c.send(.puback(AckPacket(packetID: p.packetID)))
        #expect(try c.publish("legacy/t", Array("q2".utf8), qos: .exactlyOnce) == .success)
    }

    @Test("MQTT-3.1.2-24 keep alive: closed after 1.5x the keep alive without packets (5.0: DISCONNECT 0x8D)",
          arguments: bothVersions)
    func keepAliveTimeout(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("ka"), keepAlive: 2)
        // A window in which the close must NOT happen (1.5 x 2 s = 3 s), then a bounded wait for it.
        #expect(!c.isClosed(within: 2.8), "closed before 1.5 x keep alive")
        #expect(c.isClosed(within: 5), "not closed after 1.5 x keep alive")
        if v == .v5 {
            #expect(c.received == [.disconnect(DisconnectPacket(reasonCode: .keepAliveTimeout))]
                || c.received.contains { if case .disconnect(let d) = $0 { return d.reasonCode == .keepAliveTimeout }; return false })
        } else {
            #expect(c.received.isEmpty)
        }
    }

    @Test("PINGREQ is answered with PINGRESP and keeps the connection alive", arguments: bothVersions)
    func pingKeepsAlive(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("ping"), keepAlive: 1)
        for _ in 0..<8 {
            try c.send(.pingreq)
            #expect(try c.expectNext(timeout: 2) == .pingresp)
            Thread.sleep(forTimeInterval: 0.5)
        }
        try c.sync()
    }

    @Test("Session take-over: the old connection is closed (5.0: DISCONNECT 0x8E)", arguments: bothVersions)
    func takeOver(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let id = unique("to")
        let first = try TestClient.connected(port: b.port, version: v, clientID: id)
        let second = try TestClient.connected(port: b.port, version: v, clientID: id)
        #expect(first.isClosed(within: 3))
        if v == .v5 {
            #expect(first.received == [.disconnect(DisconnectPacket(reasonCode: .sessionTakenOver))]
                || first.received.contains { if case .disconnect(let d) = $0 { return d.reasonCode == .sessionTakenOver }; return false })
        } else {
            #expect(first.received.isEmpty)
        }
        try second.sync()
    }
}

@Suite("Will messages")
struct WillTests {
    func will(_ topic: String, delay: UInt32? = nil) -> Will {
        Will(topic: ByteString(topic), payload: Array("gone".utf8)[...], qos: .atLeastOnce,
             properties: delay.map { d in props { $0.willDelayInterval = d } } ?? .none)
    }

    @Test("Will is published when the connection ends without DISCONNECT", arguments: bothVersions)
    func willOnAbnormalClose(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("will")
        let watcher = try TestClient.connected(port: b.port, version: v, clientID: unique("w"))
        try watcher.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"), will: will(topic))
        c.drop()
        let p = try watcher.expectPublish()
        #expect(p.topic.string == topic && p.text == "gone" && p.qos == .atLeastOnce)
    }

    @Test("Will is discarded on a normal DISCONNECT", arguments: bothVersions)
    func noWillOnDisconnect(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("will")
        let watcher = try TestClient.connected(port: b.port, version: v, clientID: unique("w"))
        try watcher.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"), will: will(topic))
        c.disconnect()
        #expect(try watcher.nextPublish(timeout: 1.5) == nil)
    }

    @Test("5.0 DISCONNECT 0x04 (disconnect with will message) publishes the will")
    func willOnDisconnect04() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("will")
        let watcher = try TestClient.connected(port: b.port, version: .v5, clientID: unique("w"))
        try watcher.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"), will: will(topic))
        c.disconnect(reason: .disconnectWithWillMessage)
        let p = try watcher.expectPublish()
        #expect(p.topic.string == topic)
    }

    @Test("5.0 will delay: the will waits for the delay interval")
    func willDelay() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("will")
        let watcher = try TestClient.connected(port: b.port, version: .v5, clientID: unique("w"))
        try watcher.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"), clean: true,
                                         properties: persistent(.v5, expiry: 60), will: will(topic, delay: 2))
        c.drop()
        #expect(try watcher.nextPublish(timeout: 1.2) == nil, "will sent before its delay")
        let p = try watcher.expectPublish(timeout: 3)
        #expect(p.topic.string == topic)
    }

    @Test("5.0 will delay: reconnecting within the delay cancels the will")
    func willDelayCancelled() throws {
        let b = try BrokerProcess(config: "log_level = debug")  // logs every client.closed
        defer { b.stop() }
        let topic = unique("will")
        let id = unique("c")
        let watcher = try TestClient.connected(port: b.port, version: .v5, clientID: unique("w"))
        try watcher.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: id, clean: true,
                                         properties: persistent(.v5, expiry: 60), will: will(topic, delay: 2))
        c.drop()
        // The broker has seen the drop (so the will delay runs) before the client comes back.
        #expect(b.waitForLog(containing: "event=client.closed client=\(id) ") != nil, "the drop was not noticed")
        let (again, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: id, clean: false,
                                                  properties: persistent(.v5, expiry: 60))
        #expect(ack.sessionPresent)
        #expect(try watcher.nextPublish(timeout: 3) == nil, "will sent although the client came back")
        again.disconnect()
    }

    @Test("5.0 will delay longer than session expiry: will sent when the session ends")
    func willDelayCappedBySessionExpiry() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let topic = unique("will")
        let watcher = try TestClient.connected(port: b.port, version: .v5, clientID: unique("w"))
        try watcher.subscribe(topic, qos: .atLeastOnce)
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"), clean: true,
                                         properties: persistent(.v5, expiry: 1), will: will(topic, delay: 100))
        c.drop()
        let p = try watcher.expectPublish(timeout: 4)
        #expect(p.topic.string == topic)
    }
}
