/// The message as it goes after DATA (RFC 5321 4.5.2): every line ending made
/// CR LF, a `.` added in front of each line that starts with one, and the closing
/// `.` line.
public enum SMTPData {
    /// A lone CR or LF becomes CR LF: the server then sees the same line breaks as
    /// this client, so no `LF . LF` in a message can end the data early ("SMTP
    /// smuggling", 2023).
    public static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 64 + 5)
        var lineStart = true
        var i = 0
        while i < message.count {
            let b = message[i]
            if b == 0x0D || b == 0x0A {
                out += [0x0D, 0x0A]
                i += (b == 0x0D && i + 1 < message.count && message[i + 1] == 0x0A) ? 2 : 1
                lineStart = true
                continue
            }
            if lineStart && b == UInt8(ascii: ".") { out.append(b) }
            out.append(b)
            lineStart = false
            i += 1
        }
        if !lineStart { out += [0x0D, 0x0A] }
        out += Array(".\r\n".utf8)
        return out
    }
}
