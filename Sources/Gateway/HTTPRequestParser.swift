/// One HTTP/1.1 request as the gateway handles it (RFC 7230).
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path of the target, still percent-encoded; `query` is what followed `?`.
    public var path: String
    public var query: String?
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// Names lower-cased, in arrival order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8] = []

    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    /// Whether the connection stays open after the answer (RFC 7230 6.3).
    public var keepAlive: Bool {
        let tokens = (header("connection") ?? "").lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        if tokens.contains("close") { return false }
        return minorVersion >= 1 || tokens.contains("keep-alive")
    }
}

/// Why a request cannot be read; each maps to the status the SPEC names.
public enum HTTPParseError: Error, Equatable, Sendable {
    case badRequest(String)
    case uriTooLong
    case headersTooLarge
    case bodyTooLarge
    case versionNotSupported
    case notImplemented(String)
    case expectationFailed

    public var status: Int {
        switch self {
        case .badRequest: return 400
        case .uriTooLong: return 414
        case .headersTooLarge: return 431
        case .bodyTooLarge: return 413
        case .versionNotSupported: return 505
        case .notImplemented: return 501
        case .expectationFailed: return 417
        }
    }
}

public struct HTTPLimits: Sendable {
    public var requestLine = 8 * 1024
    public var headerBytes = 16 * 1024
    public var headerCount = 100
    public var body = 1024 * 1024
    public init() {}
}

/// What the parser found in the bytes so far.
public enum HTTPParserEvent: Sendable {
    case request(HTTPRequest)
    /// The head of a request with `Expect: 100-continue` is read and its body is
    /// still to come: answer "100 Continue" (once) so that the client sends it.
    case continueExpected
}

/// An incremental, strict HTTP/1.1 request parser: bytes in, requests out, with
/// limits on every part. Pure (no I/O), so it can be fuzzed.
public struct HTTPParser: Sendable {
    public let limits: HTTPLimits
    private var buffer: [UInt8] = []
    private var start = 0
    private var state = State.head
    private var bodyBytes: [UInt8] = []
    /// Where the search for the end of a head line goes on (bytes before it were searched).
    private var scanMark = 0
    /// The head being read: its request line (and headers so far) once that is in.
    private var headRequest: HTTPRequest?
    /// Bytes of the header lines so far (each with its CR LF), and the empty
    /// lines skipped before the request line.
    private var headerBytes = 0
    private var blankLines = 0

    private enum State: Sendable {
        case head
        case fixedBody(HTTPRequest, remaining: Int)
        case chunkSize(HTTPRequest)
        case chunkData(HTTPRequest, remaining: Int)
        case chunkDataEnd(HTTPRequest)
        case trailers(HTTPRequest, bytes: Int)
    }

