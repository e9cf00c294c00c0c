// The byte-level writing that JSONValue.serialized() and JSONWriter share.
// Compact output: no whitespace anywhere.

enum JSONOutput {
    /// A string in quotes, with `"`, `\` and the control characters U+0000...U+001F
    /// escaped (short forms where RFC 8259 has them) and everything else, `/` and
    /// non-ASCII included, as its own UTF-8 bytes.
    static func appendString(_ text: String, to out: inout [UInt8]) {
        var text = text
        out.append(ASCII.quote)
        text.withUTF8 { appendEscaped($0, to: &out) }
        out.append(ASCII.quote)
    }

    /// Copies the runs that need no escape in one go each.
    static func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        var runStart = 0
        for i in 0..<utf8.count {
            let byte = utf8[i]
            guard byte < 0x20 || byte == ASCII.quote || byte == ASCII.backslash else { continue }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i]))
            appendEscape(for: byte, to: &out)
            runStart = i + 1
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
    }

    static func appendEscape(for byte: UInt8, to out: inout [UInt8]) {
        let short: UInt8
        switch byte {
        case ASCII.quote: short = ASCII.quote
        case ASCII.backslash: short = ASCII.backslash
        case 0x08: short = ASCII.b
        case 0x0C: short = ASCII.f
        case ASCII.lineFeed: short = ASCII.n
        case ASCII.carriageReturn: short = ASCII.r
        case ASCII.tab: short = ASCII.t
        default:
            // \u00XX, lowercase hex; only bytes below 0x20 get here.
            out.append(contentsOf: [ASCII.backslash, ASCII.u, ASCII.zero, ASCII.zero])
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0xF)])
            return
        }
        out.append(ASCII.backslash)
        out.append(short)
    }

    /// Decimal digits, no decimal point, no exponent.
    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(ASCII.minus) }
        var magnitude = value.magnitude
        let start = out.count
        repeat {
            out.append(ASCII.zero + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        out[start...].reverse()
    }

    /// The shortest text that reads back as the same double (Swift's `description`:
    /// `0.1`, `2.0`, `1e-07`, `1.7976931348623157e+308`; all of it JSON number
    /// grammar). JSON has no infinity or NaN: those are written as `null`.
    static func appendDouble(_ value: Double, to out: inout [UInt8]) {
        guard value.isFinite else {
            appendNull(to: &out)
            return
        }
        out.append(contentsOf: value.description.utf8)
    }

    static func appendBool(_ value: Bool, to out: inout [UInt8]) {
        out.append(contentsOf: value ? trueBytes : falseBytes)
    }

    static func appendNull(to out: inout [UInt8]) {
        out.append(contentsOf: nullBytes)
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
    static let trueBytes: [UInt8] = Array("true".utf8)
    static let falseBytes: [UInt8] = Array("false".utf8)
    static let nullBytes: [UInt8] = Array("null".utf8)

    /// A whole value tree, members in their stored order.
    static func appendValue(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: appendNull(to: &out)
        case .bool(let b): appendBool(b, to: &out)
        case .integer(let i): appendInteger(i, to: &out)
        case .number(let d): appendDouble(d, to: &out)
        case .string(let s): appendString(s, to: &out)
        case .array(let elements):
            out.append(ASCII.openBracket)
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(ASCII.comma) }
                appendValue(element, to: &out)
            }
            out.append(ASCII.closeBracket)
        case .object(let members):
            out.append(ASCII.openBrace)
            for (i, (key, member)) in members.enumerated() {
                if i > 0 { out.append(ASCII.comma) }
                appendString(key, to: &out)
                out.append(ASCII.colon)
                appendValue(member, to: &out)
            }
            out.append(ASCII.closeBrace)
        }
    }
}

extension JSONValue {
    /// Compact JSON (no whitespace), object members in their stored order; see
    /// `JSONWriter` for how strings and numbers are written. A non-finite
    /// `.number` (which the parser never makes) is written as `null`.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        JSONOutput.appendValue(self, to: &out)
        return out
    }

    /// `serialized()` as text.
    public var serializedString: String {
        String(decoding: serialized(), as: UTF8.self)
    }
}
