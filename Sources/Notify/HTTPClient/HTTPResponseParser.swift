/// Why the bytes are not an acceptable HTTP/1.1 response. The connection is not
/// reused after any of them.
public enum HTTPResponseError: Error, Equatable, Sendable {
    /// Not `HTTP/1.d SP 3DIGIT [SP reason]`, or a status outside 100-599.
    case malformedStatusLine
    /// An HTTP version other than 1.x.
    case unsupportedVersion
    /// A header line without `name:` (a token name, no white space before the colon)
    /// or with control characters in its value.
    case malformedHeader
    /// A header line starting with white space (obs-fold, RFC 9112 5.2): refused,
    /// not joined, so that no two readers disagree about the headers.
    case obsoleteLineFolding
    /// A line that ends in LF without CR, or a CR not followed by LF.
    case bareLineEnding
    case headersTooLarge
    case tooManyHeaders
    case bodyTooLarge
    /// Content-Length that is not digits, or several that differ.
    case invalidContentLength
    /// Both Transfer-Encoding and Content-Length: which one frames the body is a
    /// matter of opinion between parsers (response smuggling), so neither is trusted.
    case conflictingFraming
    /// A Transfer-Encoding other than `chunked` (this client asks for no others).
    case unsupportedTransferEncoding(String)
    /// A chunk size that is not hex, a chunk not followed by CR LF, or a chunk
    /// line over its limit.
    case malformedChunk
    case tooManyInterimResponses
    /// 101 to a request that asked for no upgrade.
    case unexpectedSwitchingProtocols
    /// The connection ended inside a response.
    case truncated
}

public struct HTTPResponseLimits: Equatable, Sendable {
    /// The status line and header lines with their CR LF, and the empty line; trailers
    /// have a budget of the same size.
    public var headerBytes = 16 * 1024
    public var headerCount = 100
    public var body = 1024 * 1024
    /// A chunk-size line with its extensions.
    public var chunkLine = 1024
    /// 1xx responses skipped before the final one.
    public var interimResponses = 8
    public init() {}
}

/// An incremental HTTP/1.1 response parser (RFC 9112): `append` bytes as they
/// arrive, `next` until nil, and `finish` when the connection ends (which
/// completes a body delimited by the close). 1xx interim responses are skipped.
/// Bodies framed by Content-Length, chunked, or the close; none for HEAD, 204 and
/// 304. Responses on a kept-alive connection follow one another; set
/// `requestMethod` to the request each answers. The result does not depend on
/// how the bytes were split; after an error every call throws it again.
public struct HTTPResponseParser: Sendable {
    public let limits: HTTPResponseLimits
    /// The method of the request being answered (HEAD has no response body).
    public var requestMethod: String

    private var buffer: [UInt8] = []
    private var start = 0
    private var scanMark = 0
    private var state = State.statusLine
    private var failure: HTTPResponseError?

    private enum State {
        case statusLine, headers, fixedBody(remaining: Int), chunkSize, chunkData(remaining: Int), chunkEnd, trailers
        case closeDelimited, ended
    }

    // The response being read.
    private var minorVersion = 1
    private var status = 0
    private var reason = ""
    private var headers: [HTTPHeaderField] = []
    private var body: [UInt8] = []
    /// Head (or trailer) bytes so far, counted against `limits.headerBytes`.
    private var lineBytes = 0
    private var interimCount = 0

