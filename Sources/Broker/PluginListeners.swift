import Foundation
import Reactor
import Synchronization

// Listeners for plugins' own protocols (the gateway's HTTP) on the broker's event
// loops, and the hand-over that makes an MQTT client of an upgraded connection.
extension Broker {
    public func listen(_ address: SocketAddress, name: String, secure: Bool,
                       accept: @escaping (AcceptedSocket) -> Void) throws -> SocketAddress
    {
        if secure && tlsContext == nil {
            throw TLSError("\(name) listeners need a certificate and a key (tls_cert, tls_key or --cert, --key)")
        }
        let fd = try Sockets.listen(address, reusePort: false)
        guard let bound = Sockets.localAddress(fd) else {
            close(fd)
            throw SystemError("getsockname")
        }
        let holder = secure ? tlsContext : nil
        try addListeners(fd) { client, peer, loop in
            accept(AcceptedSocket(fd: client, peer: peer, loop: loop, tls: holder?.context))
        }
        Log.info("listener.open", ["address": bound, "protocol": name, "loops": loops.count])
        return bound
    }

    public func adoptMQTTClient(_ handOver: MQTTHandOver) {
        let ctx = loops[handOver.loop.index]
        let count = connectionCount.add(1, ordering: .relaxed).newValue
        ctx.stats.connectionsAccepted += 1
        let conn = ClientConnection(fd: handOver.fd, ctx: ctx, peer: handOver.peer)
        conn.listenerKind = handOver.tls == nil ? .ws : .wss
        ctx.stats.open[Int(conn.listenerKind.rawValue)] += 1
        conn.adoptTLS(handOver.tls)
        conn.send(handOver.greeting)
        conn.setLayer(handOver.layer)
        guard admit(conn, on: ctx, count: count) else { return }
        handOver.initialBytes.withUnsafeBytes { conn.deliver($0) }
        // A TLS session may hold decrypted bytes that the socket will not report again.
        if handOver.tls != nil && !conn.isClosed { conn.readNow() }
    }

    public var storeWritable: Bool {
        guard let db = database else { return true }
        return !db.lastCommitFailed.load(ordering: .relaxed) && !db.isFull.load(ordering: .relaxed)
    }

    public func collectMetrics(_ done: @escaping @Sendable (BrokerMetrics) -> Void) {
        let queued = Atomic<Int>(0)
        for ctx in loops {
            ctx.loop.execute {
                var n = 0
                for (_, s) in ctx.sessions { n += s.queuedCount + s.inflightCount }
                queued.add(n, ordering: .relaxed)
            }
        }
        collectStats { [self] total, subscriptions in
            var m = BrokerMetrics()
            m.connections = ListenerKind.allCases.map { ($0.metricsName, total.open[Int($0.rawValue)]) }
            m.clientsConnected = total.clientsConnected
            m.messagesReceived = total.messagesReceived
            m.messagesSent = total.messagesSent
            m.publishReceived = total.publishReceived
            m.publishSent = total.publishSent
            m.publishDropped = total.publishDropped
            m.bytesReceived = total.bytesReceived
            m.bytesSent = total.bytesSent
            m.queuedMessages = queued.load(ordering: .relaxed)
            m.subscriptions = subscriptions
            m.retainedMessages = retained.count
            if let db = database {
                let (cumulative, sum) = db.commitLatency.snapshot()
                m.commitBounds = db.commitLatency.bounds
                m.commitCumulative = cumulative
                m.commitSeconds = sum
                m.storeWritable = storeWritable
            }
            done(m)
        }
    }
}
