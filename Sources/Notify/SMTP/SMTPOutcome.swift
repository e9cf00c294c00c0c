/// The step of the conversation a reply answered.
public enum SMTPStep: String, Equatable, Sendable {
    case greeting, ehlo, startTLS, authentication, mailFrom, rcptTo, data, message
}

/// A recipient the server refused while it accepted others.
public struct SMTPRefusedRecipient: Equatable, Sendable {
    public var address: String
    public var reply: SMTPReply
    public init(address: String, reply: SMTPReply) {
        self.address = address
        self.reply = reply
    }
}

/// The server did not keep to the protocol, or would have had this client break
/// its security rules. Worth a retry later (a server mid-upgrade), but each counts
/// as an attempt.
public enum SMTPProtocolError: Error, Equatable, Sendable {
    case malformedReply(SMTPReplyError)
    /// A code that the step does not allow (354 to MAIL, 334 to AUTH PLAIN, ...).
    case unexpectedReply(SMTPStep, SMTPReply)
    /// Mode `starttls` and the server does not offer STARTTLS: nothing is sent in the clear.
    case startTLSNotOffered
    /// Credentials are configured and the server offers neither AUTH PLAIN nor LOGIN
    /// (some servers offer AUTH only after STARTTLS).
    case authenticationNotOffered
    /// Bytes that arrived after the server's 220 to STARTTLS and before the
    /// handshake: an injection attempt (RFC 3207 section 6, CVE-2011-0411 style).
    case plaintextAfterStartTLS
    /// Bytes that arrived with a reply, ahead of the command they could answer:
    /// replies are never read ahead of what was asked (RFC 5321 4.3.1, RFC 2920 3.1
    /// allows many at once only to a pipelined batch).
    case unsolicitedReply
    /// The server closed the connection before the outcome was known. Closed during
    /// `.message` the mail may have arrived; the stable Message-ID marks a resend.
    case connectionClosed(SMTPStep)
}

/// How one mail's delivery ended.
public enum SMTPOutcome: Equatable, Sendable {
    /// The server took the message (its reply to the end of data), for every
    /// recipient but the refused ones.
    case delivered(SMTPReply, refused: [SMTPRefusedRecipient])
    /// A 4yz reply: retry later.
    case temporaryFailure(SMTPStep, SMTPReply)
    /// A 5yz reply: the mail goes to the dead-letter list.
    case permanentFailure(SMTPStep, SMTPReply)
    case protocolError(SMTPProtocolError)
}

/// What the caller does next, in order.
public enum SMTPAction: Equatable, Sendable {
    /// Write these bytes to the server.
    case send([UInt8])
    /// Run the TLS handshake on the connection now (the server said 220 to
    /// STARTTLS), then call `SMTPSession.tlsEstablished()`.
    case startTLS
    /// The outcome is settled: close the connection once the bytes before this are
    /// written (a reply to QUIT need not be awaited).
    case close(SMTPOutcome)
}
