/// The service extensions a server lists in its EHLO reply (RFC 5321 4.1.1.1):
/// the first line greets, each further line is a keyword and its parameters.
public struct SMTPCapabilities: Equatable, Sendable {
    /// STARTTLS (RFC 3207).
    public var startTLS = false
    /// AUTH mechanisms (RFC 4954), upper-cased: `PLAIN`, `LOGIN`, ...
    public var authMechanisms: [String] = []
    /// PIPELINING (RFC 2920).
    public var pipelining = false
    /// SIZE (RFC 1870): nil when not offered, 0 when offered without a fixed maximum.
    public var maximumSize: Int?
    /// 8BITMIME (RFC 6152).
    public var eightBitMIME = false
    /// SMTPUTF8 (RFC 6531).
    public var smtpUTF8 = false
    /// Every keyword (upper-cased) with its parameters, in the order listed.
    public var keywords: [(keyword: String, parameters: [String])] = []

    public init() {}

    /// Reads the lines after the first of a 250 reply to EHLO. Lines that are not
    /// `keyword *(SP param)` are skipped: a server's oddity should not cost the mail.
    public init(ehlo reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard var keyword = words.first?.uppercased() else { continue }
            var parameters = Array(words.dropFirst())
            // Old servers (and Outlook) still write "AUTH=LOGIN PLAIN".
            if keyword.hasPrefix("AUTH=") {
                parameters.insert(String(keyword.dropFirst(5)), at: 0)
                keyword = "AUTH"
            }
            guard keyword.utf8.allSatisfy({ isKeywordByte($0) }), keyword.utf8.first.map(isAlphaNumeric) == true else { continue }
            keywords.append((keyword, parameters))
            switch keyword {
            case "STARTTLS": startTLS = true
            case "PIPELINING": pipelining = true
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "AUTH":
                for mechanism in parameters.map({ $0.uppercased() }) where !authMechanisms.contains(mechanism) {
                    authMechanisms.append(mechanism)
                }
            case "SIZE":
                if let first = parameters.first {
                    if first.utf8.count <= 18, first.utf8.allSatisfy({ (0x30...0x39).contains($0) }) { maximumSize = Int(first) }
                } else {
                    maximumSize = 0
                }
            default: break
            }
        }
    }

    public static func == (a: SMTPCapabilities, b: SMTPCapabilities) -> Bool {
        a.startTLS == b.startTLS && a.authMechanisms == b.authMechanisms && a.pipelining == b.pipelining
            && a.maximumSize == b.maximumSize && a.eightBitMIME == b.eightBitMIME && a.smtpUTF8 == b.smtpUTF8
            && a.keywords.map(\.keyword) == b.keywords.map(\.keyword) && a.keywords.map(\.parameters) == b.keywords.map(\.parameters)
    }
}

/// ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
private func isKeywordByte(_ b: UInt8) -> Bool { isAlphaNumeric(b) || b == UInt8(ascii: "-") }
private func isAlphaNumeric(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) }
