// Harness (j): the notification bridge's SMTP reply parser over a byte stream fed
// in chunks, with small or default limits. Refusals (SMTPReplyError) are
// expected; crashes and traps are bugs. Checks:
//   - the same bytes in one piece, in the chunks, and one byte at a time give the
//     same replies and the same error: parsing does not depend on how the bytes
//     arrive;
//   - every reply has a code of 200-599 (digits 2-5, 0-5, 0-9) and 1 to
//     limits.lines lines; an enhanced code's class is the code's first digit;
//   - the lines are as given: walking the stream from its start, each reply line
//     is its code, `-` (or, on the last line, a space or nothing), its text byte
//     for byte, and CR LF, within limits.lineBytes; the text holds no control
//     character but HT;
//   - an error names a line after every line of the complete replies;
//   - EHLO keyword parsing takes any reply;
//   - an SMTPSession reading the stream never sends credentials or mail in the
//     clear (SMTPSessionCheck.swift).
//
// Input layout:
//   byte 0  seed for the chunk sizes (bit 7: 1-8 bytes, else up to 256; 0: one piece)
//   byte 1  the limits: bits 0-1 line bytes (2000, 64, 16, 8), bits 2-3 lines (100, 4, 2, 1)
//   rest    the byte stream
import Notify

/// The harness: one input, returns 0; a finding traps.
public func fuzzSMTPReply(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let seed = input[0]
    var limits = SMTPReplyLimits()
    limits.lineBytes = [2000, 64, 16, 8][Int(input[1]) & 3]
    limits.lines = [100, 4, 2, 1][(Int(input[1]) >> 2) & 3]
    let stream = Array(input[2...])

    let whole = parseReplies(stream, limits: limits, chunks: [stream.count])
    let sizes = chunkSizes(seed: seed, total: stream.count)
    let chunked = parseReplies(stream, limits: limits, chunks: sizes)
    guard whole == chunked else { fatalError("in one piece: \(whole); in chunks \(sizes): \(chunked); input \(showBytes(stream))") }
    if stream.count <= 512 {
        let bytewise = parseReplies(stream, limits: limits, chunks: Array(repeating: 1, count: stream.count))
        guard whole == bytewise else { fatalError("in one piece: \(whole); byte by byte: \(bytewise); input \(showBytes(stream))") }
    }
    check(whole, stream: stream, limits: limits)
    checkSMTPSession(stream, chunks: sizes)
    return 0
}

fileprivate struct SMTPOutcomeOfParse: Equatable, CustomStringConvertible {
    var replies: [SMTPReply] = []
    var error: SMTPReplyError?
    var description: String { "\(replies.count) replies \(replies.map { $0.description }), error \(error.map { "\($0)" } ?? "none")" }
}

fileprivate func parseReplies(_ stream: [UInt8], limits: SMTPReplyLimits, chunks: [Int]) -> SMTPOutcomeOfParse {
    var parser = SMTPReplyParser(limits: limits)
    var outcome = SMTPOutcomeOfParse()
    var offset = 0
    for n in chunks {
        parser.append(stream[offset..<(offset + n)])
        offset += n
        do {
            while let reply = try parser.next() { outcome.replies.append(reply) }
        } catch {
            guard let error = error as? SMTPReplyError else { fatalError("not an SMTPReplyError: \(error)") }
            outcome.error = error
            return outcome
        }
    }
    return outcome
}

fileprivate func check(_ outcome: SMTPOutcomeOfParse, stream: [UInt8], limits: SMTPReplyLimits) {
    var offset = 0
    var linesSeen = 0
    for reply in outcome.replies {
        guard (200...599).contains(reply.code), (reply.code / 10) % 10 <= 5 else { fatalError("reply code \(reply.code)") }
        guard (1...limits.lines).contains(reply.lines.count) else { fatalError("\(reply.lines.count) lines, limit \(limits.lines)") }
        if let e = reply.enhanced, e.statusClass != reply.code / 100 { fatalError("enhanced \(e) on \(reply.code)") }
        _ = SMTPCapabilities(ehlo: reply)
        for (i, text) in reply.lines.enumerated() {
            let last = i == reply.lines.count - 1
            let start = offset
            let code = Array(String(reply.code).utf8)
            guard stream[offset...].starts(with: code) else { fatalError("line \(linesSeen + 1) does not start with \(reply.code)") }
            offset += 3
            let separator = stream[offset]
            if last {
                if separator == 0x20 { offset += 1 } else if !(text.isEmpty && separator == 0x0D) {
                    fatalError("last line \(linesSeen + 1) has separator \(separator)")
                }
            } else {
                guard separator == UInt8(ascii: "-") else { fatalError("continuation line \(linesSeen + 1) has separator \(separator)") }
                offset += 1
            }
            let textBytes = Array(text.utf8)
            guard stream[offset...].starts(with: textBytes + [0x0D, 0x0A]) else {
                fatalError("line \(linesSeen + 1): text \(text.debugDescription) is not the bytes given")
            }
            guard !textBytes.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) else { fatalError("control in \(text.debugDescription)") }
            offset += textBytes.count + 2
            guard offset - start <= limits.lineBytes else { fatalError("a line of \(offset - start) bytes, limit \(limits.lineBytes)") }
            linesSeen += 1
        }
    }
    if let error = outcome.error {
        let line: Int
        switch error {
        case .malformedLine(let n), .bareLineEnding(let n), .invalidText(let n), .lineTooLong(let n), .tooManyLines(let n): line = n
        case .codeMismatch(let n, let expected, let found):
            guard expected != found else { fatalError("a mismatch of \(expected) with itself") }
            line = n
        }
        guard line > linesSeen else { fatalError("\(error) names a line of a complete reply (\(linesSeen) lines)") }
    }
}
