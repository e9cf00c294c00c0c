import MQTT
import Testing

struct MatchCase: Sendable, CustomTestStringConvertible {
    let name: String
    let filter: String
    let matches: Bool
    var testDescription: String { "\"\(name)\" \(matches ? "~" : "!~") \"\(filter)\"" }
}

func m(_ name: String, _ filter: String, _ matches: Bool) -> MatchCase { MatchCase(name: name, filter: filter, matches: matches) }

/// Examples from 3.1.1 / 5.0 section 4.7 and the edge cases around them.
let matchCases: [MatchCase] = [
    // 4.7.1.2 multi-level wildcard
    m("sport/tennis/player1", "sport/tennis/player1/#", true),
    m("sport/tennis/player1/ranking", "sport/tennis/player1/#", true),
    m("sport/tennis/player1/score/wimbledon", "sport/tennis/player1/#", true),
    m("sport", "sport/#", true),  // '#' includes the parent level
    m("sport/", "sport/#", true),
    m("sport/tennis", "sport/#", true),
    m("sports", "sport/#", false),
    m("a", "#", true),
    m("/", "#", true),
    m("a/b/c", "#", true),
    m("a", "a/#", true),
    m("a/b", "a/#", true),
    m("ab", "a/#", false),
    m("b", "a/#", false),
    // 4.7.1.3 single-level wildcard
    m("sport/tennis", "sport/tennis/+", false),
    m("sport/tennis/player1", "sport/tennis/+", true),
    m("sport/tennis/player2", "sport/tennis/+", true),
    m("sport/tennis/player1/ranking", "sport/tennis/+", false),
    m("sport", "sport/+", false),
    m("sport/", "sport/+", true),  // '+' matches an empty level
    m("sport/tennis", "+/tennis", true),
    m("sport/tennis/player1", "sport/+/player1", true),
    m("sport//player1", "sport/+/player1", true),
    m("/finance", "+/+", true),
    m("/finance", "/+", true),
    m("/finance", "+", false),
    m("finance", "+", true),
    m("finance/", "+", false),
    m("a//b", "a/+/b", true),
    m("a/b/c", "a/+", false),
    m("a/b", "+/+/#", true),
    m("a", "a/+/#", false),
    m("a/b", "a/+/#", true),
    m("a/b/c/d", "a/+/#", true),
    m("/", "+/+", true),
    m("", "+", true),
    // 4.7.2 topics beginning with $
    m("$SYS/monitor/Clients", "#", false),
    m("$SYS/monitor/Clients", "+/monitor/Clients", false),
    m("$SYS/monitor/Clients", "$SYS/#", true),
    m("$SYS/monitor/Clients", "$SYS/monitor/+", true),
    m("$SYS", "$SYS/#", true),
    m("$SYS", "+", false),
    m("$", "#", false),
    m("a/$SYS", "a/+", true),
    m("a/$SYS", "#", true),
    // literal matching: case sensitive, no prefix/suffix matches, spaces significant
    m("ACCOUNTS", "Accounts", false),
    m("Accounts payable", "Accounts payable", true),
    m("a/b", "a/b", true),
    m("a/b", "a/b/", false),
    m("a/b/", "a/b", false),
    m("a/bc", "a/b", false),
    m("a/b", "a/bc", false),
    m("/a", "a", false),
    m("a", "/a", false),
    m("a/b", "a/b/#", true),
    m("a/b/", "a/b/#", true),
    m("a/b/", "a/b/+", true),
    m("€/𪛔", "€/+", true),
    m("€/𪛔", "+/𪛔", true),
    m("€/𪛔", "€/𪛕", false),
]

