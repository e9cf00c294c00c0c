import MQTT
import Reactor
import Store

/// A plugin's handle on one event loop, given to the work passed to
/// `BrokerServices.onLoop(of:)`. Valid only inside that work, on that loop.
public final class LoopContext {
    unowned let loop: BrokerLoop
    /// The key the work was run for: publishes keep their order per key.
    let key: String
    init(_ loop: BrokerLoop, key: String) {
        self.loop = loop
        self.key = key
    }

    /// This loop's index (0 ..< `BrokerServices.loopCount`): plugins keep per-loop
    /// state in an array indexed by it and touch it without locks.
    public var index: Int { loop.index }
    /// Monotonic milliseconds.
    public var now: UInt64 { loop.now }

    /// Publishes as the broker (no ACL check) from this loop, after `writes` (and the
    /// message itself, when it must outlive a crash) are committed, in one commit and
    /// in the order of the calls made for this key: messages published for a key
    /// reach every subscriber in that order. `completion(ok)` runs on this loop once it is routed
    /// (false: not stored, e.g. a full disk; nothing was routed).
    public func publish(_ message: Message, writes: [PluginWrite] = [], completion: ((Bool) -> Void)? = nil) {
        loop.publishInOrder(message, key: key, writes: writes, completion: completion)
    }

    /// Runs `work` on this loop once every publish made for this key before it has
    /// been committed and routed (or refused): e.g. to acknowledge a repeat only
    /// after the original it repeats is stored.
    public func afterPending(_ work: @escaping () -> Void) {
        loop.publishInOrder(nil, key: key, writes: [], completion: { _ in work() })
    }

    /// Takes a user's subscriptions below `topicPrefix` away on every loop, drops
    /// what is queued for them there (memory and disk) and has their remaining
    /// queued deliveries checked again, after everything routed from this loop
    /// before (so a last message, such as a kick event, still reaches them).
    public func revoke(username: String, topicPrefix: String) {
        loop.revokeEverywhere(username: username, prefix: ByteString(topicPrefix))
    }

    /// Runs `work` on this loop after `milliseconds`.
    public func schedule(afterMilliseconds milliseconds: UInt64, _ work: @escaping () -> Void) {
        _ = loop.loop.schedule(afterMilliseconds: milliseconds, work)
    }
}

/// A plugin publish waiting for its commit, or behind one that does.
final class OrderedPublish {
    let message: Message?
    let completion: ((Bool) -> Void)?
    var outcome: Bool?
    init(_ message: Message?, completion: ((Bool) -> Void)?) {
        self.message = message
        self.completion = completion
    }
}

extension BrokerLoop {
    /// See `LoopContext.publish`.
    func publishInOrder(_ message: Message?, key: String, writes: [PluginWrite], completion: ((Bool) -> Void)?) {
        var ops: [StoreOp] = writes.map { .plugin($0) }
        if let message {
            for plugin in broker.plugins(providing: .companionWrites) {
                ops += plugin.companionWrites(for: message).map { .plugin($0) }
            }
        }
        if let store, let message, message.qos != .atMostOnce,
           message.retain || broker.persistentSubscriptions.load(ordering: .relaxed) > 0
        {
            let (id, _) = broker.storeID(of: message)
            ops.insert(.message(broker.stored(message, id: id, now: now)), at: 0)
            if message.retain {
                ops.append(.retain(topic: Array(message.topic.bytes), messageID: message.payload.isEmpty ? nil : id))
            }
        }
        let entry = OrderedPublish(message, completion: completion)
        orderedPublishes[key, default: []].append(entry)
        guard let database = broker.database, !ops.isEmpty else {
            entry.outcome = true
            releaseOrderedPublishes(key)
            return
        }
        if database.durability == .full {
            database.submit(ops, executor: executor, failable: true) { [self] ok in
                entry.outcome = ok
                releaseOrderedPublishes(key)
            }
        } else {
            database.submit(ops)
            entry.outcome = true
            releaseOrderedPublishes(key)
        }
    }

    private func releaseOrderedPublishes(_ key: String) {
        while let head = orderedPublishes[key]?.first, let ok = head.outcome {
            orderedPublishes[key]!.removeFirst()
            if orderedPublishes[key]!.isEmpty { orderedPublishes[key] = nil }
            if ok, let message = head.message { publish(message) }
            head.completion?(ok)
        }
    }
}
