import Testing
import Notify

@Suite("SMTP reply parser")
struct SMTPReplyParserTests {
    /// Every reply and the error (if any) of `text` fed in one piece.
    static func parse(_ text: String, limits: SMTPReplyLimits = SMTPReplyLimits()) -> ([SMTPReply], SMTPReplyError?) {
        var parser = SMTPReplyParser(limits: limits)
        parser.append(Array(text.utf8))
        var replies: [SMTPReply] = []
        do {
            while let reply = try parser.next() { replies.append(reply) }
        } catch {
            return (replies, error as? SMTPReplyError)
        }
        return (replies, nil)
    }

    @Test("a one-line reply: code, text, no enhanced code")
    func oneLine() {
        let (replies, error) = Self.parse("220 mx.example.net ESMTP Postfix\r\n")
        #expect(error == nil)
        #expect(replies == [SMTPReply(code: 220, lines: ["mx.example.net ESMTP Postfix"])])
        #expect(replies[0].enhanced == nil)
        #expect(replies[0].isPositive)
    }

    @Test("a multi-line reply: 250- continuations, then 250 and a space")
    func multiLine() {
        let (replies, error) = Self.parse("250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 STARTTLS\r\n")
        #expect(error == nil)
        #expect(replies.count == 1)
        #expect(replies[0].code == 250)
        #expect(replies[0].lines == ["mx.example.net", "PIPELINING", "SIZE 10240000", "STARTTLS"])
        #expect(replies[0].description == "250-mx.example.net\n250-PIPELINING\n250-SIZE 10240000\n250 STARTTLS")
    }

    @Test("two replies in one read come out one after the other")
    func pipelinedReplies() {
        let (replies, error) = Self.parse("250 2.1.0 Ok\r\n550 5.1.1 <bob@example.org>: Recipient address rejected\r\n354 go ahead\r\n")
        #expect(error == nil)
        #expect(replies.map(\.code) == [250, 550, 354])
        #expect(replies[0].enhanced == SMTPEnhancedStatus(2, 1, 0))
        #expect(replies[1].enhanced == SMTPEnhancedStatus(5, 1, 1))
        #expect(replies[1].lines == ["5.1.1 <bob@example.org>: Recipient address rejected"])
        #expect(replies[2].enhanced == nil)
    }

    @Test("enhanced codes: class must match the reply, subject and detail 1-3 digits, then a space or the end")
    func enhancedCodes() {
        #expect(SMTPReply(code: 451, lines: ["4.7.1 Try again later"]).enhanced == SMTPEnhancedStatus(4, 7, 1))
        #expect(SMTPReply(code: 250, lines: ["2.0.0"]).enhanced == SMTPEnhancedStatus(2, 0, 0))
        #expect(SMTPReply(code: 554, lines: ["5.123.999 policy"]).enhanced == SMTPEnhancedStatus(5, 123, 999))
        #expect(SMTPReply(code: 250, lines: ["5.0.0 mismatch"]).enhanced == nil)
        #expect(SMTPReply(code: 250, lines: ["2.0.1000 too long"]).enhanced == nil)
        #expect(SMTPReply(code: 250, lines: ["2.0.0.1 four parts"]).enhanced == nil)
        #expect(SMTPReply(code: 250, lines: ["2.0.0x"]).enhanced == nil)
        #expect(SMTPReply(code: 250, lines: ["3.0.0 no class 3"]).enhanced == nil)
        #expect(SMTPReply(code: 250, lines: [""]).enhanced == nil)
    }

    @Test("a code with no text, on the last line and on a continuation line")
    func emptyText() {
        let (replies, error) = Self.parse("250-\r\n250\r\n")
        #expect(error == nil)
        #expect(replies == [SMTPReply(code: 250, lines: ["", ""])])
    }

    @Test("continuation lines with a different code are refused, naming the line")
    func codeMismatch() {
        let (replies, error) = Self.parse("220 hi\r\n250-one\r\n251 two\r\n")
        #expect(replies.map(\.code) == [220])
        #expect(error == .codeMismatch(line: 3, expected: 250, found: 251))
    }

    @Test("CR LF is required: a bare LF or a lone CR is refused")
    func lineEndings() {
        #expect(Self.parse("220 hi\n").1 == .bareLineEnding(line: 1))
        #expect(Self.parse("220 h\ri\r\n").1 == .bareLineEnding(line: 1))
        #expect(Self.parse("220 ok\r\n\n").1 == .bareLineEnding(line: 2))
    }

    @Test("malformed lines: codes outside 2-5/0-5/0-9, separators other than - or space, short lines")
    func malformed() {
        for text in ["120 x\r\n", "620 x\r\n", "260 x\r\n", "22 \r\n", "22\r\n", "220x\r\n", "2a0 x\r\n", "\r\n", "220\t x\r\n", "599 x\r\n"] {
            #expect(Self.parse(text).1 == .malformedLine(line: 1), "\(text.debugDescription)")
        }
        #expect(Self.parse("559 x\r\n").0.map(\.code) == [559])
        #expect(Self.parse("200 x\r\n").0.map(\.code) == [200])
    }

