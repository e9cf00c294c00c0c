import Foundation
import Broker
import Notify
import Reactor
import Synchronization

/// Requests counted by route, method and status, and their latency by route.
final class HTTPMetrics: Sendable {
    private struct Key: Hashable { let route: String, method: String, status: Int }
    private let counts = Mutex<[Key: Int]>([:])
    private let latency = Mutex<[String: Histogram]>([:])

    func record(route: String, method: String, status: Int, seconds: Double) {
        counts.withLock { $0[Key(route: route, method: method, status: status), default: 0] += 1 }
        let histogram = latency.withLock { table in
            if let h = table[route] { return h }
            let h = Histogram()
            table[route] = h
            return h
        }
        histogram.record(seconds: seconds)
    }

    /// The Prometheus text format 0.0.4 of everything: the broker's figures, the
    /// chat plugin's and the gateway's own.
    func page(_ broker: BrokerMetrics, chatPosts: Int?, usersOnline: Int?, httpConnections: Int,
              notifications: NotifyFigures? = nil) -> [UInt8] {
        var out = PrometheusText()
        out.family("parley_connections", "gauge", "Open MQTT connections by listener.")
        for (listener, n) in broker.connections { out.sample("parley_connections", [("listener", listener)], Double(n)) }
        out.family("parley_http_connections", "gauge", "Open HTTP connections (before any upgrade).")
        out.sample("parley_http_connections", [], Double(httpConnections))
        out.family("parley_clients_connected", "gauge", "MQTT clients past CONNECT.")
        out.sample("parley_clients_connected", [], Double(broker.clientsConnected))
        out.counter("parley_messages_received_total", "PUBLISH packets received from clients.", broker.publishReceived)
        out.counter("parley_messages_sent_total", "PUBLISH packets sent to clients.", broker.publishSent)
        out.counter("parley_messages_dropped_total", "Messages dropped (queues full, slow consumers, expiry).", broker.publishDropped)
        out.counter("parley_packets_received_total", "MQTT packets received.", broker.messagesReceived)
        out.counter("parley_packets_sent_total", "MQTT packets sent.", broker.messagesSent)
        out.counter("parley_bytes_received_total", "Bytes received from MQTT clients.", broker.bytesReceived)
        out.counter("parley_bytes_sent_total", "Bytes sent to MQTT clients.", broker.bytesSent)
        out.family("parley_queued_messages", "gauge", "Messages queued or in flight in sessions.")
        out.sample("parley_queued_messages", [], Double(broker.queuedMessages))
        out.family("parley_subscriptions", "gauge", "Subscriptions.")
        out.sample("parley_subscriptions", [], Double(broker.subscriptions))
        out.family("parley_retained_messages", "gauge", "Retained messages.")
        out.sample("parley_retained_messages", [], Double(broker.retainedMessages))
        out.family("parley_store_writable", "gauge", "1 when the store's last commit succeeded and it is not full.")
        out.sample("parley_store_writable", [], broker.storeWritable ? 1 : 0)
        if !broker.commitBounds.isEmpty {
            out.histogram("parley_store_commit_seconds", "Store commit latency (BEGIN to COMMIT with its fsync).", [],
                          bounds: broker.commitBounds, cumulative: broker.commitCumulative, sum: broker.commitSeconds)
        }
        if let chatPosts { out.counter("parley_chat_posts_total", "Chat messages stored.", chatPosts) }
        if let usersOnline {
            out.family("parley_users_online", "gauge", "Chat users with at least one connected session.")
            out.sample("parley_users_online", [], Double(usersOnline))
        }
        if let notifications { out.notifications(notifications) }
        let requests = counts.withLock { $0 }.sorted { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }
        out.family("parley_http_requests_total", "counter", "HTTP requests answered, by route template, method and status.")
        for (key, n) in requests {
            out.sample("parley_http_requests_total",
                       [("route", key.route), ("method", key.method), ("status", String(key.status))], Double(n))
        }
        let histograms = latency.withLock { $0 }.sorted { $0.key < $1.key }
        out.family("parley_http_request_seconds", "histogram", "HTTP request latency, by route template.")
        for (route, h) in histograms {
            let (cumulative, sum) = h.snapshot()
            out.histogramSamples("parley_http_request_seconds", [("route", route)], bounds: h.bounds,
                                 cumulative: cumulative, sum: sum)
        }
        return Array(out.text.utf8)
    }
}

extension PrometheusText {
    /// The notification bridge's figures (SPEC section 5).
    mutating func notifications(_ n: NotifyFigures) {
        family("parley_notify_pending", "gauge", "Notifications waiting in the outbox.")
        sample("parley_notify_pending", [], Double(n.pending))
        for (name, help, values) in [("parley_notify_sent_total", "Notifications delivered, by channel.", n.sent),
                                     ("parley_notify_failed_total", "Failed delivery attempts, by channel.", n.failed),
                                     ("parley_notify_dead_total", "Notifications given up (dead letters), by channel.", n.dead)] {
            family(name, "counter", help)
            for (channel, v) in values.sorted(by: { $0.key < $1.key }) { sample(name, [("channel", channel)], Double(v)) }
        }
        histogram("parley_notify_delivery_seconds", "Post to delivery of notifications.", [], bounds: n.deliveryBounds,
                  cumulative: n.deliveryCumulative, sum: n.deliverySeconds)
    }
}

/// Writes the Prometheus text exposition format 0.0.4.
struct PrometheusText {
    var text = ""

    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escaped($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.number(value) + "\n"
    }

    mutating func counter(_ name: String, _ help: String, _ value: Int) {
        family(name, "counter", help)
        sample(name, [], Double(value))
    }

    mutating func histogram(_ name: String, _ help: String, _ labels: [(String, String)], bounds: [Double],
                            cumulative: [Int], sum: Double)
    {
        family(name, "histogram", help)
        histogramSamples(name, labels, bounds: bounds, cumulative: cumulative, sum: sum)
    }

    mutating func histogramSamples(_ name: String, _ labels: [(String, String)], bounds: [Double], cumulative: [Int],
                                   sum: Double)
    {
        for (i, bound) in bounds.enumerated() {
            sample(name + "_bucket", labels + [("le", Self.number(bound))], Double(cumulative[i]))
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], Double(cumulative.last ?? 0))
        sample(name + "_sum", labels, sum)
        sample(name + "_count", labels, Double(cumulative.last ?? 0))
    }

    static func number(_ v: Double) -> String {
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v.isNaN { return "NaN" }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    static func escaped(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
