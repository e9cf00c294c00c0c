import Chat

/// An SMTP client conversation for one mail, without I/O: feed it what the server
/// says (`receive`), and it answers with what to send, when to start TLS and when
/// the outcome is settled. The order (RFC 5321 3.3, RFC 3207, RFC 4954, RFC 2920):
///
///     220 greeting -> EHLO -> [STARTTLS -> 220 -> (TLS) -> EHLO]
///     -> [AUTH PLAIN | AUTH LOGIN, 334, user, 334, password] -> 235
///     -> MAIL FROM -> RCPT TO ... -> DATA -> 354 -> message -> 250 -> QUIT
///
/// With PIPELINING, MAIL, every RCPT and DATA go out in one write and the replies
/// are matched to them in order. In mode `starttls` nothing but EHLO and STARTTLS
/// is sent before TLS.
public struct SMTPSession: Sendable {
    public let configuration: SMTPConfiguration
    public let envelope: SMTPEnvelope
    /// What the server offered in its last EHLO reply.
    public private(set) var capabilities: SMTPCapabilities?
    /// Set once, with the `.close` action that reports it.
    public private(set) var outcome: SMTPOutcome?
    /// Whether the connection is under TLS (from the start in mode `implicit`).
    public private(set) var tlsActive: Bool

    private var parser = SMTPReplyParser()
    private var state = State.greeting

    private enum State {
        case greeting, ehlo, startTLS, tlsHandshake
        case authPlain, authLoginUsername, authLoginPassword, authLoginDone
        case mailFrom
        case rcptTo(index: Int)
        case data
        /// Pipelined MAIL, RCPTs and DATA: the replies so far, in order.
        case batch(replies: [SMTPReply])
        case message
        case done

        var awaitsSeveralReplies: Bool {
            if case .batch = self { return true }
            return false
        }

        var step: SMTPStep {
            switch self {
            case .greeting: return .greeting
            case .ehlo: return .ehlo
            case .startTLS, .tlsHandshake: return .startTLS
            case .authPlain, .authLoginUsername, .authLoginPassword, .authLoginDone: return .authentication
            case .mailFrom, .batch: return .mailFrom
            case .rcptTo: return .rcptTo
            case .data: return .data
            case .message, .done: return .message
            }
        }
    }

    /// Replies to RCPT so far: accepted addresses, and the refusals.
    private var accepted: [String] = []
    private var refused: [SMTPRefusedRecipient] = []

    public init(configuration: SMTPConfiguration, envelope: SMTPEnvelope) {
        self.configuration = configuration
        self.envelope = envelope
        self.tlsActive = configuration.security == .implicit
    }

    // MARK: - Events from the connection

    /// Bytes from the server (decrypted, under TLS).
    public mutating func receive(_ bytes: some Sequence<UInt8>) -> [SMTPAction] {
        guard outcome == nil else { return [] }
        if case .tlsHandshake = state { return fail(.plaintextAfterStartTLS) }
        parser.append(bytes)
        var actions: [SMTPAction] = []
        while outcome == nil {
            let reply: SMTPReply?
            do {
                reply = try parser.next()
            } catch let error as SMTPReplyError {
                return actions + fail(.malformedReply(error))
            } catch {
                preconditionFailure("SMTPReplyParser throws only SMTPReplyError")
            }
            guard let reply else { break }
            actions += handle(reply)
            // Every step but a pipelined batch waits for one reply to what it just
            // sent; bytes already here were written before the server could read
            // that command (an early talker, or replies injected ahead).
            if outcome == nil, !state.awaitsSeveralReplies, parser.bufferedByteCount > 0 {
                return actions + fail(.unsolicitedReply)
            }
        }
        return actions
    }

    /// The TLS handshake that `.startTLS` asked for is done: greet again, as RFC
    /// 3207 4.2 requires (what the server offered before TLS no longer counts).
    public mutating func tlsEstablished() -> [SMTPAction] {
        guard outcome == nil, case .tlsHandshake = state else { return [] }
        tlsActive = true
        capabilities = nil
        parser = SMTPReplyParser(limits: parser.limits)
        state = .ehlo
        return [send("EHLO \(configuration.clientName)")]
    }

