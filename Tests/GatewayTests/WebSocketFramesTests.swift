@testable import Gateway
import Testing

/// A client's frame (masked unless `mask` is nil), with the shortest length form
/// unless `length` forces one (7, 16 or 64).
func clientFrame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0,
                 mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D], length: Int? = nil) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode]
    let m: UInt8 = mask == nil ? 0 : 0x80
    let n = payload.count
    switch length ?? (n <= 125 ? 7 : n <= 0xFFFF ? 16 : 64) {
    case 7: out.append(m | UInt8(n))
    case 16: out += [m | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
    default:
        out.append(m | 127)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: UInt64(n) >> UInt64(shift))) }
    }
    guard let mask else { return out + payload }
    out += mask
    for (i, b) in payload.enumerated() { out.append(b ^ mask[i & 3]) }
    return out
}

/// Every event `bytes` give, fed in pieces of `chunk` bytes, and the error that ended them.
func decode(_ bytes: [UInt8], chunk: Int? = nil, maxFrame: Int = 16 * 1024 * 1024,
            requireMask: Bool = true) -> (events: [WebSocketEvent], error: WebSocketError?) {
    var decoder = WebSocketDecoder(maxFrame: maxFrame, requireMask: requireMask)
    var events: [WebSocketEvent] = []
    let size = max(1, chunk ?? bytes.count)
    var offset = 0
    repeat {
        let end = min(bytes.count, offset + size)
        bytes[offset..<end].withUnsafeBytes { decoder.append($0) }
        offset = end
        do {
            while let e = try decoder.next() { events.append(e) }
        } catch {
            return (events, error)
        }
    } while offset < bytes.count
    return (events, nil)
}

let hello = Array("Hello".utf8)

@Suite("WebSocket decoder: masking and data frames")
struct WebSocketDataTests {
    @Test("a masked text frame (RFC 6455 5.7's example)")
    func maskedText() {
        let bytes: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        #expect(clientFrame(1, hello) == bytes)
        let d = decode(bytes)
        #expect(d.error == nil)
        #expect(d.events == [.data(opcode: 1, bytes: hello, final: true)])
    }

    @Test("an unmasked frame is refused with 1002, unless masks are not required")
    func unmasked() {
        let bytes: [UInt8] = [0x81, 0x05] + hello
        let d = decode(bytes)
        #expect(d.events.isEmpty)
        #expect(d.error?.code == 1002)
        #expect(d.error?.reason == "client frames must be masked")
        #expect(decode(bytes, requireMask: false).events == [.data(opcode: 1, bytes: hello, final: true)])
    }

    @Test("binary, and an empty frame")
    func binaryAndEmpty() {
        #expect(decode(clientFrame(2, [0, 1, 255])).events == [.data(opcode: 2, bytes: [0, 1, 255], final: true)])
        #expect(decode(clientFrame(1, [])).events == [.data(opcode: 1, bytes: [], final: true)])
    }

    @Test("reserved bits and unknown opcodes are 1002")
    func reserved() {
        for rsv: UInt8 in [0x40, 0x20, 0x10] {
            #expect(decode(clientFrame(1, hello, rsv: rsv)).error == WebSocketError.proto("reserved bits set without an extension"))
        }
        for opcode: UInt8 in [3, 7, 11, 15] {
            #expect(decode(clientFrame(opcode, [])).error == WebSocketError.proto("unknown opcode \(opcode)"))
        }
    }
}

@Suite("WebSocket decoder: fragmentation")
struct WebSocketFragmentationTests {
    @Test("fragments come out with the message's opcode; a control frame may come between them")
    func fragments() {
        let bytes = clientFrame(1, Array("Hel".utf8), fin: false) + clientFrame(9, [0x70]) + clientFrame(0, Array("l".utf8), fin: false)
            + clientFrame(0, Array("o".utf8))
        #expect(decode(bytes).events == [
            .data(opcode: 1, bytes: Array("Hel".utf8), final: false),
            .ping([0x70]),
            .data(opcode: 1, bytes: Array("l".utf8), final: false),
            .data(opcode: 1, bytes: Array("o".utf8), final: true),
        ])
    }

    @Test("a continuation without a message is 1002")
    func orphanContinuation() {
        #expect(decode(clientFrame(0, hello)).error == WebSocketError.proto("continuation frame without a message"))
        let afterEnd = clientFrame(2, [1]) + clientFrame(0, [2])
        let d = decode(afterEnd)
        #expect(d.events == [.data(opcode: 2, bytes: [1], final: true)])
        #expect(d.error == WebSocketError.proto("continuation frame without a message"))
    }

    @Test("a new data frame inside a fragmented message is 1002")
    func nested() {
        let d = decode(clientFrame(1, [0x61], fin: false) + clientFrame(2, [0x62]))
        #expect(d.events == [.data(opcode: 1, bytes: [0x61], final: false)])
        #expect(d.error == WebSocketError.proto("new data frame inside a fragmented message"))
    }
}