@Suite("Topic names and filters (4.7, 4.8.2)")
struct TopicRulesTests {
    @Test("TopicRules.matches", arguments: matchCases)
    func matches(c: MatchCase) {
        let name = Array(c.name.utf8)[...]
        let filter = Array(c.filter.utf8)[...]
        #expect(TopicRules.matches(name: name, filter: filter) == c.matches)
        // Slices that do not start at index 0 must give the same answer.
        let paddedName = (bytes("FF FF") + Array(c.name.utf8) + bytes("FF"))
        let paddedFilter = (bytes("EE") + Array(c.filter.utf8) + bytes("EE EE"))
        #expect(TopicRules.matches(name: paddedName[2..<(2 + name.count)], filter: paddedFilter[1..<(1 + filter.count)])
            == c.matches)
    }

    @Test("Valid filters parse, with share group split off in 5.0", arguments: [
        ("#", nil, "#", true), ("+", nil, "+", true), ("/", nil, "/", false), ("//", nil, "//", false),
        ("+/+", nil, "+/+", true), ("a/+/#", nil, "a/+/#", true), ("$SYS/#", nil, "$SYS/#", true),
        ("sport/tennis/player1", nil, "sport/tennis/player1", false), ("+/#", nil, "+/#", true),
        ("$share/g/a/b", "g", "a/b", false), ("$share/g/#", "g", "#", true), ("$share/grp.1/+/x", "grp.1", "+/x", true),
        ("$share/g//", "g", "/", false), ("$sharex/a", nil, "$sharex/a", false), ("$SHARE/g/a", nil, "$SHARE/g/a", false),
    ] as [(String, String?, String, Bool)])
    func parseFilter5(filter: String, group: String?, rest: String, wildcards: Bool) throws {
        let parsed = try TopicRules.parseFilter(Array(filter.utf8)[...], version: .v5)
        #expect(parsed.shareGroup == group.map { ByteString($0) })
        #expect(parsed.filter == ByteString(rest))
        #expect(parsed.hasWildcards == wildcards)
    }

    @Test("3.x: $share/... is an ordinary filter", arguments: [ProtocolVersion.v3_1, .v3_1_1])
    func share3x(version: ProtocolVersion) throws {
        let parsed = try TopicRules.parseFilter(Array("$share/g/a".utf8)[...], version: version)
        #expect(parsed.shareGroup == nil)
        #expect(parsed.filter == "$share/g/a")
        // and the 5.0-only share-name rules do not apply
        #expect(throws: Never.self) { try TopicRules.parseFilter(Array("$share//a".utf8)[...], version: version) }
    }

    @Test("validateName accepts names, refuses wildcards, empty and U+0000", arguments: allVersions)
    func validateName(version: ProtocolVersion) {
        for ok in ["a", "/", "//", "a/b", "$SYS/x", " ", "€𪛔", "a b/c"] {
            #expect(throws: Never.self) { try TopicRules.validateName(Array(ok.utf8)[...], version: version) }
        }
        let cases: [([UInt8], ReasonCode, String)] = [
            ([], .topicNameInvalid, "MQTT-4.7.3-1"),
            (Array("a/+".utf8), .topicNameInvalid, "MQTT-3.3.2-2"),
            (Array("#".utf8), .topicNameInvalid, "MQTT-3.3.2-2"),
            ([0x61, 0x00], .malformedPacket, "MQTT-4.7.3-2"),
            ([0xED, 0xA0, 0x80], .malformedPacket, rule(version, v5: "MQTT-1.5.4-1", v3: "MQTT-1.5.3-1")),
        ]
        for (name, reason, r) in cases {
            do {
                try TopicRules.validateName(name[...], version: version)
                Issue.record("\(hexString(name)) accepted")
            } catch {
                #expect(error.reason == reason)
                #expect(error.rule == r)
            }
        }
    }

    @Test("Shared subscription filter rules through parseFilter")
    func shareRules() {
        let cases: [(String, String)] = [
            ("$share//a", "MQTT-4.8.2-1"), ("$share/g", "MQTT-4.8.2-2"), ("$share/g/", "MQTT-4.8.2-2"),
            ("$share/a+b/c", "MQTT-4.8.2-2"), ("$share/#/c", "MQTT-4.8.2-2"), ("$share/g/a#", "MQTT-4.7.1-1"),
        ]
        for (filter, r) in cases {
            do {
                _ = try TopicRules.parseFilter(Array(filter.utf8)[...], version: .v5)
                Issue.record("\(filter) accepted")
            } catch {
                #expect(error.reason == .malformedPacket, "\(filter)")
                #expect(error.rule == r, "\(filter)")
            }
        }
    }

    @Test("Matching agrees with a reference level-by-level matcher on random names and filters (seeded)")
    func randomMatching() throws {
        let seed: UInt64 = 0x70_91C5
        var rng = SplitMix64(seed: seed)
        let levels = ["a", "b", "", "$x", "ab"]
        for i in 0..<20_000 {
            let nameLevels = (0..<rng.range(1...4)).map { _ in rng.pick(levels) }
            var filterLevels = (0..<rng.range(1...4)).map { _ in rng.pick(levels + ["+", "+"]) }
            if rng.chance(30) { filterLevels.append("#") }
            let name = nameLevels.joined(separator: "/")
            let filter = filterLevels.joined(separator: "/")
            if name.isEmpty { continue }
            let expected = referenceMatch(nameLevels, filterLevels)
            let actual = TopicRules.matches(name: Array(name.utf8)[...], filter: Array(filter.utf8)[...])
            #expect(actual == expected, "seed \(seed) case \(i): \"\(name)\" vs \"\(filter)\"")
            if actual != expected { return }
        }
    }
}

/// Section 4.7 matching, level by level.
func referenceMatch(_ name: [String], _ filter: [String]) -> Bool {
    if let first = name.first, first.hasPrefix("$"), let f = filter.first, f == "+" || f == "#" { return false }
    var i = 0
    for (j, f) in filter.enumerated() {
        if f == "#" { return j == filter.count - 1 }
        if i >= name.count { return false }
        if f != "+" && f != name[i] { return false }
        i += 1
    }
    return i == name.count
}
