// Numbers (RFC 8259 section 6): `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
// Integer literals that fit Int64 are kept exactly. Other numbers take Clinger's
// fast path when the digits and the power of ten are both exact doubles (the
// quotient or product is then correctly rounded); the rest go through the
// standard library's correctly rounded conversion.

extension JSONParser {
    /// The decimal digits of a number literal, as far as the fast paths need them.
    struct Digits {
        /// The first 19 significant digits (19 always fit a UInt64).
        var mantissa: UInt64 = 0
        var significantDigits = 0
        /// Whether digits beyond the 19th were dropped.
        var truncated = false
        /// The power of ten to apply to `mantissa` (meaningful only if nothing was truncated).
        var exponent = 0

        /// Takes the next digit; past the 19th only notes that digits were dropped
        /// (the exact conversion then reads the literal itself).
        mutating func add(_ digit: UInt8) {
            if mantissa == 0 && digit == 0 { return }  // leading zeros carry nothing
            guard significantDigits < 19 else {
                truncated = true
                return
            }
            mantissa = mantissa * 10 + UInt64(digit)
            significantDigits += 1
        }
    }

    /// Reads a number whose first byte (`-` or a digit) is at the read position.
    mutating func parseNumber() throws(JSONError) -> JSONValue {
        let start = position
        let negative = current == ASCII.minus
        if negative { position += 1 }
        var digits = Digits()
        try readIntegerPart(into: &digits)
        var isInteger = true
        if !atEnd && current == ASCII.dot {
            isInteger = false
            try readFraction(into: &digits)
        }
        if !atEnd && (current == ASCII.e || current == ASCII.upperE) {
            isInteger = false
            try readExponent(into: &digits)
        }
        if isInteger, !digits.truncated, let exact = exactInteger(digits.mantissa, negative: negative) {
            return .integer(exact)
        }
        if let fast = clingerFastPath(digits) {
            return .number(negative ? -fast : fast)
        }
        return .number(try slowDouble(start..<position))
    }

    /// `0`, or a non-zero digit and any digits after it.
    mutating func readIntegerPart(into digits: inout Digits) throws(JSONError) {
        guard !atEnd else { throw fail(.unexpectedEnd) }
        let first = current
        guard isDigit(first) else { throw fail(.invalidNumber) }
        position += 1
        if first == ASCII.zero {
            if !atEnd && isDigit(current) { throw fail(.leadingZero, at: position - 1) }
            return
        }
        digits.add(first - ASCII.zero)
        while !atEnd && isDigit(current) {
            digits.add(current - ASCII.zero)
            position += 1
        }
    }

    /// `.` and at least one digit.
    mutating func readFraction(into digits: inout Digits) throws(JSONError) {
        position += 1
        guard !atEnd else { throw fail(.unexpectedEnd) }
        guard isDigit(current) else { throw fail(.invalidNumber) }
        while !atEnd && isDigit(current) {
            digits.add(current - ASCII.zero)
            digits.exponent -= 1
            position += 1
        }
    }

    /// `e` or `E`, an optional sign, and at least one digit.
    mutating func readExponent(into digits: inout Digits) throws(JSONError) {
        position += 1
        guard !atEnd else { throw fail(.unexpectedEnd) }
        var negative = false
        if current == ASCII.minus || current == ASCII.plus {
            negative = current == ASCII.minus
            position += 1
            guard !atEnd else { throw fail(.unexpectedEnd) }
        }
        guard isDigit(current) else { throw fail(.invalidNumber) }
        // Saturate: beyond this the fast path is out of reach anyway, and the slow
        // conversion reads the literal itself.
        var value = 0
        while !atEnd && isDigit(current) {
            value = min(value * 10 + Int(current - ASCII.zero), 1_000_000)
            position += 1
        }
        digits.exponent += negative ? -value : value
    }

    func isDigit(_ byte: UInt8) -> Bool { byte &- ASCII.zero < 10 }

    /// The literal's value when it fits Int64 (down to Int64.min).
    func exactInteger(_ magnitude: UInt64, negative: Bool) -> Int64? {
        if negative {
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            return magnitude <= UInt64(Int64.max) ? -Int64(magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// The exact powers of ten a double holds: 10^0 ... 10^22.
    static let exactPowersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// The magnitude when both the mantissa (at most 2^53) and the power of ten
    /// (at most 10^22) are exact doubles: one IEEE operation then rounds correctly.
    func clingerFastPath(_ digits: Digits) -> Double? {
        guard !digits.truncated, digits.mantissa <= 1 << 53, abs(digits.exponent) <= 22 else { return nil }
        let mantissa = Double(digits.mantissa)
        let power = Self.exactPowersOfTen[abs(digits.exponent)]
        return digits.exponent < 0 ? mantissa / power : mantissa * power
    }

    /// The correctly rounded value of the literal in `range`, or `numberOutOfRange`.
    func slowDouble(_ range: Range<Int>) throws(JSONError) -> Double {
        // The grammar is checked, so the only way to fail is a magnitude beyond
        // Double.greatestFiniteMagnitude (converted to infinity).
        guard let value = Double(makeString(range)), value.isFinite else {
            throw fail(.numberOutOfRange, at: range.lowerBound)
        }
        return value
    }
}
