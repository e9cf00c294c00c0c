import MQTT
import Testing

// Helpers shared by the codec tests.

/// Bytes from a readable spec: hex pairs separated by spaces, and `'text'` tokens for ASCII
/// (no spaces inside quotes). `bytes("00 04 'MQTT' 04")` is `[0, 4, 0x4D, 0x51, 0x54, 0x54, 4]`.
func bytes(_ spec: String) -> [UInt8] {
    var out: [UInt8] = []
    for token in spec.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
        if token.hasPrefix("'") && token.hasSuffix("'") && token.count >= 2 {
            out.append(contentsOf: token.dropFirst().dropLast().utf8)
        } else {
            guard let value = UInt8(token, radix: 16) else {
                preconditionFailure("bad hex token \(token) in \(spec)")
            }
            out.append(value)
        }
    }
    return out
}

/// Two-byte length prefix plus the UTF-8 of `s`.
func str(_ s: String) -> [UInt8] {
    let u = Array(s.utf8)
    return [UInt8(u.count >> 8), UInt8(u.count & 0xFF)] + u
}

/// A whole packet: first byte, remaining length (variable byte integer), body.
func frame(_ first: UInt8, _ body: [UInt8]) -> [UInt8] {
    [first] + varint(body.count) + body
}

/// Variable byte integer encoding, written independently of the codec.
func varint(_ value: Int) -> [UInt8] {
    var out: [UInt8] = []
    var v = value
    repeat {
        var b = UInt8(v % 128)
        v /= 128
        if v > 0 { b |= 0x80 }
        out.append(b)
    } while v > 0
    return out
}

func hexString(_ b: some Sequence<UInt8>) -> String {
    b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }.joined(separator: " ")
}

enum DecodeOutcome: Equatable {
    case packet(Packet)
    case error(CodecError)
    /// The frame decoder wanted more bytes.
    case incomplete
    /// A packet came out but bytes were left over.
    case trailing(Int)
}

/// Frames `wire` with a FrameDecoder and decodes the single packet it holds.
func decodeWire(_ wire: [UInt8], _ version: ProtocolVersion, from sender: Sender = .either,
                maximumPacketSize: Int = maximumVariableInt + 5) -> DecodeOutcome
{
    var decoder = FrameDecoder(maximumPacketSize: maximumPacketSize)
    decoder.append(wire)
    do {
        guard let frame = try decoder.next() else { return .incomplete }
        let packet = try Packet.decode(frame, version: version, from: sender)
        if decoder.bufferedByteCount != 0 { return .trailing(decoder.bufferedByteCount) }
        return .packet(packet)
    } catch {
        return .error(error)
    }
}

/// Decodes `wire`, which must hold exactly one valid packet.
func decodeOne(_ wire: [UInt8], _ version: ProtocolVersion, from sender: Sender = .either,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> Packet
{
    switch decodeWire(wire, version, from: sender) {
    case .packet(let p): return p
    case let other:
        Issue.record("expected a packet from \(hexString(wire)), got \(other)", sourceLocation: sourceLocation)
        throw TestFailure()
    }
}

struct TestFailure: Error {}

/// Asserts that `wire` is refused with `reason` and exactly `rule` (nil: the codec must not cite one).
func expectRejected(_ wire: [UInt8], _ version: ProtocolVersion, from sender: Sender = .either,
                    reason: ReasonCode, rule: String?, maximumPacketSize: Int = maximumVariableInt + 5,
                    sourceLocation: SourceLocation = #_sourceLocation)
{
    let outcome = decodeWire(wire, version, from: sender, maximumPacketSize: maximumPacketSize)
    guard case .error(let error) = outcome else {
        Issue.record("expected \(reason) [\(rule ?? "no rule")] for \(hexString(wire)) (v\(version)), got \(outcome)",
                     sourceLocation: sourceLocation)
        return
    }
    #expect(error.reason == reason, "\(error) for \(hexString(wire))", sourceLocation: sourceLocation)
    #expect(error.rule == rule, "\(error) for \(hexString(wire))", sourceLocation: sourceLocation)
}

/// Asserts that `wire` decodes (the control case next to a rejection).
func expectAccepted(_ wire: [UInt8], _ version: ProtocolVersion, from sender: Sender = .either,
                    sourceLocation: SourceLocation = #_sourceLocation)
{
    let outcome = decodeWire(wire, version, from: sender)
    guard case .packet = outcome else {
        Issue.record("expected \(hexString(wire)) (v\(version)) to decode, got \(outcome)", sourceLocation: sourceLocation)
        return
    }
}

/// Asserts decode(wire) == packet and, when `encodes`, encode(packet) == wire.
func expectVector(_ wire: [UInt8], _ packet: Packet, _ version: ProtocolVersion, encodes: Bool = true,
                  sourceLocation: SourceLocation = #_sourceLocation)
{
    let outcome = decodeWire(wire, version)
    #expect(outcome == .packet(packet), "decoding \(hexString(wire))", sourceLocation: sourceLocation)
    guard encodes else { return }
    do {
        let encoded = try packet.encoded(version: version)
        #expect(encoded == wire, "encoded \(hexString(encoded)); expected \(hexString(wire))",
                sourceLocation: sourceLocation)
    } catch {
        Issue.record("encoding \(packet) threw \(error)", sourceLocation: sourceLocation)
    }
}

/// SplitMix64: a tiny deterministic generator, so that a failing seed reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<bound without relying on the standard library's algorithms.
    mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        return Int(next() % UInt64(bound))
    }
    mutating func range(_ r: ClosedRange<Int>) -> Int { r.lowerBound + below(r.count) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// The versions, for parameterized tests.
let allVersions: [ProtocolVersion] = [.v3_1, .v3_1_1, .v5]

extension ProtocolVersion: CustomTestStringConvertible {
    public var testDescription: String { "v\(description)" }
}