@Suite("WebSocket decoder: control frames and close codes")
struct WebSocketControlTests {
    @Test("ping and pong payloads up to 125 bytes")
    func pingPong() {
        let p125 = [UInt8](repeating: 0x2A, count: 125)
        #expect(decode(clientFrame(9, p125) + clientFrame(10, [])).events == [.ping(p125), .pong([])])
    }

    @Test("a control frame over 125 bytes is 1002, even in the 16-bit form")
    func tooLong() {
        #expect(decode(clientFrame(9, [UInt8](repeating: 0, count: 126))).error == WebSocketError.proto("control frame over 125 bytes"))
        #expect(decode(clientFrame(10, [1], length: 16)).events == [.pong([1])])
    }

    @Test("a fragmented control frame is 1002")
    func fragmentedControl() {
        #expect(decode(clientFrame(9, [1], fin: false)).error == WebSocketError.proto("fragmented control frame"))
        #expect(decode(clientFrame(8, [], fin: false)).error == WebSocketError.proto("fragmented control frame"))
    }

    @Test("close: none, a code, a code and a reason")
    func close() {
        #expect(decode(clientFrame(8, [])).events == [.close(code: nil, reason: [])])
        #expect(decode(clientFrame(8, [0x03, 0xE8])).events == [.close(code: 1000, reason: [])])
        #expect(decode(clientFrame(8, [0x0F, 0xA0] + Array("bye".utf8))).events == [.close(code: 4000, reason: Array("bye".utf8))])
    }

    @Test("a one-byte close body is 1002")
    func oneByte() {
        #expect(decode(clientFrame(8, [0x03])).error == WebSocketError.proto("close frame with a one-byte body"))
    }

    @Test("close codes a peer may send", arguments: [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999] as [UInt16])
    func validCodes(code: UInt16) {
        #expect(WebSocketDecoder.isValidCloseCode(code))
        #expect(decode(clientFrame(8, [UInt8(code >> 8), UInt8(code & 0xFF)])).events == [.close(code: code, reason: [])])
    }

    @Test("close codes a peer may not send", arguments: [0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535] as [UInt16])
    func invalidCodes(code: UInt16) {
        #expect(!WebSocketDecoder.isValidCloseCode(code))
        #expect(decode(clientFrame(8, [UInt8(code >> 8), UInt8(code & 0xFF)])).error == WebSocketError.proto("close code \(code) is not allowed"))
    }

    @Test("a close reason that is not UTF-8 is 1007")
    func badReason() {
        let e = decode(clientFrame(8, [0x03, 0xE8, 0xC3, 0x28])).error
        #expect(e?.code == 1007)
        #expect(e == WebSocketError.badUTF8)
    }
}

@Suite("WebSocket decoder: lengths and streaming")
struct WebSocketLengthTests {
    @Test("7-, 16- and 64-bit lengths", arguments: [0, 125, 126, 1000, 65535, 65536, 70000])
    func lengths(n: Int) {
        let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(decode(clientFrame(2, payload)).events == [.data(opcode: 2, bytes: payload, final: true)])
    }

    @Test("a longer length form than needed is read too")
    func nonMinimal() {
        #expect(decode(clientFrame(2, [9], length: 64)).events == [.data(opcode: 2, bytes: [9], final: true)])
    }

    @Test("64-bit length with the top bit set is 1002")
    func topBit() {
        let bytes: [UInt8] = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
        #expect(decode(bytes).error == WebSocketError.proto("64-bit length with the top bit set"))
    }

