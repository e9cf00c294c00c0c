// The plugin protocol, exercised in-process: a broker built with a recording
// plugin, driven over TCP by the test client. Each hook is checked by what a
// client can observe (CONNACK codes, acks, deliveries) and by what the plugin saw.
import Broker
import Dispatch
import Foundation
import MQTT
import Reactor
import Store
import Synchronization
import Testing

/// A plugin that provides every hook and records what it is asked.
final class RecordingPlugin: BrokerPlugin, @unchecked Sendable {
    let name = "recording"
    let hooks: PluginHooks = [
        .authenticate, .authorizePublish, .authorizeSubscribe, .inspectPublish, .beforeAck, .sessionEvents,
        .delivered, .tick,
    ]
    let events = Mutex<[String]>([])
    let services = Mutex<BrokerServices?>(nil)
    let ticks = Atomic<Int>(0)

    func record(_ e: String) { events.withLock { $0.append(e) } }
    func seen(_ prefix: String) -> [String] { events.withLock { $0.filter { $0.hasPrefix(prefix) } } }

    func start(_ services: BrokerServices) throws { self.services.withLock { $0 = services } }

    func authenticate(_ request: ConnectRequest, completion: @escaping @Sendable (AuthDecision) -> Void) {
        // Answer from another thread, as a plugin that hashes passwords would.
        DispatchQueue.global().async {
            switch request.username {
            case "bad": completion(.deny(.badUserNameOrPassword))
            case "good":
                completion(request.password == Array("secret".utf8) ? .allow(username: "good-user") : .deny(.notAuthorized))
            default: completion(.abstain)
            }
        }
    }

    func authorizePublish(_ client: ClientInfo, topic: ByteString, qos: QoS, retain: Bool) -> ReasonCode {
        record("pub-acl \(client.username ?? "-") \(topic)")
        return topic.hasPrefix("forbidden/") ? .notAuthorized : .success
    }

    func authorizeSubscribe(_ client: ClientInfo, filter: TopicFilter, requested: QoS) -> ReasonCode {
        if filter.filter.hasPrefix("nope/") { return .notAuthorized }
        if filter.filter.hasPrefix("limited/") { return .grantedQoS0 }
        return ReasonCode(requested.rawValue)
    }

    func inspectPublish(_ publish: inout InboundPublish, from client: ClientInfo) -> ReasonCode {
        if publish.topic.hasPrefix("veto/") { return .quotaExceeded }
        if publish.topic.hasPrefix("stamp/") { publish.payload = Array("stamped:".utf8) + publish.payload }
        return .success
    }

    func beforeAck(_ message: Message, from client: ClientInfo, completion: @escaping @Sendable (ReasonCode) -> Void) {
        record("before-ack \(message.topic)")
        if message.topic.hasPrefix("fail/") {
            completion(.implementationSpecificError)
        } else if message.topic.hasPrefix("slow/") {
            let released = "released-ack \(message.topic)"
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
                self.record(released)  // before the completion: the PUBACK can only follow it
                completion(.success)
            }
        } else {
            completion(.success)
        }
    }

    func sessionOnline(_ client: ClientInfo) { record("online \(client.clientID)") }
    func sessionOffline(_ client: ClientInfo) { record("offline \(client.clientID)") }
    func delivered(_ message: Message, to client: ClientInfo) { record("delivered \(message.topic) \(client.clientID)") }
    func tick(now: UInt64) { ticks.add(1, ordering: .relaxed) }
}

/// A publish check that refuses everything it is asked, and waives itself while `waiving`.
final class WaivingPlugin: BrokerPlugin, @unchecked Sendable {
    let name = "waiving"
    let hooks: PluginHooks = [.authorizePublish]
    let waiving = Atomic<Bool>(true)
    let asked = Atomic<Int>(0)
    var allowsEveryPublish: Bool { waiving.load(ordering: .relaxed) }
    func authorizePublish(_ client: ClientInfo, topic: ByteString, qos: QoS, retain: Bool) -> ReasonCode {
        asked.add(1, ordering: .relaxed)
        return .notAuthorized
    }
}

