// Harness (a): the FrameDecoder over raw bytes, fed in chunks, with every frame it
// returns passed to Packet.decode. Refusals (CodecError) are expected; crashes,
// traps and sanitizer reports are bugs. Also checks that the frames returned are
// exactly the bytes that were fed, in order, and that the decoder's byte count
// stays consistent.
//
// Input layout:
//   byte 0  protocol level (byte % 3: 3.1, 3.1.1, 5.0) and sender ((byte / 3) % 3:
//           client, server, either)
//   byte 1  seed for the chunk sizes (bit 7: small chunks of 1-8 bytes, else up to
//           256; 0: everything in one append)
//   rest    the byte stream
//
// Each step is compared with a reference framer written from MQTT 5.0 sections
// 1.5.5 and 2.1.4 (3.1.1: 2.2.3).
import MQTT
#if canImport(Glibc)
import Glibc
#endif

fileprivate let versions: [ProtocolVersion] = [.v3_1, .v3_1_1, .v5]
fileprivate let senders: [Sender] = [.client, .server, .either]

/// The harness: one input, returns 0; a finding traps.
public func fuzzFrame(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    var version = versions[Int(input[0]) % 3]
    let sender = senders[(Int(input[0]) / 3) % 3]
    let seed = input[1]
    let stream = UnsafeBufferPointer(rebasing: input[2...])

    var decoder = FrameDecoder(maximumPacketSize: maximumPacketSize)
    var state = UInt32(seed) &* 2_654_435_761 | 1
    func nextChunkSize() -> Int {
        if seed == 0 { return stream.count }
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return 1 + Int(state % (seed & 0x80 != 0 ? 8 : 256))
    }

    var fed = 0
    var consumed = 0
    var chunkIndex = 0
    while fed < stream.count {
        let n = min(nextChunkSize(), stream.count - fed)
        let chunk = UnsafeBufferPointer(rebasing: stream[fed..<(fed + n)])
        // Both append paths (raw buffer, generic collection), alternately.
        if chunkIndex & 1 == 0 {
            decoder.append(UnsafeRawBufferPointer(chunk))
        } else {
            decoder.append(chunk)
        }
        fed += n
        chunkIndex += 1
        while true {
            let expected = referenceFrame(UnsafeBufferPointer(rebasing: stream[consumed..<fed]))
            let frame: Frame?
            do {
                frame = try decoder.next()
            } catch {
                guard expected == .refused(error.reason) else {
                    fatalError("FrameDecoder refused the bytes at offset \(consumed) (\(error)); expected \(expected)")
                }
                // The connection would be closed here.
                return 0
            }
            guard let frame else {
                guard expected == .incomplete else {
                    fatalError("FrameDecoder wants more bytes at offset \(consumed); expected \(expected)")
                }
                break
            }
            // The frame must be the next bytes of the stream, header included.
            let size = frame.packetSize
            guard expected == .frame(size: size), consumed + size <= fed else {
                fatalError("frame of \(size) bytes at offset \(consumed) (\(fed) bytes fed); expected \(expected)")
            }
            let bodyStart = consumed + size - frame.body.count
            let sameBytes = frame.body.withUnsafeBufferPointer { body in
                body.isEmpty || memcmp(body.baseAddress!, stream.baseAddress! + bodyStart, body.count) == 0
            }
            guard stream[consumed] == frame.header, sameBytes else {
                fatalError("frame at offset \(consumed) does not match the bytes fed")
            }
            consumed += size
            do {
                let packet = try Packet.decode(frame, version: version, from: sender)
                // A broker switches to the level that CONNECT announces.
                if case .connect(let connect) = packet { version = connect.version }
            } catch {
                // Refused packet: expected for most inputs.
            }
        }
        guard decoder.bufferedByteCount == fed - consumed else {
            fatalError("decoder holds \(decoder.bufferedByteCount) bytes; \(fed - consumed) expected")
        }
        if seed & 0x40 != 0 && decoder.bufferedByteCount == 0 { decoder.shrink() }
    }
    return 0
}

fileprivate let maximumPacketSize = 64 * 1024

fileprivate enum Expected: Equatable {
    case incomplete
    case frame(size: Int)
    case refused(ReasonCode)
}

/// What a receiver must do with `bytes`, the unconsumed input: a Variable Byte
/// Integer of at most four bytes (the fourth without a continuation bit), in the
/// fewest bytes that hold its value; a packet larger than the maximum is refused
/// as soon as its length is known.
fileprivate func referenceFrame(_ bytes: UnsafeBufferPointer<UInt8>) -> Expected {
    // The length bytes, least significant first, as in section 1.5.5.
    var count = 0
    var value = 0
    var i = 1
    while true {
        guard i < bytes.count else { return .incomplete }
        let b = bytes[i]
        value += Int(b & 0x7F) << (7 * count)
        count += 1
        i += 1
        if b & 0x80 == 0 { break }
        if count == 4 { return .refused(.malformedPacket) }
    }
    let minimal = value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
    if count != minimal { return .refused(.malformedPacket) }
    let size = 1 + count + value
    if size > maximumPacketSize { return .refused(.packetTooLarge) }
    return bytes.count >= size ? .frame(size: size) : .incomplete
}
