import MQTT
import Store

// A plugin takes access away (a removed room member, a deleted user): the
// subscriptions go at once and what was queued for them is dropped, in memory
// and on disk, so nothing more is delivered, not even from the queue.
extension BrokerLoop {
    /// Takes away a session's subscriptions at or below `prefix` and its queued
    /// deliveries on topics below it (memory and disk): a user lost access there.
    func revoke(_ session: Session, below prefix: ByteString) {
        var ops: [StoreOp] = []
        for (raw, entry) in session.subscriptions where raw.bytes.starts(with: prefix.bytes) {
            session.subscriptions[raw] = nil
            removeSubscription(raw: raw, entry: entry, session: session)
            if session.durable != nil { ops.append(.unsubscribe(clientID: session.clientID, filter: Array(raw.bytes))) }
        }
        let (removed, bytes) = session.removeQueued { $0.message.topic.bytes.starts(with: prefix.bytes) }
        broker.queuedBytes.subtract(bytes, ordering: .relaxed)
        stats.publishDropped += removed.count
        if session.durable != nil {
            ops.append(.dropDeliveries(clientID: session.clientID, topicPrefix: Array(prefix.bytes)))
        }
        if !ops.isEmpty { store?.submit(ops) }
    }
}
