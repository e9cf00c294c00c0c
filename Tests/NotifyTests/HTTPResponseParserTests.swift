import Testing
import Notify

/// What a parser made of a stream: the responses and the error that ended it.
struct HTTPParse: Equatable {
    var responses: [HTTPClientResponse] = []
    var error: HTTPResponseError?
}

/// Feeds `bytes` in the given pieces (calling `next` after each), then `finish`.
func parseHTTP(_ bytes: [UInt8], pieces: [Int]? = nil, limits: HTTPResponseLimits = HTTPResponseLimits(),
               method: String = "POST", atEnd: Bool = true) -> HTTPParse {
    var parser = HTTPResponseParser(limits: limits, requestMethod: method)
    var result = HTTPParse()
    var offset = 0
    do {
        for n in pieces ?? [bytes.count] {
            parser.append(bytes[offset..<(offset + n)])
            offset += n
            while let r = try parser.next() { result.responses.append(r) }
        }
        if atEnd, let r = try parser.finish() { result.responses.append(r) }
    } catch {
        result.error = error as? HTTPResponseError
    }
    return result
}

func parseHTTP(_ text: String, limits: HTTPResponseLimits = HTTPResponseLimits(), method: String = "POST", atEnd: Bool = true) -> HTTPParse {
    parseHTTP(Array(text.utf8), limits: limits, method: method, atEnd: atEnd)
}

