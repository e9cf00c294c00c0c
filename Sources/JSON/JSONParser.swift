// The reader: RFC 8259 and nothing more. One pass over contiguous bytes, no
// look-back; strings without escapes are made straight from the input, numbers
// are read without making a string unless they need the slow, exact conversion.

extension JSONValue {
    /// The default `maxBytes`: 1 MiB. Callers with a tighter budget (a REST body
    /// limit, an MQTT payload) pass their own.
    public static let defaultMaxBytes = 1 << 20
    /// The default `maxDepth`: 64 nested arrays or objects.
    public static let defaultMaxDepth = 64

    /// Parses one JSON document (RFC 8259: any value, surrounded by optional
    /// whitespace) or throws the first rule it breaks.
    ///
    /// Refused: anything after the value, numbers with leading zeros or too large
    /// for a `Double` (too small ones round to zero, as `strtod` does), unescaped
    /// control characters and invalid UTF-8 in strings, `\u` surrogates that are not
    /// a high-low pair, a byte order mark, objects that name a key twice (equal as
    /// Swift strings, which is how `subscript(key:)` finds them), more than `maxDepth`
    /// nested arrays and objects, and inputs over `maxBytes` bytes.
    ///
    /// - Parameters:
    ///   - maxBytes: the largest input accepted, in bytes.
    ///   - maxDepth: how many arrays and objects may nest (`[[1]]` is 2); must be in
    ///     0...1024 (anything else is a programming error and traps).
    ///     The reader recurses once per level, so the limit also bounds its stack.
    public static func parse(
        _ bytes: some Collection<UInt8>, maxBytes: Int = defaultMaxBytes, maxDepth: Int = defaultMaxDepth
    ) throws(JSONError) -> JSONValue {
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
            JSONParser.parse(buffer, maxBytes: maxBytes, maxDepth: maxDepth)
        }
        if let contiguous { return try contiguous.get() }
        // Copy no more than is needed to see that the input is too large.
        return try parse(Array(bytes.prefix(maxBytes &+ 1)), maxBytes: maxBytes, maxDepth: maxDepth)
    }

    /// `parse(_:maxBytes:maxDepth:)` for an array, without the generic detour.
    public static func parse(
        _ bytes: [UInt8], maxBytes: Int = defaultMaxBytes, maxDepth: Int = defaultMaxDepth
    ) throws(JSONError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { JSONParser.parse($0, maxBytes: maxBytes, maxDepth: maxDepth) }.get()
    }

    /// `parse(_:maxBytes:maxDepth:)` for an array slice (a body inside a larger buffer).
    public static func parse(
        _ bytes: ArraySlice<UInt8>, maxBytes: Int = defaultMaxBytes, maxDepth: Int = defaultMaxDepth
    ) throws(JSONError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { JSONParser.parse($0, maxBytes: maxBytes, maxDepth: maxDepth) }.get()
    }

    /// `parse(_:maxBytes:maxDepth:)` for text: its UTF-8 bytes.
    public static func parse(
        _ text: String, maxBytes: Int = defaultMaxBytes, maxDepth: Int = defaultMaxDepth
    ) throws(JSONError) -> JSONValue {
        var text = text
        return try text.withUTF8 { JSONParser.parse($0, maxBytes: maxBytes, maxDepth: maxDepth) }.get()
    }
}

/// The state of one parse: the input, the read position, and a scratch buffer for
/// strings with escapes (reused, so a document with many such strings allocates once).
struct JSONParser {
    let input: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var position = 0
    var scratch: [UInt8] = []

