import Glibc

/// A point in monotonic time: a step's time limit.
struct Deadline {
    private let nanoseconds: UInt64

    init(milliseconds: Int) {
        nanoseconds = Deadline.now() &+ UInt64(max(0, milliseconds)) &* 1_000_000
    }

    /// What is left, in whole milliseconds rounded up (0 once past).
    var remainingMilliseconds: Int32 {
        let now = Deadline.now()
        guard nanoseconds > now else { return 0 }
        return Int32(clamping: (nanoseconds - now + 999_999) / 1_000_000)
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

enum SocketReadiness: Equatable {
    case ready
    case timedOut
    case failed(Int32)
}

/// Waits until `fd` is readable (`POLLIN`) or writable (`POLLOUT`), or the deadline
/// passes. An error or hang-up counts as ready: the call that follows reports it.
func waitUntil(_ events: Int32, on fd: Int32, before deadline: Deadline) -> SocketReadiness {
    var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
    while true {
        let remaining = deadline.remainingMilliseconds
        if remaining == 0 { return .timedOut }
        let rc = poll(&entry, 1, remaining)
        if rc > 0 { return .ready }
        if rc == 0 { continue }  // woke before the rounded deadline: look at the clock again
        if errno != EINTR { return .failed(errno) }
    }
}

func systemError(_ code: Int32) -> String { String(cString: strerror(code)) }