    public init(limits: HTTPLimits = HTTPLimits()) { self.limits = limits }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 65_536)
            start = 0
            scanMark = 0
        } else if start > 32_768 {
            buffer.removeFirst(start)
            scanMark = max(0, scanMark - start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received and not yet part of a request (for a WebSocket upgrade: they
    /// are the first frames); empties the buffer.
    public mutating func takeRemaining() -> [UInt8] {
        let rest = Array(buffer[start...])
        buffer = []
        start = 0
        scanMark = 0
        return rest
    }

    /// Bytes received and not yet consumed.
    public var bufferedBytes: Int { buffer.count - start }

    /// True while part of a request has arrived but not all of it.
    public var isMidRequest: Bool {
        if case .head = state { return headRequest != nil || (start < buffer.count && !onlyBlankLines) }
        return true
    }

    /// True while the head of a request is incomplete.
    public var isReadingHead: Bool {
        if case .head = state { return isMidRequest }
        return false
    }

    private var onlyBlankLines: Bool { buffer[start...].allSatisfy { $0 == 0x0D || $0 == 0x0A } }

    /// The next request (or a 100-continue prompt) if the bytes so far complete one.
    public mutating func next() throws(HTTPParseError) -> HTTPParserEvent? {
        while true {
            switch state {
            case .head:
                guard let (request, expectsContinue) = try parseHead() else { return nil }
                if let event = try beginBody(request, expectsContinue: expectsContinue) { return event }
            case .fixedBody(let request, let remaining):
                let n = min(remaining, buffer.count - start)
                bodyBytes.append(contentsOf: buffer[start..<(start + n)])
                start += n
                if n < remaining {
                    state = .fixedBody(request, remaining: remaining - n)
                    return nil
                }
                return finish(request)
            case .chunkSize(let request):
                guard let line = try line(max: 1024) else { return nil }
                let size = try Self.chunkSize(line)
                if size == 0 {
                    state = .trailers(request, bytes: 0)
                } else {
                    if bodyBytes.count + size > limits.body { throw .bodyTooLarge }
                    state = .chunkData(request, remaining: size)
                }
            case .chunkData(let request, let remaining):
                let n = min(remaining, buffer.count - start)
                bodyBytes.append(contentsOf: buffer[start..<(start + n)])
                start += n
                if n < remaining {
                    state = .chunkData(request, remaining: remaining - n)
                    return nil
                }
                state = .chunkDataEnd(request)
            case .chunkDataEnd(let request):
                guard let line = try line(max: 2) else { return nil }
                if !line.isEmpty { throw .badRequest("chunk data longer than its size") }
                state = .chunkSize(request)
            case .trailers(let request, let bytes):
                guard let line = try line(max: limits.headerBytes) else { return nil }
                if line.isEmpty { return finish(request) }
                let total = bytes + line.count + 2
                if total > limits.headerBytes { throw .headersTooLarge }
                _ = try Self.headerField(line)  // trailers are checked, then ignored
                state = .trailers(request, bytes: total)
            }
        }
    }

    private mutating func finish(_ request: HTTPRequest) -> HTTPParserEvent {
        var done = request
        done.body = bodyBytes
        bodyBytes = []
        state = .head
        return .request(done)
    }

    /// Chooses how the body is framed (RFC 7230 3.3.3).
    private mutating func beginBody(_ request: HTTPRequest, expectsContinue: Bool) throws(HTTPParseError) -> HTTPParserEvent? {
        let te = request.headers.filter { $0.name == "transfer-encoding" }
        let cl = request.headers.filter { $0.name == "content-length" }
        bodyBytes = []
        if !te.isEmpty {
            if !cl.isEmpty { throw .badRequest("both Content-Length and Transfer-Encoding") }
            let codings = te.flatMap { $0.value.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard codings == ["chunked"] else {
                if codings.last != "chunked" { throw .badRequest("the last transfer coding must be chunked") }
                throw .notImplemented("transfer coding \(codings.joined(separator: ", "))")
            }
            if request.minorVersion == 0 { throw .badRequest("chunked request body in HTTP/1.0") }
            state = .chunkSize(request)
            return expectsContinue ? .continueExpected : nil
        }
        var length = 0
        if !cl.isEmpty {
            let values = Set(cl.flatMap { $0.value.split(separator: ",", omittingEmptySubsequences: false) }
                .map { $0.trimmingCharacters(in: .whitespaces) })
            guard values.count == 1, let text = values.first, !text.isEmpty, text.count <= 18,
                  text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(text)
            else { throw .badRequest("bad Content-Length") }
            length = n
        }
        if length > limits.body { throw .bodyTooLarge }
        if length == 0 { return finish(request) }
        state = .fixedBody(request, remaining: length)
        return expectsContinue && start == buffer.count ? .continueExpected : nil
    }

    // MARK: The head

    private mutating func parseHead() throws(HTTPParseError) -> (HTTPRequest, Bool)? {
        // Line by line, each judged as soon as its LF arrives, so that the answer
        // does not depend on how the bytes are split into reads.
        while true {
            guard let lf = nextLF() else {
                try checkPendingLine()
                return nil
            }
            let raw = buffer[start..<lf]
            start = lf + 1
            let isEmptyLine = raw.count == 1 && raw.first == 0x0D
            guard var request = headRequest else {
                // RFC 7230 3.5: empty lines before a request line are ignored (a few).
                if isEmptyLine && blankLines < 4 {
                    blankLines += 1
                    continue
                }
                if raw.count > limits.requestLine + 1 { throw .uriTooLong }
                headRequest = try Self.requestLine(Self.stripCR(raw))
                blankLines = 0
                headerBytes = 0
                continue
            }
            if isEmptyLine {
                headRequest = nil
                return try Self.endOfHead(request)
            }
            // The line with its CR LF.
            headerBytes += raw.count + 1
            if headerBytes > limits.headerBytes { throw .headersTooLarge }
            let line = try Self.stripCR(raw)
            if line.first == 0x20 || line.first == 0x09 { throw .badRequest("folded header line") }
            request.headers.append(try Self.headerField(line))
            if request.headers.count > limits.headerCount { throw .headersTooLarge }
            headRequest = request
        }
    }

    /// The checks on a complete head.
    private static func endOfHead(_ request: HTTPRequest) throws(HTTPParseError) -> (HTTPRequest, Bool) {
        var expectsContinue = false
        if request.minorVersion >= 1 {
            let hosts = request.headers.filter { $0.name == "host" }
            if hosts.count != 1 { throw .badRequest("HTTP/1.1 needs exactly one Host header") }
        }
        if let expect = request.header("expect") {
            guard expect.lowercased() == "100-continue" else { throw .expectationFailed }
            expectsContinue = request.minorVersion >= 1
        }
        return (request, expectsContinue)
    }

    /// The LF that ends the line at `start`, if it has arrived (bytes before
    /// `scanMark` were searched already).
    private mutating func nextLF() -> Int? {
        var i = max(start, scanMark)
        while i < buffer.count {
            if buffer[i] == 0x0A {
                scanMark = i + 1
                return i
            }
            i += 1
        }
        scanMark = buffer.count
        return nil
    }

    /// Refuses a head line still without its LF that is already over its limit:
    /// the same answer as when the rest of it arrives.
    private func checkPendingLine() throws(HTTPParseError) {
        let pending = buffer.count - start
        guard pending > 0 else { return }
        if headRequest == nil {
            if pending > limits.requestLine + 1 { throw .uriTooLong }
        } else if pending > 1 || buffer[start] != 0x0D {
            // Not the empty line that ends the head: it costs at least pending + LF.
            if headerBytes + pending + 1 > limits.headerBytes { throw .headersTooLarge }
        }
    }

    private static func stripCR(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> ArraySlice<UInt8> {
        guard line.last == 0x0D else { throw .badRequest("a line not ended by CR LF") }
        let body = line.dropLast()
        if body.contains(0x0D) { throw .badRequest("a bare CR") }
        return body
    }

    /// A line of the body framing (chunk sizes), without its CR LF.
    private mutating func line(max: Int) throws(HTTPParseError) -> ArraySlice<UInt8>? {
        var i = start
        while i < buffer.count && buffer[i] != 0x0A {
            i += 1
            if i - start > max + 1 { throw .badRequest("line too long") }
        }
        guard i < buffer.count else { return nil }
        let raw = buffer[start...i]
        start = i + 1
        return try Self.stripCR(raw.dropLast())
    }

    static func requestLine(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> HTTPRequest {
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else { throw .badRequest("malformed request line") }
        guard parts[0].allSatisfy(isTokenByte) else { throw .badRequest("bad method") }
        let version = parts[2]
        guard version.count == 8, version.starts(with: Array("HTTP/".utf8)), version[version.startIndex + 6] == 0x2E,
              let major = digit(version[version.startIndex + 5]), let minor = digit(version[version.startIndex + 7])
        else { throw .badRequest("malformed HTTP version") }
        if major != 1 { throw .versionNotSupported }
        guard parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { throw .badRequest("bad request target") }
        var target = String(decoding: parts[1], as: UTF8.self)
        if target.hasPrefix("http://") || target.hasPrefix("https://") {
            // absolute-form: the path is what follows the authority
            let afterScheme = target[target.index(target.firstIndex(of: ":")!, offsetBy: 3)...]
            target = afterScheme.firstIndex(of: "/").map { String(afterScheme[$0...]) } ?? "/"
        } else if target != "*" && !target.hasPrefix("/") {
            throw .badRequest("bad request target")
        }
        let (path, query) = target.firstIndex(of: "?").map { (String(target[..<$0]), String(target[target.index(after: $0)...])) }
            ?? (target, nil)
        return HTTPRequest(method: String(decoding: parts[0], as: UTF8.self), path: path, query: query,
                           minorVersion: minor, headers: [])
    }

    static func headerField(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> (name: String, value: String) {
        guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex else { throw .badRequest("malformed header line") }
        let name = line[..<colon]
        guard name.allSatisfy(isTokenByte) else { throw .badRequest("bad header name") }
        var value = line[(colon + 1)...]
        while let f = value.first, f == 0x20 || f == 0x09 { value = value.dropFirst() }
        while let l = value.last, l == 0x20 || l == 0x09 { value = value.dropLast() }
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { throw .badRequest("control character in a header") }
        return (String(decoding: name, as: UTF8.self).lowercased(), String(decoding: value, as: UTF8.self))
    }

    static func chunkSize(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> Int {
        var digits = line
        if let semicolon = line.firstIndex(of: 0x3B) { digits = line[..<semicolon] }
        while let l = digits.last, l == 0x20 || l == 0x09 { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.count <= 8 else { throw .badRequest("bad chunk size") }
        var n = 0
        for b in digits {
            guard let d = hexDigit(b) else { throw .badRequest("bad chunk size") }
            n = n * 16 + d
        }
        return n
    }

    /// RFC 7230 tchar.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    private static func digit(_ b: UInt8) -> Int? { b >= 0x30 && b <= 0x39 ? Int(b - 0x30) : nil }

    static func hexDigit(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: return Int(b - 0x30)
        case 0x41...0x46: return Int(b - 0x41 + 10)
        case 0x61...0x66: return Int(b - 0x61 + 10)
        default: return nil
        }
    }
}