/// A broker in this process with the given plugins, on a free loopback port.
final class InProcessBroker {
    let broker: Broker
    let port: UInt16

    init(plugins: [BrokerPlugin], configure: (inout BrokerConfig) -> Void = { _ in }) throws {
        var config = BrokerConfig()
        config.mqttListeners = [try SocketAddress(parsing: "127.0.0.1:0")]
        config.loops = 2
        config.sysInterval = 0
        config.durability = .none
        configure(&config)
        broker = Broker(config: config, plugins: plugins)
        try broker.start()
        port = broker.boundAddresses[0].port
    }

    deinit { broker.shutdown() }
}

@Suite("Plugin hooks (in-process broker)", .serialized)
struct PluginHookTests {
    @Test("authenticate: deny gives CONNACK 0x86 (v5) and return code 4 (3.1.1); allow may rename the user")
    func authenticate() throws {
        let plugin = RecordingPlugin()
        let b = try InProcessBroker(plugins: [plugin])
        let (c5, ack5) = try TestClient.connect(port: b.port, version: .v5, clientID: unique("a"), username: "bad",
                                                password: Array("x".utf8))
        #expect(ack5.reasonCode == .badUserNameOrPassword)
        #expect(c5.isClosed(within: 2))
        let (c4, ack4) = try TestClient.connect(port: b.port, version: .v3_1_1, clientID: unique("a"), username: "bad",
                                                password: Array("x".utf8))
        #expect(ack4.reasonCode == ConnectReturnCode.badUserNameOrPassword.reasonCode)
        #expect(c4.isClosed(within: 2))

        let (good, ack) = try TestClient.connect(port: b.port, version: .v5, clientID: unique("a"), username: "good",
                                                 password: Array("secret".utf8))
        #expect(ack.reasonCode == .success)
        try good.publish("renamed/check", "x", qos: .atLeastOnce)
        #expect(plugin.seen("pub-acl good-user renamed/check").count == 1)
    }