    /// The server closed the connection (or the caller's timer gave up on it).
    public mutating func connectionClosed() -> [SMTPAction] {
        guard outcome == nil else { return [] }
        return fail(.connectionClosed(state.step))
    }

    // MARK: - Replies, by step

    private mutating func handle(_ reply: SMTPReply) -> [SMTPAction] {
        // 421: the server is closing the channel; QUIT would go nowhere.
        if reply.code == 421 { return finish(.temporaryFailure(state.step, reply), quit: false) }
        switch state {
        case .greeting:
            return expect(reply, 220) { $0.sendEHLO() }
        case .ehlo:
            return expect(reply, 250) { $0.afterEHLO(reply) }
        case .startTLS:
            return expect(reply, 220) { session in
                // Anything queued behind the 220 came in the clear.
                guard session.parser.bufferedByteCount == 0 else { return session.fail(.plaintextAfterStartTLS) }
                session.state = .tlsHandshake
                return [.startTLS]
            }
        case .tlsHandshake:
            return fail(.plaintextAfterStartTLS)
        case .authPlain, .authLoginDone:
            return expect(reply, 235) { $0.startTransaction() }
        case .authLoginUsername:
            return expect(reply, 334) { session in
                session.state = .authLoginPassword
                return [session.send(Base64.encodePadded(Array(session.configuration.credentials!.username.utf8), alphabet: .standard))]
            }
        case .authLoginPassword:
            return expect(reply, 334) { session in
                session.state = .authLoginDone
                return [session.send(Base64.encodePadded(Array(session.configuration.credentials!.password.utf8), alphabet: .standard))]
            }
        case .mailFrom:
            return expect(reply, 250...259) { session in
                session.state = .rcptTo(index: 0)
                return [session.send(session.rcptCommand(0))]
            }
        case .rcptTo(let index):
            return recipientReplied(index, reply)
        case .data:
            return expect(reply, 354) { $0.sendMessage() }
        case .batch(var replies):
            replies.append(reply)
            guard replies.count == envelope.recipients.count + 2 else {
                state = .batch(replies: replies)
                return []
            }
            return batchReplied(replies)
        case .message:
            return expect(reply, 250...259) { session in
                session.finish(.delivered(reply, refused: session.refused), quit: true)
            }
        case .done:
            return []
        }
    }

    private mutating func sendEHLO() -> [SMTPAction] {
        state = .ehlo
        return [send("EHLO \(configuration.clientName)")]
    }

    private mutating func afterEHLO(_ reply: SMTPReply) -> [SMTPAction] {
        let offered = SMTPCapabilities(ehlo: reply)
        capabilities = offered
        if configuration.security == .starttls && !tlsActive {
            guard offered.startTLS else { return fail(.startTLSNotOffered, quit: true) }
            state = .startTLS
            return [send("STARTTLS")]
        }
        guard let credentials = configuration.credentials else { return startTransaction() }
        if offered.authMechanisms.contains("PLAIN") {
            state = .authPlain
            let response = [0] + Array(credentials.username.utf8) + [0] + Array(credentials.password.utf8)
            return [send("AUTH PLAIN " + Base64.encodePadded(response, alphabet: .standard))]
        }
        if offered.authMechanisms.contains("LOGIN") {
            state = .authLoginUsername
            return [send("AUTH LOGIN")]
        }
        return fail(.authenticationNotOffered, quit: true)
    }

    // MARK: - The mail transaction

    private mutating func startTransaction() -> [SMTPAction] {
        accepted = []
        refused = []
        if capabilities?.pipelining == true {
            state = .batch(replies: [])
            var commands = mailCommand() + "\r\n"
            for i in envelope.recipients.indices { commands += rcptCommand(i) + "\r\n" }
            commands += "DATA\r\n"
            return [.send(Array(commands.utf8))]
        }
        state = .mailFrom
        return [send(mailCommand())]
    }

    private func mailCommand() -> String {
        // SIZE=n lets the server refuse a message too large before it is sent (RFC 1870).
        let size = capabilities?.maximumSize != nil ? " SIZE=\(SMTPData.dotStuffed(envelope.message).count)" : ""
        return "MAIL FROM:<\(envelope.sender)>\(size)"
    }

    private func rcptCommand(_ index: Int) -> String { "RCPT TO:<\(envelope.recipients[index])>" }

