import Testing
import Notify

/// A scripted conversation: each `server` turn is fed to the session, and what it
/// does is written down as a transcript (`S:` server lines, `C:` client lines,
/// `-- TLS --` where the caller runs the handshake, `-- close: ... --` with the
/// outcome).
struct Transcript {
    var session: SMTPSession
    var lines: [String] = []
    /// Feed each server turn one byte at a time instead of in one piece.
    var bytewise = false

    init(_ security: SMTPSecurity, credentials: SMTPCredentials? = nil, recipients: [String] = ["alice@example.org"],
         message: String = "Subject: hi\r\n\r\nHello\r\n.signature\r\n") throws {
        let configuration = try SMTPConfiguration(security: security, clientName: "parley.example", credentials: credentials)
        let envelope = try SMTPEnvelope(sender: "notify@parley.example", recipients: recipients, message: Array(message.utf8))
        session = SMTPSession(configuration: configuration, envelope: envelope)
    }

    mutating func server(_ text: String) {
        lines += text.split(separator: "\n").map { "S: " + $0 }
        let bytes = Array(text.split(separator: "\n").map { $0 + "\r\n" }.joined().utf8)
        if bytewise {
            for b in bytes { record(session.receive([b])) }
        } else {
            record(session.receive(bytes))
        }
    }

    /// Raw bytes from the server, CR LF and all, not echoed as S: lines.
    mutating func serverBytes(_ text: String) { record(session.receive(Array(text.utf8))) }

    mutating func closed() { record(session.connectionClosed()) }

    mutating func record(_ actions: [SMTPAction]) {
        for action in actions {
            switch action {
            case .send(let bytes):
                precondition(bytes.suffix(2) == [0x0D, 0x0A], "every write ends a line")
                lines += crlfLines(Array(bytes.dropLast(2))).map { "C: " + $0 }
            case .startTLS:
                lines.append("-- TLS --")
                record(session.tlsEstablished())
            case .close(let outcome):
                lines.append("-- close: \(describe(outcome)) --")
            }
        }
    }

    var text: String { lines.joined(separator: "\n") }
}

func describe(_ outcome: SMTPOutcome) -> String {
    switch outcome {
    case .delivered(let reply, let refused):
        return "delivered \(reply.code)" + refused.map { ", refused \($0.address) \($0.reply.code)" }.joined()
    case .temporaryFailure(let step, let reply): return "temporary failure at \(step) \(reply.code)"
    case .permanentFailure(let step, let reply): return "permanent failure at \(step) \(reply.code)"
    case .protocolError(let error): return "protocol error \(error)"
    }
}

/// The lines of `bytes`, split at each CR LF.
func crlfLines(_ bytes: [UInt8]) -> [String] {
    var lines: [String] = []
    var current: [UInt8] = []
    var i = 0
    while i < bytes.count {
        if bytes[i] == 0x0D, i + 1 < bytes.count, bytes[i + 1] == 0x0A {
            lines.append(String(decoding: current, as: UTF8.self))
            current = []
            i += 2
        } else {
            current.append(bytes[i])
            i += 1
        }
    }
    lines.append(String(decoding: current, as: UTF8.self))
    return lines
}

let credentials = SMTPCredentials(username: "parley", password: "s3cret")

