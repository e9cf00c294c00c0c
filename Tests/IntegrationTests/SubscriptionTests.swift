import Foundation
import MQTT
import Testing

@Suite("Subscriptions, retained messages, $-topics, shared subscriptions")
struct SubscriptionTests {
    @Test("SUBACK has the SUBSCRIBE's packet id and one return code per filter", arguments: bothVersions)
    func subackShape(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.send(.subscribe(SubscribePacket(packetID: 513, subscriptions: [sub("a/b", .atMostOnce), sub("a/+", .atLeastOnce),
                                                                              sub("#", .exactlyOnce)])))
        guard case .suback(let s) = try c.expectNext() else { Issue.record("no SUBACK"); return }
        #expect(s.packetID == 513)
        #expect(s.reasonCodes == [.grantedQoS0, .grantedQoS1, .grantedQoS2])
    }

    @Test("Overlapping subscriptions: delivered once, at the highest QoS", arguments: bothVersions)
    func overlappingOnce(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("ov")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        s.autoAck = true
        try s.subscribe([sub("\(t)/+", .atLeastOnce), sub("\(t)/#", .exactlyOnce), sub("\(t)/x", .atMostOnce)])
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish("\(t)/x", "m", qos: .exactlyOnce)
        let got = try s.collectPublishes(for: 1.5)
        #expect(got.count == 1, "delivered \(got.count) times")
        #expect(got.first?.qos == .exactlyOnce)
    }