    @Test("authorizePublish: a refused v5 QoS 1 publish gets PUBACK 0x87 and reaches nobody")
    func authorizePublish() throws {
        let b = try InProcessBroker(plugins: [RecordingPlugin()])
        let sub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try sub.subscribe("forbidden/#", qos: .atLeastOnce)
        let pub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("p"))
        #expect(try pub.publish("forbidden/x", Array("no".utf8), qos: .atLeastOnce) == .notAuthorized)
        #expect(try sub.collectPublishes(for: 0.5).isEmpty)
    }

    @Test("allowsEveryPublish: while true the plugin is not asked; once false it is, for the next PUBLISH")
    func allowsEveryPublish() throws {
        let plugin = WaivingPlugin()
        let b = try InProcessBroker(plugins: [plugin])
        let sub = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("s"))
        try sub.subscribe("w/#", qos: .atLeastOnce)
        let pub = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("p"))
        try pub.publish("w/a", "waived")
        try pub.publish("w/b", "waived", qos: .atLeastOnce)
        #expect(try sub.collectPublishes(for: 0.5).map { String(decoding: $0.payload, as: UTF8.self) } == ["waived", "waived"])
        #expect(plugin.asked.load(ordering: .relaxed) == 0)
        plugin.waiving.store(false, ordering: .relaxed)
        try pub.publish("w/c", "checked")
        #expect(try sub.collectPublishes(for: 0.5).isEmpty, "the plugin refuses everything it is asked")
        #expect(plugin.asked.load(ordering: .relaxed) == 1)
    }

    @Test("authorizeSubscribe: refusals and QoS caps appear in SUBACK")
    func authorizeSubscribe() throws {
        let b = try InProcessBroker(plugins: [RecordingPlugin()])
        let c = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        let suback = try c.subscribe([
            Subscription(topicFilter: "nope/#", qos: .atLeastOnce),
            Subscription(topicFilter: "limited/#", qos: .exactlyOnce),
            Subscription(topicFilter: "open/#", qos: .exactlyOnce),
        ])
        #expect(suback.reasonCodes == [.notAuthorized, .grantedQoS0, .grantedQoS2])
    }

    @Test("inspectPublish: a plugin rewrites the payload, or vetoes with its reason code")
    func inspectPublish() throws {
        let b = try InProcessBroker(plugins: [RecordingPlugin()])
        let sub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try sub.subscribe("stamp/#")
        try sub.subscribe("veto/#")
        let pub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("p"))
        try pub.publish("stamp/1", "hello", qos: .atLeastOnce)
        #expect(try sub.expectPublish().text == "stamped:hello")
        #expect(try pub.publish("veto/1", Array("x".utf8), qos: .atLeastOnce) == .quotaExceeded)
        #expect(try sub.collectPublishes(for: 0.5).isEmpty)
    }

    @Test("beforeAck: the PUBACK waits for the plugin, acks keep their order, a failure is reported")
    func beforeAck() throws {
        let plugin = RecordingPlugin()
        let b = try InProcessBroker(plugins: [plugin])
        let sub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try sub.subscribe("slow/#")
        try sub.subscribe("fast/#")
        let pub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("p"))
        try pub.send(.publish(PublishPacket(topic: "slow/1", payload: Array("a".utf8)[...], qos: .atLeastOnce, packetID: 1)))
        try pub.send(.publish(PublishPacket(topic: "fast/2", payload: Array("b".utf8)[...], qos: .atLeastOnce, packetID: 2)))
        var acks: [UInt16] = []
        while acks.count < 2 {
            guard let p = try pub.receive(timeout: 3) else { break }
            if case .puback(let a) = p {
                acks.append(a.packetID)
                // Each PUBACK comes after the plugin let slow/1 go (fast/2's keeps its place behind it).
                #expect(plugin.seen("released-ack slow/1").count == 1, "PUBACK \(a.packetID) before beforeAck completed")
            }
        }
        #expect(acks == [1, 2])
        #expect(plugin.seen("before-ack").count == 2)
        let got = try sub.collectPublishes(for: 0.5).map { sub.topic(of: $0) }
        #expect(Set(got) == ["slow/1", "fast/2"])
        #expect(try pub.publish("fail/3", Array("c".utf8), qos: .atLeastOnce) == .implementationSpecificError)
    }

    @Test("sessionOnline/sessionOffline and delivered are called")
    func sessionEventsAndDelivered() throws {
        let plugin = RecordingPlugin()
        let b = try InProcessBroker(plugins: [plugin])
        let subID = unique("s")
        let sub = try TestClient.connected(port: b.port, version: .v5, clientID: subID)
        sub.autoAck = true
        try sub.subscribe("d/#", qos: .atLeastOnce)
        let pub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("p"))
        try pub.publish("d/1", "x", qos: .atLeastOnce)
        _ = try sub.expectPublish()
        try sub.sync()
        sub.disconnect()
        let offline = eventually { plugin.seen("offline \(subID)").count == 1 }
        #expect(offline, "sessionOffline not called within 3 s")
        #expect(plugin.seen("online \(subID)").count == 1)
        let delivered = eventually { plugin.seen("delivered d/1 \(subID)").count == 1 }
        #expect(delivered, "delivered not called within 3 s")
    }

    @Test("delivered: a QoS 0 delivery counts once written; a QoS 1 one only once acknowledged")
    func deliveredAtQoS0AndOnAck() throws {
        let plugin = RecordingPlugin()
        let b = try InProcessBroker(plugins: [plugin])
        let subID = unique("s")
        let sub = try TestClient.connected(port: b.port, version: .v5, clientID: subID)
        sub.autoAck = false
        try sub.subscribe("q/#", qos: .atLeastOnce)
        let pub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("p"))
        try pub.publish("q/zero", "x", qos: .atMostOnce)
        _ = try sub.expectPublish()
        #expect(eventually { plugin.seen("delivered q/zero \(subID)").count == 1 })
        try pub.publish("q/one", "y", qos: .atLeastOnce)
        let p = try sub.expectPublish()
        // Not acknowledged yet: not delivered.
        Thread.sleep(forTimeInterval: 0.3)
        #expect(plugin.seen("delivered q/one").isEmpty)
        try sub.send(.puback(AckPacket(packetID: p.packetID)))
        #expect(eventually { plugin.seen("delivered q/one \(subID)").count == 1 })
        _ = b
    }

    @Test("BrokerServices: internal publish and subscribe, disconnect by client id, tick")
    func services() throws {
        let plugin = RecordingPlugin()
        let b = try InProcessBroker(plugins: [plugin])
        let services = try #require(plugin.services.withLock { $0 })
        let received = Mutex<[String]>([])
        let token = try services.subscribe(filter: "to-plugin/#") { m in
            received.withLock { $0.append(String(decoding: m.payload, as: UTF8.self)) }
        }
        let client = try TestClient.connected(port: b.port, version: .v5, clientID: "svc-client")
        try client.subscribe("from-plugin/#")
        #expect(try client.publish("to-plugin/a", "ping", qos: .atLeastOnce) == .success)
        let pinged = eventually { received.withLock { $0 } == ["ping"] }
        #expect(pinged, "the internal subscriber did not get ping")
        services.publish(topic: "from-plugin/b", payload: Array("pong".utf8), qos: .atMostOnce, retain: false,
                         properties: .none)
        #expect(try client.expectPublish().text == "pong")
        services.unsubscribe(token)
        // The unsubscribe runs on the internal client's loop; once it has, nothing matches
        // to-plugin/# and a v5 QoS 1 PUBLISH there is acknowledged 0x10 (no matching subscribers).
        let unsubscribed = try eventually {
            try client.publish("to-plugin/probe", "probe", qos: .atLeastOnce) == .noMatchingSubscribers
        }
        #expect(unsubscribed, "to-plugin/# still matched 3 s after unsubscribe")
        #expect(try client.publish("to-plugin/a", "again", qos: .atLeastOnce) == .noMatchingSubscribers)
        Thread.sleep(forTimeInterval: 0.2)  // a window in which "again" must not arrive
        #expect(received.withLock { $0 }.filter { $0 != "probe" } == ["ping"])
        services.disconnect(clientID: "svc-client", reason: .administrativeAction)
        #expect(try client.expectDisconnect().reasonCode == .administrativeAction)
        let ticked = eventually(timeout: 5) { plugin.ticks.load(ordering: .relaxed) >= 1 }
        #expect(ticked, "no tick within 5 s")
    }

    @Test("decidePublish: accept, accept without routing (success ack, no copy), refuse (the code); later verdicts keep arrival order")
    func decidePublish() throws {
        let b = try InProcessBroker(plugins: [DecidingPlugin()])
        let sub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try sub.subscribe("d/#", qos: .atLeastOnce)
        let pub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("p"))
        #expect(try pub.publish("d/plain", "1", qos: .atLeastOnce) == .success)
        #expect(try pub.publish("d/repeat", "2", qos: .atLeastOnce) == .success)
        #expect(try pub.publish("d/refuse", "3", qos: .atLeastOnce) == .payloadFormatInvalid)
        #expect(try pub.publish("d/later", "4", qos: .atLeastOnce) == .success)
        let got = try sub.collectPublishes(for: 0.8).map(\.text)
        #expect(got == ["1", "4"], "only the accepted ones are routed: \(got)")
    }

    @Test("publish(as:): the same checks as a client's PUBLISH, the outcome to a completion")
    func publishAsClient() throws {
        let plugin = RecordingPlugin()
        let b = try InProcessBroker(plugins: [plugin])
        let services = try #require(plugin.services.withLock { $0 })
        let sub = try TestClient.connected(port: b.port, version: .v5, clientID: unique("s"))
        try sub.subscribe("as/#", qos: .atLeastOnce)
        let client = ClientInfo(clientID: "rest-alice", username: "alice", peer: nil, protocolVersion: .v5,
                                tlsIdentity: nil, isInternal: false)
        func publish(_ topic: String) -> ReasonCode? {
            let result = Mutex<ReasonCode?>(nil)
            let message = Message(topic: ByteString(topic), payload: Array("hi".utf8), qos: .atLeastOnce, retain: false,
                                  origin: client.clientID, receivedAt: 0)
            services.publish(message, as: client) { code in result.withLock { $0 = code } }
            _ = eventually { result.withLock { $0 } != nil }
            return result.withLock { $0 }
        }
        #expect(publish("as/x") == .success)
        #expect(try sub.expectPublish().text == "hi")
        #expect(publish("forbidden/x") == .notAuthorized)
        #expect(publish("$SYS/x") == .notAuthorized)
        #expect(publish("nobody/listens") == .noMatchingSubscribers)
        #expect(plugin.seen("pub-acl alice as/x").count == 1)
    }
}