@Suite("SMTP session: scripted conversations")
struct SMTPSessionTests {
    @Test("STARTTLS, EHLO again, AUTH PLAIN, one command at a time, two recipients, dot-stuffed data, QUIT")
    func startTLSPlainNoPipelining() throws {
        for bytewise in [false, true] {
            var t = try Transcript(.starttls, credentials: credentials, recipients: ["alice@example.org", "bob@example.org"])
            t.bytewise = bytewise
            t.server("220 mx.example.net ESMTP")
            t.server("250-mx.example.net\n250-SIZE 1000000\n250-AUTH PLAIN LOGIN\n250 STARTTLS")
            t.server("220 2.0.0 Ready to start TLS")
            t.server("250-mx.example.net\n250-SIZE 1000000\n250 AUTH PLAIN LOGIN")
            t.server("235 2.7.0 Authentication successful")
            t.server("250 2.1.0 Ok")
            t.server("250 2.1.5 Ok")
            t.server("251 2.1.5 will forward")
            t.server("354 End data with <CR><LF>.<CR><LF>")
            t.server("250 2.0.0 Ok: queued as 4F1A2")
            t.server("221 2.0.0 Bye")
            #expect(t.text == """
                S: 220 mx.example.net ESMTP
                C: EHLO parley.example
                S: 250-mx.example.net
                S: 250-SIZE 1000000
                S: 250-AUTH PLAIN LOGIN
                S: 250 STARTTLS
                C: STARTTLS
                S: 220 2.0.0 Ready to start TLS
                -- TLS --
                C: EHLO parley.example
                S: 250-mx.example.net
                S: 250-SIZE 1000000
                S: 250 AUTH PLAIN LOGIN
                C: AUTH PLAIN AHBhcmxleQBzM2NyZXQ=
                S: 235 2.7.0 Authentication successful
                C: MAIL FROM:<notify@parley.example> SIZE=38
                S: 250 2.1.0 Ok
                C: RCPT TO:<alice@example.org>
                S: 250 2.1.5 Ok
                C: RCPT TO:<bob@example.org>
                S: 251 2.1.5 will forward
                C: DATA
                S: 354 End data with <CR><LF>.<CR><LF>
                C: Subject: hi
                C: 
                C: Hello
                C: ..signature
                C: .
                S: 250 2.0.0 Ok: queued as 4F1A2
                C: QUIT
                -- close: delivered 250 --
                S: 221 2.0.0 Bye
                """, "bytewise \(bytewise)")
            #expect(t.session.tlsActive)
            #expect(t.session.outcome == .delivered(SMTPReply(code: 250, lines: ["2.0.0 Ok: queued as 4F1A2"]), refused: []))
        }
    }

    @Test("PIPELINING and AUTH LOGIN: the two 334 challenges, then MAIL, RCPT and DATA in one write")
    func pipeliningLogin() throws {
        var t = try Transcript(.starttls, credentials: credentials, recipients: ["alice@example.org", "bob@example.org"])
        t.server("220 mx.example.net ESMTP")
        t.server("250-mx.example.net\n250-PIPELINING\n250 STARTTLS")
        t.server("220 go ahead")
        t.server("250-mx.example.net\n250-PIPELINING\n250 AUTH LOGIN")
        t.server("334 VXNlcm5hbWU6")
        t.server("334 UGFzc3dvcmQ6")
        t.server("235 2.7.0 Accepted")
        t.server("250 2.1.0 Ok\n250 2.1.5 Ok")
        t.server("550 5.1.1 <bob@example.org>: Recipient address rejected\n354 go ahead")
        t.server("250 2.0.0 Ok: queued")
        #expect(t.text == """
            S: 220 mx.example.net ESMTP
            C: EHLO parley.example
            S: 250-mx.example.net
            S: 250-PIPELINING
            S: 250 STARTTLS
            C: STARTTLS
            S: 220 go ahead
            -- TLS --
            C: EHLO parley.example
            S: 250-mx.example.net
            S: 250-PIPELINING
            S: 250 AUTH LOGIN
            C: AUTH LOGIN
            S: 334 VXNlcm5hbWU6
            C: cGFybGV5
            S: 334 UGFzc3dvcmQ6
            C: czNjcmV0
            S: 235 2.7.0 Accepted
            C: MAIL FROM:<notify@parley.example>
            C: RCPT TO:<alice@example.org>
            C: RCPT TO:<bob@example.org>
            C: DATA
            S: 250 2.1.0 Ok
            S: 250 2.1.5 Ok
            S: 550 5.1.1 <bob@example.org>: Recipient address rejected
            S: 354 go ahead
            C: Subject: hi
            C: 
            C: Hello
            C: ..signature
            C: .
            S: 250 2.0.0 Ok: queued
            C: QUIT
            -- close: delivered 250, refused bob@example.org 550 --
            """)
    }

    @Test("a pipelined batch that arrives byte by byte is matched the same way")
    func pipelinedBytewise() throws {
        var t = try Transcript(.implicit)
        t.bytewise = true
        t.server("220 mx")
        t.server("250-mx\n250 PIPELINING")
        t.server("250 Ok\n250 Ok\n354 go")
        t.server("250 queued")
        #expect(t.lines.filter { $0.hasPrefix("C:") || $0.hasPrefix("--") } == [
            "C: EHLO parley.example",
            "C: MAIL FROM:<notify@parley.example>", "C: RCPT TO:<alice@example.org>", "C: DATA",
            "C: Subject: hi", "C: ", "C: Hello", "C: ..signature", "C: .",
            "C: QUIT", "-- close: delivered 250 --",
        ])
    }

    @Test("implicit TLS: no STARTTLS even when offered; credentials go after the first EHLO")
    func implicitTLS() throws {
        var t = try Transcript(.implicit, credentials: credentials)
        #expect(t.session.tlsActive)
        t.server("220 mx")
        t.server("250-mx\n250-STARTTLS\n250 AUTH PLAIN")
        t.server("235 ok")
        #expect(t.lines.suffix(3) == ["C: AUTH PLAIN AHBhcmxleQBzM2NyZXQ=", "S: 235 ok", "C: MAIL FROM:<notify@parley.example>"])
        #expect(t.lines.last == "C: MAIL FROM:<notify@parley.example>")
        #expect(!t.lines.contains("C: STARTTLS"))
    }

    @Test("mode starttls and no STARTTLS offered: no credentials and no mail in the clear, QUIT")
    func startTLSMissing() throws {
        var t = try Transcript(.starttls, credentials: credentials)
        t.server("220 mx")
        t.server("250-mx\n250-PIPELINING\n250 AUTH PLAIN LOGIN")
        #expect(t.text == """
            S: 220 mx
            C: EHLO parley.example
            S: 250-mx
            S: 250-PIPELINING
            S: 250 AUTH PLAIN LOGIN
            C: QUIT
            -- close: protocol error startTLSNotOffered --
            """)
        #expect(t.session.outcome == .protocolError(.startTLSNotOffered))
        #expect(!t.session.tlsActive)
    }

    @Test("bytes behind the 220 to STARTTLS are an injection: close, no handshake")
    func startTLSInjection() throws {
        var t = try Transcript(.starttls, credentials: credentials)
        t.server("220 mx")
        t.server("250-mx\n250 STARTTLS")
        t.serverBytes("220 go ahead\r\n250 injected\r\n")
        #expect(t.lines.suffix(2) == ["C: STARTTLS", "-- close: protocol error plaintextAfterStartTLS --"])
        // And bytes before tlsEstablished() count the same.
        var u = try Transcript(.starttls)
        u.server("220 mx")
        u.server("250-mx\n250 STARTTLS")
        var actions = u.session.receive(Array("220 go ahead\r\n".utf8))
        #expect(actions == [.startTLS])
        actions = u.session.receive(Array("250 early\r\n".utf8))
        #expect(actions == [.close(.protocolError(.plaintextAfterStartTLS))])
        #expect(u.session.tlsEstablished() == [])
    }

    @Test("replies ahead of the command they would answer: an early talker is refused, a pipelined batch is not")
    func unsolicited() throws {
        var t = try Transcript(.none)
        t.serverBytes("220 mx\r\n250 mx\r\n")
        #expect(t.lines == ["C: EHLO parley.example", "-- close: protocol error unsolicitedReply --"])
        var u = try Transcript(.none)
        u.server("220 mx")
        u.server("250-mx\n250 PIPELINING")
        u.serverBytes("250 ok\r\n250 ok\r\n354 go\r\n250 too early\r\n")
        #expect(u.lines.suffix(2) == ["C: .", "-- close: protocol error unsolicitedReply --"])
    }

    @Test("mode none: STARTTLS offered and not used; no credentials, no AUTH")
    func plainMode() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250-mx\n250-STARTTLS\n250 AUTH PLAIN")
        #expect(t.lines.last == "C: MAIL FROM:<notify@parley.example>")
    }

    @Test("credentials and no PLAIN or LOGIN offered: QUIT, protocol error")
    func noMechanism() throws {
        var t = try Transcript(.none, credentials: credentials)
        t.server("220 mx")
        t.server("250-mx\n250 AUTH CRAM-MD5 XOAUTH2")
        #expect(t.lines.suffix(2) == ["C: QUIT", "-- close: protocol error authenticationNotOffered --"])
    }

    @Test("535 to AUTH: permanent failure (wrong credentials); 454: temporary")
    func authFailures() throws {
        var t = try Transcript(.none, credentials: credentials)
        t.server("220 mx")
        t.server("250-mx\n250 AUTH LOGIN")
        t.server("334 VXNlcm5hbWU6")
        t.server("334 UGFzc3dvcmQ6")
        t.server("535 5.7.8 Error: authentication failed")
        #expect(t.lines.suffix(2) == ["C: QUIT", "-- close: permanent failure at authentication 535 --"])
        var u = try Transcript(.none, credentials: credentials)
        u.server("220 mx")
        u.server("250-mx\n250 AUTH PLAIN")
        u.server("454 4.7.0 Temporary authentication failure")
        #expect(u.lines.suffix(2) == ["C: QUIT", "-- close: temporary failure at authentication 454 --"])
    }

    @Test("334 to AUTH PLAIN with its initial response: protocol error, no QUIT")
    func unexpectedChallenge() throws {
        var t = try Transcript(.none, credentials: credentials)
        t.server("220 mx")
        t.server("250-mx\n250 AUTH PLAIN")
        t.server("334 ")
        #expect(t.session.outcome == .protocolError(.unexpectedReply(.authentication, SMTPReply(code: 334, lines: [""]))))
        #expect(t.lines.last == "-- close: protocol error unexpectedReply(Notify.SMTPStep.authentication, 334 ) --")
    }

    @Test("421 at the greeting: temporary failure, closed without QUIT")
    func greeting421() throws {
        var t = try Transcript(.starttls)
        t.server("421 4.3.2 mx.example.net Service not available, closing channel")
        #expect(t.text == """
            S: 421 4.3.2 mx.example.net Service not available, closing channel
            -- close: temporary failure at greeting 421 --
            """)
        #expect(t.session.receive(Array("250 late\r\n".utf8)) == [])
    }

    @Test("554 greeting: permanent failure, QUIT")
    func greeting554() throws {
        var t = try Transcript(.none)
        t.server("554 5.7.1 No SMTP service here")
        #expect(t.lines.suffix(2) == ["C: QUIT", "-- close: permanent failure at greeting 554 --"])
    }

    @Test("451 to MAIL (one command at a time): temporary failure, QUIT, no RCPT")
    func mail451() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250 mx")
        t.server("451 4.3.0 Temporary lookup failure")
        #expect(t.text == """
            S: 220 mx
            C: EHLO parley.example
            S: 250 mx
            C: MAIL FROM:<notify@parley.example>
            S: 451 4.3.0 Temporary lookup failure
            C: QUIT
            -- close: temporary failure at mailFrom 451 --
            """)
    }

    @Test("550 to the only RCPT: permanent failure, QUIT, no DATA")
    func rcpt550() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250 mx")
        t.server("250 ok")
        t.server("550 5.1.1 User unknown")
        #expect(t.lines.suffix(4) == ["C: RCPT TO:<alice@example.org>", "S: 550 5.1.1 User unknown", "C: QUIT",
                                      "-- close: permanent failure at rcptTo 550 --"])
    }

    @Test("every RCPT refused, one of them for now: a temporary failure (a retry may reach it)")
    func mixedRefusals() throws {
        var t = try Transcript(.none, recipients: ["a@example.org", "b@example.org"])
        t.server("220 mx")
        t.server("250-mx\n250 PIPELINING")
        t.server("250 ok\n550 no such user\n452 4.2.2 mailbox full\n554 5.5.1 no valid recipients")
        #expect(t.lines.suffix(2) == ["C: QUIT", "-- close: temporary failure at rcptTo 452 --"])
    }

    @Test("pipelined: 550 to MAIL, 503 to RCPT and DATA: permanent failure at MAIL, QUIT")
    func pipelinedMail550() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250-mx\n250 PIPELINING")
        t.server("550 5.7.1 Sender rejected\n503 5.5.1 need MAIL\n503 5.5.1 need RCPT")
        #expect(t.lines.suffix(2) == ["C: QUIT", "-- close: permanent failure at mailFrom 550 --"])
    }

    @Test("pipelined: no recipient accepted but 354 to DATA (a broken server): close without QUIT, which would be data")
    func pipelinedDataOpenAfterRefusals() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250-mx\n250 PIPELINING")
        t.server("250 ok\n550 no\n354 go")
        #expect(t.lines.last == "-- close: permanent failure at rcptTo 550 --")
        #expect(!t.lines.contains("C: QUIT"))
    }

    @Test("pipelined: 421 in the middle of the batch ends it at once, without QUIT")
    func pipelined421() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250-mx\n250 PIPELINING")
        t.server("250 ok\n421 4.4.2 timeout, closing")
        #expect(t.lines.last == "-- close: temporary failure at mailFrom 421 --")
        #expect(!t.lines.contains("C: QUIT"))
    }

    @Test("pipelined: 451 to DATA after accepted recipients: temporary failure at data")
    func pipelinedData451() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250-mx\n250 PIPELINING")
        t.server("250 ok\n250 ok\n451 4.3.0 try later")
        #expect(t.lines.suffix(2) == ["C: QUIT", "-- close: temporary failure at data 451 --"])
    }

    @Test("after the data: 554 is a permanent failure, 451 temporary, 421 temporary without QUIT")
    func afterData() throws {
        for (reply, expected) in [("554 5.7.1 spam", ["C: QUIT", "-- close: permanent failure at message 554 --"]),
                                  ("451 4.7.1 greylisted", ["C: QUIT", "-- close: temporary failure at message 451 --"]),
                                  ("421 4.3.0 shutting down", ["C: .", "S: 421 4.3.0 shutting down", "-- close: temporary failure at message 421 --"])] {
            var t = try Transcript(.none)
            t.server("220 mx")
            t.server("250 mx")
            t.server("250 ok")
            t.server("250 ok")
            t.server("354 go")
            t.server(reply)
            #expect(Array(t.lines.suffix(expected.count)) == expected, "\(reply)")
        }
    }

    @Test("a reply that is no reply: protocol error, no QUIT")
    func malformedReply() throws {
        var t = try Transcript(.none)
        t.serverBytes("220 mx\r\n")
        t.serverBytes("250-mx\r\n220 other\r\n")
        #expect(t.lines.last == "-- close: protocol error malformedReply(Notify.SMTPReplyError.codeMismatch(line: 3, expected: 250, found: 220)) --")
    }

    @Test("a reply code the step does not allow: 354 to MAIL")
    func wrongCode() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250 mx")
        t.server("354 what")
        #expect(t.session.outcome == .protocolError(.unexpectedReply(.mailFrom, SMTPReply(code: 354, lines: ["what"]))))
    }

    @Test("the connection closed early: a protocol error naming the step, once")
    func closedEarly() throws {
        var t = try Transcript(.none)
        t.server("220 mx")
        t.server("250 mx")
        t.server("250 ok")
        t.server("250 ok")
        t.server("354 go")
        t.closed()
        #expect(t.lines.last == "-- close: protocol error connectionClosed(Notify.SMTPStep.message) --")
        #expect(t.session.connectionClosed() == [])
    }

    @Test("SIZE offered: MAIL carries the size of the data as sent")
    func sizeParameter() throws {
        var t = try Transcript(.none, message: "x\r\n")
        t.server("220 mx")
        t.server("250-mx\n250 SIZE 0")
        #expect(t.lines.last == "C: MAIL FROM:<notify@parley.example> SIZE=6")
    }

    @Test("setup refuses values that would break a command line")
    func setupErrors() {
        #expect(throws: SMTPSetupError.invalidClientName("a b")) { try SMTPConfiguration(security: .none, clientName: "a b") }
        #expect(throws: SMTPSetupError.invalidClientName("")) { try SMTPConfiguration(security: .none, clientName: "") }
        #expect(throws: SMTPSetupError.invalidCredentials) {
            try SMTPConfiguration(security: .none, clientName: "x", credentials: SMTPCredentials(username: "a\u{0}b", password: "p"))
        }
        #expect(throws: SMTPSetupError.invalidAddress("a@b>\r\nRSET")) { try SMTPEnvelope(sender: "a@b>\r\nRSET", recipients: ["c@d"], message: []) }
        #expect(throws: SMTPSetupError.invalidAddress("nobody")) { try SMTPEnvelope(sender: "", recipients: ["nobody"], message: []) }
        #expect(throws: SMTPSetupError.invalidAddress("jörg@example.org")) { try SMTPEnvelope(sender: "", recipients: ["jörg@example.org"], message: []) }
        #expect(throws: SMTPSetupError.noRecipients) { try SMTPEnvelope(sender: "", recipients: [], message: []) }
        #expect(throws: SMTPSetupError.tooManyRecipients(101)) {
            try SMTPEnvelope(sender: "", recipients: Array(repeating: "a@b.c", count: 101), message: [])
        }
        #expect((try? SMTPEnvelope(sender: "", recipients: ["a@b.c"], message: [])) != nil)
    }
}

@Suite("DATA: dot-stuffing and line endings")
struct SMTPDataTests {
    static func stuffed(_ text: String) -> String { String(decoding: SMTPData.dotStuffed(Array(text.utf8)), as: UTF8.self) }

    @Test("a leading dot is doubled, on the first line and after every break; other dots stay")
    func dots() {
        #expect(Self.stuffed(".first\r\nmid.dle\r\n.\r\n..two\r\n") == "..first\r\nmid.dle\r\n..\r\n...two\r\n.\r\n")
    }

    @Test("a lone LF or CR becomes CR LF, so LF . LF cannot end the data early")
    func smuggling() {
        #expect(Self.stuffed("a\n.\nMAIL FROM:<x@y>\r\n") == "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n")
        #expect(Self.stuffed("a\r.\rb") == "a\r\n..\r\nb\r\n.\r\n")
        #expect(Self.stuffed("a\r\n\r\nb") == "a\r\n\r\nb\r\n.\r\n")
    }

    @Test("the last line gets its CR LF; the empty message is only the end mark")
    func ends() {
        #expect(Self.stuffed("no break") == "no break\r\n.\r\n")
        #expect(Self.stuffed("") == ".\r\n")
        #expect(Self.stuffed(".") == "..\r\n.\r\n")
    }
}
