// The topic index keeps filters without wildcards in one table of whole filters and
// the others in a trie. Whatever the mix, a topic must reach exactly the
// subscriptions whose filters match it by the spec's rules (`TopicRules.matches`),
// through any sequence of subscribes and unsubscribes.
@testable import Broker
import MQTT
@testable import Reactor
import Testing

/// A seeded generator: the same cases on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("topic index")
struct TopicIndexTests {
    static let levels = ["a", "b", "cc", "", "$s"]

    static func topic(_ rng: inout SplitMix64) -> String {
        (0..<Int.random(in: 1...4, using: &rng)).map { _ in levels.randomElement(using: &rng)! }.joined(separator: "/")
    }

    static func filter(_ rng: inout SplitMix64) -> String {
        let n = Int.random(in: 1...4, using: &rng)
        var parts: [String] = (0..<n).map { _ in Int.random(in: 0..<4, using: &rng) == 0 ? "+" : levels.randomElement(using: &rng)! }
        if Int.random(in: 0..<4, using: &rng) == 0 { parts.append("#") }
        return parts.joined(separator: "/")
    }

    @Test("random subscribes and unsubscribes: every topic reaches exactly the matching filters", arguments: [1, 2, 3, 4])
    func matchesLikeTheRules(seed: UInt64) throws {
        var rng = SplitMix64(state: seed)
        let broker = Broker(config: BrokerConfig())
        let loop = BrokerLoop(loop: try EventLoop(index: 0), broker: broker, loopCount: 1)
        let sessions = (0..<6).map { Session(clientID: "s\($0)", home: loop) }
        let index = TopicIndex()
        var live: Set<String> = []  // "session filter"
        for step in 0..<600 {
            let s = Int.random(in: 0..<sessions.count, using: &rng)
            let f = Self.filter(&rng)
            let key = "\(s) \(f)"
            if Int.random(in: 0..<3, using: &rng) == 0 {
                #expect(index.remove(filter: ByteString(f), session: sessions[s]) == live.contains(key), "step \(step)")
                live.remove(key)
            } else {
                let entry = SubscriptionEntry(session: sessions[s], options: Subscription(topicFilter: ByteString(f)))
                #expect(index.insert(filter: ByteString(f), entry: entry) == live.contains(key), "step \(step)")
                live.insert(key)
            }
            #expect(index.count == live.count)
            for _ in 0..<4 {
                let t = Self.topic(&rng)
                var got: [String] = []
                index.match(ByteString(t)) { e in
                    got.append("\(sessions.firstIndex { $0 === e.session }!) \(e.options.topicFilter)")
                }
                let expected = live.filter { k in
                    let f = k.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)[1]
                    return TopicRules.matches(name: Array(t.utf8)[...], filter: Array(f.utf8)[...])
                }
                #expect(got.sorted() == expected.sorted(), "topic '\(t)' at step \(step)")
            }
        }
        // Everything removed: nothing matches, and the index is empty again.
        for key in live {
            let parts = key.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            #expect(index.remove(filter: ByteString(String(parts[1])), session: sessions[Int(parts[0])!]))
        }
        #expect(index.count == 0)
        var any = false
        for t in ["a", "a/b", "", "/", "$s/a"] { index.match(ByteString(t)) { _ in any = true } }
        #expect(!any)
    }

    final class Box { let n: Int; init(_ n: Int) { self.n = n } }

    @Test("level table: keys removed in any order leave the others findable", arguments: [7, 8])
    func levelTableRemoval(seed: UInt64) {
        var rng = SplitMix64(state: seed)
        var table = LevelTable<Box>()
        var present: [Int: Box] = [:]
        let key = { (n: Int) in Array("k/\(n % 97)/\(n)".utf8)[...] }
        for round in 0..<4 {
            for n in 0..<800 where present[n] == nil && Int.random(in: 0..<2, using: &rng) == 0 {
                let b = Box(n)
                table.insert(key(n), b)
                present[n] = b
            }
            for n in Array(present.keys).shuffled(using: &rng).prefix(present.count / 2) {
                #expect(table.remove(key: key(n)) === present[n], "round \(round)")
                present[n] = nil
            }
            #expect(table.remove(key: key(10_000)) == nil)
            #expect(table.count == present.count)
            for n in 0..<800 {
                #expect(table.find(key(n)) === present[n], "key \(n), round \(round)")
            }
        }
    }
}