/// Decides on `d/...` topics: repeat -> accept without routing, refuse -> 0x99,
/// later -> accept from another thread after a while.
final class DecidingPlugin: BrokerPlugin, @unchecked Sendable {
    let name = "deciding"
    let hooks: PluginHooks = [.decidePublish]

    func decidePublish(_ message: Message, from client: ClientInfo,
                       completion: @escaping @Sendable (PublishVerdict) -> Void)
    {
        switch message.topic.string {
        case "d/repeat": completion(.acceptWithoutRouting)
        case "d/refuse": completion(.refuse(.payloadFormatInvalid))
        case "d/later": DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { completion(.accept) }
        default: completion(.accept)
        }
    }
}

/// Keeps a table of what it was asked to add to commits: a row for each message
/// under `post/` that a plugin publishes in order.
final class CompanionPlugin: BrokerPlugin, @unchecked Sendable {
    let name = "companion"
    let hooks: PluginHooks = [.storage, .companionWrites]
    let services = Mutex<BrokerServices?>(nil)

    func start(_ services: BrokerServices) throws {
        self.services.withLock { $0 = services }
        try services.storage.migrate(name, [
            "CREATE TABLE companion_posts(topic TEXT NOT NULL); CREATE TABLE companion_outbox(topic TEXT NOT NULL);",
        ])
    }