    @Test("text: HT and UTF-8 pass, other controls and broken UTF-8 do not")
    func text() {
        #expect(Self.parse("250 a\tb\r\n").0 == [SMTPReply(code: 250, lines: ["a\tb"])])
        #expect(Self.parse("250 Grüße\r\n").0 == [SMTPReply(code: 250, lines: ["Grüße"])])
        #expect(Self.parse("250 a\u{0}b\r\n").1 == .invalidText(line: 1))
        #expect(Self.parse("250 a\u{7F}\r\n").1 == .invalidText(line: 1))
        var parser = SMTPReplyParser()
        parser.append([0x32, 0x35, 0x30, 0x20, 0xC3, 0x28, 0x0D, 0x0A])
        #expect(throws: SMTPReplyError.invalidText(line: 1)) { try parser.next() }
        // The error sticks.
        #expect(throws: SMTPReplyError.invalidText(line: 1)) { try parser.next() }
    }

    @Test("the line limit counts CR LF and bites before the LF arrives")
    func lineLimit() throws {
        var limits = SMTPReplyLimits()
        limits.lineBytes = 10
        #expect(Self.parse("250 abcd\r\n", limits: limits).0.count == 1)  // 10 bytes
        #expect(Self.parse("250 abcde\r\n", limits: limits).1 == .lineTooLong(line: 1))  // 11
        var parser = SMTPReplyParser(limits: limits)
        parser.append(Array("250 abcde".utf8))  // 9 bytes: its CR LF would make 11
        #expect(try parser.next() == nil)
        parser.append(Array("f".utf8))
        #expect(throws: SMTPReplyError.lineTooLong(line: 1)) { try parser.next() }
    }

    @Test("the line count limit")
    func lineCount() {
        var limits = SMTPReplyLimits()
        limits.lines = 3
        #expect(Self.parse("250-a\r\n250-b\r\n250 c\r\n", limits: limits).0.count == 1)
        #expect(Self.parse("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", limits: limits).1 == .tooManyLines(line: 4))
    }

    @Test("the same replies and error at every split of the bytes, and byte by byte")
    func splitAnywhere() throws {
        let text = "220 mx ESMTP\r\n250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n354 go\r\n250-x\r\n251 y\r\n"
        let whole = Self.parse(text)
        #expect(whole.0.count == 3)
        #expect(whole.1 == .codeMismatch(line: 7, expected: 250, found: 251))
        let bytes = Array(text.utf8)
        for cut in 0...bytes.count {
            var parser = SMTPReplyParser()
            var replies: [SMTPReply] = []
            var failure: SMTPReplyError?
            for piece in [bytes[..<cut], bytes[cut...]] where failure == nil {
                parser.append(piece)
                do { while let r = try parser.next() { replies.append(r) } } catch { failure = error as? SMTPReplyError }
            }
            #expect(replies == whole.0 && failure == whole.1, "cut at \(cut)")
        }
        var parser = SMTPReplyParser()
        var replies: [SMTPReply] = []
        for b in bytes.prefix(66) {  // up to the mismatched line
            parser.append([b])
            while let r = try parser.next() { replies.append(r) }
        }
        #expect(replies == whole.0)
    }

    @Test("bufferedByteCount: what came after the last complete reply")
    func buffered() throws {
        var parser = SMTPReplyParser()
        parser.append(Array("220 ready\r\n250 x".utf8))
        #expect(try parser.next()?.code == 220)
        #expect(parser.bufferedByteCount == 5)
    }
}

@Suite("EHLO keywords")
struct SMTPCapabilitiesTests {
    @Test("STARTTLS, AUTH, PIPELINING, SIZE, 8BITMIME, SMTPUTF8, and every keyword in order")
    func keywords() {
        let reply = SMTPReply(code: 250, lines: ["mx.example.net Hello", "PIPELINING", "SIZE 10240000", "auth plain LOGIN CRAM-MD5",
                                                 "STARTTLS", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "X-odd keyword"])
        let c = SMTPCapabilities(ehlo: reply)
        #expect(c.startTLS && c.pipelining && c.eightBitMIME && c.smtpUTF8)
        #expect(c.authMechanisms == ["PLAIN", "LOGIN", "CRAM-MD5"])
        #expect(c.maximumSize == 10_240_000)
        #expect(c.keywords.map(\.keyword) == ["PIPELINING", "SIZE", "AUTH", "STARTTLS", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "X-ODD"])
        #expect(c.keywords[2].parameters == ["plain", "LOGIN", "CRAM-MD5"])
        #expect(c.keywords[7].parameters == ["keyword"])
    }

    @Test("the greeting line is not a keyword; nothing offered gives nothing")
    func greetingOnly() {
        let c = SMTPCapabilities(ehlo: SMTPReply(code: 250, lines: ["STARTTLS"]))
        #expect(c == SMTPCapabilities())
        #expect(c.maximumSize == nil && !c.startTLS && c.authMechanisms.isEmpty)
    }

    @Test("SIZE without a number means no fixed maximum; AUTH=LOGIN (old form) counts as AUTH; junk is skipped")
    func oddities() {
        let c = SMTPCapabilities(ehlo: SMTPReply(code: 250, lines: ["mx", "SIZE", "AUTH=LOGIN PLAIN", "-BAD", "", "ÜBER"]))
        #expect(c.maximumSize == 0)
        #expect(c.authMechanisms == ["LOGIN", "PLAIN"])
        #expect(c.keywords.map(\.keyword) == ["SIZE", "AUTH"])
        #expect(SMTPCapabilities(ehlo: SMTPReply(code: 250, lines: ["mx", "SIZE lots"])).maximumSize == nil)
    }
}
