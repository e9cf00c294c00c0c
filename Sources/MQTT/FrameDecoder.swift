/// One complete packet as framed on the wire: the first header byte and the body
/// (the bytes the remaining length counts). The body shares the decoder's buffer.
public struct Frame: Equatable, Sendable {
    public let header: UInt8
    public let body: ArraySlice<UInt8>

    public init(header: UInt8, body: ArraySlice<UInt8>) {
        self.header = header
        self.body = body
    }

    /// The size of the whole packet on the wire.
    public var packetSize: Int { 1 + variableIntSize(body.count) + body.count }
}

/// Splits a byte stream, fed in chunks of any size, into frames. A declared
/// remaining length that would make the packet larger than `maximumPacketSize`
/// is refused as soon as its length bytes arrive, before any of its body is kept.
public struct FrameDecoder: Sendable {
    /// The largest packet (fixed header included) that will be accepted.
    public var maximumPacketSize: Int

    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maximumPacketSize: Int = maximumVariableInt + 5) {
        self.maximumPacketSize = maximumPacketSize
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// The first byte not yet returned in a frame (the next packet's type and flags).
    public var nextHeaderByte: UInt8? { readIndex < buffer.count ? buffer[readIndex] : nil }

    /// Capacity held by the decoder; zero once it has been drained and `shrink()`-ed.
    public var capacity: Int { buffer.capacity }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        prepareForAppend()
        buffer.append(contentsOf: bytes.bindMemory(to: UInt8.self))
    }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        prepareForAppend()
        buffer.append(contentsOf: bytes)
    }

    /// Drops consumed bytes so the buffer does not grow without bound. Frames
    /// already returned keep their own (shared) storage alive.
    private mutating func prepareForAppend() {
        if readIndex == 0 { return }
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex >= 4096 || readIndex * 2 >= buffer.count {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }

    /// Releases the buffer's memory when nothing is pending (for idle connections).
    public mutating func shrink() {
        if readIndex == buffer.count {
            buffer = []
            readIndex = 0
        }
    }

    /// The next complete frame, or nil when more bytes are needed.
    public mutating func next() throws(CodecError) -> Frame? {
        let available = buffer.count - readIndex
        if available < 2 { return nil }
        var remaining = 0
        var multiplier = 1
        var headerLength = 1
        while true {
            if readIndex + headerLength >= buffer.count { return nil }
            let byte = buffer[readIndex + headerLength]
            remaining += Int(byte & 0x7F) * multiplier
            headerLength += 1
            if byte & 0x80 == 0 {
                if headerLength > 2 && byte == 0 {
                    throw CodecError.malformed("remaining length uses more bytes than its value needs", rule: "MQTT-1.5.5-1")
                }
                break
            }
            if headerLength == 5 {
                throw CodecError.malformed("remaining length is longer than four bytes")
            }
            multiplier *= 128
        }
        if headerLength + remaining > maximumPacketSize {
            throw CodecError(
                .packetTooLarge,
                "packet of \(headerLength + remaining) bytes exceeds the maximum packet size \(maximumPacketSize)")
        }
        if available < headerLength + remaining { return nil }
        let start = readIndex + headerLength
        let frame = Frame(header: buffer[readIndex], body: buffer[start..<(start + remaining)])
        readIndex = start + remaining
        return frame
    }
}