    func companionWrites(for message: Message) -> [PluginWrite] {
        guard message.topic.hasPrefix("post/") else { return [] }
        let topic = message.topic.string
        return [PluginWrite(plugin: name) { db in
            try db.prepare("INSERT INTO companion_outbox(topic) VALUES (?)").bind(1, topic).run()
        }]
    }

    /// The rows of a table, read after every write queued before.
    func rows(_ table: String) -> [String] {
        let out = Mutex<[String]?>(nil)
        services.withLock { $0 }!.storage.read { db in
            var rows: [String] = []
            if let q = try? db.prepare("SELECT topic FROM \(table) ORDER BY rowid") {
                while (try? q.step()) == true { rows.append(q.text(0) ?? "") }
            }
            out.withLock { $0 = rows }
        }
        _ = eventually { out.withLock { $0 } != nil }
        return out.withLock { $0 } ?? []
    }
}

@Suite("Plugin hooks: companion writes", .serialized)
struct CompanionWriteTests {
    @Test("companionWrites: a plugin's rows go into the commit of another plugin's ordered publish, only for the messages it wants")
    func companionRowsShareTheCommit() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-companion-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let plugin = CompanionPlugin()
        let b = try InProcessBroker(plugins: [plugin]) { $0.dataDirectory = dir.path }
        let services = try #require(plugin.services.withLock { $0 })
        let done = Atomic<Int>(0)
        for topic in ["post/1", "other/1", "post/2"] {
            services.onLoop(of: "room/x") { ctx in
                let row = PluginWrite(plugin: "companion") { db in
                    try db.prepare("INSERT INTO companion_posts(topic) VALUES (?)").bind(1, topic).run()
                }
                let message = Message(topic: ByteString(topic), payload: Array("hi".utf8), qos: .atLeastOnce, retain: false,
                                      origin: nil, receivedAt: 0)
                ctx.publish(message, writes: [row]) { ok in if ok { done.add(1, ordering: .relaxed) } }
            }
        }
        #expect(eventually { done.load(ordering: .relaxed) == 3 })
        #expect(plugin.rows("companion_posts") == ["post/1", "other/1", "post/2"])
        #expect(plugin.rows("companion_outbox") == ["post/1", "post/2"])
        _ = b
    }
}
