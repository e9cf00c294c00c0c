// Harness (h): the gateway's WebSocket frame decoder (RFC 6455 section 5), two ways.
//
// 1. The input's stream through WebSocketDecoder, fed in chunks: never a trap; the
//    events (data joined per message, since data comes in pieces) and the error
//    are the same in one piece, in chunks and byte by byte; data only for opcode 1
//    or 2, one opcode per message; ping and pong payloads of at most 125 bytes; a
//    close code, when there is one, one that a peer may send, and its reason UTF-8.
// 2. A round trip: the input, read as a script, becomes messages (fragmented, with
//    control frames between the fragments), pings, pongs and a close, encoded the
//    way a client does (masked, with a key of its own per frame, 7-, 16- and 64-bit
//    lengths) by the test-only encoder below; decoding them, fed in chunks, must
//    give back exactly those payloads, and no error.
//
// Input layout:
//   byte 0  seed for the chunk sizes (bit 7: 1-8 bytes, else up to 256; 0: one piece)
//   byte 1  decoder settings for (1): bits 0-1 maxFrame (16 MiB, 1024, 125, 0),
//           bit 2 set: unmasked frames allowed
//   rest    the stream for (1), and the script for (2)
import Gateway

/// The harness: one input, returns 0; a finding traps.
public func fuzzWebSocket(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 2 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let seed = input[0]
    let maxFrame = [16 * 1024 * 1024, 1024, 125, 0][Int(input[1] & 3)]
    let requireMask = input[1] & 4 == 0
    let stream = Array(input[2...])

    // 1. Any bytes.
    let whole = decodeWebSocket(stream, maxFrame: maxFrame, requireMask: requireMask, chunks: [stream.count])
    let sizes = chunkSizes(seed: seed, total: stream.count)
    let chunked = decodeWebSocket(stream, maxFrame: maxFrame, requireMask: requireMask, chunks: sizes)
    guard whole == chunked else { fatalError("in one piece: \(whole); in chunks \(sizes): \(chunked)") }
    if stream.count <= 512 {
        let bytewise = decodeWebSocket(stream, maxFrame: maxFrame, requireMask: requireMask,
                                       chunks: Array(repeating: 1, count: stream.count))
        guard whole == bytewise else { fatalError("in one piece: \(whole); byte by byte: \(bytewise)") }
    }

    // 2. A client's frames.
    let (frames, expected) = clientFrames(script: stream)
    // Long streams in pieces of up to 256 bytes: tiny pieces of 64 KiB add time, not paths.
    let decoded = decodeWebSocket(frames, maxFrame: 16 * 1024 * 1024, requireMask: true,
                                  chunks: chunkSizes(seed: frames.count > 16_384 ? seed & 0x7F : seed, total: frames.count))
    guard decoded == WebSocketOutcome(items: expected) else {
        fatalError("a client's frames for \(expected) decode as \(decoded)")
    }
    return 0
}

fileprivate enum WebSocketItem: Equatable {
    case message(opcode: UInt8, [UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(UInt16?, [UInt8])
}

fileprivate struct WebSocketOutcome: Equatable {
    var items: [WebSocketItem] = []
    /// The data of a message not finished when the bytes ran out.
    var partial: [UInt8]? = nil
    var partialOpcode: UInt8? = nil
    var error: WebSocketError? = nil
}


/// Close codes a peer may send (RFC 6455 section 7.4), written from the RFC.
fileprivate func referenceCloseCode(_ code: UInt16) -> Bool {
    [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011].contains(code) || (3000...4999).contains(code)
}

fileprivate func decodeWebSocket(_ stream: [UInt8], maxFrame: Int, requireMask: Bool, chunks: [Int]) -> WebSocketOutcome {
    var decoder = WebSocketDecoder(maxFrame: maxFrame, requireMask: requireMask)
    var outcome = WebSocketOutcome()
    var offset = 0
    for n in chunks {
        stream[offset..<(offset + n)].withUnsafeBytes { decoder.append($0) }
        offset += n
        while true {
            let event: WebSocketEvent?
            do {
                event = try decoder.next()
            } catch {
                guard [1002, 1007, 1009].contains(error.code) else { fatalError("\(error) closes with \(error.code)") }
                outcome.error = error
                return outcome
            }
            guard let event else { break }
            switch event {
            case .data(let opcode, let bytes, let final):
                guard opcode == 1 || opcode == 2 else { fatalError("data event with opcode \(opcode)") }
                guard bytes.count <= maxFrame else { fatalError("\(bytes.count) data bytes with maxFrame \(maxFrame)") }
                if let o = outcome.partialOpcode, o != opcode {
                    fatalError("a message that began with opcode \(o) goes on with \(opcode)")
                }
                if outcome.partial == nil { outcome.partial = [] }
                outcome.partial!.append(contentsOf: bytes)
                outcome.partialOpcode = opcode
                if final {
                    outcome.items.append(.message(opcode: opcode, outcome.partial!))
                    outcome.partial = nil
                    outcome.partialOpcode = nil
                }
            case .ping(let payload), .pong(let payload):
                guard payload.count <= 125 else { fatalError("control payload of \(payload.count) bytes") }
                if case .ping = event { outcome.items.append(.ping(payload)) } else { outcome.items.append(.pong(payload)) }
            case .close(let code, let reason):
                guard reason.count <= 123 else { fatalError("close reason of \(reason.count) bytes") }
                if let code {
                    guard referenceCloseCode(code) else { fatalError("close code \(code) accepted") }
                    guard String(validating: reason, as: UTF8.self) != nil else { fatalError("close reason not UTF-8") }
                } else if !reason.isEmpty {
                    fatalError("a close reason without a code")
                }
                outcome.items.append(.close(code, reason))
            }
        }
    }
    return outcome
}

// MARK: - The test-only client encoder

/// A client's frame: FIN, opcode, the mask bit, the shortest length form, the key,
/// the masked payload (RFC 6455 section 5.2).
fileprivate func clientFrame(fin: Bool, opcode: UInt8, _ payload: [UInt8], key: (UInt8, UInt8, UInt8, UInt8)) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | opcode]
    let n = payload.count
    if n <= 125 {
        out.append(0x80 | UInt8(n))
    } else if n <= 0xFFFF {
        out += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
    } else {
        out.append(0x80 | 127)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: UInt64(n) >> UInt64(shift))) }
    }
    let k = [key.0, key.1, key.2, key.3]
    out += k
    // Eight bytes at a time (the key repeats every four): a per-byte loop in this
    // instrumented harness cost more than the decoder under test.
    var masked = payload
    masked.withUnsafeMutableBytes { buffer in
        var word: UInt64 = 0
        for j in 0..<8 { word |= UInt64(k[j & 3]) << UInt64(8 * j) }
        var i = 0
        while i + 8 <= buffer.count {
            let v = buffer.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ word.littleEndian
            buffer.storeBytes(of: v, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < buffer.count {
            buffer[i] ^= k[i & 3]
            i += 1
        }
    }
    return out + masked
}

/// Payload bytes: slices of one block of noise, made once.
fileprivate let noise: [UInt8] = {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0..<(65_792 + 1024)).map { _ in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return UInt8(truncatingIfNeeded: x >> 24)
    }
}()

