@testable import Chat
import Testing

@Suite("Base64 without padding")
struct Base64Tests {
    /// RFC 4648 section 10, with the padding taken off.
    @Test("RFC 4648 vectors", arguments: [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
    ])
    func vectors(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8), alphabet: .standard) == encoded)
        #expect(Base64.decode(encoded[...], alphabet: .standard) == Array(plain.utf8))
    }

    @Test("the two alphabets differ only in 62 and 63")
    func alphabets() {
        let bytes: [UInt8] = [0xfb, 0xff, 0xbf]
        #expect(Base64.encode(bytes, alphabet: .standard) == "+/+/")
        #expect(Base64.encode(bytes, alphabet: .urlSafe) == "-_-_")
        #expect(Base64.decode("-_-_", alphabet: .standard) == nil)
        #expect(Base64.decode("+/+/", alphabet: .urlSafe) == nil)
    }

    @Test("round trips every length up to 64")
    func roundTrips() {
        for count in 0...64 {
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            for alphabet in [Base64.Alphabet.standard, .urlSafe] {
                let text = Base64.encode(bytes, alphabet: alphabet)
                #expect(!text.contains("="))
                #expect(Base64.decode(text[...], alphabet: alphabet) == bytes)
            }
        }
    }

    @Test("non-canonical text is refused", arguments: ["Zg==", "Zm9=", "Z", "Zm9vY", "Zh", "Zm9", "Zm+", "Zm 9", "Zm9v\n", "Zé"])
    func refused(text: String) {
        // "Zh" and "Zm9" carry non-zero bits past the last byte; "Zm+" is fine as text
        // but its last symbol leaves bits set too.
        #expect(Base64.decode(text[...], alphabet: .standard) == nil)
    }
}
