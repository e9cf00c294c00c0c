/// Base64 without padding (RFC 4648): the standard alphabet for password-hash
/// strings (as the PHC string format writes them), the URL-safe one for tokens.
/// Decoding is strict, so each byte string has exactly one accepted spelling.
public enum Base64 {
    public enum Alphabet {
        /// `A-Z a-z 0-9 + /` (RFC 4648 section 4).
        case standard
        /// `A-Z a-z 0-9 - _` (RFC 4648 section 5).
        case urlSafe

        var symbols: [UInt8] {
            switch self {
            case .standard: return Base64.standardSymbols
            case .urlSafe: return Base64.urlSafeSymbols
            }
        }
    }

    private static let standardSymbols = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlSafeSymbols = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// `bytes` as base64 text, no `=` padding.
    public static func encode(_ bytes: [UInt8], alphabet: Alphabet) -> String {
        let symbols = alphabet.symbols
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let group = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for shift in [18, 12, 6, 0] { out.append(symbols[Int(group >> UInt32(shift) & 63)]) }
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            let group = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            // One leftover byte needs two symbols, two need three.
            for shift in [18, 12, 6].prefix(rest + 1) { out.append(symbols[Int(group >> UInt32(shift) & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes that `text` spells, or nil if it is not canonical unpadded base64
    /// in `alphabet`: a symbol outside it, `=`, a length of 4k+1, or non-zero
    /// bits left over in the last symbol.
    public static func decode(_ text: Substring, alphabet: Alphabet) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for symbol in input {
            guard let value = sextet(symbol, alphabet) else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        // The padding bits of a partial last group must be zero.
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }

    private static func sextet(_ symbol: UInt8, _ alphabet: Alphabet) -> UInt8? {
        switch symbol {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return symbol - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return symbol - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return symbol - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+") where alphabet == .standard: return 62
        case UInt8(ascii: "/") where alphabet == .standard: return 63
        case UInt8(ascii: "-") where alphabet == .urlSafe: return 62
        case UInt8(ascii: "_") where alphabet == .urlSafe: return 63
        default: return nil
        }
    }
}
