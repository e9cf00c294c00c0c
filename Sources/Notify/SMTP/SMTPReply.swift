/// One reply of an SMTP server (RFC 5321 section 4.2): a three-digit code and
/// the text of each of its lines, in order.
public struct SMTPReply: Equatable, Sendable, CustomStringConvertible {
    public var code: Int
    /// The text after the code and its `-` or space, one element per line, as received.
    public var lines: [String]
    /// The RFC 3463 status code that starts the first line's text (`2.1.0`), when
    /// there is one and its class agrees with the reply code's first digit.
    public var enhanced: SMTPEnhancedStatus?

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
        self.enhanced = SMTPEnhancedStatus(leading: lines.first ?? "", replyCode: code)
    }

    /// 2yz: the command was done.
    public var isPositive: Bool { code / 100 == 2 }
    /// 3yz: go on (354 after DATA, 334 during AUTH).
    public var isIntermediate: Bool { code / 100 == 3 }
    /// 4yz: not now; the same command may work later.
    public var isTransientFailure: Bool { code / 100 == 4 }
    /// 5yz: never, as sent.
    public var isPermanentFailure: Bool { code / 100 == 5 }

    /// The reply as a server writes it (`250-first`, `250 last`), one line per element.
    public var description: String {
        lines.enumerated().map { i, text in "\(code)\(i == lines.count - 1 ? " " : "-")\(text)" }.joined(separator: "\n")
    }
}

/// An enhanced mail system status code (RFC 3463): `class.subject.detail`.
/// A struct rather than a tuple so that replies compare with `==`.
public struct SMTPEnhancedStatus: Equatable, Sendable {
    public var statusClass: Int
    public var subject: Int
    public var detail: Int

    public init(_ statusClass: Int, _ subject: Int, _ detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Reads `class.subject.detail` at the start of `text`, followed by a space or the
    /// end: class 2, 4 or 5 (the reply code's first digit), subject and detail of 1-3
    /// digits. Anything else is plain text, not a status code.
    init?(leading text: String, replyCode: Int) {
        let token = text.utf8.prefix { $0 != 0x20 }
        let parts = token.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var numbers: [Int] = []
        for (i, part) in parts.enumerated() {
            let maxDigits = i == 0 ? 1 : 3
            guard (1...maxDigits).contains(part.count), part.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
            numbers.append(part.reduce(0) { $0 * 10 + Int($1 - 0x30) })
        }
        guard [2, 4, 5].contains(numbers[0]), numbers[0] == replyCode / 100 else { return nil }
        self.init(numbers[0], numbers[1], numbers[2])
    }
}