    /// Not pipelined: one RCPT answered, then the next one, or DATA, or the end.
    private mutating func recipientReplied(_ index: Int, _ reply: SMTPReply) -> [SMTPAction] {
        guard record(reply, forRecipient: index) else { return fail(.unexpectedReply(.rcptTo, reply)) }
        if index + 1 < envelope.recipients.count {
            state = .rcptTo(index: index + 1)
            return [send(rcptCommand(index + 1))]
        }
        if let failure = allRefused() { return finish(failure, quit: true) }
        state = .data
        return [send("DATA")]
    }

    /// Pipelined: every reply of the batch is in (MAIL, each RCPT, DATA).
    private mutating func batchReplied(_ replies: [SMTPReply]) -> [SMTPAction] {
        let mail = replies[0], data = replies[replies.count - 1]
        // A 354 to DATA means the server waits for a message; QUIT would be read as
        // one, so a failure closes without it.
        let dataOpen = data.code == 354
        if !(250...259).contains(mail.code) {
            guard let failure = replyFailure(.mailFrom, mail) else { return fail(.unexpectedReply(.mailFrom, mail)) }
            return finish(failure, quit: !dataOpen)
        }
        for i in envelope.recipients.indices where !record(replies[1 + i], forRecipient: i) {
            return fail(.unexpectedReply(.rcptTo, replies[1 + i]))
        }
        if let failure = allRefused() { return finish(failure, quit: !dataOpen) }
        if dataOpen { return sendMessage() }
        guard let failure = replyFailure(.data, data) else { return fail(.unexpectedReply(.data, data)) }
        return finish(failure, quit: true)
    }

    /// Files an RCPT reply; false when it is neither 25x, 4yz nor 5yz.
    private mutating func record(_ reply: SMTPReply, forRecipient index: Int) -> Bool {
        let address = envelope.recipients[index]
        if (250...259).contains(reply.code) {
            accepted.append(address)
        } else if reply.isTransientFailure || reply.isPermanentFailure {
            refused.append(SMTPRefusedRecipient(address: address, reply: reply))
        } else {
            return false
        }
        return true
    }

    /// When no recipient was accepted: a temporary failure if any refusal was
    /// temporary (a retry may reach that one), else the first permanent one.
    private func allRefused() -> SMTPOutcome? {
        guard accepted.isEmpty, let first = refused.first else { return nil }
        if let transient = refused.first(where: { $0.reply.isTransientFailure }) {
            return .temporaryFailure(.rcptTo, transient.reply)
        }
        return .permanentFailure(.rcptTo, first.reply)
    }

    private mutating func sendMessage() -> [SMTPAction] {
        state = .message
        return [.send(SMTPData.dotStuffed(envelope.message))]
    }

    // MARK: - Helpers

    /// Goes on when the reply has the code the step wants; ends the mail on a 4yz or
    /// 5yz; anything else is a protocol error.
    private mutating func expect(_ reply: SMTPReply, _ codes: ClosedRange<Int>, then next: (inout SMTPSession) -> [SMTPAction]) -> [SMTPAction] {
        if codes.contains(reply.code) { return next(&self) }
        if let failure = replyFailure(state.step, reply) { return finish(failure, quit: true) }
        return fail(.unexpectedReply(state.step, reply))
    }

    private mutating func expect(_ reply: SMTPReply, _ code: Int, then next: (inout SMTPSession) -> [SMTPAction]) -> [SMTPAction] {
        expect(reply, code...code, then: next)
    }

    private func replyFailure(_ step: SMTPStep, _ reply: SMTPReply) -> SMTPOutcome? {
        if reply.isTransientFailure { return .temporaryFailure(step, reply) }
        if reply.isPermanentFailure { return .permanentFailure(step, reply) }
        return nil
    }

    private mutating func fail(_ error: SMTPProtocolError, quit: Bool = false) -> [SMTPAction] {
        finish(.protocolError(error), quit: quit)
    }

    private mutating func finish(_ result: SMTPOutcome, quit: Bool) -> [SMTPAction] {
        outcome = result
        state = .done
        return (quit ? [send("QUIT")] : []) + [.close(result)]
    }

    private func send(_ command: String) -> SMTPAction { .send(Array((command + "\r\n").utf8)) }
}