@Suite("HTTP response parser")
struct HTTPResponseParserTests {
    @Test("Content-Length: status, reason, headers lower-cased and trimmed, the body")
    func contentLength() {
        let r = parseHTTP("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Id:  42 \r\nContent-Length: 7\r\n\r\n{\"a\":1}")
        #expect(r.error == nil)
        #expect(r.responses == [HTTPClientResponse(
            minorVersion: 1, status: 201, reason: "Created",
            headers: [HTTPHeaderField("content-type", "application/json"), HTTPHeaderField("x-id", "42"), HTTPHeaderField("content-length", "7")],
            body: Array("{\"a\":1}".utf8), closeDelimited: false)])
        #expect(r.responses[0].header("X-ID") == "42")
        #expect(r.responses[0].keepAlive)
    }

    @Test("chunked: chunks joined, extensions ignored, trailers read and dropped")
    func chunked() {
        let r = parseHTTP("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1 \r\n \r\nB\r\n0123456789a\r\n0\r\nX-Trailer: t\r\n\r\n")
        #expect(r.error == nil)
        #expect(r.responses.count == 1)
        #expect(r.responses[0].body == Array("hello 0123456789a".utf8))
        #expect(r.responses[0].headers == [HTTPHeaderField("transfer-encoding", "chunked")])
    }

    @Test("close-delimited: the body runs to the end of the connection, and the connection is not reused")
    func closeDelimited() {
        let r = parseHTTP("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of\r\nthis")
        #expect(r.responses.map(\.body) == [Array("all of\r\nthis".utf8)])
        #expect(r.responses[0].closeDelimited && !r.responses[0].keepAlive)
        // Without the end of the connection there is no response yet.
        #expect(parseHTTP("HTTP/1.1 200 OK\r\n\r\nabc", atEnd: false).responses.isEmpty)
    }

    @Test("1xx interim responses are skipped; 101 is refused; too many interim responses are refused")
    func interim() {
        let r = parseHTTP("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
        #expect(r.error == nil)
        #expect(r.responses.map(\.status) == [204])
        #expect(r.responses[0].headers.isEmpty)
        #expect(parseHTTP("HTTP/1.1 101 Switching Protocols\r\n\r\n").error == .unexpectedSwitchingProtocols)
        var limits = HTTPResponseLimits()
        limits.interimResponses = 2
        #expect(parseHTTP(String(repeating: "HTTP/1.1 100 Continue\r\n\r\n", count: 3), limits: limits).error == .tooManyInterimResponses)
    }

    @Test("no body for HEAD, 204 and 304, whatever Content-Length says")
    func noBody() {
        let head = parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method: "HEAD")
        #expect(head.error == nil && head.responses.map(\.body) == [[]])
        let notModified = parseHTTP("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        #expect(notModified.responses.map(\.status) == [304, 200])
    }

    @Test("kept-alive: responses one after another; HTTP/1.0 and Connection: close are not kept alive")
    func sequence() {
        let r = parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 410 Gone\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        #expect(r.error == nil)
        #expect(r.responses.map(\.status) == [200, 404, 410])
        #expect(r.responses.map(\.keepAlive) == [true, false, false])
        #expect(r.responses[1].minorVersion == 0)
        #expect(parseHTTP("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n").responses[0].keepAlive)
    }

    @Test("status lines: reason may be empty or absent; other versions and shapes are refused")
    func statusLines() {
        #expect(parseHTTP("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").responses.map(\.reason) == [""])
        #expect(parseHTTP("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").responses.map(\.reason) == [""])
        #expect(parseHTTP("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").responses.map(\.reason) == ["Service Unavailable"])
        #expect(parseHTTP("HTTP/2.0 200 OK\r\n\r\n").error == .unsupportedVersion)
        for line in ["HTTP/1.1 99 x", "HTTP/1.1 600 x", "HTTP/1.1 2000 x", "http/1.1 200 x", "HTTP/1.1  200 x", "HTTP/1.1 200x", "ICY 200 OK", "HTTP/1.1 200 a\u{1}b"] {
            #expect(parseHTTP(line + "\r\n\r\n").error == .malformedStatusLine, "\(line)")
        }
    }

    @Test("headers: obs-fold refused, white space before the colon refused, controls refused, bare line endings refused")
    func headerRefusals() {
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\r\n").error == .obsoleteLineFolding)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n").error == .malformedHeader)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nnocolon\r\n\r\n").error == .malformedHeader)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\n: empty\r\n\r\n").error == .malformedHeader)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\n\r\n").error == .malformedHeader)
        #expect(parseHTTP("HTTP/1.1 200 OK\nX-A: 1\r\n\r\n").error == .bareLineEnding)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nX-A: 1\r2\r\n\r\n").error == .bareLineEnding)
    }

    @Test("header values: UTF-8 as UTF-8, other bytes as ISO-8859-1")
    func headerText() {
        var bytes = Array("HTTP/1.1 200 OK\r\nX-A: Grüße\r\nX-B: ".utf8)
        bytes += [0xE9, 0x74] + Array("\r\nContent-Length: 0\r\n\r\n".utf8)
        let r = parseHTTP(bytes)
        #expect(r.responses.first?.header("x-a") == "Grüße")
        #expect(r.responses.first?.header("x-b") == "ét")
    }

    @Test("framing refusals: both Content-Length and Transfer-Encoding, codings other than chunked, bad or differing lengths")
    func framing() {
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n").error == .conflictingFraming)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").error == .unsupportedTransferEncoding("gzip, chunked"))
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n").responses.count == 1)
        for value in ["-1", "1.0", "", "0x10", "1 1", "3, 3", "1234567890123456789"] {
            #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: \(value)\r\n\r\n").error == .invalidContentLength, "\(value)")
        }
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").error == .invalidContentLength)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc").responses.map(\.body) == [Array("abc".utf8)])
    }

    @Test("chunk refusals: no hex, junk after the size, data not followed by CR LF, a long chunk line")
    func chunkRefusals() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(parseHTTP(head + "x\r\n").error == .malformedChunk)
        #expect(parseHTTP(head + "5x\r\nhello\r\n").error == .malformedChunk)
        #expect(parseHTTP(head + "5\r\nhelloX\r\n").error == .malformedChunk)
        #expect(parseHTTP(head + "5\r\nhello\rX").error == .malformedChunk)
        #expect(parseHTTP(head + "1;" + String(repeating: "e", count: 1100) + "\r\n").error == .malformedChunk)
    }

    @Test("limits: header bytes (counted with CR LF), header count, body by each framing")
    func limits() {
        var limits = HTTPResponseLimits()
        limits.headerBytes = 40
        // 17 + 21 + 2 = 40 bytes of head.
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 000\r\n\r\n", limits: limits).error == nil)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 0000\r\n\r\n", limits: limits).error == .headersTooLarge)
        // A line still without its LF: refused once its LF could not fit.
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 000000", limits: limits, atEnd: false).error == nil)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 0000000", limits: limits, atEnd: false).error == .headersTooLarge)
        limits = HTTPResponseLimits()
        limits.headerCount = 2
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits).error == .tooManyHeaders)
        limits = HTTPResponseLimits()
        limits.body = 4
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", limits: limits).error == nil)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", limits: limits).error == .bodyTooLarge)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\n", limits: limits).error == .bodyTooLarge)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n", limits: limits).error == .bodyTooLarge)
        #expect(parseHTTP("HTTP/1.1 200 OK\r\n\r\nabcd", limits: limits).responses.map(\.body.count) == [4])
        #expect(parseHTTP("HTTP/1.1 200 OK\r\n\r\nabcde", limits: limits).error == .bodyTooLarge)
    }

    @Test("the end of the connection: nothing between responses is fine; inside one it is truncated")
    func truncation() {
        #expect(parseHTTP("") == HTTPParse())
        #expect(parseHTTP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").error == nil)
        for text in ["H", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "HTTP/1.1 100 Continue\r\n\r\n"] {
            #expect(parseHTTP(text).error == .truncated, "\(text.debugDescription)")
        }
    }

    @Test("an error sticks")
    func sticky() {
        var parser = HTTPResponseParser()
        parser.append(Array("HTTP/1.1 200 OK\nx".utf8))
        #expect(throws: HTTPResponseError.bareLineEnding) { try parser.next() }
        parser.append(Array("\r\n\r\n".utf8))
        #expect(throws: HTTPResponseError.bareLineEnding) { try parser.next() }
        #expect(throws: HTTPResponseError.bareLineEnding) { try parser.finish() }
    }

    @Test("split at every byte, and byte by byte: the same responses and the same error")
    func splitAnywhere() {
        let streams = [
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x\r\nwiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 30\r\n\r\nclose-delimited body",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\nabcd\r\n",
        ]
        var limits = HTTPResponseLimits()
        limits.body = 6
        for (n, text) in streams.enumerated() {
            let bytes = Array(text.utf8)
            for limit in [HTTPResponseLimits(), limits] {
                let whole = parseHTTP(bytes, limits: limit)
                for cut in 0...bytes.count {
                    #expect(parseHTTP(bytes, pieces: [cut, bytes.count - cut], limits: limit) == whole, "stream \(n) cut at \(cut)")
                }
                #expect(parseHTTP(bytes, pieces: Array(repeating: 1, count: bytes.count), limits: limit) == whole, "stream \(n) byte by byte")
            }
        }
        let first = parseHTTP(Array(streams[0].utf8))
        #expect(first.error == nil)
        #expect(first.responses.map(\.status) == [200, 200, 429])
        #expect(first.responses.map { String(decoding: $0.body, as: UTF8.self) } == ["hello", "wikipedia", "close-delimited body"])
        #expect(parseHTTP(Array(streams[1].utf8)).error == .obsoleteLineFolding)
        #expect(parseHTTP(Array(streams[2].utf8), limits: limits).error == .bodyTooLarge)
    }
}

