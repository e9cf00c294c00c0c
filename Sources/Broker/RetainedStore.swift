import MQTT
import Synchronization

/// Retained messages, shared by all loops: set by a PUBLISH with RETAIN, cleared by
/// an empty one, read when a subscription is made.
final class RetainedStore: @unchecked Sendable {
    private let messages = Mutex<[ByteString: Message]>([:])

    var count: Int { messages.withLock { $0.count } }

    /// Stores `message`, or clears the topic when its payload is empty.
    func update(_ message: Message) {
        messages.withLock {
            if message.payload.isEmpty {
                $0[message.topic] = nil
            } else {
                $0[message.topic] = message
            }
        }
    }

    /// The retained messages whose topic matches `filter`, expired ones removed.
    func matching(_ filter: TopicFilter, now: UInt64) -> [Message] {
        messages.withLock { all in
            if !filter.hasWildcards {
                guard let m = all[filter.filter] else { return [] }
                if m.isExpired(now: now) {
                    all[filter.filter] = nil
                    return []
                }
                return [m]
            }
            var out: [Message] = []
            var expired: [ByteString] = []
            for (topic, m) in all where TopicRules.matches(name: topic.bytes, filter: filter.filter.bytes) {
                if m.isExpired(now: now) { expired.append(topic) } else { out.append(m) }
            }
            for t in expired { all[t] = nil }
            out.sort { $0.receivedAt < $1.receivedAt }
            return out
        }
    }
}
