// Shared by the stream harnesses (http, websocket, smtp-reply, http-response): how a stream
// is cut into the pieces a socket might deliver, and how a finding shows its bytes.

/// Chunk sizes from a seed byte: xorshift steps, 1-8 bytes with bit 7 set, else
/// up to 256; seed 0 keeps the stream in one piece.
func chunkSizes(seed: UInt8, total: Int) -> [Int] {
    var state = UInt32(seed) &* 2_654_435_761 | 1
    var sizes: [Int] = []
    var left = total
    while left > 0 {
        var n = left
        if seed != 0 {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            n = min(left, 1 + Int(state % (seed & 0x80 != 0 ? 8 : 256)))
        }
        sizes.append(n)
        left -= n
    }
    return sizes
}

func showBytes(_ bytes: some Collection<UInt8>) -> String {
    let text = bytes.prefix(256).map { b -> String in
        (0x20..<0x7F).contains(b) && b != 0x5C ? String(UnicodeScalar(b)) : "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
    }.joined()
    return "\"" + text + (bytes.count > 256 ? "..." : "") + "\""
}
