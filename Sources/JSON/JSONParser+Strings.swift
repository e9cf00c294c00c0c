// Strings (RFC 8259 section 7): UTF-8 checked as RFC 3629 defines it, escapes
// decoded, surrogate pairs joined into one scalar.

extension JSONParser {
    /// Reads a string whose opening quote is at the read position.
    mutating func parseString() throws(JSONError) -> String {
        position += 1
        let start = position
        // Most strings are short ASCII without escapes: find the closing quote and
        // make the string from the input bytes directly.
        while position < input.count {
            let byte = input[position]
            if byte == ASCII.quote {
                let text = makeString(start..<position)
                position += 1
                return text
            }
            if byte == ASCII.backslash || byte < 0x20 || byte >= 0x80 { break }
            position += 1
        }
        return try parseStringSlowly(from: start)
    }

    /// Continues a string at the first byte that is not plain ASCII: checks UTF-8,
    /// decodes escapes into `scratch`, and copies the runs between them.
    mutating func parseStringSlowly(from start: Int) throws(JSONError) -> String {
        var escaped = false
        var runStart = start
        while position < input.count {
            let byte = input[position]
            switch byte {
            case ASCII.quote:
                let text: String
                if escaped {
                    appendToScratch(runStart..<position)
                    text = String(decoding: scratch, as: UTF8.self)
                } else {
                    text = makeString(start..<position)
                }
                position += 1
                return text
            case ASCII.backslash:
                if !escaped {
                    escaped = true
                    scratch.removeAll(keepingCapacity: true)
                }
                appendToScratch(runStart..<position)
                try parseEscape()
                runStart = position
            case 0..<0x20:
                throw fail(.controlCharacter)
            case 0x80...:
                try skipUTF8Sequence()
            default:
                position += 1
            }
        }
        throw fail(.unexpectedEnd)
    }

    /// A string from input bytes already known to be valid UTF-8.
    func makeString(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: input[range]), as: UTF8.self)
    }

    mutating func appendToScratch(_ range: Range<Int>) {
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: input[range]))
    }

    // MARK: - UTF-8

    /// Steps over one well-formed multi-byte UTF-8 sequence (RFC 3629 section 4),
    /// whose lead byte is at the read position, or throws at that lead byte. The
    /// ranges of the second byte shut out overlong forms, UTF-16 surrogates
    /// (U+D800...U+DFFF) and scalars above U+10FFFF.
    mutating func skipUTF8Sequence() throws(JSONError) {
        let length: Int
        let second: ClosedRange<UInt8>
        switch input[position] {
        case 0xC2...0xDF: (length, second) = (2, 0x80...0xBF)
        case 0xE0: (length, second) = (3, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, second) = (3, 0x80...0xBF)
        case 0xED: (length, second) = (3, 0x80...0x9F)
        case 0xF0: (length, second) = (4, 0x90...0xBF)
        case 0xF1...0xF3: (length, second) = (4, 0x80...0xBF)
        case 0xF4: (length, second) = (4, 0x80...0x8F)
        default: throw fail(.invalidUTF8)
        }
        guard position + length <= input.count, second.contains(input[position + 1]) else {
            throw fail(.invalidUTF8)
        }
        for i in 2..<length where input[position + i] & 0xC0 != 0x80 {
            throw fail(.invalidUTF8)
        }
        position += length
    }

    // MARK: - Escapes

    /// Decodes the escape whose backslash is at the read position into `scratch`.
    mutating func parseEscape() throws(JSONError) {
        let backslash = position
        guard position + 1 < input.count else { throw fail(.unexpectedEnd, at: input.count) }
        let decoded: UInt8
        switch input[position + 1] {
        case ASCII.quote: decoded = ASCII.quote
        case ASCII.backslash: decoded = ASCII.backslash
        case ASCII.slash: decoded = ASCII.slash
        case ASCII.b: decoded = 0x08
        case ASCII.f: decoded = 0x0C
        case ASCII.n: decoded = ASCII.lineFeed
        case ASCII.r: decoded = ASCII.carriageReturn
        case ASCII.t: decoded = ASCII.tab
        case ASCII.u:
            appendScalar(try parseUnicodeEscape())
            return
        default: throw fail(.invalidEscape, at: backslash)
        }
        scratch.append(decoded)
        position += 2
    }

    /// Reads `\uXXXX`, or two of them when the first is a high surrogate, and
    /// returns the scalar they spell. A low surrogate first, or a high one not
    /// followed by an escaped low one, is a lone surrogate.
    mutating func parseUnicodeEscape() throws(JSONError) -> UInt32 {
        let start = position
        let first = try parseHexUnit()
        switch first {
        case 0xD800...0xDBFF:
            guard position + 1 < input.count, input[position] == ASCII.backslash, input[position + 1] == ASCII.u
            else { throw fail(.loneSurrogate, at: start) }
            let second = try parseHexUnit()
            guard (0xDC00...0xDFFF).contains(second) else { throw fail(.loneSurrogate, at: start) }
            return 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        case 0xDC00...0xDFFF:
            throw fail(.loneSurrogate, at: start)
        default:
            return first
        }
    }

    /// Reads one `\uXXXX` (either case of hex digit) at the read position.
    mutating func parseHexUnit() throws(JSONError) -> UInt32 {
        let backslash = position
        var unit: UInt32 = 0
        for i in 2..<6 {
            guard position + i < input.count else { throw fail(.unexpectedEnd, at: input.count) }
            guard let digit = hexValue(input[position + i]) else { throw fail(.invalidEscape, at: backslash) }
            unit = unit << 4 | digit
        }
        position += 6
        return unit
    }

    func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case ASCII.zero...ASCII.nine: return UInt32(byte - ASCII.zero)
        case 0x41...0x46: return UInt32(byte - 0x41 + 10)
        case 0x61...0x66: return UInt32(byte - 0x61 + 10)
        default: return nil
        }
    }

    /// Appends a scalar (never a surrogate, at most U+10FFFF) to `scratch` as UTF-8.
    mutating func appendScalar(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }
}
