@testable import Chat
import Testing

@Suite("Access tokens")
struct AccessTokenTests {
    @Test("pt_ and 43 URL-safe base64 symbols carrying 32 bytes")
    func shape() throws {
        let (token, _) = AccessToken.make()
        #expect(token.hasPrefix("pt_"))
        #expect(token.utf8.count == 46 && AccessToken.length == 46)
        let body = token.dropFirst(3)
        #expect(body.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        #expect(try #require(Base64.decode(body, alphabet: .urlSafe)).count == 32)
        #expect(AccessToken.isWellFormed(token))
    }

    @Test("the hash returned is the SHA-256 of the token text")
    func hashMatches() {
        let (token, hash) = AccessToken.make()
        #expect(hash.count == 32)
        #expect(hash == AccessToken.hash(token))
        #expect(hash == AccessToken.hash(Array(token.utf8)))
    }

    /// FIPS 180-2 examples: "abc" and the empty string.
    @Test("SHA-256 known answers")
    func sha256() {
        #expect(hex(AccessToken.hash("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(AccessToken.hash("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(AccessToken.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// 10,000 tokens: no repeats, and every bit of the random part is set about
    /// half the time (a stuck bit or a short read would show as 0 or 10,000).
    @Test("tokens are distinct and their bits balanced")
    func randomness() throws {
        let count = 10_000
        var seen = Set<String>()
        var ones = [Int](repeating: 0, count: 256)
        for _ in 0..<count {
            let (token, _) = AccessToken.make()
            #expect(seen.insert(token).inserted)
            let bytes = try #require(Base64.decode(token.dropFirst(3), alphabet: .urlSafe))
            for bit in 0..<256 where bytes[bit / 8] & (1 << (bit % 8)) != 0 { ones[bit] += 1 }
        }
        // 0.5 +- 6 standard deviations (50 each at n = 10,000): a false alarm is ~1e-7.
        #expect(ones.allSatisfy { (4700...5300).contains($0) })
    }

    @Test("what is not shaped like a token", arguments: [
        "", "pt_", "pt_abc", "xx_" + String(repeating: "A", count: 43), "pt_" + String(repeating: "A", count: 42),
        "pt_" + String(repeating: "A", count: 44), "pt_" + String(repeating: "A", count: 42) + "+",
        "pt_" + String(repeating: "A", count: 42) + "B",  // bits past the 32nd byte
        "PT_" + String(repeating: "A", count: 43), "correct horse battery staple",
    ])
    func notTokens(candidate: String) {
        #expect(!AccessToken.isWellFormed(candidate))
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}