    public init(limits: HTTPResponseLimits = HTTPResponseLimits(), requestMethod: String = "POST") {
        self.limits = limits
        self.requestMethod = requestMethod
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 4096 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            scanMark -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete final response, or nil when more bytes are needed.
    public mutating func next() throws -> HTTPClientResponse? {
        if let failure { throw failure }
        do {
            return try parse()
        } catch let error as HTTPResponseError {
            failure = error
            throw error
        }
    }

    /// The connection ended: the response whose body ran to the close, nil if it
    /// ended between responses, `.truncated` inside one.
    public mutating func finish() throws -> HTTPClientResponse? {
        if let response = try next() { return response }
        switch state {
        case .closeDelimited:
            state = .ended
            return makeResponse(closeDelimited: true)
        case .statusLine where buffer.count == start && interimCount == 0, .ended:
            state = .ended
            return nil
        default:
            failure = .truncated
            throw HTTPResponseError.truncated
        }
    }

    // MARK: - The state machine

    private mutating func parse() throws -> HTTPClientResponse? {
        while true {
            switch state {
            case .statusLine:
                guard let line = try readLine(budget: limits.headerBytes - lineBytes, tooLong: .headersTooLarge) else { return nil }
                lineBytes += line.count + 2
                try readStatusLine(line)
                state = .headers
            case .headers:
                guard let line = try readLine(budget: limits.headerBytes - lineBytes, tooLong: .headersTooLarge) else { return nil }
                lineBytes += line.count + 2
                if line.isEmpty {
                    if let response = try headEnded() { return response }
                } else {
                    try readHeader(line)
                }
            case .fixedBody(let remaining):
                let n = min(remaining, buffer.count - start)
                body += buffer[start..<(start + n)]
                start += n
                scanMark = start
                if n < remaining {
                    state = .fixedBody(remaining: remaining - n)
                    return nil
                }
                return complete()
            case .chunkSize:
                guard let line = try readLine(budget: limits.chunkLine, tooLong: .malformedChunk) else { return nil }
                let size = try chunkSize(line)
                if size == 0 {
                    lineBytes = 0
                    state = .trailers
                } else {
                    guard size <= limits.body - body.count else { throw HTTPResponseError.bodyTooLarge }
                    state = .chunkData(remaining: size)
                }
            case .chunkData(let remaining):
                let n = min(remaining, buffer.count - start)
                body += buffer[start..<(start + n)]
                start += n
                scanMark = start
                if n < remaining {
                    state = .chunkData(remaining: remaining - n)
                    return nil
                }
                state = .chunkEnd
            case .chunkEnd:
                guard buffer.count - start >= 2 else {
                    if buffer.count - start == 1 && buffer[start] != 0x0D { throw HTTPResponseError.malformedChunk }
                    return nil
                }
                guard buffer[start] == 0x0D, buffer[start + 1] == 0x0A else { throw HTTPResponseError.malformedChunk }
                start += 2
                scanMark = start
                state = .chunkSize
            case .trailers:
                guard let line = try readLine(budget: limits.headerBytes - lineBytes, tooLong: .headersTooLarge) else { return nil }
                lineBytes += line.count + 2
                // Trailer fields are checked as headers are, then dropped: nothing
                // this client reads may arrive after the body.
                if line.isEmpty { return complete() }
                let kept = headers.count
                try readHeader(line)
                headers.removeLast(headers.count - kept)
            case .closeDelimited:
                body += buffer[start...]
                start = buffer.count
                scanMark = start
                guard body.count <= limits.body else { throw HTTPResponseError.bodyTooLarge }
                return nil
            case .ended:
                return nil
            }
        }
    }

    /// The next line without its CR LF, or nil until its LF is in. `budget` is what
    /// the line (CR LF included) may take: past it, `tooLong`, whether or not the
    /// LF has come, so the error does not depend on the chunking.
    private mutating func readLine(budget: Int, tooLong: HTTPResponseError) throws -> ArraySlice<UInt8>? {
        guard let lf = buffer[scanMark...].firstIndex(of: 0x0A) else {
            scanMark = buffer.count
            if buffer.count - start + 1 > budget { throw tooLong }
            return nil
        }
        let count = lf + 1 - start
        guard count <= budget else { throw tooLong }
        guard count >= 2, buffer[lf - 1] == 0x0D else { throw HTTPResponseError.bareLineEnding }
        let line = buffer[start..<(lf - 1)]
        guard !line.contains(0x0D) else { throw HTTPResponseError.bareLineEnding }
        start = lf + 1
        scanMark = start
        return line
    }

    private mutating func readStatusLine(_ line: ArraySlice<UInt8>) throws {
        let bytes = Array(line)
        guard bytes.count >= 12, bytes.starts(with: Array("HTTP/".utf8)) else { throw HTTPResponseError.malformedStatusLine }
        guard isDigit(bytes[5]), bytes[6] == UInt8(ascii: "."), isDigit(bytes[7]) else { throw HTTPResponseError.malformedStatusLine }
        guard bytes[5] == UInt8(ascii: "1") else { throw HTTPResponseError.unsupportedVersion }
        guard bytes[8] == 0x20, bytes[9...11].allSatisfy(isDigit), bytes.count == 12 || bytes[12] == 0x20 else {
            throw HTTPResponseError.malformedStatusLine
        }
        let code = bytes[9...11].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard (100...599).contains(code) else { throw HTTPResponseError.malformedStatusLine }
        let reasonBytes = bytes.dropFirst(13)
        guard reasonBytes.allSatisfy({ $0 == 0x09 || $0 >= 0x20 && $0 != 0x7F }) else { throw HTTPResponseError.malformedStatusLine }
        minorVersion = Int(bytes[7] - 0x30)
        status = code
        reason = text(reasonBytes)
        headers = []
    }

    private mutating func readHeader(_ line: ArraySlice<UInt8>) throws {
        if line.first == 0x20 || line.first == 0x09 { throw HTTPResponseError.obsoleteLineFolding }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
              line[line.startIndex..<colon].allSatisfy(isTokenByte)
        else { throw HTTPResponseError.malformedHeader }
        let value = line[(colon + 1)...]
        guard value.allSatisfy({ $0 == 0x09 || $0 >= 0x20 && $0 != 0x7F }) else { throw HTTPResponseError.malformedHeader }
        guard headers.count < limits.headerCount else { throw HTTPResponseError.tooManyHeaders }
        headers.append(HTTPHeaderField(text(line[line.startIndex..<colon]).lowercased(), text(value).trimmingHTTPWhitespace()))
    }

    /// The empty line after the headers: an interim response is dropped, a final
    /// one gets its body framing (RFC 9112 6.3).
    private mutating func headEnded() throws -> HTTPClientResponse? {
        lineBytes = 0
        if status < 200 {
            guard status != 101 else { throw HTTPResponseError.unexpectedSwitchingProtocols }
            interimCount += 1
            guard interimCount <= limits.interimResponses else { throw HTTPResponseError.tooManyInterimResponses }
            state = .statusLine
            return nil
        }
        let codings = headers.filter { $0.name == "transfer-encoding" }
            .flatMap { $0.value.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingHTTPWhitespace().lowercased() } }
        let lengths = headers.filter { $0.name == "content-length" }.map(\.value)
        if !codings.isEmpty && !lengths.isEmpty { throw HTTPResponseError.conflictingFraming }
        if !codings.isEmpty && codings != ["chunked"] {
            throw HTTPResponseError.unsupportedTransferEncoding(codings.joined(separator: ", "))
        }
        var length: Int?
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), (1...18).contains(first.utf8.count), first.utf8.allSatisfy(isDigit),
                  let n = Int(first)
            else { throw HTTPResponseError.invalidContentLength }
            length = n
        }
        if requestMethod == "HEAD" || status == 204 || status == 304 { return complete() }
        if !codings.isEmpty {
            state = .chunkSize
        } else if let length {
            guard length <= limits.body else { throw HTTPResponseError.bodyTooLarge }
            state = .fixedBody(remaining: length)
        } else {
            state = .closeDelimited
        }
        return nil
    }

    /// chunk-size [ chunk-ext ]: hex digits, then nothing or `;` extensions (ignored).
    private func chunkSize(_ line: ArraySlice<UInt8>) throws -> Int {
        let hexDigits = line.prefix { hexValue($0) != nil }
        guard !hexDigits.isEmpty else { throw HTTPResponseError.malformedChunk }
        let rest = line[hexDigits.endIndex...].drop { $0 == 0x20 || $0 == 0x09 }
        guard rest.isEmpty || rest.first == UInt8(ascii: ";") else { throw HTTPResponseError.malformedChunk }
        guard rest.allSatisfy({ $0 == 0x09 || $0 >= 0x20 && $0 != 0x7F }) else { throw HTTPResponseError.malformedChunk }
        var size = 0
        for digit in hexDigits {
            size = size * 16 + Int(hexValue(digit)!)
            // Past the body limit already: stop before the arithmetic can overflow.
            if size > limits.body { throw HTTPResponseError.bodyTooLarge }
        }
        return size
    }

    private mutating func complete() -> HTTPClientResponse {
        let response = makeResponse(closeDelimited: false)
        state = .statusLine
        body = []
        headers = []
        interimCount = 0
        lineBytes = 0
        return response
    }

    private func makeResponse(closeDelimited: Bool) -> HTTPClientResponse {
        HTTPClientResponse(minorVersion: minorVersion, status: status, reason: reason, headers: headers, body: body,
                           closeDelimited: closeDelimited)
    }
}

private func isDigit(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) }

private func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: return b - 0x30
    case 0x41...0x46: return b - 0x41 + 10
    case 0x61...0x66: return b - 0x61 + 10
    default: return nil
    }
}

/// UTF-8 when it is; otherwise each byte as the ISO-8859-1 character it was in
/// older HTTP (obs-text), so that no byte is lost.
private func text(_ bytes: some Collection<UInt8>) -> String {
    if let utf8 = String(validating: bytes, as: UTF8.self) { return utf8 }
    return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
}
