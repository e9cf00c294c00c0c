/// A run of bytes that is usually UTF-8 text (topic names), kept as bytes so that
/// decoding, comparing and hashing never build a `String`. It shares storage with
/// the buffer it was decoded from: making one copies nothing.
public struct ByteString: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible,
    Comparable
{
    public var bytes: ArraySlice<UInt8>

    @inlinable
    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    @inlinable
    public init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    public init(_ string: String) { self.bytes = Array(string.utf8)[...] }

    public init(stringLiteral value: String) { self.init(value) }

    @inlinable public var count: Int { bytes.count }
    @inlinable public var isEmpty: Bool { bytes.isEmpty }

    /// The text, with invalid UTF-8 repaired (validated strings never need repair).
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    public var description: String { string }

    /// A copy that owns exactly its bytes, releasing the larger buffer it may share.
    public var compacted: ByteString { ByteString(Array(bytes)) }

    @inlinable
    public static func == (lhs: ByteString, rhs: ByteString) -> Bool {
        lhs.bytes.count == rhs.bytes.count && lhs.bytes.elementsEqual(rhs.bytes)
    }

    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public static func < (lhs: ByteString, rhs: ByteString) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// True when the bytes begin with the given ASCII prefix.
    public func hasPrefix(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard bytes.count >= count else { return false }
        return prefix.withUTF8Buffer { p in
            var i = bytes.startIndex
            for b in p {
                if bytes[i] != b { return false }
                i += 1
            }
            return true
        }
    }
}
