/// Writes one JSON value straight into bytes, without building a `JSONValue`
/// tree first: for envelopes and REST answers on the hot path.
///
///     var writer = JSONWriter()
///     writer.object { o in
///         o.field("id", 17)
///         o.field("room", "general")
///         if let ckey { o.field("ckey", ckey) }
///     }
///     publish(payload: writer.bytes)
///
/// Output is compact and the same as `JSONValue.serialized()` would give for the
/// same value: strings with `"`, `\` and control characters escaped (`\n`, `\t`,
/// ... or `\u001f`), `/` and non-ASCII as they are (UTF-8); integers as digits;
/// doubles in the shortest form that reads back the same (`0.1`, `2.0`, `1e-07`);
/// infinity and NaN, which JSON cannot express, as `null`. Keys are written in
/// the order given and not checked for repeats.
public struct JSONWriter: Sendable {
    /// The JSON written so far (after whatever the writer was given to append to).
    public var bytes: [UInt8]

    /// A writer that appends to `bytes` (empty by default), with room reserved for
    /// `reservingCapacity` more bytes: one allocation instead of a doubling series
    /// for a typical envelope.
    public init(appendingTo bytes: [UInt8] = [], reservingCapacity: Int = 256) {
        self.bytes = bytes
        self.bytes.reserveCapacity(bytes.count + reservingCapacity)
    }

    /// Writes an object; `body` adds its members.
    public mutating func object(_ body: (inout JSONObjectWriter) -> Void) {
        JSONObjectWriter.write(into: &bytes, body)
    }

    /// Writes an array; `body` adds its elements.
    public mutating func array(_ body: (inout JSONArrayWriter) -> Void) {
        JSONArrayWriter.write(into: &bytes, body)
    }

    /// Writes a whole value tree.
    public mutating func value(_ value: JSONValue) {
        JSONOutput.appendValue(value, to: &bytes)
    }
}

/// Adds the members of one object; see `JSONWriter`.
public struct JSONObjectWriter: Sendable {
    var bytes: [UInt8]
    var isEmpty = true

    /// Opens an object at the end of `bytes`, lets `body` fill it, and closes it.
    /// The buffer is moved in and out, never copied.
    static func write(into bytes: inout [UInt8], _ body: (inout JSONObjectWriter) -> Void) {
        var writer = JSONObjectWriter(bytes: [])
        swap(&writer.bytes, &bytes)
        writer.bytes.append(ASCII.openBrace)
        body(&writer)
        writer.bytes.append(ASCII.closeBrace)
        swap(&writer.bytes, &bytes)
    }

    /// The separator and `"key":`.
    mutating func key(_ key: String) {
        if !isEmpty { bytes.append(ASCII.comma) }
        isEmpty = false
        JSONOutput.appendString(key, to: &bytes)
        bytes.append(ASCII.colon)
    }

    /// `"key":"value"`.
    public mutating func field(_ key: String, _ value: String) {
        self.key(key)
        JSONOutput.appendString(value, to: &bytes)
    }

    /// `"key":17`.
    public mutating func field(_ key: String, _ value: Int) {
        field(key, Int64(value))
    }

    /// `"key":17`.
    public mutating func field(_ key: String, _ value: Int64) {
        self.key(key)
        JSONOutput.appendInteger(value, to: &bytes)
    }

    /// `"key":0.5`; infinity and NaN as `null`.
    public mutating func field(_ key: String, _ value: Double) {
        self.key(key)
        JSONOutput.appendDouble(value, to: &bytes)
    }

    /// `"key":true`.
    public mutating func field(_ key: String, _ value: Bool) {
        self.key(key)
        JSONOutput.appendBool(value, to: &bytes)
    }

    /// `"key":` and a whole value tree.
    public mutating func field(_ key: String, _ value: JSONValue) {
        self.key(key)
        JSONOutput.appendValue(value, to: &bytes)
    }

    /// `"key":null`.
    public mutating func nullField(_ key: String) {
        self.key(key)
        JSONOutput.appendNull(to: &bytes)
    }

    /// `"key":{...}`; `body` adds the inner object's members.
    public mutating func object(_ key: String, _ body: (inout JSONObjectWriter) -> Void) {
        self.key(key)
        JSONObjectWriter.write(into: &bytes, body)
    }

    /// `"key":[...]`; `body` adds the array's elements.
    public mutating func array(_ key: String, _ body: (inout JSONArrayWriter) -> Void) {
        self.key(key)
        JSONArrayWriter.write(into: &bytes, body)
    }

    /// `"key":` and `json` copied as it is, e.g. an envelope serialized earlier.
    /// Not checked: `json` must be one complete JSON value.
    public mutating func rawField(_ key: String, json: some Sequence<UInt8>) {
        self.key(key)
        bytes.append(contentsOf: json)
    }
}

/// Adds the elements of one array; see `JSONWriter`.
public struct JSONArrayWriter: Sendable {
    var bytes: [UInt8]
    var isEmpty = true

    /// Opens an array at the end of `bytes`, lets `body` fill it, and closes it.
    static func write(into bytes: inout [UInt8], _ body: (inout JSONArrayWriter) -> Void) {
        var writer = JSONArrayWriter(bytes: [])
        swap(&writer.bytes, &bytes)
        writer.bytes.append(ASCII.openBracket)
        body(&writer)
        writer.bytes.append(ASCII.closeBracket)
        swap(&writer.bytes, &bytes)
    }

    mutating func separate() {
        if !isEmpty { bytes.append(ASCII.comma) }
        isEmpty = false
    }

    /// A string element.
    public mutating func element(_ value: String) {
        separate()
        JSONOutput.appendString(value, to: &bytes)
    }

    /// An integer element.
    public mutating func element(_ value: Int) {
        element(Int64(value))
    }

    /// An integer element.
    public mutating func element(_ value: Int64) {
        separate()
        JSONOutput.appendInteger(value, to: &bytes)
    }

    /// A double element; infinity and NaN as `null`.
    public mutating func element(_ value: Double) {
        separate()
        JSONOutput.appendDouble(value, to: &bytes)
    }

    /// `true` or `false`.
    public mutating func element(_ value: Bool) {
        separate()
        JSONOutput.appendBool(value, to: &bytes)
    }

    /// A whole value tree.
    public mutating func element(_ value: JSONValue) {
        separate()
        JSONOutput.appendValue(value, to: &bytes)
    }

    /// `null`.
    public mutating func nullElement() {
        separate()
        JSONOutput.appendNull(to: &bytes)
    }

    /// An object element; `body` adds its members.
    public mutating func object(_ body: (inout JSONObjectWriter) -> Void) {
        separate()
        JSONObjectWriter.write(into: &bytes, body)
    }

    /// An array element; `body` adds its elements.
    public mutating func array(_ body: (inout JSONArrayWriter) -> Void) {
        separate()
        JSONArrayWriter.write(into: &bytes, body)
    }

    /// `json` copied as it is, e.g. a stored envelope in a history answer.
    /// Not checked: `json` must be one complete JSON value.
    public mutating func rawElement(json: some Sequence<UInt8>) {
        separate()
        bytes.append(contentsOf: json)
    }
}