    /// Parses `input` as a whole document. A `Result`, because the standard library's
    /// `withUnsafeBufferPointer` would widen a typed throw to `any Error`.
    static func parse(_ input: UnsafeBufferPointer<UInt8>, maxBytes: Int, maxDepth: Int) -> Result<JSONValue, JSONError> {
        precondition((0...1024).contains(maxDepth), "maxDepth \(maxDepth) is outside 0...1024")
        guard input.count <= maxBytes else {
            return .failure(JSONError(offset: max(maxBytes, 0), reason: .tooLarge(limit: maxBytes)))
        }
        var parser = JSONParser(input: input, maxDepth: maxDepth)
        do throws(JSONError) {
            return .success(try parser.parseDocument())
        } catch {
            return .failure(error)
        }
    }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard position == input.count else { throw fail(.trailingData) }
        return value
    }

    // MARK: - Helpers

    func fail(_ reason: JSONError.Reason) -> JSONError {
        JSONError(offset: position, reason: reason)
    }

    func fail(_ reason: JSONError.Reason, at offset: Int) -> JSONError {
        JSONError(offset: offset, reason: reason)
    }

    var atEnd: Bool { position >= input.count }

    /// The byte at the read position; only called when not `atEnd`.
    var current: UInt8 { input[position] }

    /// Skips the four whitespace bytes of RFC 8259 section 2 (and no others).
    mutating func skipWhitespace() {
        while position < input.count {
            switch input[position] {
            case ASCII.space, ASCII.tab, ASCII.lineFeed, ASCII.carriageReturn: position += 1
            default: return
            }
        }
    }

    // MARK: - Values

    /// Skips whitespace, then reads one value. `depth` counts the arrays and objects
    /// around it.
    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        skipWhitespace()
        guard !atEnd else { throw fail(.unexpectedEnd) }
        switch current {
        case ASCII.openBrace: return try parseObject(depth: depth + 1)
        case ASCII.openBracket: return try parseArray(depth: depth + 1)
        case ASCII.quote: return .string(try parseString())
        case ASCII.t: try parseLiteral(ASCII.trueWord); return .bool(true)
        case ASCII.f: try parseLiteral(ASCII.falseWord); return .bool(false)
        case ASCII.n: try parseLiteral(ASCII.nullWord); return .null
        case ASCII.minus, ASCII.zero...ASCII.nine: return try parseNumber()
        default: throw fail(.expectedValue)
        }
    }

    /// Reads `true`, `false` or `null`, whose first byte has been seen.
    mutating func parseLiteral(_ word: StaticString) throws(JSONError) {
        let start = position
        let count = word.utf8CodeUnitCount
        for i in 0..<count {
            guard start + i < input.count else { throw fail(.unexpectedEnd, at: input.count) }
            guard input[start + i] == word.utf8Start[i] else { throw fail(.invalidLiteral, at: start) }
        }
        position = start + count
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw fail(.tooDeep(limit: maxDepth)) }
        position += 1
        skipWhitespace()
        var elements: [JSONValue] = []
        if !atEnd && current == ASCII.closeBracket {
            position += 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue(depth: depth))
            if try endOfList(closedBy: ASCII.closeBracket) { return .array(elements) }
        }
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw fail(.tooDeep(limit: maxDepth)) }
        position += 1
        skipWhitespace()
        var members: [(String, JSONValue)] = []
        var keys = KeySet()
        if !atEnd && current == ASCII.closeBrace {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard !atEnd else { throw fail(.unexpectedEnd) }
            guard current == ASCII.quote else { throw fail(.expectedKey) }
            let keyStart = position
            let key = try parseString()
            guard keys.insert(key, members: members) else { throw fail(.duplicateKey(key), at: keyStart) }
            skipWhitespace()
            guard !atEnd else { throw fail(.unexpectedEnd) }
            guard current == ASCII.colon else { throw fail(.expectedColon) }
            position += 1
            members.append((key, try parseValue(depth: depth)))
            if try endOfList(closedBy: ASCII.closeBrace) { return .object(members) }
        }
    }

    /// After an element or member: consumes `,` (false: another follows) or the
    /// closing bracket (true: the list is done).
    mutating func endOfList(closedBy close: UInt8) throws(JSONError) -> Bool {
        skipWhitespace()
        guard !atEnd else { throw fail(.unexpectedEnd) }
        let byte = current
        guard byte == ASCII.comma || byte == close else { throw fail(.expectedCommaOrEnd) }
        position += 1
        return byte == close
    }
}

/// The keys of the object being read, to refuse a repeated one. Small objects (all
/// that requests and envelopes hold) are searched in place; from
/// `linearLimit` members on, the keys also go into a set, so a hostile object
/// with thousands of members costs no more than linear time.
struct KeySet {
    static let linearLimit = 16
    private var set: Set<String>? = nil

    /// Whether `key` is new; `members` are those read so far, without it.
    mutating func insert(_ key: String, members: [(String, JSONValue)]) -> Bool {
        if members.count < Self.linearLimit {
            return !members.contains { $0.0 == key }
        }
        if set == nil {
            set = Set(members.lazy.map { $0.0 })
        }
        return set!.insert(key).inserted
    }
}

/// The bytes the grammar names.
enum ASCII {
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let zero: UInt8 = 0x30
    static let nine: UInt8 = 0x39
    static let colon: UInt8 = 0x3A
    static let upperE: UInt8 = 0x45
    static let openBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let closeBracket: UInt8 = 0x5D
    static let b: UInt8 = 0x62
    static let e: UInt8 = 0x65
    static let f: UInt8 = 0x66
    static let n: UInt8 = 0x6E
    static let r: UInt8 = 0x72
    static let t: UInt8 = 0x74
    static let u: UInt8 = 0x75
    static let openBrace: UInt8 = 0x7B
    static let closeBrace: UInt8 = 0x7D
    static let trueWord: StaticString = "true"
    static let falseWord: StaticString = "false"
    static let nullWord: StaticString = "null"
}
