/// A JSON value (RFC 8259), as the chat layer's bodies and envelopes use them.
///
/// Numbers come in two cases so that ids survive: the parser stores a literal
/// written as an integer (no fraction, no exponent) that fits an `Int64` as
/// `.integer`, exactly, and every other number as `.number`. The two compare by
/// value: `.integer(1) == .number(1.0)`, while `.integer(9007199254740993)` equals
/// no `Double` at all (the nearest is 9007199254740992).
///
/// Objects keep their members in order. The parser never produces an object with
/// two equal keys; a value built in code can hold them, and is then written as is.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number that is not an integer literal fitting `Int64` (`1.5`, `1e3`, `2.0`,
    /// `18446744073709551616`). Always finite when it comes from the parser.
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])
    /// An integer literal that fits `Int64`, stored exactly.
    case integer(Int64)

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        // Exact: an integer equals a double only when the double is that very integer.
        case (.integer(let a), .number(let b)), (.number(let b), .integer(let a)): return Int64(exactly: b) == a
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }
}

// MARK: - Accessors

extension JSONValue {
    /// The value of the first member named `key` when this is an object, else nil.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// The element at `index` when this is an array and the index is in range, else nil.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// The text of a string, else nil.
    public var string: String? {
        guard case .string(let s) = self else { return nil }
        return s
    }

    /// The value of `true` or `false`, else nil.
    public var bool: Bool? {
        guard case .bool(let b) = self else { return nil }
        return b
    }

    /// The exact value of an integer literal that fits `Int64`, else nil: nil for
    /// `1.0`, `1e2` and `9223372036854775808`, so an id is never a rounded number.
    public var int64: Int64? {
        guard case .integer(let i) = self else { return nil }
        return i
    }

    /// Any number as a `Double` (an `.integer` beyond 2^53 is rounded), else nil.
    public var double: Double? {
        switch self {
        case .number(let d): return d
        case .integer(let i): return Double(i)
        default: return nil
        }
    }

    /// The elements of an array, else nil.
    public var array: [JSONValue]? {
        guard case .array(let a) = self else { return nil }
        return a
    }

    /// The members of an object in document order, else nil.
    public var object: [(String, JSONValue)]? {
        guard case .object(let o) = self else { return nil }
        return o
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

// MARK: - Literals

// So that tests and code can write `let v: JSONValue = ["id": 17, "tags": ["a"]]`.
extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    /// Members in the order written; equal keys are kept (and written) as given.
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text, as `serializedString`.
    public var description: String { serializedString }
}