/// Reads the script: each operation's first byte picks its kind (% 5: text, binary,
/// ping, pong, close); messages take a fragment count and, per fragment, a length
/// byte (bit 7: a long one, from the next two bytes: 126 to 4,221 bytes, or 65,280 to
/// 65,535 and 65,536 to 65,791 while the frames are under 70,000 bytes: large payloads
/// cost time, so only those two edges of the 16- and 64-bit forms) and whether a
/// ping comes after it. Payload bytes come from a block of noise, at offsets picked by a generator seeded by
/// the script.
fileprivate func clientFrames(script: [UInt8]) -> ([UInt8], [WebSocketItem]) {
    var it = script.makeIterator()
    var rng = UInt64(script.count) &* 0x9E37_79B9_7F4A_7C15 | 1
    func random() -> UInt8 {
        rng ^= rng << 13
        rng ^= rng >> 7
        rng ^= rng << 17
        return UInt8(truncatingIfNeeded: rng >> 24)
    }
    func key() -> (UInt8, UInt8, UInt8, UInt8) { (random(), random(), random(), random()) }
    func payload(_ n: Int) -> [UInt8] {
        let offset = Int(random()) << 2
        return Array(noise[offset..<(offset + n)])
    }
    var frames: [UInt8] = []
    var items: [WebSocketItem] = []
    let closeCodes: [UInt16] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    while let op = it.next(), items.count < 64 {
        switch op % 5 {
        case 0, 1:
            let opcode: UInt8 = op % 5 == 0 ? 1 : 2
            let fragments = 1 + Int((it.next() ?? 0) % 4)
            var message: [UInt8] = []
            var between: [WebSocketItem] = []
            for f in 0..<fragments {
                let sel = it.next() ?? 0
                var n = Int(sel & 0x7F)
                if sel & 0x80 != 0 {
                    let (hi, lo) = (it.next() ?? 0, Int(it.next() ?? 0))
                    let roomy = frames.count < 70_000
                    n = hi == 0xFF && roomy ? 65_536 + lo : hi == 0xFE && roomy ? 65_535 - lo : 126 + Int(hi & 0x0F) << 8 + lo
                }
                let bytes = payload(n)
                message += bytes
                frames += clientFrame(fin: f == fragments - 1, opcode: f == 0 ? opcode : 0, bytes, key: key())
                if f < fragments - 1 && sel & 0x40 != 0 {
                    let ping = payload(Int(sel & 0x1F))
                    frames += clientFrame(fin: true, opcode: 9, ping, key: key())
                    between.append(.ping(ping))
                }
            }
            // Control frames between the fragments come out before the message is whole.
            items += between
            items.append(.message(opcode: opcode, message))
        case 2, 3:
            let bytes = payload(Int((it.next() ?? 0) % 126))
            frames += clientFrame(fin: true, opcode: op % 5 == 2 ? 9 : 10, bytes, key: key())
            items.append(op % 5 == 2 ? .ping(bytes) : .pong(bytes))
        default:
            let sel = it.next() ?? 0
            if sel == 0 {
                frames += clientFrame(fin: true, opcode: 8, [], key: key())
                items.append(.close(nil, []))
            } else {
                let code = closeCodes[Int(sel) % closeCodes.count]
                let reason = payload(Int(it.next() ?? 0) % 124).map { $0 & 0x7F }
                frames += clientFrame(fin: true, opcode: 8, [UInt8(code >> 8), UInt8(code & 0xFF)] + reason, key: key())
                items.append(.close(code, reason))
            }
            return (frames, items)
        }
    }
    return (frames, items)
}
