import MQTT
import Testing

/// Well-formed sequences at the edges of each encoding length.
let wellFormedUTF8: [String] = [
    "41", "7F", "01", "1F",  // ASCII incl. control characters (SHOULD NOT, but allowed)
    "C2 80", "DF BF",  // U+0080, U+07FF
    "E0 A0 80", "ED 9F BF", "EE 80 80", "EF BF BF", "EF BB BF",  // U+0800, U+D7FF, U+E000, U+FFFF, BOM
    "F0 90 80 80", "F0 AA 9B 94", "F4 8F BF BF",  // U+10000, U+2A6D4, U+10FFFF
    "EF BF BE", "F3 BF BF BF",  // non-characters are allowed through
]

/// Ill-formed sequences: overlong, surrogates, above U+10FFFF, truncated, stray continuation bytes.
let illFormedUTF8: [String] = [
    "C0 80", "C0 AF", "C1 BF",  // overlong 2-byte (incl. overlong NUL)
    "E0 80 80", "E0 9F BF",  // overlong 3-byte
    "F0 80 80 80", "F0 8F BF BF",  // overlong 4-byte
    "ED A0 80", "ED AF BF", "ED B0 80", "ED BF BF",  // surrogates U+D800...U+DFFF
    "ED A0 BD ED B8 80",  // CESU-8 surrogate pair
    "F4 90 80 80", "F5 80 80 80", "F7 BF BF BF", "F8 88 80 80 80", "FC 84 80 80 80 80",  // above U+10FFFF
    "FE", "FF", "80", "BF", "80 80",  // never valid / stray continuation
    "C2", "E2 82", "F0 9F 98", "F0 9F",  // truncated at the end
    "C2 41", "E2 28 A1", "E2 82 28", "F0 28 8C BC", "F0 90 28 BC", "F0 9F 98 41",  // bad continuation
    "41 C2", "41 80 41",
]

@Suite("UTF-8 validation (MQTT 1.5.3 / 1.5.4)")
struct UTF8ValidationTests {
    @Test("Well-formed sequences are valid", arguments: wellFormedUTF8)
    func wellFormed(sequence: String) {
        let b = bytes(sequence)
        #expect(UTF8Validation.check(b[...]) == .valid)
        #expect(UTF8Validation.isValid(b))
        #expect(UTF8Validation.isValid(bytes("61") + b + bytes("62")))
    }

    @Test("Ill-formed sequences are refused", arguments: illFormedUTF8)
    func illFormed(sequence: String) {
        let b = bytes(sequence)
        #expect(UTF8Validation.check(b[...]) == .illFormed)
        #expect(UTF8Validation.check((bytes("61 62") + b)[...]) == .illFormed)
        #expect(UTF8Validation.check((b + bytes("61"))[...]) == .illFormed)
    }

    @Test("U+0000 is refused on its own", arguments: ["00", "61 00", "00 61", "E2 82 AC 00"])
    func nullCharacter(sequence: String) {
        #expect(UTF8Validation.check(bytes(sequence)[...]) == .nullCharacter)
    }

    @Test("Empty input is valid")
    func empty() {
        #expect(UTF8Validation.check([UInt8]()[...]) == .valid)
    }

    @Test("Slices that do not start at index 0 are checked correctly")
    func slices() {
        let buffer = bytes("FF 61 E2 82 AC 62 FF")
        #expect(UTF8Validation.check(buffer[1..<6]) == .valid)
        #expect(UTF8Validation.check(buffer[1..<4]) == .illFormed)
        #expect(UTF8Validation.check(buffer[0..<6]) == .illFormed)
    }

    @Test("Agrees with the standard library on random byte strings (seeded)")
    func differential() {
        let seed: UInt64 = 0x5EED_0001
        var rng = SplitMix64(seed: seed)
        var mismatches = 0
        for i in 0..<20_000 {
            let length = rng.range(0...8)
            var b: [UInt8] = []
            for _ in 0..<length {
                // Bias towards lead and continuation bytes so multibyte paths are hit.
                switch rng.below(4) {
                case 0: b.append(UInt8(truncatingIfNeeded: rng.range(0x01...0x7F)))
                case 1: b.append(UInt8(truncatingIfNeeded: rng.range(0x80...0xBF)))
                case 2: b.append(UInt8(truncatingIfNeeded: rng.range(0xC0...0xFF)))
                default: b.append(rng.pick([0xE0, 0xED, 0xF0, 0xF4, 0x90, 0xA0, 0x8F, 0x9F, 0x00]))
                }
            }
            let swiftValid = String(validating: b, as: UTF8.self) != nil
            let expected: UTF8Validation.Outcome = !swiftValid ? .illFormed : (b.contains(0) ? .nullCharacter : .valid)
            let actual = UTF8Validation.check(b[...])
            // A string can be both ill-formed and hold U+0000; the codec may report either.
            let acceptable = actual == expected || (b.contains(0) && actual != .valid && expected != .valid)
            if !acceptable {
                mismatches += 1
                Issue.record("seed \(seed) case \(i): \(hexString(b)) → \(actual), expected \(expected)")
                if mismatches > 10 { return }
            }
        }
    }