    @Test("5.0 overlapping subscriptions: one copy carries every matching subscription identifier")
    func overlappingSubscriptionIDs() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("sid")
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        s.autoAck = true
        try s.subscribe([sub("\(t)/+", .atLeastOnce)], properties: subID(11))
        try s.subscribe([sub("\(t)/#", .atMostOnce)], properties: subID(22))
        try s.subscribe([sub("\(t)/y", .atMostOnce)])  // no identifier
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish("\(t)/y", "m", qos: .atLeastOnce)
        let got = try s.collectPublishes(for: 1.5)
        #expect(got.count == 1)
        #expect(Set(got.first?.properties.subscriptionIdentifiers ?? []) == [11, 22])
        #expect(got.first?.qos == .atLeastOnce)
    }

    @Test("5.0 No Local: a client's own messages are not sent back to it")
    func noLocal() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("nl")
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.subscribe([sub(t, .atLeastOnce, noLocal: true)])
        try c.publish(t, "own", qos: .atLeastOnce)
        #expect(try c.nextPublish(timeout: 1) == nil)
        let other = try TestClient.connected(port: b.port, version: .v5, clientID: unique("o"))
        try other.publish(t, "theirs", qos: .atLeastOnce)
        #expect(try c.expectPublish().text == "theirs")
    }

    @Test("5.0 Retain As Published: RETAIN kept with the option, cleared without it")
    func retainAsPublished() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rap")
        let keep = try TestClient.connected(port: b.port, version: .v5, clientID: unique("k"))
        try keep.subscribe([sub(t, .atMostOnce, rap: true)])
        let clear = try TestClient.connected(port: b.port, version: .v5, clientID: unique("n"))
        try clear.subscribe([sub(t, .atMostOnce, rap: false)])
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, "r", qos: .atLeastOnce, retain: true)
        #expect(try keep.expectPublish().retain == true)
        #expect(try clear.expectPublish().retain == false)
    }

    @Test("5.0 Retain Handling 0 sends retained on every subscribe, 1 only on a new one, 2 never")
    func retainHandling() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("rh")
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        try c.publish(t, "kept", qos: .atLeastOnce, retain: true)
        let s = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try s.subscribe([sub(t, .atMostOnce, rh: 0)])
        #expect(try s.expectPublish().retain)
        try s.subscribe([sub(t, .atMostOnce, rh: 0)])
        #expect(try s.expectPublish().retain, "RH 0 resends on re-subscribe")
        try s.unsubscribe([t])
        try s.subscribe([sub(t, .atMostOnce, rh: 1)])
        #expect(try s.expectPublish().retain, "RH 1 sends for a new subscription")
        try s.subscribe([sub(t, .atMostOnce, rh: 1)])
        #expect(try s.nextPublish(timeout: 1) == nil, "RH 1 does not send for an existing subscription")
        let s2 = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s2"))
        try s2.subscribe([sub(t, .atMostOnce, rh: 2)])
        #expect(try s2.nextPublish(timeout: 1) == nil, "RH 2 never sends retained messages")
    }

    @Test("Retained message: sent with RETAIN=1 to new subscribers, RETAIN=0 to established ones; empty payload clears",
          arguments: bothVersions)
    func retainedBasics(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("ret")
        let live = try TestClient.connected(port: b.port, version: v, clientID: unique("l"))
        try live.subscribe(t, qos: .atLeastOnce)
        live.autoAck = true
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish(t, "state", qos: .atLeastOnce, retain: true)
        let l = try live.expectPublish()
        #expect(l.text == "state" && !l.retain, "established subscription: RETAIN 0")
        let late = try TestClient.connected(port: b.port, version: v, clientID: unique("n"))
        late.autoAck = true
        try late.subscribe("\(t)", qos: .atLeastOnce)
        let r = try late.expectPublish()
        #expect(r.text == "state" && r.retain && r.qos == .atLeastOnce)
        try c.publish(t, "", qos: .atLeastOnce, retain: true)
        _ = try live.expectPublish()
        let later = try TestClient.connected(port: b.port, version: v, clientID: unique("m"))
        try later.subscribe(t, qos: .atLeastOnce)
        #expect(try later.nextPublish(timeout: 1) == nil, "empty retained payload clears the topic")
    }

    @Test("$-topics are not matched by # or + at the first level, only by filters that name them")
    func dollarTopics() throws {
        let b = try BrokerProcess(config: "sys_interval = 1")
        defer { b.stop() }
        let all = try TestClient.connected(port: b.port, version: .v5, clientID: unique("all"))
        try all.subscribe([sub("#"), sub("+/broker/#"), sub("+/+/uptime")])
        let sys = try TestClient.connected(port: b.port, version: .v5, clientID: unique("sys"))
        try sys.subscribe([sub("$SYS/broker/uptime")])
        let p = try sys.expectPublish(timeout: 4)
        #expect(p.topic == "$SYS/broker/uptime")
        let leaked = try all.collectPublishes(for: 2.5)
        #expect(leaked.isEmpty, "wildcards matched $ topics: \(leaked.map(\.topic))")
    }

    @Test("5.0 shared subscription: each message goes to exactly one member of the group")
    func sharedSubscription() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("sh")
        let m1 = try TestClient.connected(port: b.port, version: .v5, clientID: unique("m1"))
        let m2 = try TestClient.connected(port: b.port, version: .v5, clientID: unique("m2"))
        let plain = try TestClient.connected(port: b.port, version: .v5, clientID: unique("p"))
        for m in [m1, m2, plain] { m.autoAck = true }
        try m1.subscribe([sub("$share/g/\(t)/#", .atLeastOnce)])
        try m2.subscribe([sub("$share/g/\(t)/#", .atLeastOnce)])
        try plain.subscribe([sub("\(t)/#", .atLeastOnce)])
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c"))
        for i in 0..<20 { try c.publish("\(t)/x", "m\(i)", qos: .atLeastOnce) }
        let a = try m1.collectPublishes(for: 1.5).map(\.text)
        let bb = try m2.collectPublishes(for: 0.5).map(\.text)
        let all = try plain.collectPublishes(for: 0.5).map(\.text)
        #expect(a.count + bb.count == 20, "group got \(a.count)+\(bb.count)")
        #expect(Set(a).isDisjoint(with: bb))
        #expect(Set(a + bb).count == 20)
        #expect(!a.isEmpty && !bb.isEmpty, "both members get a share")
        #expect(all.count == 20, "a plain subscription is unaffected")
    }

    @Test("UNSUBSCRIBE stops delivery; 5.0 UNSUBACK 0x11 for a filter that was not subscribed", arguments: bothVersions)
    func unsubscribe(v: ProtocolVersion) throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let t = unique("un")
        let s = try TestClient.connected(port: b.port, version: v, clientID: unique("s"))
        try s.subscribe(t, qos: .atLeastOnce)
        let u = try s.unsubscribe([t, "\(t)/never"])
        if v == .v5 { #expect(u.reasonCodes == [.success, .noSubscriptionExisted]) }
        let c = try TestClient.connected(port: b.port, version: v, clientID: unique("c"))
        try c.publish(t, "m", qos: .atLeastOnce)
        #expect(try s.nextPublish(timeout: 1) == nil)
    }

    @Test("MQTT-4.7.1-2 (3.1.1) / MQTT-4.7.1-1 (5.0) '#' not last in a filter is a malformed packet")
    func badFilter() throws {
        let b = try BrokerProcess()
        defer { b.stop() }
        let c = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("c"))
        try c.send(.subscribe(SubscribePacket(packetID: 1, subscriptions: [sub("a/#/b")])))
        #expect(c.isClosed(within: 3))
        // 5.0: DISCONNECT 0x81 (not a SUBACK 0x8F, which is for well-formed filters refused).
        let c5 = try TestClient.connected(port: b.port, version: .v5, clientID: unique("c5"))
        try c5.send(.subscribe(SubscribePacket(packetID: 1, subscriptions: [sub("a/#/b")])))
        let p = try c5.expectNext()
        guard case .disconnect(let d) = p else {
            Issue.record("expected DISCONNECT 0x81, got \(p)")
            return
        }
        #expect(d.reasonCode == .malformedPacket)
        #expect(c5.isClosed(within: 3))
    }
}
