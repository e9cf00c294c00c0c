/// Why the server's bytes are not SMTP replies. Each case names the line (1 for
/// the first line the parser was given) so that a log says where it went wrong.
public enum SMTPReplyError: Error, Equatable, Sendable {
    /// A line does not start with three digits (2-5, 0-5, 0-9) followed by `-`, a space or CR LF.
    case malformedLine(line: Int)
    /// A continuation line carries a different code from the first line of its reply.
    case codeMismatch(line: Int, expected: Int, found: Int)
    /// A line ends in LF without CR, or has a CR that is not followed by LF.
    /// RFC 5321 2.3.8 requires CR LF; tolerating a lone LF would let a server (or
    /// whatever sits between) make replies that other parsers split differently.
    case bareLineEnding(line: Int)
    /// A control character other than HT, or bytes that are not UTF-8.
    case invalidText(line: Int)
    /// A line (with its CR LF) is longer than `SMTPReplyLimits.lineBytes`.
    case lineTooLong(line: Int)
    /// A reply has more lines than `SMTPReplyLimits.lines`.
    case tooManyLines(line: Int)
}

/// Bounds on what a server may send in one reply. RFC 5321 4.5.3.1.5 says 512
/// bytes a line; servers exceed that in EHLO and error texts, so the default
/// allows more, but not without end.
public struct SMTPReplyLimits: Equatable, Sendable {
    /// Bytes of one line, CR LF included.
    public var lineBytes = 2_000
    /// Lines of one reply (an EHLO reply has one per extension).
    public var lines = 100
    public init() {}
}

/// An incremental parser of SMTP replies: `append` bytes as they arrive, then call
/// `next` until it returns nil. The result does not depend on how the bytes were
/// split. After an error every `next` throws it again: the connection is done.
public struct SMTPReplyParser: Sendable {
    public let limits: SMTPReplyLimits
    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for LF goes on: bytes before it hold none.
    private var scanMark = 0
    /// The lines so far of a reply whose last line has not come yet.
    private var pendingCode: Int?
    private var pendingLines: [String] = []
    private var lineNumber = 0
    private var failure: SMTPReplyError?

    public init(limits: SMTPReplyLimits = SMTPReplyLimits()) {
        self.limits = limits
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 4096 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            scanMark -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received and not yet part of a complete reply. After the 220 that
    /// answers STARTTLS this must be zero: anything already there was sent before
    /// TLS and must not be read as if it came through it (RFC 3207 section 4.2).
    public var bufferedByteCount: Int { buffer.count - start }

    /// The next complete reply, or nil when more bytes are needed.
    public mutating func next() throws -> SMTPReply? {
        if let failure { throw failure }
        do {
            return try parseNext()
        } catch let error as SMTPReplyError {
            failure = error
            throw error
        }
    }

    private mutating func parseNext() throws -> SMTPReply? {
        while true {
            guard let lf = buffer[scanMark...].firstIndex(of: 0x0A) else {
                scanMark = buffer.count
                // A line without its LF yet: once it has lineBytes bytes, the LF
                // that ends it would make it longer than the limit.
                if buffer.count - start >= limits.lineBytes { throw SMTPReplyError.lineTooLong(line: lineNumber + 1) }
                return nil
            }
            lineNumber += 1
            let line = start..<(lf + 1)
            start = lf + 1
            scanMark = start
            if let reply = try take(line) { return reply }
        }
    }

    /// One line, LF included: its reply when it is the last line of one.
    private mutating func take(_ range: Range<Int>) throws -> SMTPReply? {
        let n = lineNumber
        guard range.count <= limits.lineBytes else { throw SMTPReplyError.lineTooLong(line: n) }
        guard range.count >= 2, buffer[range.upperBound - 2] == 0x0D else { throw SMTPReplyError.bareLineEnding(line: n) }
        let content = range.lowerBound..<(range.upperBound - 2)
        if buffer[content].contains(0x0D) { throw SMTPReplyError.bareLineEnding(line: n) }
        guard content.count >= 3 else { throw SMTPReplyError.malformedLine(line: n) }
        let d = content.lowerBound
        let digits = (buffer[d], buffer[d + 1], buffer[d + 2])
        guard (0x32...0x35).contains(digits.0), (0x30...0x35).contains(digits.1), (0x30...0x39).contains(digits.2) else {
            throw SMTPReplyError.malformedLine(line: n)
        }
        let code = Int(digits.0 - 0x30) * 100 + Int(digits.1 - 0x30) * 10 + Int(digits.2 - 0x30)
        let last: Bool
        if content.count == 3 {
            last = true
        } else if buffer[d + 3] == 0x20 {
            last = true
        } else if buffer[d + 3] == UInt8(ascii: "-") {
            last = false
        } else {
            throw SMTPReplyError.malformedLine(line: n)
        }
        if let expected = pendingCode, expected != code {
            throw SMTPReplyError.codeMismatch(line: n, expected: expected, found: code)
        }
        let textBytes = buffer[min(d + 4, content.upperBound)..<content.upperBound]
        guard textBytes.allSatisfy({ $0 == 0x09 || $0 >= 0x20 && $0 != 0x7F }),
              let text = String(validating: textBytes, as: UTF8.self)
        else { throw SMTPReplyError.invalidText(line: n) }
        pendingLines.append(text)
        guard pendingLines.count <= limits.lines else { throw SMTPReplyError.tooManyLines(line: n) }
        if !last {
            pendingCode = code
            return nil
        }
        let reply = SMTPReply(code: code, lines: pendingLines)
        pendingCode = nil
        pendingLines = []
        return reply
    }
}