    @Test("a frame over maxFrame is 1009, in either length form")
    func tooBig() {
        #expect(decode(clientFrame(2, [UInt8](repeating: 0, count: 1025)), maxFrame: 1024).error == WebSocketError.tooBig)
        #expect(decode(clientFrame(2, [UInt8](repeating: 0, count: 1024)), maxFrame: 1024).events.count == 1)
        let huge: [UInt8] = [0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4]
        #expect(decode(huge, maxFrame: 1 << 20).error?.code == 1009)
    }

    @Test("a partial frame: nothing until the header is in, then data as it arrives")
    func partial() throws {
        var decoder = WebSocketDecoder()
        let bytes = clientFrame(1, Array("abc".utf8))
        for i in 0..<6 {
            bytes[i...i].withUnsafeBytes { decoder.append($0) }
            #expect(try decoder.next() == nil)
        }
        bytes[6...7].withUnsafeBytes { decoder.append($0) }
        #expect(try decoder.next() == .data(opcode: 1, bytes: Array("ab".utf8), final: false))
        #expect(try decoder.next() == nil)
        bytes[8...].withUnsafeBytes { decoder.append($0) }
        #expect(try decoder.next() == .data(opcode: 1, bytes: Array("c".utf8), final: true))
        #expect(try decoder.next() == nil)
    }

    @Test("a control frame comes out only whole")
    func partialControl() throws {
        var decoder = WebSocketDecoder()
        let bytes = clientFrame(9, Array("ping".utf8))
        bytes[..<8].withUnsafeBytes { decoder.append($0) }
        #expect(try decoder.next() == nil)
        bytes[8...].withUnsafeBytes { decoder.append($0) }
        #expect(try decoder.next() == .ping(Array("ping".utf8)))
    }

    @Test("byte by byte gives the same data, joined, as one piece")
    func bytewise() {
        let bytes = clientFrame(2, [UInt8](repeating: 5, count: 300), fin: false) + clientFrame(10, [1]) + clientFrame(0, [6, 7])
        let d = decode(bytes, chunk: 1)
        #expect(d.error == nil)
        let data = d.events.flatMap { e -> [UInt8] in if case .data(_, let b, _) = e { return b } else { return [] } }
        #expect(data == [UInt8](repeating: 5, count: 300) + [6, 7])
        #expect(d.events.filter { if case .pong = $0 { return true } else { return false } } == [.pong([1])])
        #expect(d.events.last == .data(opcode: 2, bytes: [7], final: true))
    }
}

@Suite("WebSocket encoder: server frames")
struct WebSocketEncoderTests {
    @Test("header lengths at each form's edges")
    func headers() {
        #expect(WebSocketEncoder.header(opcode: 2, length: 0) == [0x82, 0])
        #expect(WebSocketEncoder.header(opcode: 2, length: 125) == [0x82, 125])
        #expect(WebSocketEncoder.header(opcode: 2, length: 126) == [0x82, 126, 0x00, 0x7E])
        #expect(WebSocketEncoder.header(opcode: 2, length: 65535) == [0x82, 126, 0xFF, 0xFF])
        #expect(WebSocketEncoder.header(opcode: 2, length: 65536) == [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])
        #expect(WebSocketEncoder.header(opcode: 1, length: 5, fin: false) == [0x01, 5])
    }

    @Test("a frame, and a close with its code and reason (at most 123 bytes)")
    func frames() {
        #expect(WebSocketEncoder.frame(opcode: 1, hello) == [0x81, 5] + hello)
        #expect(WebSocketEncoder.close(code: 1000) == [0x88, 2, 0x03, 0xE8])
        #expect(WebSocketEncoder.close(code: 1002, reason: "bad") == [0x88, 5, 0x03, 0xEA] + Array("bad".utf8))
        let long = WebSocketEncoder.close(code: 1000, reason: String(repeating: "r", count: 200))
        #expect(long.count == 2 + 125)
        #expect(long[1] == 125)
    }

    @Test("what the encoder writes, the decoder reads (when masks are not required)")
    func roundTrip() {
        for n in [0, 125, 126, 65535, 65536] {
            let payload = [UInt8](repeating: 0x41, count: n)
            #expect(decode(WebSocketEncoder.frame(opcode: 2, payload), requireMask: false).events == [.data(opcode: 2, bytes: payload, final: true)])
        }
    }
}
