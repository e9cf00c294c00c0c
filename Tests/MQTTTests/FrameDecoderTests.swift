import MQTT
import Testing

@Suite("FrameDecoder")
struct FrameDecoderTests {
    static let stream: [[UInt8]] = [
        bytes("C0 00"),
        bytes("30 0A 00 03 'a/b' 'hello'"),
        bytes("40 02 00 01"),
        frame(0x30, str("big") + [UInt8](repeating: 0x5A, count: 300)),  // 2-byte remaining length
        bytes("E0 00"),
        bytes("82 06 00 01 00 01 'a' 01"),
    ]

    @Test("Partial input yields nil and keeps exactly the bytes given")
    func partialInput() throws {
        for packet in Self.stream {
            var decoder = FrameDecoder()
            for k in 0..<packet.count {
                var d = FrameDecoder()
                d.append(packet[0..<k])
                #expect(try d.next() == nil, "prefix of \(k) bytes of \(hexString(packet.prefix(8)))")
                #expect(d.bufferedByteCount == k)
                #expect(try d.next() == nil)  // asking again changes nothing
                #expect(d.bufferedByteCount == k)
            }
            // Byte by byte: nothing until the last byte, then exactly one frame.
            for (i, b) in packet.enumerated() {
                decoder.append([b])
                let f = try decoder.next()
                if i < packet.count - 1 {
                    #expect(f == nil)
                } else {
                    let frame = try #require(f)
                    #expect(frame.header == packet[0])
                    #expect(Array(frame.body) == Array(packet[(packet.count - frame.body.count)...]))
                    #expect(frame.packetSize == packet.count)
                }
            }
            #expect(decoder.bufferedByteCount == 0)
            #expect(try decoder.next() == nil)
        }
    }

    @Test("A frame never includes bytes of the next packet")
    func doesNotReadPast() throws {
        var decoder = FrameDecoder()
        decoder.append(bytes("40 02 00 01 50"))
        let f = try #require(try decoder.next())
        #expect(Array(f.body) == [0x00, 0x01])
        #expect(decoder.bufferedByteCount == 1)
        #expect(try decoder.next() == nil)
        decoder.append(bytes("02 00"))
        #expect(try decoder.next() == nil)
        decoder.append(bytes("02"))
        let g = try #require(try decoder.next())
        #expect(g.header == 0x50 && Array(g.body) == [0x00, 0x02])
    }

    @Test("Every split into three pieces gives the same packets")
    func arbitrarySplits() throws {
        let wire = Self.stream.flatMap { $0 }.prefix(60)  // first few packets, all split points
        let expectedFrames = try frames(of: Array(wire), chunks: [wire.count])
        #expect(expectedFrames.count >= 3)
        for i in 0...wire.count {
            for j in i...wire.count {
                let got = try frames(of: Array(wire), chunks: [i, j - i, wire.count - j])
                #expect(got == expectedFrames, "split at \(i), \(j)")
            }
        }
    }

    @Test("UnsafeRawBufferPointer input works like a collection")
    func rawBufferAppend() throws {
        let wire = Self.stream.flatMap { $0 }
        var decoder = FrameDecoder()
        wire.withUnsafeBytes { decoder.append($0) }
        var count = 0
        while let f = try decoder.next() {
            _ = try Packet.decode(f, version: .v3_1_1)
            count += 1
        }
        #expect(count == Self.stream.count)
    }

    @Test("Packet larger than maximumPacketSize is refused (0x95) as soon as its length bytes arrive")
    func tooLargeEarly() throws {
        var decoder = FrameDecoder(maximumPacketSize: 100)
        decoder.append([0x30])
        #expect(try decoder.next() == nil)
        decoder.append([0xC8])  // continuation: length not complete yet
        #expect(try decoder.next() == nil)
        decoder.append([0x01])  // remaining length 200: no body sent at all
        do {
            _ = try decoder.next()
            Issue.record("expected packet too large")
        } catch {
            #expect(error.reason == .packetTooLarge)
            #expect(error.rule == nil)
        }
    }

