/// Reads MQTT data types from a packet body. Every read checks the bytes left
/// first, so a short packet is reported as malformed and nothing is read past
/// the end. Slices share the body's storage.
struct ByteReader {
    let bytes: ArraySlice<UInt8>
    var index: Int
    let end: Int
    let version: ProtocolVersion

    init(_ bytes: ArraySlice<UInt8>, version: ProtocolVersion) {
        self.bytes = bytes
        self.index = bytes.startIndex
        self.end = bytes.endIndex
        self.version = version
    }

    var remaining: Int { end - index }
    var isAtEnd: Bool { index == end }

    @inline(__always)
    private func need(_ count: Int, _ what: StaticString) throws(CodecError) {
        if end - index < count {
            throw CodecError.malformed("packet ends inside \(what)")
        }
    }

    @inline(__always)
    mutating func readByte(_ what: StaticString) throws(CodecError) -> UInt8 {
        try need(1, what)
        defer { index += 1 }
        return bytes[index]
    }

    @inline(__always)
    mutating func readUInt16(_ what: StaticString) throws(CodecError) -> UInt16 {
        try need(2, what)
        defer { index += 2 }
        return UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1])
    }

    @inline(__always)
    mutating func readUInt32(_ what: StaticString) throws(CodecError) -> UInt32 {
        try need(4, what)
        defer { index += 4 }
        return UInt32(bytes[index]) << 24 | UInt32(bytes[index + 1]) << 16
            | UInt32(bytes[index + 2]) << 8 | UInt32(bytes[index + 3])
    }

    /// A variable byte integer inside a packet (property length, subscription id).
    @inline(__always)
    mutating func readVariableInt(_ what: StaticString) throws(CodecError) -> UInt32 {
        var value: UInt32 = 0
        var shift: UInt32 = 0
        for position in 0..<4 {
            let byte = try readByte(what)
            value |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if position > 0 && byte == 0 {
                    throw CodecError.malformed(
                        "\(what) uses more bytes than its value needs", rule: "MQTT-1.5.5-1")
                }
                return value
            }
            shift += 7
        }
        throw CodecError.malformed("\(what) is longer than four bytes")
    }

    @inline(__always)
    mutating func readSlice(_ count: Int, _ what: StaticString) throws(CodecError) -> ArraySlice<UInt8> {
        try need(count, what)
        defer { index += count }
        return bytes[index..<(index + count)]
    }

    /// Binary Data: a two-byte length, then that many bytes.
    @inline(__always)
    mutating func readBinary(_ what: StaticString) throws(CodecError) -> ArraySlice<UInt8> {
        let length = Int(try readUInt16(what))
        return try readSlice(length, what)
    }

    /// A UTF-8 Encoded String as bytes, checked by the MQTT rules.
    @inline(__always)
    mutating func readUTF8Bytes(_ what: StaticString) throws(CodecError) -> ArraySlice<UInt8> {
        let slice = try readBinary(what)
        try Self.validate(slice, what, version: version)
        return slice
    }

    mutating func readString(_ what: StaticString) throws(CodecError) -> String {
        String(decoding: try readUTF8Bytes(what), as: UTF8.self)
    }

    mutating func rest() -> ArraySlice<UInt8> {
        defer { index = end }
        return bytes[index..<end]
    }

    static func validate(_ slice: ArraySlice<UInt8>, _ what: StaticString, version: ProtocolVersion)
        throws(CodecError)
    {
        switch UTF8Validation.check(slice) {
        case .valid: return
        case .illFormed:
            throw CodecError.malformed(
                "\(what) is not well-formed UTF-8", rule: version == .v5 ? "MQTT-1.5.4-1" : "MQTT-1.5.3-1")
        case .nullCharacter:
            throw CodecError.malformed(
                "\(what) contains U+0000", rule: version == .v5 ? "MQTT-1.5.4-2" : "MQTT-1.5.3-2")
        }
    }
}

// MARK: - Writing

/// The number of bytes a variable byte integer takes.
@inline(__always)
func variableIntSize(_ value: Int) -> Int {
    value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
}

/// The largest value a variable byte integer can carry.
public let maximumVariableInt = 268_435_455

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendUInt16(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    mutating func appendUInt32(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    mutating func appendVariableInt(_ value: Int) {
        var v = value
        repeat {
            var byte = UInt8(v & 0x7F)
            v >>= 7
            if v > 0 { byte |= 0x80 }
            append(byte)
        } while v > 0
    }

    @inline(__always)
    mutating func appendBinary<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        appendUInt16(UInt16(truncatingIfNeeded: bytes.count))
        append(contentsOf: bytes)
    }

    @inline(__always)
    mutating func appendString(_ string: String) {
        var s = string
        s.withUTF8 { appendBinary($0) }
    }
}
