/// How the connection to the submission server is protected (setting `smtp_tls`).
public enum SMTPSecurity: String, Sendable, CaseIterable {
    /// Plain TCP upgraded with STARTTLS (port 587), which is required: without it no
    /// credentials and no mail are sent.
    case starttls
    /// TLS from the first byte (port 465): the caller completes the handshake before
    /// the session reads the greeting.
    case implicit
    /// No TLS at all: for tests against a local server only.
    case none
}

/// `smtp_username` and `smtp_password`.
public struct SMTPCredentials: Equatable, Sendable {
    public var username: String
    public var password: String
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// Why a session cannot be set up: each names the value to fix.
public enum SMTPSetupError: Error, Equatable, Sendable {
    /// The EHLO name must be 1-255 printable ASCII bytes without spaces.
    case invalidClientName(String)
    /// A user name or password with NUL (SASL PLAIN separates them with NUL), or empty.
    case invalidCredentials
    /// An envelope address must be printable ASCII without spaces, `<` or `>`, with an `@`
    /// (the sender may be empty: the null reverse-path).
    case invalidAddress(String)
    case noRecipients
    /// More than RFC 5321 4.5.3.1.8's 100 recipients: a server may refuse the rest.
    case tooManyRecipients(Int)
}

public struct SMTPConfiguration: Equatable, Sendable {
    public var security: SMTPSecurity
    /// The name this client gives in EHLO (a domain, or an address literal like `[127.0.0.1]`).
    public var clientName: String
    /// When set, the session authenticates (AUTH PLAIN, else LOGIN) before MAIL.
    public var credentials: SMTPCredentials?

    public init(security: SMTPSecurity, clientName: String, credentials: SMTPCredentials? = nil) throws {
        guard (1...255).contains(clientName.utf8.count), clientName.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw SMTPSetupError.invalidClientName(clientName)
        }
        if let credentials {
            guard !credentials.username.isEmpty, !credentials.password.isEmpty,
                  !credentials.username.utf8.contains(0), !credentials.password.utf8.contains(0)
            else { throw SMTPSetupError.invalidCredentials }
        }
        self.security = security
        self.clientName = clientName
        self.credentials = credentials
    }
}

/// One mail to send: the SMTP envelope and the RFC 5322 message (CR LF line
/// endings, not yet dot-stuffed: the session does that).
public struct SMTPEnvelope: Equatable, Sendable {
    /// The reverse-path; empty for the null path `<>`.
    public let sender: String
    public let recipients: [String]
    public let message: [UInt8]

    public init(sender: String, recipients: [String], message: [UInt8]) throws {
        guard sender.isEmpty || isEnvelopeAddress(sender) else { throw SMTPSetupError.invalidAddress(sender) }
        guard !recipients.isEmpty else { throw SMTPSetupError.noRecipients }
        guard recipients.count <= 100 else { throw SMTPSetupError.tooManyRecipients(recipients.count) }
        for recipient in recipients where !isEnvelopeAddress(recipient) { throw SMTPSetupError.invalidAddress(recipient) }
        self.sender = sender
        self.recipients = recipients
        self.message = message
    }
}

/// ASCII only: non-ASCII addresses need SMTPUTF8 and RFC 6532 headers, which
/// Parley does not write yet. No spaces, controls or angle brackets, so that an
/// address cannot end its command early or smuggle a second one.
func isEnvelopeAddress(_ address: String) -> Bool {
    let bytes = Array(address.utf8)
    guard (3...254).contains(bytes.count), let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1 else { return false }
    return bytes.allSatisfy { (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
}
