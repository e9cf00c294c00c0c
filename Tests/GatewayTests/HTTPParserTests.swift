@testable import Gateway
import Testing

/// What a parser made of some bytes: the events (requests, and `nil` for a
/// 100-continue prompt) and the error that ended it.
struct Parsed {
    var requests: [HTTPRequest] = []
    var continues = 0
    var events: [String] = []
    var error: HTTPParseError?
}

/// Feeds `bytes` in pieces of `chunk` bytes (nil: one piece), reading events after each.
func parse(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits(), chunk: Int? = nil) -> Parsed {
    var parser = HTTPParser(limits: limits)
    var out = Parsed()
    let size = max(1, chunk ?? bytes.count)
    var offset = 0
    repeat {
        let end = min(bytes.count, offset + size)
        bytes[offset..<end].withUnsafeBytes { parser.append($0) }
        offset = end
        do {
            while let event = try parser.next() {
                switch event {
                case .continueExpected:
                    out.continues += 1
                    out.events.append("continue")
                case .request(let r):
                    out.requests.append(r)
                    out.events.append("request \(r.method) \(r.path)")
                }
            }
        } catch {
            out.error = error
            return out
        }
    } while offset < bytes.count
    return out
}

func parse(_ text: String, limits: HTTPLimits = HTTPLimits(), chunk: Int? = nil) -> Parsed {
    parse(Array(text.utf8), limits: limits, chunk: chunk)
}

/// The same outcome in one piece and byte by byte; returns it.
func parseBothWays(_ text: String, limits: HTTPLimits = HTTPLimits()) -> Parsed {
    let whole = parse(text, limits: limits)
    let bytewise = parse(text, limits: limits, chunk: 1)
    #expect(whole.error == bytewise.error, "error in one piece \(String(describing: whole.error)), byte by byte \(String(describing: bytewise.error))")
    #expect(whole.requests.map(describe) == bytewise.requests.map(describe))
    return whole
}

func describe(_ r: HTTPRequest) -> String {
    "\(r.method) \(r.path) \(r.query ?? "-") 1.\(r.minorVersion) \(r.headers.map { "\($0.name)=\($0.value)" }) \(String(decoding: r.body, as: UTF8.self))"
}

