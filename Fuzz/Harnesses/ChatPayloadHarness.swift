// Harness (f): the chat plugin's payload readers (posts, history queries, read
// receipts) on any bytes: each reads or refuses, never crashes; what a reader
// accepts keeps its promises (a body within the limit, a limit within 1...500).
import Chat

/// The harness: one input, returns 0; a finding traps.
public func fuzzChatPayload(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let n = ChatPayloads.post(bytes, maxBody: 256), !(1...256).contains(n) {
        fatalError("post body of \(n) bytes accepted with a 256-byte limit")
    }
    if let (_, _, limit) = ChatPayloads.history(bytes), !(1...500).contains(limit) {
        fatalError("history limit \(limit) accepted")
    }
    if let upTo = ChatPayloads.receipt(bytes), upTo < 0 {
        fatalError("receipt up_to \(upTo) accepted")
    }
    return 0
}
