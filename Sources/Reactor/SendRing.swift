import CLinux
import Glibc

/// An io_uring submission ring through which a loop hands the kernel all of a
/// turn's socket sends in one system call (`io_uring_enter`) instead of one
/// `write` each. Sends are non-blocking (`MSG_DONTWAIT`): a full socket completes
/// at once with EAGAIN, so every send has completed when `submit` returns and no
/// buffer is read by the kernel after that.
final class SendRing {
    private var ring = parley_ring()
    /// Sends queued and not yet submitted.
    private(set) var queued = 0
    var capacity: Int { Int(ring.entries) }

    /// Nil when io_uring works here; otherwise why not (refused by policy or a
    /// seccomp filter, missing, too old).
    static func unavailableReason() -> String? {
        let ring: SendRing
        do {
            ring = try SendRing(entries: 8)
        } catch {
            return "\(error)"
        }
        // A kernel can have io_uring without its send operation (before 5.6): try one.
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            return "\(SystemError("socketpair"))"
        }
        defer { close(fds[0]); close(fds[1]) }
        let probe: [UInt8] = [0x2A]
        var result: Int32?
        _ = probe.withUnsafeBytes { ring.send(fds[0], $0.baseAddress!, 1, tag: 0) }
        ring.submit { _, r in result = r }
        guard let result else { return "io_uring_enter refused the submission" }
        if result != 1 { return "\(SystemError("io_uring send", code: result < 0 ? -result : 0))" }
        return nil
    }

    init(entries: UInt32) throws(SystemError) {
        let rc = parley_ring_init(&ring, entries)
        if rc < 0 { throw SystemError("io_uring_setup", code: -rc) }
    }

    deinit { parley_ring_close(&ring) }

    /// Queues a send of `count` bytes at `base` to `fd`; false when the ring is full.
    /// The bytes must stay where they are, unchanged, until `submit` returns.
    func send(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int, tag: Int) -> Bool {
        if parley_ring_send(&ring, fd, base, UInt32(clamping: count), UInt64(tag)) != 0 { return false }
        queued += 1
        return true
    }

    /// Submits what is queued and calls `completed(tag, result)` for each send the
    /// kernel took: bytes written, or a negated errno. A send it did not take (the
    /// submission failed) gets no call and is never sent later: the caller writes
    /// those the usual way.
    func submit(_ completed: (Int, Int32) -> Void) {
        let expected = queued
        if expected == 0 { return }
        let rc = parley_ring_submit(&ring, 0)
        let taken = rc < 0 ? 0 : Int(rc)
        if taken < expected { _ = parley_ring_unqueue(&ring) }
        queued = 0
        var tag: UInt64 = 0
        var result: Int32 = 0
        var seen = 0
        while seen < taken {
            if parley_ring_reap(&ring, &tag, &result) == 0 {
                // Not posted yet (not expected of non-blocking sends): wait for it.
                if parley_ring_submit(&ring, 1) < 0 { break }
                continue
            }
            completed(Int(tag), result)
            seen += 1
        }
    }
}