@Suite("HTTP parser: the request line")
struct HTTPRequestLineTests {
    @Test("origin-form with a query")
    func originForm() throws {
        let p = parse("GET /v1/rooms/general/messages?before=10&limit=5 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(p.error == nil)
        let r = try #require(p.requests.first)
        #expect(p.requests.count == 1)
        #expect(r.method == "GET")
        #expect(r.path == "/v1/rooms/general/messages")
        #expect(r.query == "before=10&limit=5")
        #expect(r.minorVersion == 1)
        #expect(r.body.isEmpty)
    }

    @Test("no query is nil, an empty one is empty")
    func queries() throws {
        #expect(parse("GET /a HTTP/1.1\r\nHost: a\r\n\r\n").requests.first?.query == nil)
        #expect(parse("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n").requests.first?.query == "")
    }

    @Test("absolute-form: the path after the authority, or /")
    func absoluteForm() throws {
        let r = try #require(parse("GET http://example.com/v1/me?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n").requests.first)
        #expect(r.path == "/v1/me")
        #expect(r.query == "x=1")
        #expect(parse("GET https://example.com HTTP/1.1\r\nHost: a\r\n\r\n").requests.first?.path == "/")
    }

    @Test("asterisk-form")
    func asterisk() {
        #expect(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").requests.first?.path == "*")
    }

    @Test("malformed request lines are 400", arguments: [
        ("GET  / HTTP/1.1", HTTPParseError.badRequest("malformed request line")),
        ("GET / HTTP/1.1 x", .badRequest("malformed request line")),
        ("GET /", .badRequest("malformed request line")),
        (" / HTTP/1.1", .badRequest("malformed request line")),
        ("G@T / HTTP/1.1", .badRequest("bad method")),
        ("GET / HTTP/1.x", .badRequest("malformed HTTP version")),
        ("GET / HTTP/1.10", .badRequest("malformed HTTP version")),
        ("GET / http/1.1", .badRequest("malformed HTTP version")),
        ("GET v1/rooms HTTP/1.1", .badRequest("bad request target")),
        ("GET /caf\u{E9} HTTP/1.1", .badRequest("bad request target")),
        ("GET /a\u{7F} HTTP/1.1", .badRequest("bad request target")),
    ])
    func malformed(line: String, error: HTTPParseError) {
        let p = parse(line + "\r\nHost: a\r\n\r\n")
        #expect(p.error == error)
        #expect(p.error?.status == 400)
        #expect(p.requests.isEmpty)
    }

    @Test("HTTP/2.0 and HTTP/0.9 are 505")
    func version() {
        #expect(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n").error == .versionNotSupported)
        #expect(parse("GET / HTTP/0.9\r\nHost: a\r\n\r\n").error?.status == 505)
    }

    @Test("every error's status")
    func statuses() {
        #expect(HTTPParseError.badRequest("x").status == 400)
        #expect(HTTPParseError.uriTooLong.status == 414)
        #expect(HTTPParseError.headersTooLarge.status == 431)
        #expect(HTTPParseError.bodyTooLarge.status == 413)
        #expect(HTTPParseError.versionNotSupported.status == 505)
        #expect(HTTPParseError.notImplemented("x").status == 501)
        #expect(HTTPParseError.expectationFailed.status == 417)
    }

    @Test("up to 4 empty lines before a request line are skipped, in one piece or byte by byte")
    func blankLines() {
        let four = parseBothWays(String(repeating: "\r\n", count: 4) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(four.error == nil)
        #expect(four.requests.count == 1)
        // A fifth is taken for the request line (before the fix, reads of 2 bytes or less skipped any number).
        let five = parseBothWays(String(repeating: "\r\n", count: 5) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(five.error == .badRequest("malformed request line"))
        let split = parse(String(repeating: "\r\n", count: 6) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", chunk: 2)
        #expect(split.error == .badRequest("malformed request line"))
    }
}

@Suite("HTTP parser: headers")
struct HTTPHeaderTests {
    @Test("names lower-cased, values trimmed, order kept, obs-text kept")
    func fields() throws {
        let r = try #require(parse("GET / HTTP/1.1\r\nHost: a\r\nX-Thing: \t one two \t\r\nACCEPT:*/*\r\nX-Empty:\r\nX-Text: caf\u{E9}\r\n\r\n").requests.first)
        #expect(r.headers.map(\.name) == ["host", "x-thing", "accept", "x-empty", "x-text"])
        #expect(r.headers.map(\.value) == ["a", "one two", "*/*", "", "caf\u{E9}"])
        #expect(r.header("x-thing") == "one two")
        #expect(r.header("X-Thing") == nil)
    }

    @Test("obs-fold is refused")
    func fold() {
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n two\r\n\r\n").error == .badRequest("folded header line"))
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n\ttwo\r\n\r\n").error == .badRequest("folded header line"))
    }

    @Test("malformed header lines", arguments: [
        ("NoColon", HTTPParseError.badRequest("malformed header line")),
        (": empty-name", .badRequest("malformed header line")),
        ("Bad Name: x", .badRequest("bad header name")),
        ("Bad\"Name: x", .badRequest("bad header name")),
        ("X: a\u{01}b", .badRequest("control character in a header")),
        ("X: a\u{7F}", .badRequest("control character in a header")),
    ])
    func malformed(line: String, error: HTTPParseError) {
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\n\(line)\r\n\r\n").error == error)
    }

    @Test("HTTP/1.1 needs exactly one Host; HTTP/1.0 none")
    func host() {
        #expect(parse("GET / HTTP/1.1\r\n\r\n").error == .badRequest("HTTP/1.1 needs exactly one Host header"))
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").error == .badRequest("HTTP/1.1 needs exactly one Host header"))
        #expect(parse("GET / HTTP/1.0\r\n\r\n").requests.count == 1)
    }

    @Test("a bare LF or a bare CR is refused")
    func bareLineEnds() {
        #expect(parse("GET / HTTP/1.1\nHost: a\n\n").error == .badRequest("a line not ended by CR LF"))
        #expect(parse("GET / HTTP/1.1\r\nHost: a\n\r\n").error == .badRequest("a line not ended by CR LF"))
        #expect(parse("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n").error == .badRequest("a bare CR"))
        #expect(parse("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").error == .badRequest("a line not ended by CR LF"))
    }
}

@Suite("HTTP parser: bodies")
struct HTTPBodyTests {
    @Test("Content-Length")
    func contentLength() throws {
        let r = try #require(parse("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello").requests.first)
        #expect(r.body == Array("hello".utf8))
        #expect(parse("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc").requests.first?.body == Array("abc".utf8))
    }

    @Test("bad Content-Length values", arguments: ["3, 4", "+3", "-1", "", "0x10", "1 2", "1234567890123456789"])
    func badContentLength(value: String) {
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(value)\r\n\r\n").error == .badRequest("bad Content-Length"))
    }

    @Test("two different Content-Length headers")
    func twoContentLengths() {
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd").error == .badRequest("bad Content-Length"))
    }

    @Test("Content-Length and Transfer-Encoding together are refused")
    func both() {
        let p = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        #expect(p.error == .badRequest("both Content-Length and Transfer-Encoding"))
    }

    @Test("chunked, with chunk extensions and trailers (which are dropped)")
    func chunked() throws {
        let text = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6 ; x\r\n world\r\nA\r\n0123456789\r\n0;last\r\nX-Trailer: t\r\nOther: u\r\n\r\n"
        for chunk in [nil, 1, 3] as [Int?] {
            let p = parse(text, chunk: chunk)
            #expect(p.error == nil)
            let r = try #require(p.requests.first)
            #expect(String(decoding: r.body, as: UTF8.self) == "hello world0123456789")
            #expect(r.header("x-trailer") == nil)
            #expect(r.headers.map(\.name) == ["host", "transfer-encoding"])
        }
    }

    @Test("Transfer-Encoding: CHUNKED in capitals, and over two headers")
    func chunkedSpelling() {
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n").requests.first?.body == [0x78])
    }

    @Test("other transfer codings")
    func codings() {
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").error == .notImplemented("transfer coding gzip, chunked"))
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").error == .badRequest("the last transfer coding must be chunked"))
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n").error == .badRequest("the last transfer coding must be chunked"))
        #expect(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").error == .badRequest("chunked request body in HTTP/1.0"))
    }

    @Test("bad chunk framing")
    func badChunks() {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(parse(head + "zz\r\n").error == .badRequest("bad chunk size"))
        #expect(parse(head + "\r\n").error == .badRequest("bad chunk size"))
        #expect(parse(head + "123456789\r\n").error == .badRequest("bad chunk size"))
        #expect(parse(head + "3\r\nabcd\r\n").error == .badRequest("chunk data longer than its size"))
        #expect(parse(head + "1\nx\r\n").error == .badRequest("a line not ended by CR LF"))
        #expect(parse(head + String(repeating: "0", count: 1100)).error == .badRequest("line too long"))
    }

    @Test("pipelined requests come out one by one, in order")
    func pipelining() throws {
        let text = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiPOST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\nHEAD /d HTTP/1.1\r\nHost: a\r\n\r\n"
        for chunk in [nil, 1, 7] as [Int?] {
            let p = parse(text, chunk: chunk)
            #expect(p.error == nil)
            #expect(p.requests.map(\.path) == ["/a", "/b", "/c", "/d"])
            #expect(p.requests.map(\.method) == ["GET", "POST", "POST", "HEAD"])
            #expect(p.requests.map { String(decoding: $0.body, as: UTF8.self) } == ["", "hi", "z", ""])
        }
    }

    @Test("the bytes after a request stay for the next reader")
    func remaining() throws {
        var parser = HTTPParser()
        let bytes = Array("GET /mqtt HTTP/1.1\r\nHost: a\r\n\r\n\u{82}\u{00}rest".utf8)
        bytes.withUnsafeBytes { parser.append($0) }
        guard case .request(let r)? = try parser.next() else { Issue.record("no request"); return }
        #expect(r.path == "/mqtt")
        #expect(parser.takeRemaining() == Array("\u{82}\u{00}rest".utf8))
    }

    @Test("isMidRequest and isReadingHead")
    func midRequest() throws {
        var parser = HTTPParser()
        #expect(!parser.isMidRequest)
        Array("GET / HTTP/1.1\r\nHo".utf8).withUnsafeBytes { parser.append($0) }
        #expect(try parser.next() == nil)
        #expect(parser.isMidRequest && parser.isReadingHead)
        Array("st: a\r\nContent-Length: 2\r\n\r\nx".utf8).withUnsafeBytes { parser.append($0) }
        #expect(try parser.next() == nil)
        #expect(parser.isMidRequest && !parser.isReadingHead)
        Array("y\r\n".utf8).withUnsafeBytes { parser.append($0) }
        guard case .request? = try parser.next() else { Issue.record("no request"); return }
        #expect(!parser.isMidRequest)
    }
}

extension HTTPParserEvent: Equatable {
    public static func == (a: HTTPParserEvent, b: HTTPParserEvent) -> Bool {
        switch (a, b) {
        case (.continueExpected, .continueExpected): return true
        case (.request(let x), .request(let y)): return describe(x) == describe(y)
        default: return false
        }
    }
}

@Suite("HTTP parser: limits, exactly at the boundary and one over")
struct HTTPLimitTests {
    static func limits(requestLine: Int = 8192, headerBytes: Int = 16384, headerCount: Int = 100, body: Int = 1 << 20) -> HTTPLimits {
        var l = HTTPLimits()
        l.requestLine = requestLine
        l.headerBytes = headerBytes
        l.headerCount = headerCount
        l.body = body
        return l
    }

    /// A request line of exactly `n` bytes (CR LF not counted).
    static func requestLine(_ n: Int) -> String { "GET /" + String(repeating: "a", count: n - 14) + " HTTP/1.1" }

    @Test("the defaults")
    func defaults() {
        let l = HTTPLimits()
        #expect(l.requestLine == 8192)
        #expect(l.headerBytes == 16384)
        #expect(l.headerCount == 100)
        #expect(l.body == 1_048_576)
    }

    @Test("request line: at the limit, then one over (414), in one piece and byte by byte")
    func requestLineLimit() {
        let l = Self.limits(requestLine: 32)
        #expect(Self.requestLine(32).utf8.count == 32)
        let at = parseBothWays(Self.requestLine(32) + "\r\nHost: a\r\n\r\n", limits: l)
        #expect(at.error == nil)
        #expect(at.requests.count == 1)
        #expect(parseBothWays(Self.requestLine(33) + "\r\nHost: a\r\n\r\n", limits: l).error == .uriTooLong)
        // Refused before the line ends once it is too long.
        #expect(parse(Self.requestLine(40), limits: l).error == .uriTooLong)
        #expect(parse(Self.requestLine(32) + "\r", limits: l).error == nil)
        #expect(parse(Self.requestLine(33), limits: l).error == nil)
        #expect(parse(Self.requestLine(33) + "\r", limits: l).error == .uriTooLong)
        #expect(parse(Self.requestLine(34), limits: l).error == .uriTooLong)
    }

    @Test("the default request line limit: 8192 bytes")
    func defaultRequestLine() {
        #expect(parse(Self.requestLine(8192) + "\r\nHost: a\r\n\r\n").requests.count == 1)
        #expect(parse(Self.requestLine(8193) + "\r\nHost: a\r\n\r\n").error == .uriTooLong)
    }

    @Test("header bytes (each line with its CR LF): at the limit, then one over (431)")
    func headerBytes() {
        let l = Self.limits(headerBytes: 40)
        // "Host: " + 32 bytes + CR LF = 40.
        let at = parseBothWays("GET / HTTP/1.1\r\nHost: " + String(repeating: "a", count: 32) + "\r\n\r\n", limits: l)
        #expect(at.error == nil)
        #expect(at.requests.count == 1)
        let over = parseBothWays("GET / HTTP/1.1\r\nHost: " + String(repeating: "a", count: 33) + "\r\n\r\n", limits: l)
        #expect(over.error == .headersTooLarge)
        // Two lines adding up: 20 + 20 = 40, then 41.
        #expect(parseBothWays("GET / HTTP/1.1\r\nHost: aaaaaaaaaaaa\r\nX-B: aaaaaaaaaaaaa\r\n\r\n", limits: l).requests.count == 1)
        #expect(parseBothWays("GET / HTTP/1.1\r\nHost: aaaaaaaaaaaa\r\nX-B: aaaaaaaaaaaaaa\r\n\r\n", limits: l).error == .headersTooLarge)
    }

    @Test("header count: at the limit, then one over (431)")
    func headerCount() {
        let l = Self.limits(headerCount: 3)
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits: l).requests.count == 1)
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: l).error == .headersTooLarge)
    }

