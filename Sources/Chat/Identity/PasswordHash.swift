import COpenSSL

/// Salted scrypt password hashes in a self-describing string (PHC string format):
///
///     $scrypt$ln=14,r=8,p=1$<salt>$<hash>
///
/// salt (16 random bytes) and hash (32 bytes) in standard base64 without
/// padding. The string carries its parameters, so `default` can rise later and
/// old hashes still verify; `needsRehash` says when to replace one (after a
/// successful login, while the password is at hand).
///
/// Each call costs one full scrypt derivation (16 MiB; on the project's 2-core
/// machine, release build, 37 ms at the default and 2 ms at `.testing` when
/// idle, about 50 ms and 2.5 ms under load): run it on a `BlockingPool`, never
/// on an event loop. Pure and thread-safe.
public enum PasswordHash {
    /// Bytes of salt in new hashes.
    public static let saltLength = 16
    /// Bytes of derived key in new hashes.
    public static let hashLength = 32

    /// Hashes `password` with a fresh random salt.
    ///
    /// Traps if the system has no randomness or OpenSSL cannot derive with valid
    /// parameters: both mean a broken installation, and a hash made without them
    /// would be worthless.
    public static func make(password: [UInt8], parameters: ScryptParameters = .default) -> String {
        let salt = RandomBytes.make(saltLength)
        guard let hash = derive(password: password, salt: salt, parameters: parameters, length: hashLength) else {
            fatalError("scrypt failed with valid parameters (\(parameters)): OpenSSL is broken")
        }
        return format(Stored(parameters: parameters, salt: salt, hash: hash))
    }

    /// Whether `password` is the one `stored` was made from. A malformed string,
    /// or one whose parameters exceed `ScryptParameters`' bounds, verifies false.
    /// The comparison takes the same time wherever the hashes differ.
    public static func verify(password: [UInt8], against stored: String) -> Bool {
        guard let parsed = parse(stored),
            let candidate = derive(password: password, salt: parsed.salt, parameters: parsed.parameters, length: parsed.hash.count)
        else { return false }
        return CRYPTO_memcmp(candidate, parsed.hash, candidate.count) == 0
    }

    /// Whether `stored` should be replaced by a new hash of the same password:
    /// it is malformed, or its parameters or lengths are not those of `target`.
    public static func needsRehash(_ stored: String, target: ScryptParameters = .default) -> Bool {
        guard let parsed = parse(stored) else { return true }
        return parsed.parameters != target || parsed.salt.count != saltLength || parsed.hash.count != hashLength
    }

    /// Costs what a `verify` at the default parameters costs and returns false:
    /// for a login naming an unknown user, so that its answer takes as long as a
    /// wrong password's and does not tell which user names exist. (The first
    /// call also makes the decoy hash it verifies against.)
    public static func verifyUnknownUser(password: [UInt8]) -> Bool {
        _ = verify(password: password, against: decoy)
        return false
    }

    /// A hash of a random password nobody knows, made once.
    private static let decoy = make(password: RandomBytes.make(16))

    // MARK: Derivation

    /// scrypt(password, salt) with OpenSSL, or nil if OpenSSL refuses.
    static func derive(password: [UInt8], salt: [UInt8], parameters: ScryptParameters, length: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: length)
        let ok = password.withUnsafeBufferPointer { pass in
            salt.withUnsafeBufferPointer { salt in
                EVP_PBE_scrypt(
                    UnsafeRawPointer(pass.baseAddress)?.assumingMemoryBound(to: CChar.self), pass.count,
                    salt.baseAddress, salt.count,
                    parameters.n, UInt64(parameters.r), UInt64(parameters.p), UInt64(parameters.memoryBytes),
                    &out, length)
            }
        }
        return ok == 1 ? out : nil
    }

    // MARK: The stored string

    struct Stored: Equatable {
        var parameters: ScryptParameters
        var salt: [UInt8]
        var hash: [UInt8]
    }

    /// Lengths a stored string may have: generous for hashes from other tools,
    /// tight enough that a hostile string cannot ask for much.
    static let acceptedSaltLengths = 8...64
    static let acceptedHashLengths = 16...64
    private static let maxStoredLength = 256

    static func format(_ stored: Stored) -> String {
        "$scrypt$\(stored.parameters)$\(Base64.encode(stored.salt, alphabet: .standard))$\(Base64.encode(stored.hash, alphabet: .standard))"
    }

    /// The parts of `$scrypt$ln=L,r=R,p=P$salt$hash`, or nil unless it is spelled
    /// exactly so (parameters in this order, plain decimal, canonical base64).
    static func parse(_ text: String) -> Stored? {
        guard text.utf8.count <= maxStoredLength else { return nil }
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count == 5, fields[0].isEmpty, fields[1] == "scrypt",
            let parameters = parseParameters(fields[2]),
            let salt = Base64.decode(fields[3], alphabet: .standard), acceptedSaltLengths.contains(salt.count),
            let hash = Base64.decode(fields[4], alphabet: .standard), acceptedHashLengths.contains(hash.count)
        else { return nil }
        return Stored(parameters: parameters, salt: salt, hash: hash)
    }

    private static func parseParameters(_ text: Substring) -> ScryptParameters? {
        let pairs = text.split(separator: ",", omittingEmptySubsequences: false)
        guard pairs.count == 3,
            let logN = value(of: "ln", in: pairs[0]),
            let r = value(of: "r", in: pairs[1]),
            let p = value(of: "p", in: pairs[2])
        else { return nil }
        return ScryptParameters(logN: logN, r: r, p: p)
    }

    /// The number in `name=digits`: at most 3 digits, no sign, no leading zero.
    private static func value(of name: String, in pair: Substring) -> Int? {
        guard pair.hasPrefix(name + "=") else { return nil }
        let digits = pair.dropFirst(name.count + 1)
        guard (1...3).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            digits.first != "0"
        else { return nil }
        return Int(digits)
    }
}
