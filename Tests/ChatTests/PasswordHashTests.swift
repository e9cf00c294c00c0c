@testable import Chat
import Testing

@Suite("Password hashes (scrypt)")
struct PasswordHashTests {
    private static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    /// RFC 7914 section 12, vectors 2 and 3 (3 is the default cost, N = 2^14, r = 8, p = 1).
    @Test("RFC 7914 known answers", arguments: [
        ("password", "NaCl", 10, 8, 16,
         "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
        ("pleaseletmein", "SodiumChloride", 14, 8, 1,
         "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"),
    ])
    func knownAnswers(password: String, salt: String, logN: Int, r: Int, p: Int, expected: String) throws {
        let parameters = try #require(ScryptParameters(logN: logN, r: r, p: p))
        let key = PasswordHash.derive(password: Array(password.utf8), salt: Array(salt.utf8), parameters: parameters, length: 64)
        #expect(key == Self.hex(expected))
    }

    @Test("a hash verifies its password and no other")
    func verifies() {
        let stored = PasswordHash.make(password: Array("correct horse".utf8), parameters: .testing)
        #expect(PasswordHash.verify(password: Array("correct horse".utf8), against: stored))
        #expect(!PasswordHash.verify(password: Array("correct hors".utf8), against: stored))
        #expect(!PasswordHash.verify(password: Array("Correct horse".utf8), against: stored))
        #expect(!PasswordHash.verify(password: [], against: stored))
    }

    @Test("the stored string names its parameters, a 16-byte salt and a 32-byte hash")
    func format() throws {
        let stored = PasswordHash.make(password: Array("password".utf8), parameters: .testing)
        #expect(stored.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        let fields = stored.split(separator: "$")
        #expect(fields.count == 4)
        #expect(fields[2].count == 22 && fields[3].count == 43)
        let parsed = try #require(PasswordHash.parse(stored))
        #expect(parsed.parameters == .testing && parsed.salt.count == 16 && parsed.hash.count == 32)
        #expect(PasswordHash.format(parsed) == stored)
    }

    @Test("each hash has its own salt")
    func salted() {
        let a = PasswordHash.make(password: Array("password".utf8), parameters: .testing)
        let b = PasswordHash.make(password: Array("password".utf8), parameters: .testing)
        #expect(a != b)
        #expect(PasswordHash.verify(password: Array("password".utf8), against: a))
        #expect(PasswordHash.verify(password: Array("password".utf8), against: b))
    }

    @Test("the default cost is N = 2^14, r = 8, p = 1")
    func defaultCost() {
        let stored = PasswordHash.make(password: Array("password".utf8))
        #expect(stored.hasPrefix("$scrypt$ln=14,r=8,p=1$"))
        #expect(PasswordHash.verify(password: Array("password".utf8), against: stored))
        #expect(!PasswordHash.needsRehash(stored))
    }

    /// Made by passlib (`passlib.hash.scrypt`, its default ln=16), as published in
    /// zitadel/passwap's test values: the format is the one other tools write.
    @Test("a passlib hash verifies and asks for a rehash")
    func passlib() {
        let stored = "$scrypt$ln=16,r=8,p=1$cmFuZG9tc2FsdGlzaGFyZA$Rh+NnJNo1I6nRwaNqbDm6kmADswD1+7FTKZ7Ln9D8nQ"
        #expect(PasswordHash.verify(password: Array("password".utf8), against: stored))
        #expect(!PasswordHash.verify(password: Array("passwore".utf8), against: stored))
        #expect(PasswordHash.needsRehash(stored))
    }

    @Test("a hash of another length or salt verifies, and asks for a rehash")
    func otherLengths() throws {
        let salt = Array("an eight-to-64-byte salt".utf8)
        let key = try #require(PasswordHash.derive(password: Array("password".utf8), salt: salt, parameters: .default, length: 64))
        let stored = PasswordHash.format(PasswordHash.Stored(parameters: .default, salt: salt, hash: key))
        #expect(PasswordHash.verify(password: Array("password".utf8), against: stored))
        #expect(!PasswordHash.verify(password: Array("passworD".utf8), against: stored))
        #expect(PasswordHash.needsRehash(stored))
    }

    @Test("rehash when the parameters are not the target ones")
    func rehash() {
        let test = PasswordHash.make(password: Array("password".utf8), parameters: .testing)
        #expect(PasswordHash.needsRehash(test))
        #expect(!PasswordHash.needsRehash(test, target: .testing))
        #expect(PasswordHash.needsRehash("garbage"))
    }

    private static let salt = "c2FsdHNhbHRzYWx0c2FsdA"  // 16 bytes
    private static let hash = "6D5zK6GmD3HPYyLzEn3dXdgCGtNUx9FxVd/0qL25ZeI"  // 32 bytes

    /// Each verifies false at once: never an OpenSSL call with what they ask for.
    @Test("malformed or hostile strings verify false", arguments: [
        "", "$scrypt$", "scrypt$ln=10,r=8,p=1$\(salt)$\(hash)",
        "$argon2id$ln=10,r=8,p=1$\(salt)$\(hash)",
        "$scrypt$ln=10,r=8,p=1$\(salt)$\(hash)$",
        "$scrypt$ln=10,r=8,p=1$\(salt)",
        "$scrypt$ln=10,r=8$\(salt)$\(hash)",
        "$scrypt$r=8,ln=10,p=1$\(salt)$\(hash)",
        "$scrypt$ln=010,r=8,p=1$\(salt)$\(hash)",
        "$scrypt$ln=+10,r=8,p=1$\(salt)$\(hash)",
        "$scrypt$ln=1e1,r=8,p=1$\(salt)$\(hash)",
        "$scrypt$ln=0,r=8,p=1$\(salt)$\(hash)",
        "$scrypt$ln=21,r=8,p=1$\(salt)$\(hash)",      // N beyond 2^20
        "$scrypt$ln=18,r=8,p=1$\(salt)$\(hash)",      // 256 MiB
        "$scrypt$ln=20,r=1,p=16$\(salt)$\(hash)",     // work 2^24
        "$scrypt$ln=10,r=0,p=1$\(salt)$\(hash)",
        "$scrypt$ln=10,r=33,p=1$\(salt)$\(hash)",
        "$scrypt$ln=10,r=8,p=17$\(salt)$\(hash)",
        "$scrypt$ln=10,r=8,p=99999999999$\(salt)$\(hash)",
        "$scrypt$ln=10,r=8,p=1$\(salt)==$\(hash)",
        "$scrypt$ln=10,r=8,p=1$c2FsdA$\(hash)",       // 4-byte salt
        "$scrypt$ln=10,r=8,p=1$\(salt)$AAAAAAAAAAA",  // 8-byte hash
        "$scrypt$ln=10,r=8,p=1$\(salt)$\(String(repeating: "A", count: 300))",
        "$scrypt$ln=10,r=8,p=1$sa!t$\(hash)",
    ])
    func malformed(stored: String) {
        #expect(PasswordHash.parse(stored) == nil)
        #expect(!PasswordHash.verify(password: Array("password".utf8), against: stored))
        #expect(PasswordHash.needsRehash(stored))
    }

    @Test("parameter bounds")
    func bounds() {
        #expect(ScryptParameters(logN: 17, r: 8, p: 1) != nil)   // 128 MiB, work 2^20: the ceiling
        #expect(ScryptParameters(logN: 17, r: 8, p: 2) == nil)
        #expect(ScryptParameters(logN: 20, r: 1, p: 1) != nil)
        #expect(ScryptParameters(logN: 1, r: 1, p: 1) != nil)
        #expect(ScryptParameters.default.memoryBytes > 128 * 16384 * 8)
        #expect(ScryptParameters.default.description == "ln=14,r=8,p=1")
    }

    @Test("an unknown user's login costs a verify and fails")
    func unknownUser() {
        #expect(!PasswordHash.verifyUnknownUser(password: Array("password".utf8)))
    }
}