    @Test("a bad header line is 400 even if the head then grows past the limit")
    func badLineFirst() {
        let l = Self.limits(requestLine: 20, headerBytes: 40)
        let text = "GET / HTTP/1.1\r\nNoColon\r\n" + String(repeating: "X-A: b\r\n", count: 20)
        #expect(parse(text, limits: l).error == .badRequest("malformed header line"))
        #expect(parse(text, limits: l, chunk: 1).error == .badRequest("malformed header line"))
    }

    @Test("Content-Length: at the limit, then one over (413, before the body arrives)")
    func contentLength() {
        let l = Self.limits(body: 16)
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n" + String(repeating: "x", count: 16), limits: l).requests.first?.body.count == 16)
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n", limits: l).error == .bodyTooLarge)
    }

    @Test("chunked: at the limit, then one over (413)")
    func chunkedLimit() {
        let l = Self.limits(body: 16)
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(parse(head + "A\r\n0123456789\r\n6\r\n012345\r\n0\r\n\r\n", limits: l).requests.first?.body.count == 16)
        #expect(parse(head + "A\r\n0123456789\r\n7\r\n", limits: l).error == .bodyTooLarge)
        #expect(parse(head + "ffffffff\r\n", limits: l).error == .bodyTooLarge)
    }
}

@Suite("HTTP parser: Expect and keep-alive")
struct HTTPExpectTests {
    @Test("Expect: 100-continue before the body: a prompt, then the request")
    func continuePrompt() throws {
        var parser = HTTPParser()
        Array("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n".utf8).withUnsafeBytes { parser.append($0) }
        #expect(try parser.next() == .continueExpected)
        #expect(try parser.next() == nil)
        Array("body".utf8).withUnsafeBytes { parser.append($0) }
        guard case .request(let r)? = try parser.next() else { Issue.record("no request"); return }
        #expect(r.body == Array("body".utf8))
        #expect(r.header("expect") == "100-continue")
    }

