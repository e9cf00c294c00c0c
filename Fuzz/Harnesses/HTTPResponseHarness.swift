// Harness (k): the notification client's HTTP/1.1 response parser over a byte
// stream fed in chunks, with small or default limits, answering POST or HEAD,
// with or without the end of the connection. Refusals (HTTPResponseError) are
// expected; crashes and traps are bugs. Checks:
//   - the same bytes in one piece, in the chunks, and one byte at a time give the
//     same responses and the same error;
//   - every response is final (200-599), HTTP/1.0-1.9, within the header count,
//     with lower-case token names and values without CR, LF, NUL or white space
//     at either end;
//   - body lengths: within limits.body; empty for HEAD, 204 and 304; equal to
//     Content-Length when there is one; close-delimited only without
//     Content-Length and Transfer-Encoding, only at the end of the connection, and
//     last; all bodies together no longer than the stream;
//   - a response written again with Content-Length parses to the same status,
//     reason and body.
//
// Input layout:
//   byte 0  seed for the chunk sizes (bit 7: 1-8 bytes, else up to 256; 0: one piece)
//   byte 1  bits 0-1 header bytes (16 KiB, 128, 64, 40), bits 2-3 header count
//           (100, 4, 2, 1), bits 4-5 body (1 MiB, 64, 16, 0), bit 6 the request
//           was HEAD, bit 7 the connection does not end after the stream
//   rest    the byte stream
import Notify

/// The harness: one input, returns 0; a finding traps.
public func fuzzHTTPResponse(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let seed = input[0]
    let l = Int(input[1])
    var limits = HTTPResponseLimits()
    limits.headerBytes = [16 * 1024, 128, 64, 40][l & 3]
    limits.headerCount = [100, 4, 2, 1][(l >> 2) & 3]
    limits.body = [1024 * 1024, 64, 16, 0][(l >> 4) & 3]
    let method = l & 0x40 != 0 ? "HEAD" : "POST"
    let ends = l & 0x80 == 0
    let stream = Array(input[2...])

    let whole = parseResponses(stream, limits: limits, method: method, ends: ends, chunks: [stream.count])
    let sizes = chunkSizes(seed: seed, total: stream.count)
    let chunked = parseResponses(stream, limits: limits, method: method, ends: ends, chunks: sizes)
    guard whole == chunked else { fatalError("in one piece: \(whole); in chunks \(sizes): \(chunked); input \(showBytes(stream))") }
    if stream.count <= 512 {
        let bytewise = parseResponses(stream, limits: limits, method: method, ends: ends, chunks: Array(repeating: 1, count: stream.count))
        guard whole == bytewise else { fatalError("in one piece: \(whole); byte by byte: \(bytewise); input \(showBytes(stream))") }
    }
    check(whole, streamLength: stream.count, limits: limits, method: method, ends: ends)
    return 0
}

fileprivate struct HTTPResponsesOfParse: Equatable, CustomStringConvertible {
    var responses: [HTTPClientResponse] = []
    var error: HTTPResponseError?
    var description: String {
        "\(responses.count) responses \(responses.map { "\($0.status) \($0.headers.count) headers, \($0.body.count) bytes" }), error \(error.map { "\($0)" } ?? "none")"
    }
}

fileprivate func parseResponses(_ stream: [UInt8], limits: HTTPResponseLimits, method: String, ends: Bool, chunks: [Int]) -> HTTPResponsesOfParse {
    var parser = HTTPResponseParser(limits: limits, requestMethod: method)
    var outcome = HTTPResponsesOfParse()
    var offset = 0
    do {
        for n in chunks {
            parser.append(stream[offset..<(offset + n)])
            offset += n
            while let response = try parser.next() { outcome.responses.append(response) }
        }
        if ends, let response = try parser.finish() { outcome.responses.append(response) }
    } catch {
        guard let error = error as? HTTPResponseError else { fatalError("not an HTTPResponseError: \(error)") }
        outcome.error = error
    }
    return outcome
}

fileprivate func check(_ outcome: HTTPResponsesOfParse, streamLength: Int, limits: HTTPResponseLimits, method: String, ends: Bool) {
    var bodyBytes = 0
    for (i, r) in outcome.responses.enumerated() {
        guard (200...599).contains(r.status) else { fatalError("status \(r.status) returned") }
        guard (0...9).contains(r.minorVersion) else { fatalError("HTTP/1.\(r.minorVersion)") }
        guard r.headers.count <= limits.headerCount else { fatalError("\(r.headers.count) headers, limit \(limits.headerCount)") }
        for h in r.headers {
            guard !h.name.isEmpty, h.name.utf8.allSatisfy({ isTokenCharacter($0) && !(0x41...0x5A).contains($0) }) else {
                fatalError("header name \(h.name.debugDescription)")
            }
            guard !h.value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\u{0}" }) else { fatalError("header value \(h.value.debugDescription)") }
            guard h.value.first != " " && h.value.first != "\t" && h.value.last != " " && h.value.last != "\t" else {
                fatalError("header value \(h.value.debugDescription) keeps white space")
            }
        }
        guard r.body.count <= limits.body else { fatalError("a body of \(r.body.count) bytes, limit \(limits.body)") }
        bodyBytes += r.body.count
        if method == "HEAD" || r.status == 204 || r.status == 304 {
            guard r.body.isEmpty, !r.closeDelimited else { fatalError("a body for \(method) \(r.status)") }
        } else if let length = r.header("content-length") {
            guard Int(length) == r.body.count else { fatalError("Content-Length \(length) and a body of \(r.body.count)") }
        }
        if r.closeDelimited {
            guard ends, i == outcome.responses.count - 1, r.header("content-length") == nil, r.header("transfer-encoding") == nil else {
                fatalError("close-delimited response \(i) of \(outcome.responses.count), connection ends \(ends)")
            }
        }
        roundTrip(r, method: method)
    }
    guard bodyBytes <= streamLength else { fatalError("\(bodyBytes) body bytes from a stream of \(streamLength)") }
}

fileprivate func roundTrip(_ r: HTTPClientResponse, method: String) {
    guard method != "HEAD", r.status != 204, r.status != 304 else { return }
    let head = "HTTP/1.\(r.minorVersion) \(r.status) \(r.reason)\r\ncontent-length: \(r.body.count)\r\n\r\n"
    var parser = HTTPResponseParser(requestMethod: method)
    parser.append(Array(head.utf8) + r.body)
    do {
        guard let again = try parser.next() else { fatalError("written again, \(r.status) does not parse: \(head.debugDescription)") }
        guard again.status == r.status, again.reason == r.reason, again.body == r.body else {
            fatalError("written again, \(r.status) \(r.reason.debugDescription) came back as \(again.status) \(again.reason.debugDescription)")
        }
    } catch {
        fatalError("written again, \(r.status) \(r.reason.debugDescription) is refused: \(error)")
    }
}

/// RFC 9110 tchar, written from the RFC.
fileprivate func isTokenCharacter(_ b: UInt8) -> Bool {
    if (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) { return true }
    return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
}
