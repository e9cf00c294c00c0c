// Harness (g): the gateway's HTTP/1.1 request parser over a byte stream fed in
// chunks (pipelined requests, chunked bodies, Expect: 100-continue). Refusals
// (HTTPParseError) are expected; crashes and traps are bugs. Checks:
//   - every request has a token method, a path starting with "/" (or "*"),
//     lower-case token header names, header values without CR, LF or NUL, and a
//     body within limits.body;
//   - the same bytes in one piece, in the chunks, and one byte at a time give the
//     same requests and the same error: parsing does not depend on how the bytes
//     arrive;
//   - every error maps to 400, 413, 414, 417, 431, 501 or 505;
//   - "100 Continue" is prompted only for an HTTP/1.1 request with
//     Expect: 100-continue, at most once, before that request.
//
// Input layout:
//   byte 0  seed for the chunk sizes (bit 7: 1-8 bytes, else up to 256; 0: one piece)
//   byte 1  the limits: bits 0-1 request line (8 KiB, 64, 32, 20), bits 2-3 header
//           bytes (16 KiB, 128, 64, 40), bits 4-5 header count (100, 4, 2, 1), bits
//           6-7 body (1 MiB, 64, 16, 0)
//   rest    the byte stream
import Gateway

/// The harness: one input, returns 0; a finding traps.
public func fuzzHTTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let seed = input[0]
    var limits = HTTPLimits()
    let l = Int(input[1])
    limits.requestLine = [8 * 1024, 64, 32, 20][l & 3]
    limits.headerBytes = [16 * 1024, 128, 64, 40][(l >> 2) & 3]
    limits.headerCount = [100, 4, 2, 1][(l >> 4) & 3]
    limits.body = [1024 * 1024, 64, 16, 0][(l >> 6) & 3]
    let stream = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: input[2...]))

    let whole = parseHTTP(stream, limits: limits, chunks: [stream.count])
    let sizes = chunkSizes(seed: seed, total: stream.count)
    let chunked = parseHTTP(stream, limits: limits, chunks: sizes)
    guard whole == chunked else {
        fatalError("in one piece: \(whole); in chunks \(sizes): \(chunked); input \(show(stream))")
    }
    if stream.count <= 512 {
        let bytewise = parseHTTP(stream, limits: limits, chunks: Array(repeating: 1, count: stream.count))
        guard whole == bytewise else {
            fatalError("in one piece: \(whole); byte by byte: \(bytewise); input \(show(stream))")
        }
    }
    return 0
}

/// What the parser made of a stream: the requests (in a comparable form) and the
/// error that ended it, if any.
fileprivate struct HTTPOutcome: Equatable, CustomStringConvertible {
    var requests: [String] = []
    var error: HTTPParseError?
    var description: String { "\(requests.count) requests \(requests), error \(error.map { "\($0)" } ?? "none")" }
}

fileprivate func parseHTTP(_ stream: UnsafeRawBufferPointer, limits: HTTPLimits, chunks: [Int]) -> HTTPOutcome {
    var parser = HTTPParser(limits: limits)
    var outcome = HTTPOutcome()
    var offset = 0
    var continuePrompted = false
    for n in chunks {
        parser.append(UnsafeRawBufferPointer(rebasing: stream[offset..<(offset + n)]))
        offset += n
        while true {
            let event: HTTPParserEvent?
            do {
                event = try parser.next()
            } catch {
                guard [400, 413, 414, 417, 431, 501, 505].contains(error.status) else {
                    fatalError("\(error) maps to status \(error.status)")
                }
                outcome.error = error
                return outcome
            }
            guard let event else { break }
            switch event {
            case .continueExpected:
                if continuePrompted { fatalError("100 Continue prompted twice for one request") }
                continuePrompted = true
            case .request(let request):
                check(request, limits: limits, continuePrompted: continuePrompted)
                continuePrompted = false
                outcome.requests.append(describe(request))
            }
        }
    }
    return outcome
}

fileprivate func check(_ request: HTTPRequest, limits: HTTPLimits, continuePrompted: Bool) {
    guard !request.method.isEmpty, request.method.utf8.allSatisfy(isToken) else {
        fatalError("method \(request.method.debugDescription) is not a token")
    }
    guard request.path.hasPrefix("/") || request.path == "*" else {
        fatalError("path \(request.path.debugDescription) does not start with /")
    }
    guard (0...9).contains(request.minorVersion) else { fatalError("HTTP/1.\(request.minorVersion)") }
    guard request.headers.count <= limits.headerCount else {
        fatalError("\(request.headers.count) headers with a limit of \(limits.headerCount)")
    }
    for (name, value) in request.headers {
        guard !name.isEmpty, name.utf8.allSatisfy({ isToken($0) && !(0x41...0x5A).contains($0) }) else {
            fatalError("header name \(name.debugDescription) is not a lower-case token")
        }
        guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
            fatalError("header \(name) has CR, LF or NUL in its value \(value.debugDescription)")
        }
        guard value.first != " " && value.last != " " && value.first != "\t" && value.last != "\t" else {
            fatalError("header \(name) keeps white space around its value \(value.debugDescription)")
        }
    }
    guard request.body.count <= limits.body else {
        fatalError("a body of \(request.body.count) bytes with a limit of \(limits.body)")
    }
    if continuePrompted {
        guard request.minorVersion >= 1, request.header("expect")?.lowercased() == "100-continue" else {
            fatalError("100 Continue prompted for a request without Expect: 100-continue")
        }
    }
}

fileprivate func describe(_ r: HTTPRequest) -> String {
    let headers = r.headers.map { "\($0.name): \($0.value)" }.joined(separator: "|")
    return "\(r.method) \(r.path) ?\(r.query ?? "-") 1.\(r.minorVersion) [\(headers)] body \(show(r.body)) keep-alive \(r.keepAlive)"
}

/// RFC 7230 tchar, written from the RFC.
fileprivate func isToken(_ b: UInt8) -> Bool {
    if (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) { return true }
    return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
}

fileprivate func show(_ bytes: some Collection<UInt8>) -> String {
    let text = bytes.prefix(256).map { b -> String in
        (0x20..<0x7F).contains(b) && b != 0x5C ? String(UnicodeScalar(b)) : "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
    }.joined()
    return "\"" + text + (bytes.count > 256 ? "..." : "") + "\""
}
