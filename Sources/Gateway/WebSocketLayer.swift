import Reactor

/// WebSocket as a connection's framing layer. For MQTT (`stream`), binary messages
/// are one byte stream: an MQTT packet may span frames and a frame may hold several
/// packets; text frames are refused (1003). For `messages` (the test echo
/// endpoint), whole messages go to a handler, text ones checked for UTF-8.
/// The server side reads masked frames and writes plain ones; the client side (the
/// load generator) the other way round.
public final class WebSocketLayer: StreamLayer {
    public enum Mode {
        case stream
        case messages(maxBytes: Int, handler: (Connection, UInt8, [UInt8]) -> Void)
    }

    private var decoder: WebSocketDecoder
    private let mode: Mode
    private var message: [UInt8] = []
    private var closeSent = false
    private let isClient: Bool
    private var maskSeed: UInt32

    public init(mode: Mode, maxFrame: Int, client: Bool = false) {
        self.mode = mode
        isClient = client
        maskSeed = UInt32.random(in: 1...UInt32.max)
        decoder = WebSocketDecoder(maxFrame: maxFrame, requireMask: !client)
    }

    public func decode(_ bytes: UnsafeRawBufferPointer, for connection: Connection) {
        decoder.append(bytes)
        while !connection.isClosed {
            let event: WebSocketEvent?
            do {
                event = try decoder.next()
            } catch {
                return fail(connection, error.code, error.reason)
            }
            guard let event else { return }
            handle(event, connection)
        }
    }

    private func handle(_ event: WebSocketEvent, _ connection: Connection) {
        switch event {
        case .data(let opcode, let bytes, let final):
            data(opcode, bytes, final, connection)
        case .ping(let payload):
            if !closeSent { connection.sendFramed(frame(WebSocketOpcode.pong, payload)) }
        case .pong:
            break
        case .close(let code, _):
            // Echo the status (RFC 6455 5.5.1), then end the TCP connection.
            if !closeSent {
                closeSent = true
                connection.sendFramed(closeFrame(code ?? 1000))
            }
            connection.close(reason: .local)
        }
    }

    private func data(_ opcode: UInt8, _ bytes: [UInt8], _ final: Bool, _ connection: Connection) {
        switch mode {
        case .stream:
            if opcode == WebSocketOpcode.text { return fail(connection, 1003, "MQTT is carried in binary frames") }
            if !bytes.isEmpty { bytes.withUnsafeBytes { connection.received($0) } }
        case .messages(let maxBytes, let handler):
            if message.count + bytes.count > maxBytes { return fail(connection, 1009, "message too large") }
            message += bytes
            guard final else { return }
            let whole = message
            message = []
            if opcode == WebSocketOpcode.text && String(validating: whole, as: UTF8.self) == nil {
                return fail(connection, 1007, "invalid UTF-8")
            }
            handler(connection, opcode, whole)
        }
    }

    private func fail(_ connection: Connection, _ code: UInt16, _ reason: String) {
        if !closeSent {
            closeSent = true
            connection.sendFramed(closeFrame(code, reason))
        }
        connection.close(reason: .local)
    }

    private func frame(_ opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var out = payload
        encode(&out, from: 0, opcode: opcode)
        return out
    }

    private func closeFrame(_ code: UInt16, _ reason: String = "") -> [UInt8] {
        frame(WebSocketOpcode.close, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8.prefix(123)))
    }

    /// What MQTT queued becomes one binary frame per write.
    public func encode(_ buffer: inout [UInt8], from start: Int) {
        encode(&buffer, from: start, opcode: WebSocketOpcode.binary)
    }

    private func encode(_ buffer: inout [UInt8], from start: Int, opcode: UInt8) {
        var header = WebSocketEncoder.header(opcode: opcode, length: buffer.count - start)
        guard isClient else { return buffer.insert(contentsOf: header, at: start) }
        // Clients mask (RFC 6455 5.3); the key needs no cryptographic strength here.
        maskSeed ^= maskSeed << 13
        maskSeed ^= maskSeed >> 17
        maskSeed ^= maskSeed << 5
        let key = [UInt8(maskSeed >> 24), UInt8((maskSeed >> 16) & 0xFF), UInt8((maskSeed >> 8) & 0xFF), UInt8(maskSeed & 0xFF)]
        header[1] |= 0x80
        for i in start..<buffer.count { buffer[i] ^= key[(i - start) & 3] }
        buffer.insert(contentsOf: header + key, at: start)
    }

    public func closing(_ connection: Connection) {
        if closeSent { return }
        closeSent = true
        connection.sendFramed(closeFrame(1000))
    }
}
