import Broker
import Reactor

/// One HTTP client's socket on an event loop: reads requests, one at a time in
/// arrival order (pipelined ones wait in the parser), hands each to the router,
/// writes the answers in the same order, and enforces the time limits. A
/// WebSocket upgrade on `/mqtt` hands the socket to the broker as an MQTT client.
final class HTTPConnection: Connection {
    unowned let gateway: GatewayPlugin
    let secure: Bool
    private var parser: HTTPParser
    /// A request is being answered; the next waits.
    private var busy = false
    private var closeWhenWritten = false
    private(set) var lastActivity: UInt64
    /// When the head of the current request began to arrive.
    private var headStartedAt: UInt64?
    private var upgraded = false
    /// Set while `processRequests` runs: an answer given inside it does not recurse.
    private var processing = false
    /// Beyond these, the peer is read no further until it catches up: requests
    /// buffered while one is answered, answers it has not read.
    static let maxBufferedInput = 256 * 1024
    static let maxPendingOutput = 1024 * 1024

    init(fd: Int32, loop: EventLoop, peer: SocketAddress?, gateway: GatewayPlugin, secure: Bool) {
        self.gateway = gateway
        self.secure = secure
        parser = HTTPParser(limits: gateway.settings.limits)
        lastActivity = loop.now
        super.init(fd: fd, loop: loop, peer: peer)
    }

    override func received(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = loop.now
        if closeWhenWritten { return }
        parser.append(bytes)
        processRequests()
        if !isClosed && !upgraded && (parser.bufferedBytes > Self.maxBufferedInput || pendingOutput > Self.maxPendingOutput) {
            pauseReading()
        }
    }

    private func processRequests() {
        if processing { return }
        processing = true
        defer { processing = false }
        while !busy && !isClosed && !closeWhenWritten && !upgraded && pendingOutput <= Self.maxPendingOutput {
            if parser.isReadingHead && headStartedAt == nil { headStartedAt = loop.now }
            let event: HTTPParserEvent?
            do {
                event = try parser.next()
            } catch {
                return refuse(error)
            }
            guard let event else { return }
            switch event {
            case .continueExpected:
                send(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            case .request(let request):
                headStartedAt = nil
                busy = true
                gateway.router.handle(request, on: self)
            }
        }
    }

    /// A request that cannot be read: its status, and the connection ends.
    private func refuse(_ error: HTTPParseError) {
        let (code, text): (String, String)
        switch error {
        case .badRequest(let why): (code, text) = ("bad_request", why)
        case .uriTooLong: (code, text) = ("uri_too_long", "the request line is over \(parser.limits.requestLine) bytes")
        case .headersTooLarge: (code, text) = ("headers_too_large", "the headers are over \(parser.limits.headerBytes) bytes or \(parser.limits.headerCount) lines")
        case .bodyTooLarge: (code, text) = ("body_too_large", "the body is over \(parser.limits.body) bytes")
        case .versionNotSupported: (code, text) = ("version_not_supported", "only HTTP/1.0 and HTTP/1.1 are spoken")
        case .notImplemented(let why): (code, text) = ("not_implemented", why)
        case .expectationFailed: (code, text) = ("expectation_failed", "only Expect: 100-continue is understood")
        }
        gateway.count(route: "-", method: "-", status: error.status, seconds: 0)
        var answer = HTTPResponse.error(error.status, code, text)
        answer.closes = true
        write(answer, head: false, origin: nil)
    }

    // MARK: Answers

    /// Sends the answer to the request being handled (on this loop's thread).
    func respond(_ response: HTTPResponse, to request: HTTPRequest) {
        if isClosed { return }
        var answer = response
        if !request.keepAlive { answer.closes = true }
        write(answer, head: request.method == "HEAD", origin: request.header("origin"))
        busy = false
        processRequests()
        resumeIfCaughtUp()
    }

    private func resumeIfCaughtUp() {
        if !busy && !isClosed && !upgraded && parser.bufferedBytes <= Self.maxBufferedInput / 2
            && pendingOutput <= Self.maxPendingOutput / 2
        {
            resumeReading()
        }
    }

    /// The same, from any thread.
    func respondLater(_ response: HTTPResponse, to request: HTTPRequest) {
        loop.execute { [self] in respond(response, to: request) }
    }

    private func write(_ response: HTTPResponse, head: Bool, origin: String?) {
        send(response.encoded(head: head, extraHeaders: gateway.corsHeaders(origin: origin)))
        if response.closes {
            closeWhenWritten = true
            if pendingOutput == 0 { close(reason: .local) }
        }
    }

    override func writeDrained() {
        if closeWhenWritten { return close(reason: .local) }
        processRequests()
        resumeIfCaughtUp()
    }

    // MARK: Upgrades

    /// `/mqtt`: the socket becomes an MQTT client of the broker, speaking through a
    /// WebSocket layer; the 101 answer is the first thing written there.
    func upgradeToMQTT(_ greeting: [UInt8]) {
        upgraded = true
        let pendingOutput = takeOutput()
        let rest = parser.takeRemaining()
        let stream = detach()
        gateway.forget(self)
        gateway.services.adoptMQTTClient(MQTTHandOver(
            fd: fd, peer: peer, loop: loop, tls: stream,
            layer: WebSocketLayer(mode: .stream, maxFrame: gateway.settings.wsMaxFrame),
            initialBytes: rest, greeting: pendingOutput + greeting, listener: secure ? "https" : "http"))
    }

    /// `/echo` (tests only): this connection echoes WebSocket messages.
    func upgradeToEcho(_ greeting: [UInt8]) {
        upgraded = true
        send(greeting)
        let rest = parser.takeRemaining()
        setLayer(WebSocketLayer(mode: .messages(maxBytes: gateway.settings.wsMaxFrame) { connection, opcode, payload in
            connection.sendFramed(WebSocketEncoder.frame(opcode: opcode, payload))
        }, maxFrame: gateway.settings.wsMaxFrame))
        rest.withUnsafeBytes { deliver($0) }
    }

    // MARK: Time limits

    /// Called about once a second: a head that takes too long gets 408; an idle
    /// keep-alive connection (or an upgraded one gone silent) is closed.
    func checkTimeouts(now: UInt64) {
        if isClosed || busy { return }
        let settings = gateway.settings
        if let started = headStartedAt, now &- started >= UInt64(settings.headerTimeout) * 1000, !closeWhenWritten {
            gateway.count(route: "-", method: "-", status: 408, seconds: 0)
            write(HTTPResponse(status: 408, headers: [("Content-Type", "application/json")],
                               body: Array(#"{"error":"timeout","message":"the request took too long to arrive"}"#.utf8),
                               closes: true), head: false, origin: nil)
            return
        }
        if now &- lastActivity >= UInt64(settings.idleTimeout) * 1000 {
            if parser.isMidRequest && !closeWhenWritten {
                write(HTTPResponse.error(408, "timeout", "the request stalled").closing, head: false, origin: nil)
            } else {
                close(reason: .local)
            }
        }
    }

    override func didClose(_ reason: CloseReason) {
        if !upgraded { gateway.forget(self) }
    }
}

extension HTTPResponse {
    var closing: HTTPResponse {
        var r = self
        r.closes = true
        return r
    }
}