    @Test("maximumPacketSize counts the whole packet, fixed header included")
    func limitIsInclusive() throws {
        let packet = bytes("30 0A 00 03 'a/b' 'hello'")  // 12 bytes
        expectVector(packet, .publish(PublishPacket(topic: "a/b", payload: Array("hello".utf8)[...])), .v3_1_1,
                     encodes: false)
        #expect(decodeWire(packet, .v3_1_1, maximumPacketSize: 12) != .incomplete)
        guard case .packet = decodeWire(packet, .v3_1_1, maximumPacketSize: 12) else {
            Issue.record("a packet of exactly the limit must pass")
            return
        }
        expectRejected(packet, .v3_1_1, reason: .packetTooLarge, rule: nil, maximumPacketSize: 11)
        // The check happens after the two header bytes, before the body arrives.
        var decoder = FrameDecoder(maximumPacketSize: 11)
        decoder.append(packet.prefix(2))
        #expect(throws: CodecError.self) { try decoder.next() }
    }

    @Test("Remaining length longer than four bytes is malformed")
    func fiveByteLength() throws {
        expectRejected(bytes("30 80 80 80 80 01"), .v3_1_1, reason: malformed, rule: nil)
        expectRejected(bytes("30 FF FF FF FF 7F"), .v5, reason: malformed, rule: nil)
        // Detected after the fourth length byte, without waiting for a fifth.
        var decoder = FrameDecoder()
        decoder.append(bytes("30 FF FF FF"))
        #expect(try decoder.next() == nil)
        decoder.append(bytes("FF"))
        #expect(throws: CodecError.self) { try decoder.next() }
    }

    @Test("MQTT-1.5.5-1 remaining length must use the fewest bytes",
          arguments: ["30 80 00", "30 FF 00", "30 80 80 00", "30 81 80 00", "30 80 80 80 00", "C0 80 00"])
    func nonMinimalLength(wire: String) {
        for version in allVersions {
            expectRejected(bytes(wire), version, reason: malformed, rule: "MQTT-1.5.5-1")
        }
    }

    @Test("Decoder drains to zero and shrink() releases memory")
    func shrink() throws {
        var decoder = FrameDecoder()
        decoder.append(Self.stream.flatMap { $0 })
        while try decoder.next() != nil {}
        #expect(decoder.bufferedByteCount == 0)
        decoder.shrink()
        #expect(decoder.capacity == 0)
        decoder.append(bytes("C0 00"))
        #expect(try decoder.next()?.header == 0xC0)
    }

    @Test("Frames stay valid after the decoder compacts its buffer")
    func framesOutliveCompaction() throws {
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        for _ in 0..<3000 {
            decoder.append(bytes("40 02 12 34 50"))  // one whole packet plus the start of the next
            while let f = try decoder.next() { frames.append(f) }
            decoder.append(bytes("02 56 78"))
            while let f = try decoder.next() { frames.append(f) }
        }
        #expect(frames.count == 6000)
        for (i, f) in frames.enumerated() {
            #expect(Array(f.body) == (i % 2 == 0 ? [0x12, 0x34] : [0x56, 0x78]))
            if Array(f.body) != (i % 2 == 0 ? [0x12, 0x34] : [0x56, 0x78]) { return }
        }
    }
}

/// Feeds `wire` to a FrameDecoder in the given chunk sizes and returns the frames as (header, body).
func frames(of wire: [UInt8], chunks: [Int]) throws -> [[UInt8]] {
    var decoder = FrameDecoder()
    var out: [[UInt8]] = []
    var start = 0
    for size in chunks {
        decoder.append(wire[start..<(start + size)])
        start += size
        while let f = try decoder.next() { out.append([f.header] + Array(f.body)) }
    }
    #expect(decoder.bufferedByteCount == wire.count - out.reduce(0) { $0 + $1.count + varint($1.count - 1).count })
    return out
}
