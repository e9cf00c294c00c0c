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
        return r
    }
}