    @Test("Expect: 100-continue with a chunked body, any case")
    func continueChunked() {
        let p = parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")
        #expect(p.events == ["continue", "request PUT /"])
    }

    @Test("no prompt when the body is already there, when there is none, or in HTTP/1.0")
    func noPrompt() {
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok").events == ["request POST /"])
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n").events == ["request GET /"])
        #expect(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").events == [])
    }

    @Test("any other expectation is 417")
    func otherExpectation() {
        let p = parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n")
        #expect(p.error == .expectationFailed)
        #expect(p.error?.status == 417)
    }

    @Test("keep-alive: HTTP/1.1 by default, HTTP/1.0 only when asked, close always wins", arguments: [
        ("HTTP/1.1", "", true),
        ("HTTP/1.1", "Connection: close\r\n", false),
        ("HTTP/1.1", "Connection: Upgrade, Close\r\n", false),
        ("HTTP/1.1", "Connection: keep-alive\r\n", true),
        ("HTTP/1.0", "", false),
        ("HTTP/1.0", "Connection: keep-alive\r\n", true),
        ("HTTP/1.0", "Connection: Keep-Alive\r\n", true),
        ("HTTP/1.0", "Connection: keep-alive, close\r\n", false),
    ])
    func keepAlive(version: String, header: String, expected: Bool) throws {
        let r = try #require(parse("GET / \(version)\r\nHost: a\r\n\(header)\r\n").requests.first)
        #expect(r.keepAlive == expected)
    }
}
