/// UTF-8 checks of MQTT section 1.5.4 (5.0) / 1.5.3 (3.1.1): well-formed, no
/// surrogate code points, no U+0000. Control characters and non-characters are
/// allowed through (the spec says SHOULD NOT, which a receiver may ignore).
public enum UTF8Validation {
    public enum Outcome: Equatable, Sendable {
        case valid
        /// Ill-formed UTF-8 or an encoded surrogate (U+D800...U+DFFF).
        case illFormed
        /// The null character U+0000.
        case nullCharacter
    }

    /// Checks `bytes`; also reports whether the text holds the wildcard characters
    /// `+` or `#`, so that topic names are checked in the same pass.
    @inlinable
    public static func check(_ bytes: ArraySlice<UInt8>) -> Outcome {
        check(bytes, wildcards: nil)
    }

    @usableFromInline
    static func check(_ bytes: ArraySlice<UInt8>, wildcards: UnsafeMutablePointer<Bool>?) -> Outcome {
        bytes.withUnsafeBufferPointer { check($0, wildcards: wildcards) }
    }

    static func check(_ p: UnsafeBufferPointer<UInt8>, wildcards: UnsafeMutablePointer<Bool>?) -> Outcome {
        var i = 0
        let n = p.count
        var sawWildcard = false
        guard let base = p.baseAddress else {
            if let wildcards { wildcards.pointee = false }
            return .valid
        }
        while i < n {
            // Eight ASCII bytes at a time: no high bit, no zero byte; note '+' and '#'.
            if i + 8 <= n {
                let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                if w & highBits == 0 && !hasZeroByte(w) {
                    if hasZeroByte(w ^ plusBytes) || hasZeroByte(w ^ hashBytes) { sawWildcard = true }
                    i += 8
                    continue
                }
            }
            let b0 = base[i]
            if b0 < 0x80 {
                if b0 == 0 { return .nullCharacter }
                if b0 == 0x2B || b0 == 0x23 { sawWildcard = true }
                i += 1
                continue
            }
            if b0 < 0xC2 { return .illFormed }  // continuation byte or overlong 2-byte lead
            if b0 < 0xE0 {
                guard i + 1 < n, base[i + 1] & 0xC0 == 0x80 else { return .illFormed }
                i += 2
                continue
            }
            if b0 < 0xF0 {
                guard i + 2 < n else { return .illFormed }
                let b1 = base[i + 1]
                let b2 = base[i + 2]
                guard b1 & 0xC0 == 0x80, b2 & 0xC0 == 0x80 else { return .illFormed }
                if b0 == 0xE0 && b1 < 0xA0 { return .illFormed }  // overlong
                if b0 == 0xED && b1 >= 0xA0 { return .illFormed }  // surrogate U+D800...U+DFFF
                i += 3
                continue
            }
            if b0 < 0xF5 {
                guard i + 3 < n else { return .illFormed }
                let b1 = base[i + 1]
                guard b1 & 0xC0 == 0x80, base[i + 2] & 0xC0 == 0x80, base[i + 3] & 0xC0 == 0x80 else {
                    return .illFormed
                }
                if b0 == 0xF0 && b1 < 0x90 { return .illFormed }  // overlong
                if b0 == 0xF4 && b1 >= 0x90 { return .illFormed }  // above U+10FFFF
                i += 4
                continue
            }
            return .illFormed
        }
        if let wildcards { wildcards.pointee = sawWildcard }
        return .valid
    }

    private static let highBits: UInt64 = 0x8080_8080_8080_8080
    private static let plusBytes: UInt64 = 0x2B2B_2B2B_2B2B_2B2B
    private static let hashBytes: UInt64 = 0x2323_2323_2323_2323

    /// Whether any byte of `w` is zero (exact for the question "any?", not for "which").
    @inline(__always)
    private static func hasZeroByte(_ w: UInt64) -> Bool {
        (w &- 0x0101_0101_0101_0101) & ~w & highBits != 0
    }

    /// True when `bytes` is valid UTF-8 by the MQTT rules.
    public static func isValid(_ bytes: ArraySlice<UInt8>) -> Bool { check(bytes) == .valid }
    public static func isValid(_ bytes: [UInt8]) -> Bool { check(bytes[...]) == .valid }
}
