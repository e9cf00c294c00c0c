import Chat
import Testing

@Suite("Credentials (SPEC section 2)")
struct CredentialsTests {
    @Test("valid user names", arguments: ["bob", "Alice", "a_b", "x.y-z", "007", "___", String(repeating: "a", count: 32)])
    func validNames(name: String) throws {
        try Credentials.validateUsername(name)
    }

    @Test("invalid user names", arguments: [
        "", "ab", String(repeating: "a", count: 33), "bob smith", "bob/x", "bob+", "bob#", "b@b", "ålice", "bob\u{0}",
        "bo\u{301}b", "\u{1F600}\u{1F600}\u{1F600}",
    ])
    func invalidNames(name: String) {
        #expect(throws: CredentialError.self) { try Credentials.validateUsername(name) }
        do {
            try Credentials.validateUsername(name)
        } catch {
            #expect(error.code == "invalid_username")
        }
    }

    @Test("names are unique ignoring ASCII case")
    func canonical() {
        #expect(Credentials.canonicalName("Alice.B-C_9") == "alice.b-c_9")
        #expect(Credentials.canonicalName("ALICE") == Credentials.canonicalName("alice"))
    }

    @Test("valid passwords", arguments: [
        Array("12345678".utf8), Array(String(repeating: "x", count: 256).utf8), Array("пароль12".utf8),
        Array("correct horse battery staple".utf8),
    ])
    func validPasswords(password: [UInt8]) throws {
        try Credentials.validatePassword(password)
    }

    @Test("invalid passwords", arguments: [
        [UInt8](), Array("1234567".utf8), Array(String(repeating: "x", count: 257).utf8),
        [0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0xff],        // 0xff is never UTF-8
        [0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0xc3],        // truncated sequence
        [0xed, 0xa0, 0x80, 0x61, 0x62, 0x63, 0x64, 0x65],        // a surrogate
        [0xc0, 0xaf, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66],        // overlong '/'
    ])
    func invalidPasswords(password: [UInt8]) {
        do {
            try Credentials.validatePassword(password)
            Issue.record("accepted \(password)")
        } catch {
            #expect(error.code == "invalid_password")
        }
    }

    @Test("256 bytes, not 256 characters")
    func passwordBytes() {
        // 129 two-byte characters: 258 bytes.
        #expect(throws: CredentialError.self) { try Credentials.validatePassword(String(repeating: "é", count: 129)) }
        #expect(throws: Never.self) { try Credentials.validatePassword(String(repeating: "é", count: 128)) }
    }

    @Test("valid e-mail addresses", arguments: [
        "a@b.co", "alice@example.com", "Alice.Smith+chat@mail.example.org", "o'brien@example.ie", "x_y-z@sub-1.example.com",
        "user@xn--bcher-kva.example", "a@b.c1", "!#$%&'*+/=?^_`{|}~-@example.com",
        String(repeating: "a", count: 64) + "@example.com",
        "a@" + [String](repeating: String(repeating: "d", count: 63), count: 3).joined(separator: ".") + ".com",
    ])
    func validEmails(address: String) throws {
        try Credentials.validateEmail(address)
    }

    @Test("invalid e-mail addresses", arguments: [
        "", "alice", "alice@", "@example.com", "alice@@example.com", "a@b@example.com", "alice@localhost",
        "alice@example.", "alice@.example.com", "alice@exa..mple.com", "alice@-example.com", "alice@example-.com",
        "alice@exa_mple.com", "alice@192.168.0.1", "alice@[192.168.0.1]", ".alice@example.com", "alice.@example.com",
        "al..ice@example.com", "al ice@example.com", "\"alice\"@example.com", "alice@exämple.com", "älice@example.com",
        "alice(comment)@example.com", "alice@example.com\n", String(repeating: "a", count: 65) + "@example.com",
        "a@" + String(repeating: "d", count: 64) + ".com",
        "a@" + [String](repeating: String(repeating: "d", count: 63), count: 4).joined(separator: ".") + ".com",
    ])
    func invalidEmails(address: String) {
        do {
            try Credentials.validateEmail(address)
            Issue.record("accepted \(address)")
        } catch {
            #expect(error.code == "invalid_email")
        }
    }

    @Test("errors say what to fix")
    func messages() {
        #expect(CredentialError.invalidUsername("x").description == "x")
        do {
            try Credentials.validateUsername("ab")
        } catch {
            #expect(error.description.contains("3 to 32"))
        }
    }
}
