import Testing
import Notify

@Suite("Mail message building")
struct MailMessageTests {
    static func text(_ message: MailMessage) -> String { String(decoding: message.encoded(), as: UTF8.self) }

    @Test("the whole message: headers in order, encoded-words for non-ASCII, quoted-printable body, CR LF throughout")
    func wholeMessage() throws {
        let message = try MailMessage(
            from: MailAddress("notify@parley.example", displayName: "Parley"),
            to: [MailAddress("alice@example.org", displayName: "Alice Émile")],
            subject: "Grüße aus Köln", secondsSince1970: 1_796_172_979, messageID: "<n-42@parley.example>",
            body: "Hello Alice,\nbob: hi = there\n")
        #expect(Self.text(message) == """
            Date: Wed, 02 Dec 2026 00:56:19 +0000\r
            From: Parley <notify@parley.example>\r
            To: =?utf-8?B?QWxpY2Ugw4ltaWxl?= <alice@example.org>\r
            Subject: =?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r
            Message-ID: <n-42@parley.example>\r
            MIME-Version: 1.0\r
            Content-Type: text/plain; charset=utf-8\r
            Content-Transfer-Encoding: quoted-printable\r
            Auto-Submitted: auto-generated\r
            \r
            Hello Alice,\r
            bob: hi =3D there\r

            """)
        #expect(message.transferEncoding == .quotedPrintable)
    }

    @Test("a body mostly outside ASCII goes as base64, in lines of 76")
    func base64Body() throws {
        let message = try MailMessage(from: MailAddress("n@p.example"), to: [MailAddress("a@b.example")], subject: "x",
                                      secondsSince1970: 0, messageID: "<1@p.example>", body: "Привет, как дела?\nВсё хорошо.")
        #expect(message.transferEncoding == .base64)
        let text = Self.text(message)
        #expect(text.hasSuffix("""
            Content-Transfer-Encoding: base64\r
            Auto-Submitted: auto-generated\r
            \r
            0J/RgNC40LLQtdGCLCDQutCw0Log0LTQtdC70LA/DQrQktGB0ZEg0YXQvtGA0L7RiNC+Lg==\r

            """))
        let long = try MailMessage(from: MailAddress("n@p.example"), to: [MailAddress("a@b.example")], subject: "x",
                                   secondsSince1970: 0, messageID: "<1@p.example>", body: String(repeating: "☃", count: 60))
        let bodyLines = crlfLines(long.encoded()).drop { !$0.isEmpty }.dropFirst().dropLast()
        #expect(bodyLines.map(\.utf8.count) == [76, 76, 76, 12])
        #expect(bodyLines.first == String(repeating: "4piD", count: 19))
    }

    @Test("a long subject in ASCII folds at a space; one outside ASCII is split into encoded-words of whole characters")
    func subjects() throws {
        func subject(_ s: String) throws -> String {
            let m = try MailMessage(from: MailAddress("n@p.example"), to: [MailAddress("a@b.example")], subject: s,
                                    secondsSince1970: 0, messageID: "<1@p.example>", body: "")
            return crlfLines(m.encoded()).drop { !$0.hasPrefix("Subject:") }.prefix { !$0.hasPrefix("Message-ID:") }.joined(separator: "\r\n")
        }
        #expect(try subject("3 new messages in general") == "Subject: 3 new messages in general")
        #expect(try subject("This is a rather long subject line that goes on and on past the seventy-eight character limit")
            == "Subject: This is a rather long subject line that goes on and on past the\r\n seventy-eight character limit")
        #expect(try subject("Новое сообщение в комнате «Общая» от Алисы") == """
            Subject: =?utf-8?B?0J3QvtCy0L7QtSDRgdC+0L7QsdGJ0LXQvdC40LUg0LIg0LrQvtC8?=\r
             =?utf-8?B?0L3QsNGC0LUgwqvQntCx0YnQsNGPwrsg0L7RgiDQkNC70LjRgdGL?=
            """)
        // CR and LF cannot start a header of their own.
        #expect(try subject("Hi\r\nBcc: eve@example.org") == "Subject: Hi  Bcc: eve@example.org")
        // Text that looks like an encoded-word is encoded, so that no reader decodes it.
        #expect(try subject("=?utf-8?B?4piD?=") == "Subject: =?utf-8?B?PT91dGYtOD9CPzRwaUQ/PQ==?=")
        #expect(try subject("") == "Subject: ")
    }

    @Test("address lists fold after a comma; display names are atoms, quoted strings or encoded-words")
    func addresses() throws {
        let to = try ["alice", "bob", "carol", "dave", "erin"].map { try MailAddress("\($0)@example.org") }
        let m = try MailMessage(from: MailAddress("n@p.example", displayName: "Smith, \"J\""), to: to, subject: "x",
                                secondsSince1970: 0, messageID: "<1@p.example>", body: "")
        let lines = crlfLines(m.encoded())
        #expect(lines[1] == "From: \"Smith, \\\"J\\\"\" <n@p.example>")
        #expect(lines[2] == "To: alice@example.org, bob@example.org, carol@example.org, dave@example.org,")
        #expect(lines[3] == " erin@example.org")
    }

    @Test("every line of a message fits in 78 characters, whatever the subject, names and body")
    func lineLengths() throws {
        let m = try MailMessage(
            from: MailAddress("notify@parley.example", displayName: String(repeating: "Ünïcödé ", count: 12)),
            to: [MailAddress("alice@example.org", displayName: String(repeating: "x", count: 100))],
            subject: String(repeating: "日本語のテキスト", count: 10), secondsSince1970: 0, messageID: "<1@p.example>",
            body: String(repeating: "é", count: 200) + "\n" + String(repeating: "word ", count: 40))
        let lines = crlfLines(m.encoded())
        #expect(lines.allSatisfy { $0.utf8.count <= 78 }, "\(lines.filter { $0.utf8.count > 78 })")
        #expect(m.encoded().allSatisfy { $0 < 0x80 })
    }

    @Test("refusals: no recipients, a Message-ID that is not <left@right>, a bad address")
    func refusals() throws {
        let from = try MailAddress("n@p.example")
        #expect(throws: MailMessageError.noRecipients) {
            try MailMessage(from: from, to: [], subject: "", secondsSince1970: 0, messageID: "<1@p>", body: "")
        }
        for id in ["1@p", "<1p>", "<1@p> x", "<a b@p>", "<@p>", "<1@>", "<1@p@q>", "<1@p\r\n>"] {
            #expect(throws: MailMessageError.invalidMessageID(id)) {
                try MailMessage(from: from, to: [from], subject: "", secondsSince1970: 0, messageID: id, body: "")
            }
        }
        #expect(throws: MailMessageError.invalidAddress("a@b>")) { try MailAddress("a@b>") }
    }
}

@Suite("Quoted-printable")
struct QuotedPrintableTests {
    static func qp(_ lines: String...) -> String { QuotedPrintable.encode(lines: lines.map { Array($0.utf8) }) }

    @Test("UTF-8 bytes and = are escaped in upper-case hex; printable ASCII is kept")
    func escapes() {
        #expect(Self.qp("Grüße, 1 + 1 = 2") == "Gr=C3=BC=C3=9Fe, 1 + 1 =3D 2")
        #expect(Self.qp("tab\there", "€") == "tab\there\r\n=E2=82=AC")
    }

    @Test("a space or tab that ends a line is escaped; inside a line it is not")
    func trailingWhiteSpace() {
        #expect(Self.qp("end ", "tab\t", " ") == "end=20\r\ntab=09\r\n=20")
    }

    @Test("long lines: 76 characters at most, soft breaks with =, an escape never split")
    func longLines() {
        #expect(Self.qp(String(repeating: "a", count: 76)) == String(repeating: "a", count: 76))
        #expect(Self.qp(String(repeating: "a", count: 100)) == String(repeating: "a", count: 75) + "=\r\n" + String(repeating: "a", count: 25))
        #expect(Self.qp(String(repeating: "a", count: 74) + "é") == String(repeating: "a", count: 74) + "=\r\n=C3=A9")
        #expect(Self.qp(String(repeating: "a", count: 73) + "é") == String(repeating: "a", count: 73) + "=\r\n=C3=A9")
        #expect(Self.qp(String(repeating: "a", count: 72) + "é") == String(repeating: "a", count: 72) + "=C3=\r\n=A9")
        #expect(Self.qp(String(repeating: "a", count: 70) + "é") == String(repeating: "a", count: 70) + "=C3=A9")
        let long = Self.qp(String(repeating: "ü", count: 100))
        #expect(long.split(separator: "\r\n").allSatisfy { $0.utf8.count <= 76 })
        #expect(long.split(separator: "\r\n").first == Substring(String(repeating: "=C3=BC", count: 12) + "=C3="))
    }

    @Test("empty text and empty lines")
    func empty() {
        #expect(Self.qp("") == "")
        #expect(Self.qp("a", "", "b") == "a\r\n\r\nb")
    }
}

@Suite("Mail dates")
struct MailDateTests {
    @Test("RFC 5322 date-time, UTC and with offsets, across leap days and before 1970")
    func dates() {
        #expect(MailDate.format(secondsSince1970: 0) == "Thu, 01 Jan 1970 00:00:00 +0000")
        #expect(MailDate.format(secondsSince1970: 951_829_261) == "Tue, 29 Feb 2000 13:01:01 +0000")
        #expect(MailDate.format(secondsSince1970: 1_796_172_979, utcOffsetMinutes: 90) == "Wed, 02 Dec 2026 02:26:19 +0130")
        #expect(MailDate.format(secondsSince1970: 1_796_172_979, utcOffsetMinutes: -480) == "Tue, 01 Dec 2026 16:56:19 -0800")
        #expect(MailDate.format(secondsSince1970: -1) == "Wed, 31 Dec 1969 23:59:59 +0000")
        #expect(MailDate.format(secondsSince1970: 4_102_444_800) == "Fri, 01 Jan 2100 00:00:00 +0000")
    }
}

@Suite("Notification digest")
struct NotificationDigestTests {
    let rooms = [
        DigestRoom(title: "general", link: "https://chat.example/rooms/general",
                   messages: [(sender: "alice", text: "hi @carol"), (sender: "bob", text: "two\nlines")]),
        DigestRoom(title: "random", link: "https://chat.example/rooms/random", messages: [(sender: "dave", text: "lunch?")]),
    ]

    @Test("grouped by room: title, sender: text lines, the link; rooms apart by an empty line")
    func body() {
        #expect(NotificationDigest.body(rooms) == """
            general
              alice: hi @carol
              bob: two
                lines
              https://chat.example/rooms/general

            random
              dave: lunch?
              https://chat.example/rooms/random

            """)
    }

    @Test("the subject counts messages and rooms")
    func subject() {
        #expect(NotificationDigest.subject(rooms) == "3 new messages in 2 rooms")
        #expect(NotificationDigest.subject([rooms[1]]) == "1 new message in random")
    }
}
