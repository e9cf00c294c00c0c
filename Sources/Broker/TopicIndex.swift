import MQTT

/// One subscription of one session, as stored in the index.
struct SubscriptionEntry {
    unowned let session: Session
    var options: Subscription
    var identifier: UInt32?
}

/// The subscriptions of one loop's sessions, as a trie of topic levels. Only the
/// owning loop reads or writes it; a PUBLISH is matched on every loop that has
/// subscriptions, each against its own index.
final class TopicIndex {
    final class Node {
        var children: [ByteString: Node] = [:]
        var plus: Node?
        var hash: Node?
        /// Subscriptions whose filter ends at this node.
        var entries: [SubscriptionEntry] = []

        var isEmpty: Bool { children.isEmpty && plus == nil && hash == nil && entries.isEmpty }
    }

    private let root = Node()
    private(set) var count = 0

    /// Adds or replaces a session's subscription; returns true when it replaced one.
    @discardableResult
    func insert(filter: ByteString, entry: SubscriptionEntry) -> Bool {
        let node = path(filter, create: true)!
        if let i = node.entries.firstIndex(where: { $0.session === entry.session }) {
            node.entries[i] = entry
            return true
        }
        node.entries.append(entry)
        count += 1
        return false
    }

    /// Removes a session's subscription; returns true when there was one.
    @discardableResult
    func remove(filter: ByteString, session: Session) -> Bool {
        var trail: [(Node, Node)] = []  // (parent, child) for pruning
        var node = root
        for level in Self.levels(filter) {
            let next: Node?
            if level.count == 1 && level.first == 0x2B {
                next = node.plus
            } else if level.count == 1 && level.first == 0x23 {
                next = node.hash
            } else {
                next = node.children[ByteString(level)]
            }
            guard let next else { return false }
            trail.append((node, next))
            node = next
        }
        guard let i = node.entries.firstIndex(where: { $0.session === session }) else { return false }
        node.entries.remove(at: i)
        count -= 1
        // Prune empty branches so that churn does not leave dead nodes behind.
        for (parent, child) in trail.reversed() {
            guard child.isEmpty else { break }
            if parent.plus === child {
                parent.plus = nil
            } else if parent.hash === child {
                parent.hash = nil
            } else if let key = parent.children.first(where: { $0.value === child })?.key {
                parent.children[key] = nil
            }
        }
        return true
    }

    private func path(_ filter: ByteString, create: Bool) -> Node? {
        var node = root
        for level in Self.levels(filter) {
            if level.count == 1 && level.first == 0x2B {
                if node.plus == nil { node.plus = Node() }
                node = node.plus!
            } else if level.count == 1 && level.first == 0x23 {
                if node.hash == nil { node.hash = Node() }
                node = node.hash!
            } else {
                let key = ByteString(level)
                if let next = node.children[key] {
                    node = next
                } else {
                    let next = Node()
                    node.children[key] = next
                    node = next
                }
            }
        }
        return node
    }

    /// Calls `visit` for every subscription whose filter matches `topic`.
    /// `$`-topics are not matched by a wildcard in the first level.
    func match(_ topic: ByteString, _ visit: (SubscriptionEntry) -> Void) {
        var levels: [ArraySlice<UInt8>] = []
        levels.reserveCapacity(8)
        for level in Self.levels(topic) { levels.append(level) }
        let dollar = topic.bytes.first == 0x24
        Self.match(root, levels, 0, dollar, visit)
    }

    private static func match(_ node: Node, _ levels: [ArraySlice<UInt8>], _ i: Int, _ dollar: Bool,
                              _ visit: (SubscriptionEntry) -> Void)
    {
        let wildcardsAllowed = !(i == 0 && dollar)
        if i == levels.count {
            for e in node.entries { visit(e) }
            // "a/#" also matches "a".
            if let h = node.hash { for e in h.entries { visit(e) } }
            return
        }
        if wildcardsAllowed {
            if let h = node.hash { for e in h.entries { visit(e) } }
            if let p = node.plus { match(p, levels, i + 1, dollar, visit) }
        }
        if !node.children.isEmpty, let child = node.children[ByteString(levels[i])] {
            match(child, levels, i + 1, dollar, visit)
        }
    }

    /// The levels of a topic or filter, split at '/' (empty levels included).
    static func levels(_ topic: ByteString) -> LevelSequence { LevelSequence(bytes: topic.bytes) }

    struct LevelSequence: Sequence, IteratorProtocol {
        let bytes: ArraySlice<UInt8>
        var start: Int
        var done = false
        init(bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            self.start = bytes.startIndex
        }
        mutating func next() -> ArraySlice<UInt8>? {
            if done { return nil }
            var i = start
            while i < bytes.endIndex && bytes[i] != 0x2F { i += 1 }
            let level = bytes[start..<i]
            if i == bytes.endIndex { done = true } else { start = i + 1 }
            return level
        }
    }
}
