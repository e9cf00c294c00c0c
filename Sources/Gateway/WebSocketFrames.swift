/// What a WebSocket peer sent (RFC 6455 section 5), one step at a time.
public enum WebSocketEvent: Sendable, Equatable {
    /// Payload bytes of a data message (`opcode` 1 text or 2 binary: the message's),
    /// as they arrive: a frame may come in several pieces; `final` marks the end of
    /// the message.
    case data(opcode: UInt8, bytes: [UInt8], final: Bool)
    case ping([UInt8])
    case pong([UInt8])
    /// A close frame: its status code (nil when it had none) and reason.
    case close(code: UInt16?, reason: [UInt8])
}

/// A violation, with the close code to answer it with.
public struct WebSocketError: Error, Sendable, Equatable {
    public let code: UInt16
    public let reason: String
    static func proto(_ reason: String) -> WebSocketError { WebSocketError(code: 1002, reason: reason) }
    static let tooBig = WebSocketError(code: 1009, reason: "frame too large")
    static let badUTF8 = WebSocketError(code: 1007, reason: "invalid UTF-8")
}

public enum WebSocketOpcode {
    public static let continuation: UInt8 = 0, text: UInt8 = 1, binary: UInt8 = 2
    public static let close: UInt8 = 8, ping: UInt8 = 9, pong: UInt8 = 10
}

/// Decodes client-to-server frames: masking required, control frames whole and
/// at most 125 bytes, fragmentation rules checked, data streamed as it arrives.
/// Pure (no I/O), so it can be fuzzed.
public struct WebSocketDecoder: Sendable {
    public let maxFrame: Int
    public let requireMask: Bool
    private var buffer: [UInt8] = []
    private var start = 0
    /// The opcode of the data message in progress (fragmented), if any.
    private var messageOpcode: UInt8?
    private var frame: Frame?

    private struct Frame: Sendable {
        var fin: Bool
        var opcode: UInt8
        var mask: (UInt8, UInt8, UInt8, UInt8)?
        var remaining: Int
        var maskOffset = 0
        var length: Int
    }

