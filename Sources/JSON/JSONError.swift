/// Why `JSONValue.parse` refused a document, and where.
///
/// `offset` is the index, from 0, of the first byte at fault in the input: the
/// byte that cannot be there, the start of the number, string escape or key in
/// question, or the input's length when it ended too soon. A REST handler can
/// put `description` in its `bad_json` message as it is.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The rule of RFC 8259 (or the caller's limit) that the input broke.
    public enum Reason: Equatable, Sendable, CustomStringConvertible {
        /// The input ended inside a value (or held no value at all).
        case unexpectedEnd
        /// A byte that cannot start a value where a value must be.
        case expectedValue
        /// An object member's name is not a string.
        case expectedKey
        /// No `:` after an object member's name.
        case expectedColon
        /// No `,` or closing bracket after an array element or object member.
        case expectedCommaOrEnd
        /// Something other than whitespace after the document's value.
        case trailingData
        /// A word that starts like `true`, `false` or `null` but is not one.
        case invalidLiteral
        /// A number with a `0` followed by more digits (`01`, `-007`).
        case leadingZero
        /// A number missing the digits its grammar requires (`-`, `1.`, `.5`, `1e`).
        case invalidNumber
        /// A number whose magnitude is too large for a `Double` (`1e400`).
        case numberOutOfRange
        /// A backslash not followed by one of `"\/bfnrt` or by `u` and four hex digits.
        case invalidEscape
        /// A `\u` escape of a UTF-16 surrogate that is not half of a high-low pair.
        case loneSurrogate
        /// Bytes inside a string that are not well-formed UTF-8 (RFC 3629).
        case invalidUTF8
        /// A byte below 0x20 inside a string; it must be escaped.
        case controlCharacter
        /// An object names the same member twice (keys equal as Swift strings).
        case duplicateKey(String)
        /// Arrays and objects nested deeper than the caller's limit.
        case tooDeep(limit: Int)
        /// The input is longer than the caller's limit, in bytes.
        case tooLarge(limit: Int)

        public var description: String {
            switch self {
            case .unexpectedEnd: return "unexpected end of input"
            case .expectedValue: return "expected a value"
            case .expectedKey: return "expected a string as the member name"
            case .expectedColon: return "expected ':' after the member name"
            case .expectedCommaOrEnd: return "expected ',' or a closing bracket"
            case .trailingData: return "unexpected data after the value"
            case .invalidLiteral: return "invalid literal (true, false or null expected)"
            case .leadingZero: return "number with a leading zero"
            case .invalidNumber: return "invalid number"
            case .numberOutOfRange: return "number too large for a double"
            case .invalidEscape: return "invalid escape sequence"
            case .loneSurrogate: return "unpaired UTF-16 surrogate in a \\u escape"
            case .invalidUTF8: return "invalid UTF-8"
            case .controlCharacter: return "unescaped control character in a string"
            case .duplicateKey(let key): return "duplicate key \"\(key)\""
            case .tooDeep(let limit): return "nested deeper than \(limit) levels"
            case .tooLarge(let limit): return "larger than \(limit) bytes"
            }
        }
    }

    /// Index of the first byte at fault, from 0.
    public let offset: Int
    /// What is wrong there.
    public let reason: Reason

    public init(offset: Int, reason: Reason) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "\(reason.description) at byte \(offset)" }
}
