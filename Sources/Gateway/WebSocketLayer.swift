import Reactor

/// WebSocket as a connection's framing layer. For MQTT (`stream`), binary messages
/// are one byte stream: an MQTT packet may span frames and a frame may hold several
/// packets; text frames are refused (1003). For `messages` (the test echo
/// endpoint), whole messages go to a handler, text ones checked for UTF-8.
final class WebSocketLayer: StreamLayer {
    enum Mode {
        case stream
        case messages(maxBytes: Int, handler: (Connection, UInt8, [UInt8]) -> Void)
    }

    private var decoder: WebSocketDecoder
    private let mode: Mode
    private var message: [UInt8] = []
    private var closeSent = false

    init(mode: Mode, maxFrame: Int) {
        self.mode = mode
        decoder = WebSocketDecoder(maxFrame: maxFrame)
    }

    func decode(_ bytes: UnsafeRawBufferPointer, for connection: Connection) {
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
            if !closeSent { connection.sendFramed(WebSocketEncoder.frame(opcode: WebSocketOpcode.pong, payload)) }
        case .pong:
            break
        case .close(let code, _):
            // Echo the status (RFC 6455 5.5.1), then end the TCP connection.
            if !closeSent {
                closeSent = true
                connection.sendFramed(WebSocketEncoder.close(code: code ?? 1000))
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
            connection.sendFramed(WebSocketEncoder.close(code: code, reason: reason))
        }
        connection.close(reason: .local)
    }

    /// What MQTT queued becomes one binary frame per write.
    func encode(_ buffer: inout [UInt8], from start: Int) {
        buffer.insert(contentsOf: WebSocketEncoder.header(opcode: WebSocketOpcode.binary, length: buffer.count - start),
                      at: start)
    }

    func closing(_ connection: Connection) {
        if closeSent { return }
        closeSent = true
        connection.sendFramed(WebSocketEncoder.close(code: 1000))
    }
}