@Suite("Retry-After")
struct HTTPRetryAfterTests {
    // Sun, 06 Nov 1994 08:49:37 GMT
    let date: Int64 = 784_111_777

    @Test("delay-seconds")
    func seconds() {
        #expect(HTTPRetryAfter.seconds("120", now: 0) == 120)
        #expect(HTTPRetryAfter.seconds(" 0 ", now: 0) == 0)
        #expect(HTTPRetryAfter.seconds("-5", now: 0) == nil)
        #expect(HTTPRetryAfter.seconds("1.5", now: 0) == nil)
        #expect(HTTPRetryAfter.seconds("", now: 0) == nil)
    }

    @Test("the three HTTP-date forms, relative to now; a past date waits 0")
    func dates() {
        #expect(HTTPRetryAfter.httpDate("Sun, 06 Nov 1994 08:49:37 GMT", now: date) == date)
        #expect(HTTPRetryAfter.httpDate("Sunday, 06-Nov-94 08:49:37 GMT", now: date) == date)
        #expect(HTTPRetryAfter.httpDate("Sun Nov  6 08:49:37 1994", now: date) == date)
        #expect(HTTPRetryAfter.seconds("Sun, 06 Nov 1994 08:50:37 GMT", now: date) == 60)
        #expect(HTTPRetryAfter.seconds("Sun, 06 Nov 1994 08:49:36 GMT", now: date) == 0)
        #expect(HTTPRetryAfter.httpDate("Thu, 29 Feb 2024 00:00:00 GMT", now: 0) == 1_709_164_800)
    }

    @Test("RFC 850 years: more than 50 years ahead means the century before")
    func twoDigitYears() {
        let in2026: Int64 = 1_796_172_979
        #expect(HTTPRetryAfter.httpDate("Wednesday, 01-Jan-76 00:00:00 GMT", now: in2026) == 3_345_062_400)  // 2076 is 50 years on: kept
        #expect(HTTPRetryAfter.httpDate("Saturday, 01-Jan-77 00:00:00 GMT", now: in2026) == 220_924_800)  // 1977
    }

