/// Counters of one loop, touched only by its thread; `$SYS` sums them.
struct LoopStats {
    var messagesReceived = 0
    var messagesSent = 0
    var publishReceived = 0
    var publishSent = 0
    var publishDropped = 0
    var publishExpired = 0
    var bytesReceived = 0
    var bytesSent = 0
    var connectionsAccepted = 0
    var clientsConnected = 0
    var protocolErrors = 0
    /// Open connections by `ListenerKind` (opened here minus closed here: only the sum
    /// over the loops means something, connections move between loops).
    var open = [0, 0, 0, 0]

    static func + (a: LoopStats, b: LoopStats) -> LoopStats {
        var r = LoopStats()
        r.messagesReceived = a.messagesReceived + b.messagesReceived
        r.messagesSent = a.messagesSent + b.messagesSent
        r.publishReceived = a.publishReceived + b.publishReceived
        r.publishSent = a.publishSent + b.publishSent
        r.publishDropped = a.publishDropped + b.publishDropped
        r.publishExpired = a.publishExpired + b.publishExpired
        r.bytesReceived = a.bytesReceived + b.bytesReceived
        r.bytesSent = a.bytesSent + b.bytesSent
        r.connectionsAccepted = a.connectionsAccepted + b.connectionsAccepted
        r.clientsConnected = a.clientsConnected + b.clientsConnected
        r.protocolErrors = a.protocolErrors + b.protocolErrors
        r.open = zip(a.open, b.open).map { $0 + $1 }
        return r
    }
}

/// What the broker counts, for a plugin's metrics endpoint (`collectMetrics`).
public struct BrokerMetrics: Sendable {
    /// Open MQTT connections by listener: "mqtt", "mqtts", "ws", "wss".
    public var connections: [(listener: String, count: Int)] = []
    public var clientsConnected = 0
    public var messagesReceived = 0
    public var messagesSent = 0
    public var publishReceived = 0
    public var publishSent = 0
    public var publishDropped = 0
    public var bytesReceived = 0
    public var bytesSent = 0
    /// Messages waiting in sessions' queues (in memory and in flight).
    public var queuedMessages = 0
    public var subscriptions = 0
    public var retainedMessages = 0
    /// Store commits: latency buckets (cumulative, seconds) and sum; nil without a store.
    public var commitBounds: [Double] = []
    public var commitCumulative: [Int] = []
    public var commitSeconds = 0.0
    /// Whether the store can write (false after a failed commit or when it is full).
    public var storeWritable = true
}
