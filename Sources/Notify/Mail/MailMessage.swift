import Chat

/// A mailbox for `From` and `To`: an address and, optionally, a display name.
public struct MailAddress: Equatable, Sendable {
    public let address: String
    public let displayName: String?

    /// The address must be ASCII `local@domain` without spaces or angle brackets
    /// (non-ASCII addresses would need SMTPUTF8 and RFC 6532 headers).
    public init(_ address: String, displayName: String? = nil) throws {
        guard isEnvelopeAddress(address) else { throw MailMessageError.invalidAddress(address) }
        self.address = address
        self.displayName = displayName.flatMap { $0.isEmpty ? nil : $0 }
    }
}

public enum MailMessageError: Error, Equatable, Sendable {
    case invalidAddress(String)
    case noRecipients
    /// The Message-ID must be `<left@right>`: printable ASCII, no spaces, no more angle brackets.
    case invalidMessageID(String)
}

/// How the body is written: whichever of the two is shorter for this text.
public enum MailTransferEncoding: String, Equatable, Sendable {
    /// Mostly-ASCII text (English, most European languages).
    case quotedPrintable = "quoted-printable"
    /// Text whose bytes are mostly not ASCII (Cyrillic, CJK, emoji), where each
    /// byte as `=XX` would triple it.
    case base64
}

/// An RFC 5322 text message: headers within 78-character lines, a UTF-8 body in
/// quoted-printable or base64, CR LF line endings throughout. Build one, then send
/// `encoded()` as the `SMTPEnvelope`'s message.
public struct MailMessage: Equatable, Sendable {
    public let from: MailAddress
    public let to: [MailAddress]
    public let subject: String
    public let secondsSince1970: Int64
    public let utcOffsetMinutes: Int
    /// Stable per notification (`<notification-id@host>`), so that a resend after a
    /// crash is recognisably the same mail.
    public let messageID: String
    public let body: String

    public init(from: MailAddress, to: [MailAddress], subject: String, secondsSince1970: Int64, utcOffsetMinutes: Int = 0,
                messageID: String, body: String) throws {
        guard !to.isEmpty else { throw MailMessageError.noRecipients }
        guard isMessageID(messageID) else { throw MailMessageError.invalidMessageID(messageID) }
        self.from = from
        self.to = to
        self.subject = subject
        self.secondsSince1970 = secondsSince1970
        self.utcOffsetMinutes = utcOffsetMinutes
        self.messageID = messageID
        self.body = body
    }

    /// The body's lines, line breaks of any kind (CR LF, LF, CR) taken as one.
    var bodyLines: [[UInt8]] {
        var lines: [[UInt8]] = [[]]
        let bytes = Array(body.utf8)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0D || b == 0x0A {
                lines.append([])
                i += (b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A) ? 2 : 1
            } else {
                lines[lines.count - 1].append(b)
                i += 1
            }
        }
        // A final line break ends the last line; it does not start an empty one.
        if lines.count > 1 && lines[lines.count - 1].isEmpty { lines.removeLast() }
        return lines
    }

    public var transferEncoding: MailTransferEncoding { encodedBody().encoding }

    private func encodedBody() -> (encoding: MailTransferEncoding, text: String) {
        let lines = bodyLines
        let qp = QuotedPrintable.encode(lines: lines)
        // base64 of the text with CR LF breaks, in lines of 76 characters.
        var joined: [UInt8] = []
        for (n, line) in lines.enumerated() { joined += (n > 0 ? [0x0D, 0x0A] : []) + line }
        let b64 = Array(Base64.encodePadded(joined, alphabet: .standard).utf8)
        let b64Lines = stride(from: 0, to: b64.count, by: 76).map { String(decoding: b64[$0..<min($0 + 76, b64.count)], as: UTF8.self) }
        let b64Text = b64Lines.joined(separator: "\r\n")
        return qp.utf8.count <= b64Text.utf8.count ? (.quotedPrintable, qp) : (.base64, b64Text)
    }

    /// The message, headers then body, every line ending in CR LF.
    public func encoded() -> [UInt8] {
        var headers: [String] = []
        headers.append("Date: " + MailDate.format(secondsSince1970: secondsSince1970, utcOffsetMinutes: utcOffsetMinutes))
        headers.append(addressHeader("From", [from]))
        headers.append(addressHeader("To", to))
        var subjectHeader = FoldedHeader(name: "Subject")
        for unit in MailHeaderEncoding.unstructuredUnits(subject) { subjectHeader.add(unit) }
        headers.append(subjectHeader.text)
        headers.append("Message-ID: " + messageID)
        headers.append("MIME-Version: 1.0")
        headers.append("Content-Type: text/plain; charset=utf-8")
        let (encoding, text) = encodedBody()
        headers.append("Content-Transfer-Encoding: " + encoding.rawValue)
        // A notification, not a person writing: vacation responders stay quiet (RFC 3834).
        headers.append("Auto-Submitted: auto-generated")
        return Array((headers.joined(separator: "\r\n") + "\r\n\r\n" + text + "\r\n").utf8)
    }

    private func addressHeader(_ name: String, _ addresses: [MailAddress]) -> String {
        var header = FoldedHeader(name: name)
        for (n, mailbox) in addresses.enumerated() {
            var separator = n == 0 ? " " : ", "
            if let name = mailbox.displayName {
                for word in MailHeaderEncoding.phraseUnits(name) {
                    header.add(word, separator: separator)
                    separator = " "
                }
            }
            header.add(mailbox.displayName == nil ? mailbox.address : "<\(mailbox.address)>", separator: separator)
        }
        return header.text
    }
}

/// msg-id = "<" id-left "@" id-right ">" (RFC 5322 3.6.4), kept to printable ASCII.
func isMessageID(_ id: String) -> Bool {
    let bytes = Array(id.utf8)
    guard (5...250).contains(bytes.count), bytes.first == UInt8(ascii: "<"), bytes.last == UInt8(ascii: ">") else { return false }
    let inner = bytes[1..<(bytes.count - 1)]
    guard let at = inner.firstIndex(of: UInt8(ascii: "@")), at > inner.startIndex, at < inner.endIndex - 1,
          inner.filter({ $0 == UInt8(ascii: "@") }).count == 1
    else { return false }
    return inner.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
}
