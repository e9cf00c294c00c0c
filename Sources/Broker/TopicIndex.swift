import MQTT

/// One subscription of one session, as stored in the index.
struct SubscriptionEntry {
    /// The loop's session table keeps the session alive; `endSession` removes
    /// every entry of a session before it lets go of it.
    unowned(unsafe) let session: Session
    var options: Subscription
    var identifier: UInt32?
    /// Each delivery through it is checked with the plugins' `authorizeDelivery`.
    var checkDeliveries = false
}

/// The subscriptions of one loop's sessions. Filters without wildcards are kept in
/// one table keyed by the whole filter, so a PUBLISH finds them with one lookup;
/// filters with '+' or '#' in a trie of topic levels, which a PUBLISH walks only as
/// far as wildcard filters go. Only the owning loop reads or writes it; a PUBLISH
/// is matched on every loop that has subscriptions, each against its own index.
final class TopicIndex {
    final class Node {
        @exclusivity(unchecked) var children = LevelTable<Node>()
        @exclusivity(unchecked) var plus: Node?
        @exclusivity(unchecked) var hash: Node?
        /// Subscriptions whose filter ends at this node.
        @exclusivity(unchecked) var entries: [SubscriptionEntry] = []

        var isEmpty: Bool { children.isEmpty && plus == nil && hash == nil && entries.isEmpty }
    }

    /// The trie of the filters with wildcards.
    private let root = Node()
    /// The filters without wildcards, each a node with only `entries`.
    @exclusivity(unchecked) private var exact = LevelTable<Node>()
    private(set) var count = 0

    /// A filter with '+' or '#' (which, in a valid filter, stand for whole levels).
    static func hasWildcards(_ filter: ByteString) -> Bool { filter.bytes.contains { $0 == 0x2B || $0 == 0x23 } }

    /// Adds or replaces a session's subscription; returns true when it replaced one.
    @discardableResult
    func insert(filter: ByteString, entry: SubscriptionEntry) -> Bool {
        let node = Self.hasWildcards(filter) ? path(filter, create: true)! : exactNode(filter)
        if let i = node.entries.firstIndex(where: { $0.session === entry.session }) {
            node.entries[i] = entry
            return true
        }
        node.entries.append(entry)
        count += 1
        return false
    }

    private func exactNode(_ filter: ByteString) -> Node {
        if let node = exact.find(filter.bytes) { return node }
        let node = Node()
        exact.insert(filter.bytes, node)
        return node
    }

    /// Removes a session's subscription; returns true when there was one.
    @discardableResult
    func remove(filter: ByteString, session: Session) -> Bool {
        if !Self.hasWildcards(filter) {
            guard let node = exact.find(filter.bytes), let i = node.entries.firstIndex(where: { $0.session === session })
            else { return false }
            node.entries.remove(at: i)
            count -= 1
            if node.entries.isEmpty { exact.remove(key: filter.bytes) }
            return true
        }
        var trail: [(Node, Node)] = []  // (parent, child) for pruning
        var node = root
        for level in Self.levels(filter) {
            let next: Node?
            if level.count == 1 && level.first == 0x2B {
                next = node.plus
            } else if level.count == 1 && level.first == 0x23 {
                next = node.hash
            } else {
                next = node.children.find(level)
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
            } else {
                parent.children.remove(child)
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
                if let next = node.children.find(level) {
                    node = next
                } else {
                    let next = Node()
                    node.children.insert(level, next)
                    node = next
                }
            }
        }
        return node
    }

    /// Calls `visit` for every subscription whose filter matches `topic`.
    /// `$`-topics are not matched by a wildcard in the first level.
    func match(_ topic: ByteString, _ visit: (SubscriptionEntry) -> Void) {
        let dollar = topic.bytes.first == 0x24
        topic.bytes.withUnsafeBufferPointer { p in
            if let node = exact.find(p, 0, p.count) { for e in node.entries { visit(e) } }
            if !root.isEmpty { Self.match(root, p, 0, dollar, visit) }
        }
    }

    /// Matches the level starting at `start` (past the end: no levels left).
    private static func match(_ node: Node, _ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ dollar: Bool,
                              _ visit: (SubscriptionEntry) -> Void)
    {
        if start > p.count {
            for e in node.entries { visit(e) }
            // "a/#" also matches "a".
            if let h = node.hash { for e in h.entries { visit(e) } }
            return
        }
        var end = start
        while end < p.count && p[end] != 0x2F { end += 1 }
        if !(start == 0 && dollar) {
            if let h = node.hash { for e in h.entries { visit(e) } }
            if let plus = node.plus { match(plus, p, end + 1, dollar, visit) }
        }
        if let child = node.children.find(p, start, end) {
            match(child, p, end + 1, dollar, visit)
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
