// The io_uring send ring on real sockets: several sends in one submission, each
// completed by the time `submit` returns, a full socket answered with EAGAIN at
// once (never a send the kernel finishes later from a buffer we reuse).
import CLinux
import Glibc
@testable import Reactor
import Testing

@Suite("io_uring send ring")
struct SendRingTests {
    /// A connected stream socket pair, both ends non-blocking.
    static func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
        precondition(rc == 0, "socketpair")
        return (fds[0], fds[1])
    }

    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += chunk[0..<n]
        }
    }

    @Test("this machine's kernel lets the broker use io_uring")
    func available() {
        #expect(EventLoop.sendRingUnavailableReason() == nil)
    }

    @Test("sends to several sockets in one submission, each completed with its byte count")
    func batch() throws {
        let ring = try SendRing(entries: 8)
        let pairs = (0..<3).map { _ in Self.socketPair() }
        defer { for (a, b) in pairs { close(a); close(b) } }
        let messages: [[UInt8]] = [Array("first".utf8), Array("second one".utf8), Array(repeating: 7, count: 3000)]
        var results: [Int: Int32] = [:]
        for (i, message) in messages.enumerated() {
            let queued = message.withUnsafeBytes { ring.send(pairs[i].0, $0.baseAddress!, $0.count, tag: i) }
            #expect(queued)
        }
        #expect(ring.queued == 3)
        ring.submit { tag, result in results[tag] = result }
        #expect(ring.queued == 0)
        for (i, message) in messages.enumerated() {
            #expect(results[i] == Int32(message.count))
            #expect(Self.readAll(pairs[i].1) == message)
        }
    }

    @Test("a full socket completes at once with EAGAIN and nothing is sent later")
    func fullSocket() throws {
        let ring = try SendRing(entries: 4)
        let (a, b) = Self.socketPair()
        defer { close(a); close(b) }
        // Fill the socket with plain writes until it refuses.
        let block = [UInt8](repeating: 1, count: 4096)
        var filled = 0
        while true {
            let n = block.withUnsafeBytes { write(a, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            filled += n
        }
        #expect(errno == EAGAIN)
        var message = [UInt8](repeating: 2, count: 100)
        var result: Int32?
        _ = message.withUnsafeBytes { ring.send(a, $0.baseAddress!, $0.count, tag: 9) }
        ring.submit { tag, r in
            #expect(tag == 9)
            result = r
        }
        #expect(result == -EAGAIN)
        // The buffer is ours again: change it, drain the peer, and make sure none of
        // it (old or new) went out after the submission returned.
        for i in message.indices { message[i] = 3 }
        let drained = Self.readAll(b)
        #expect(drained.count == filled)
        #expect(drained.allSatisfy { $0 == 1 })
        usleep(20_000)
        #expect(Self.readAll(b).isEmpty)
    }

    @Test("a ring holds no more sends than its entries")
    func full() throws {
        let ring = try SendRing(entries: 2)
        let (a, b) = Self.socketPair()
        defer { close(a); close(b) }
        let byte: [UInt8] = [1]
        var accepted = 0
        for i in 0..<(ring.capacity + 1) {
            if byte.withUnsafeBytes({ ring.send(a, $0.baseAddress!, 1, tag: i) }) { accepted += 1 }
        }
        #expect(accepted == ring.capacity)
        var completed = 0
        ring.submit { _, r in if r == 1 { completed += 1 } }
        #expect(completed == ring.capacity)
        #expect(Self.readAll(b).count == ring.capacity)
    }
}
