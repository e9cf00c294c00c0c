/// Why a user name, password or e-mail address was refused. `code` is the
/// SPEC's error code (the REST `error` field); `description` says what to fix.
public enum CredentialError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidUsername(String)
    case invalidPassword(String)
    case invalidEmail(String)

    /// `invalid_username`, `invalid_password` or `invalid_email`.
    public var code: String {
        switch self {
        case .invalidUsername: return "invalid_username"
        case .invalidPassword: return "invalid_password"
        case .invalidEmail: return "invalid_email"
        }
    }

    public var description: String {
        switch self {
        case .invalidUsername(let why), .invalidPassword(let why), .invalidEmail(let why): return why
        }
    }
}

/// The rules of SPEC section 2 for what a user signs up with. Pure functions.
public enum Credentials {
    public static let usernameLengths = 3...32
    public static let passwordLengths = 8...256

    // MARK: User names

    /// Checks a user name: 3-32 characters, each `A-Z a-z 0-9 _ . -`. (So a name
    /// never holds a topic separator or wildcard and can sit in `users/<name>/...`.)
    public static func validateUsername(_ name: String) throws(CredentialError) {
        let bytes = name.utf8
        guard bytes.allSatisfy(isUsernameByte) else {
            throw .invalidUsername("a user name may hold only letters A-Z and a-z, digits, '_', '.' and '-'")
        }
        // All ASCII from here, so bytes are characters.
        guard usernameLengths.contains(bytes.count) else {
            throw .invalidUsername("a user name has 3 to 32 characters, not \(bytes.count)")
        }
    }

    /// The form under which a name is unique and looked up: ASCII lower case.
    /// `Alice` and `alice` are the same user. Meant for valid names; other bytes
    /// pass through unchanged.
    public static func canonicalName(_ name: String) -> String {
        String(decoding: name.utf8.map(lowercased), as: UTF8.self)
    }

    static func isUsernameByte(_ byte: UInt8) -> Bool {
        isASCIILetterOrDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
    }

    // MARK: Passwords

    /// Checks a password: 8-256 bytes of well-formed UTF-8.
    public static func validatePassword(_ password: [UInt8]) throws(CredentialError) {
        guard passwordLengths.contains(password.count) else {
            throw .invalidPassword("a password has 8 to 256 bytes of UTF-8, not \(password.count)")
        }
        guard String(validating: password, as: UTF8.self) != nil else {
            throw .invalidPassword("a password must be UTF-8 text")
        }
    }

    /// `validatePassword` for text (always UTF-8, so only the length is checked).
    public static func validatePassword(_ password: String) throws(CredentialError) {
        try validatePassword(Array(password.utf8))
    }

    // MARK: E-mail addresses

    public static let maxEmailLength = 254

    /// A practical check of an e-mail address, ASCII only: one `@`; a local part
    /// of 1-64 characters, letters, digits and ``!#$%&'*+/=?^_`{|}~-``, with dots
    /// between (not first, last or doubled; no quoted forms); a domain of at
    /// least two dot-separated labels, each 1-63 letters, digits or inner
    /// hyphens, the last not all digits; 254 characters at most in all.
    /// Whether the address receives mail only a message can tell.
    public static func validateEmail(_ address: String) throws(CredentialError) {
        let bytes = Array(address.utf8)
        guard !bytes.isEmpty, bytes.count <= maxEmailLength else {
            throw .invalidEmail("an e-mail address has 1 to \(maxEmailLength) characters")
        }
        let parts = bytes.split(separator: UInt8(ascii: "@"), omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .invalidEmail("an e-mail address has exactly one '@'") }
        guard isValidLocalPart(parts[0]) else {
            throw .invalidEmail("the part before '@' is empty, too long, or holds characters or dots where they cannot be")
        }
        guard isValidDomain(parts[1]) else {
            throw .invalidEmail("the part after '@' is not a domain name such as example.com")
        }
    }

    private static let localPartSymbols = Set("!#$%&'*+/=?^_`{|}~-".utf8)

    private static func isValidLocalPart(_ local: ArraySlice<UInt8>) -> Bool {
        guard (1...64).contains(local.count) else { return false }
        let atoms = local.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        return atoms.allSatisfy { atom in
            !atom.isEmpty && atom.allSatisfy { isASCIILetterOrDigit($0) || localPartSymbols.contains($0) }
        }
    }

    private static func isValidDomain(_ domain: ArraySlice<UInt8>) -> Bool {
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy(isValidLabel), let top = labels.last else { return false }
        // A numeric top-level label would make it an IP address, which is not a domain.
        return !top.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    private static func isValidLabel(_ label: ArraySlice<UInt8>) -> Bool {
        guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else {
            return false
        }
        return label.allSatisfy { isASCIILetterOrDigit($0) || $0 == UInt8(ascii: "-") }
    }

    // MARK: ASCII

    private static func isASCIILetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
    }
}