    public init(maxFrame: Int = 16 * 1024 * 1024, requireMask: Bool = true) {
        self.maxFrame = maxFrame
        self.requireMask = requireMask
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 65_536)
            start = 0
        } else if start > 65_536 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func next() throws(WebSocketError) -> WebSocketEvent? {
        if frame == nil {
            guard let header = try readHeader() else { return nil }
            frame = header
        }
        guard var f = frame else { return nil }
        let available = buffer.count - start
        if f.opcode >= 8 {
            // Control frames are handled whole.
            guard available >= f.remaining else { return nil }
            let payload = unmask(&f, count: f.remaining)
            frame = nil
            return try control(f.opcode, payload)
        }
        if f.remaining > 0 && available == 0 { return nil }
        let n = min(f.remaining, available)
        let bytes = unmask(&f, count: n)
        f.remaining -= n
        let message = messageOpcode ?? f.opcode
        let done = f.remaining == 0
        if done {
            frame = nil
            messageOpcode = f.fin ? nil : message
        } else {
            frame = f
            if f.opcode != WebSocketOpcode.continuation { messageOpcode = message }
        }
        return .data(opcode: message, bytes: bytes, final: done && f.fin)
    }

    private mutating func unmask(_ f: inout Frame, count: Int) -> [UInt8] {
        var out = Array(buffer[start..<(start + count)])
        start += count
        if let m = f.mask {
            // The key as a word, rotated to where the last piece of the frame stopped.
            var key = UInt32(m.0) | UInt32(m.1) << 8 | UInt32(m.2) << 16 | UInt32(m.3) << 24
            key = key >> (8 * UInt32(f.maskOffset)) | (f.maskOffset == 0 ? 0 : key << (32 - 8 * UInt32(f.maskOffset)))
            out.withUnsafeMutableBytes { p in
                var i = 0
                let n = p.count
                while i + 4 <= n {
                    let word = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ key
                    p.storeBytes(of: word.littleEndian, toByteOffset: i, as: UInt32.self)
                    i += 4
                }
                var k = key
                while i < n {
                    p[i] ^= UInt8(truncatingIfNeeded: k)
                    k >>= 8
                    i += 1
                }
            }
            f.maskOffset = (f.maskOffset + count) & 3
        }
        return out
    }

    private mutating func readHeader() throws(WebSocketError) -> Frame? {
        let available = buffer.count - start
        guard available >= 2 else { return nil }
        let b0 = buffer[start], b1 = buffer[start + 1]
        let masked = b1 & 0x80 != 0
        var length = Int(b1 & 0x7F)
        var size = 2
        if length == 126 { size += 2 } else if length == 127 { size += 8 }
        if masked { size += 4 }
        guard available >= size else { return nil }
        if b0 & 0x70 != 0 { throw .proto("reserved bits set without an extension") }
        let fin = b0 & 0x80 != 0
        let opcode = b0 & 0x0F
        var i = start + 2
        if length == 126 {
            length = Int(buffer[i]) << 8 | Int(buffer[i + 1])
            i += 2
        } else if length == 127 {
            if buffer[i] & 0x80 != 0 { throw .proto("64-bit length with the top bit set") }
            var n: UInt64 = 0
            for j in 0..<8 { n = n << 8 | UInt64(buffer[i + j]) }
            i += 8
            if n > UInt64(maxFrame) { throw .tooBig }
            length = Int(n)
        }
        switch opcode {
        case WebSocketOpcode.continuation:
            if messageOpcode == nil { throw .proto("continuation frame without a message") }
        case WebSocketOpcode.text, WebSocketOpcode.binary:
            if messageOpcode != nil { throw .proto("new data frame inside a fragmented message") }
        case WebSocketOpcode.close, WebSocketOpcode.ping, WebSocketOpcode.pong:
            if !fin { throw .proto("fragmented control frame") }
            if length > 125 { throw .proto("control frame over 125 bytes") }
        default:
            throw .proto("unknown opcode \(opcode)")
        }
        if length > maxFrame { throw .tooBig }
        if requireMask && !masked { throw .proto("client frames must be masked") }
        var mask: (UInt8, UInt8, UInt8, UInt8)? = nil
        if masked {
            mask = (buffer[i], buffer[i + 1], buffer[i + 2], buffer[i + 3])
            i += 4
        }
        start = i
        return Frame(fin: fin, opcode: opcode, mask: mask, remaining: length, length: length)
    }

    private func control(_ opcode: UInt8, _ payload: [UInt8]) throws(WebSocketError) -> WebSocketEvent {
        switch opcode {
        case WebSocketOpcode.ping: return .ping(payload)
        case WebSocketOpcode.pong: return .pong(payload)
        default:
            if payload.isEmpty { return .close(code: nil, reason: []) }
            if payload.count == 1 { throw .proto("close frame with a one-byte body") }
            let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
            guard Self.isValidCloseCode(code) else { throw .proto("close code \(code) is not allowed") }
            let reason = Array(payload[2...])
            guard String(validating: reason, as: UTF8.self) != nil else { throw .badUTF8 }
            return .close(code: code, reason: reason)
        }
    }

    /// Codes a peer may send (RFC 6455 7.4).
    static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1011: return true
        case 3000...4999: return true
        default: return false
        }
    }
}

/// Server-to-client frames (never masked).
public enum WebSocketEncoder {
    public static func header(opcode: UInt8, length: Int, fin: Bool = true) -> [UInt8] {
        let b0 = (fin ? 0x80 : 0) | opcode
        if length < 126 { return [b0, UInt8(length)] }
        if length <= 0xFFFF { return [b0, 126, UInt8(length >> 8), UInt8(length & 0xFF)] }
        var out: [UInt8] = [b0, 127]
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((UInt64(length) >> UInt64(shift)) & 0xFF)) }
        return out
    }

    public static func frame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        header(opcode: opcode, length: payload.count) + payload
    }

    public static func close(code: UInt16, reason: String = "") -> [UInt8] {
        frame(opcode: WebSocketOpcode.close, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8.prefix(123)))
    }
}
