/// Quoted-printable (RFC 2045 6.7) for text bodies: printable ASCII stays as it
/// is, `=` and every other byte becomes `=XX`, a space or tab before a line break
/// is encoded, and lines longer than 76 characters end in a soft break `=`.
public enum QuotedPrintable {
    /// `lines` are the text's lines without their breaks; the result joins them
    /// with CR LF (hard breaks), with no break after the last.
    public static func encode(lines: [[UInt8]]) -> String {
        var out: [UInt8] = []
        for (n, line) in lines.enumerated() {
            if n > 0 { out += [0x0D, 0x0A] }
            var column = 0
            for (i, byte) in line.enumerated() {
                let last = i == line.count - 1
                let literal = (33...126).contains(byte) && byte != UInt8(ascii: "=") || (byte == 0x20 || byte == 0x09) && !last
                let piece: [UInt8] = literal ? [byte] : [UInt8(ascii: "="), hex(byte >> 4), hex(byte & 15)]
                // Room for the soft break's `=` unless this piece ends the line.
                if column + piece.count > (last ? 76 : 75) {
                    out += Array("=\r\n".utf8)
                    column = 0
                }
                out += piece
                column += piece.count
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x41 + nibble - 10 }
}