    @Test("Random valid strings of 1-, 2-, 3- and 4-byte scalars are valid (seeded)")
    func randomValid() {
        let seed: UInt64 = 0x5EED_0002
        var rng = SplitMix64(seed: seed)
        for i in 0..<5_000 {
            let s = randomString(&rng, maxScalars: 12)
            let b = Array(s.utf8)
            let expected: UTF8Validation.Outcome = .valid
            #expect(UTF8Validation.check(b[...]) == expected, "seed \(seed) case \(i): \(hexString(b))")
        }
    }
}

@Suite("Rejection: UTF-8 in packet fields")
struct UTF8RejectionTests {
    /// Builds a packet with `field` (a two-byte-length UTF-8 string) in a given place.
    static func wire(_ place: String, _ field: [UInt8], _ version: ProtocolVersion) -> [UInt8]? {
        let v5 = version == .v5
        switch place {
        case "client id": return connectWire(version, flags: 0x02, clientID: field)
        case "user name": return connectWire(version, flags: 0x82, rest: field)
        case "will topic": return connectWire(version, flags: 0x06, will: field + str("x"))
        case "topic name": return publishWire(version, topic: field)
        case "subscribe filter": return subscribeWire(version, field, options: 0)
        case "unsubscribe filter": return unsubscribeWire(version, field)
        case "user property name": return v5 ? puback5(props: [0x26] + field + str("v")) : nil
        case "user property value": return v5 ? puback5(props: [0x26] + str("k") + field) : nil
        case "reason string": return v5 ? frame(0xE0, [0x00] + varint(1 + field.count) + [0x1F] + field) : nil
        case "content type": return v5 ? publish5(props: [0x03] + field) : nil
        case "response topic": return v5 ? publish5(props: [0x08] + field) : nil
        case "authentication method": return v5 ? frame(0xF0, [0x18] + varint(1 + field.count) + [0x15] + field) : nil
        case "assigned client id": return v5 ? connack5(props: [0x12] + field) : nil
        case "server reference": return v5 ? connack5(props: [0x1C] + field) : nil
        default: return nil
        }
    }

    static let places = [
        "client id", "user name", "will topic", "topic name", "subscribe filter", "unsubscribe filter",
        "user property name", "user property value", "reason string", "content type", "response topic",
        "authentication method", "assigned client id", "server reference",
    ]

    @Test("MQTT-1.5.3-1 / MQTT-1.5.4-1 ill-formed UTF-8 is a malformed packet", arguments: allVersions, places)
    func illFormed(version: ProtocolVersion, place: String) throws {
        guard Self.wire(place, str("ok"), version) != nil else { return }
        let control = try #require(Self.wire(place, str("ok"), version))
        expectAccepted(control, version)
        for sequence in illFormedUTF8 {
            let content = bytes("61") + bytes(sequence)
            let field = [UInt8(content.count >> 8), UInt8(content.count & 0xFF)] + content
            let wire = try #require(Self.wire(place, field, version))
            expectRejected(wire, version, reason: malformed, rule: rule(version, v5: "MQTT-1.5.4-1", v3: "MQTT-1.5.3-1"))
        }
    }

    @Test("MQTT-1.5.3-2 / MQTT-1.5.4-2 U+0000 in a UTF-8 string is a malformed packet", arguments: allVersions, places)
    func nullCharacter(version: ProtocolVersion, place: String) throws {
        guard let wire = Self.wire(place, bytes("00 03 61 00 62"), version) else { return }
        // The PUBLISH topic name cites the topic rule MQTT-4.7.3-2; other strings the general one.
        let isTopicName = place == "topic name"
        let expected = isTopicName ? "MQTT-4.7.3-2" : rule(version, v5: "MQTT-1.5.4-2", v3: "MQTT-1.5.3-2")
        expectRejected(wire, version, reason: malformed, rule: expected)
    }

    @Test("Truncated string length (runs past the packet) is malformed", arguments: allVersions)
    func truncated(version: ProtocolVersion) {
        expectRejected(connectWire(version, flags: 0x02, clientID: bytes("00 09 61")), version, reason: malformed, rule: nil)
    }
}

/// A random valid string mixing 1- to 4-byte scalars, without U+0000; `excluding` removes ASCII characters.
func randomString(_ rng: inout SplitMix64, maxScalars: Int, minScalars: Int = 0, excluding: Set<UInt8> = []) -> String {
    var s = String.UnicodeScalarView()
    let count = rng.range(minScalars...max(minScalars, maxScalars))
    while s.count < count {
        let value: UInt32
        switch rng.below(10) {
        case 0..<5: value = UInt32(rng.range(0x20...0x7E))
        case 5: value = UInt32(rng.range(0x01...0x1F))
        case 6: value = UInt32(rng.range(0x80...0x7FF))
        case 7: value = UInt32(rng.pick([0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFEFF, 0x20AC, 0x4E2D, 0xFFFF]))
        case 8: value = UInt32(rng.range(0x800...0xD7FF))
        default: value = UInt32(rng.pick([0x10000, 0x1F600, 0x2A6D4, 0x10FFFF, 0x1D11E])) + UInt32(rng.below(3))
        }
        guard let scalar = Unicode.Scalar(min(value, 0x10FFFF)) else { continue }
        if value < 0x80 && excluding.contains(UInt8(value)) { continue }
        s.append(scalar)
    }
    return String(s)
}
