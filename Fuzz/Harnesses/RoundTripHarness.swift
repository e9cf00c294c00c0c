// Harness (b): decode -> encode -> decode. Any packet the decoder accepts must
// encode without error (at the same level; CONNECT at its own level), frame as
// exactly one packet of the same type (PUBLISH: same first byte), decode again to an equal packet,
// and encode again to identical bytes. A mismatch traps with a description.
//
// Input layout:
//   byte 0  protocol level (byte % 3: 3.1, 3.1.1, 5.0) and sender ((byte / 3) % 3:
//           client, server, either)
//   byte 1  the fixed header's first byte
//   rest    the packet body (the remaining length is implied)
import MQTT

fileprivate let versions: [ProtocolVersion] = [.v3_1, .v3_1_1, .v5]
fileprivate let senders: [Sender] = [.client, .server, .either]

/// The harness: one input, returns 0; a finding traps.
public func fuzzRoundTrip(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 2 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let version = versions[Int(input[0]) % 3]
    let sender = senders[(Int(input[0]) / 3) % 3]
    let header = input[1]

    let first: Packet
    do {
        first = try Packet.decode(header: header, body: input[2...], version: version, from: sender)
    } catch {
        return 0
    }
    // CONNECT carries its own level and must be encoded at it.
    var level = version
    if case .connect(let connect) = first { level = connect.version }

    let bytes: [UInt8]
    do {
        bytes = try first.encoded(version: level)
    } catch {
        fatalError("decoded packet does not encode at \(level): \(error)\npacket: \(first)")
    }
    // Same packet type; PUBLISH keeps its flags. (Others carry fixed flags, which
    // 3.1 lets a sender set DUP in: the encoder writes the fixed value.)
    guard let firstByte = bytes.first, firstByte >> 4 == header >> 4, header >> 4 != 3 || firstByte == header else {
        fatalError("re-encoded first byte \(bytes.first.map { String($0, radix: 16) } ?? "none") != \(String(header, radix: 16))\npacket: \(first)")
    }

    var decoder = FrameDecoder()
    decoder.append(bytes)
    let frame: Frame
    do {
        guard let f = try decoder.next() else {
            fatalError("re-encoded packet (\(bytes.count) bytes) is not a complete frame\npacket: \(first)")
        }
        frame = f
    } catch {
        fatalError("re-encoded packet does not frame: \(error)\npacket: \(first)")
    }
    guard decoder.bufferedByteCount == 0, frame.packetSize == bytes.count else {
        fatalError("re-encoded packet frames as \(frame.packetSize) of \(bytes.count) bytes\npacket: \(first)")
    }

    let second: Packet
    do {
        second = try Packet.decode(frame, version: version, from: sender)
    } catch {
        fatalError("re-encoded packet does not decode: \(error)\npacket: \(first)\nbytes: \(hex(bytes))")
    }
    guard second == first else {
        fatalError("round trip changed the packet\nfirst:  \(first)\nsecond: \(second)\nbytes: \(hex(bytes))")
    }

    let again: [UInt8]
    do {
        again = try second.encoded(version: level)
    } catch {
        fatalError("second encode failed: \(error)\npacket: \(second)")
    }
    guard again == bytes else {
        fatalError("encoding is not stable\nfirst:  \(hex(bytes))\nsecond: \(hex(again))")
    }
    return 0
}

fileprivate func hex(_ bytes: [UInt8]) -> String {
    bytes.prefix(256).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
        + (bytes.count > 256 ? " ..." : "")
}