    @Test("not dates: wrong zone, day 30 of February, hour 24, lower-case month, missing parts")
    func refusals() {
        for text in ["Sun, 06 Nov 1994 08:49:37 UTC", "Fri, 30 Feb 2024 00:00:00 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                     "Sun, 06 nov 1994 08:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
                     "Sun Nov 6 08:49:37 1994", "tomorrow", "Sun, 06 Nov 1994 08:49 GMT"] {
            #expect(HTTPRetryAfter.httpDate(text, now: 0) == nil, "\(text)")
        }
    }

    @Test("the response's helper reads the header")
    func responseHelper() {
        let r = parseHTTP("HTTP/1.1 503 Unavailable\r\nRetry-After: Sun, 06 Nov 1994 08:50:07 GMT\r\nContent-Length: 0\r\n\r\n")
        #expect(r.responses.first?.retryAfter(now: date) == 30)
        #expect(parseHTTP("HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n").responses.first?.retryAfter(now: date) == nil)
    }
}

@Suite("HTTP request writer")
struct HTTPRequestWriterTests {
    @Test("request line, Host, the caller's headers, Content-Length, body")
    func post() throws {
        let request = HTTPClientRequest(method: "POST", target: "/hooks/1?x=y", host: "example.com:8443",
                                        headers: [HTTPHeaderField("Content-Type", "application/json"), HTTPHeaderField("webhook-id", " msg_1 ")],
                                        body: Array("{}".utf8))
        #expect(String(decoding: try HTTPRequestWriter.encode(request), as: UTF8.self) ==
            "POST /hooks/1?x=y HTTP/1.1\r\nHost: example.com:8443\r\nContent-Type: application/json\r\nwebhook-id: msg_1\r\nContent-Length: 2\r\n\r\n{}")
    }

    @Test("Content-Length: 0 for a POST without a body, none for a GET")
    func lengths() throws {
        #expect(String(decoding: try HTTPRequestWriter.encode(HTTPClientRequest(method: "POST", target: "/", host: "h")), as: UTF8.self)
            == "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        #expect(String(decoding: try HTTPRequestWriter.encode(HTTPClientRequest(method: "GET", target: "/", host: "h")), as: UTF8.self)
            == "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    }

    @Test("nothing a caller passes can add a line to the request")
    func refusals() {
        func encode(_ r: HTTPClientRequest) throws { _ = try HTTPRequestWriter.encode(r) }
        #expect(throws: HTTPRequestError.invalidMethod("PO ST")) { try encode(HTTPClientRequest(method: "PO ST", target: "/", host: "h")) }
        #expect(throws: HTTPRequestError.invalidTarget("/a b")) { try encode(HTTPClientRequest(method: "GET", target: "/a b", host: "h")) }
        #expect(throws: HTTPRequestError.invalidTarget("x")) { try encode(HTTPClientRequest(method: "GET", target: "x", host: "h")) }
        #expect(throws: HTTPRequestError.invalidHost("h\r\nX: 1")) { try encode(HTTPClientRequest(method: "GET", target: "/", host: "h\r\nX: 1")) }
        #expect(throws: HTTPRequestError.invalidHeaderName("X A")) {
            try encode(HTTPClientRequest(method: "GET", target: "/", host: "h", headers: [HTTPHeaderField("X A", "1")]))
        }
        #expect(throws: HTTPRequestError.invalidHeaderValue(name: "X")) {
            try encode(HTTPClientRequest(method: "GET", target: "/", host: "h", headers: [HTTPHeaderField("X", "1\r\nY: 2")]))
        }
        #expect(throws: HTTPRequestError.reservedHeader("Content-Length")) {
            try encode(HTTPClientRequest(method: "GET", target: "/", host: "h", headers: [HTTPHeaderField("Content-Length", "1")]))
        }
    }

    @Test("the body follows the head byte for byte")
    func bytes() throws {
        let bytes = try HTTPRequestWriter.encode(HTTPClientRequest(method: "PUT", target: "/x", host: "h", body: [0, 255]))
        #expect(bytes.suffix(2) == [0, 255])
        #expect(bytes.count == "PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n".utf8.count + 2)
    }
}
