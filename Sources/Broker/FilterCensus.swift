import MQTT
import Synchronization

/// Every plain (non-shared) filter subscribed on any loop, with how many
/// subscriptions use it. It answers one question before a message is routed:
/// does anybody subscribe to this topic? (v5 acks say 0x10 when nobody does.)
/// Loops keep their own indexes for routing; this one is shared, so it is
/// touched only on SUBSCRIBE, UNSUBSCRIBE, session end and by v5 QoS 1/2 acks.
final class FilterCensus: @unchecked Sendable {
    private final class Node {
        var children: [ByteString: Node] = [:]
        var plus: Node?
        var hash: Node?
        var count = 0
        var isEmpty: Bool { count == 0 && children.isEmpty && plus == nil && hash == nil }
    }

    private let root = Mutex<Node>(Node())

    func add(_ filter: ByteString) {
        root.withLock { root in
            var node = root
            for level in TopicIndex.levels(filter) {
                if level.count == 1 && level.first == 0x2B {
                    if node.plus == nil { node.plus = Node() }
                    node = node.plus!
                } else if level.count == 1 && level.first == 0x23 {
                    if node.hash == nil { node.hash = Node() }
                    node = node.hash!
                } else {
                    let key = ByteString(Array(level))
                    if let next = node.children[key] {
                        node = next
                    } else {
                        let next = Node()
                        node.children[key] = next
                        node = next
                    }
                }
            }
            node.count += 1
        }
    }

    func remove(_ filter: ByteString) {
        root.withLock { root in
            var trail: [(parent: Node, child: Node, key: ByteString?)] = []
            var node = root
            for level in TopicIndex.levels(filter) {
                let next: Node?
                var key: ByteString? = nil
                if level.count == 1 && level.first == 0x2B {
                    next = node.plus
                } else if level.count == 1 && level.first == 0x23 {
                    next = node.hash
                } else {
                    key = ByteString(level)
                    next = node.children[key!]
                }
                guard let next else { return }
                trail.append((node, next, key))
                node = next
            }
            guard node.count > 0 else { return }
            node.count -= 1
            for (parent, child, key) in trail.reversed() {
                guard child.isEmpty else { break }
                if let key { parent.children[key] = nil } else if parent.plus === child { parent.plus = nil } else { parent.hash = nil }
            }
        }
    }

    /// True when some filter matches `topic` (`$`-topics not by a first-level wildcard).
    func matches(_ topic: ByteString) -> Bool {
        let dollar = topic.bytes.first == 0x24
        let levels = Array(TopicIndex.levels(topic))
        return root.withLock { root in Self.matches(root, levels[...], dollar: dollar, first: true) }
    }

    private static func matches(_ node: Node, _ levels: ArraySlice<ArraySlice<UInt8>>, dollar: Bool, first: Bool) -> Bool {
        guard let level = levels.first else {
            // "a/#" also matches "a".
            return node.count > 0 || (node.hash.map { $0.count > 0 } ?? false)
        }
        let rest = levels.dropFirst()
        if !(first && dollar) {
            if let h = node.hash, h.count > 0 { return true }
            if let plus = node.plus, matches(plus, rest, dollar: dollar, first: false) { return true }
        }
        if let child = node.children[ByteString(level)], matches(child, rest, dollar: dollar, first: false) { return true }
        return false
    }
}
