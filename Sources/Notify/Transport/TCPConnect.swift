import CLinux
import Glibc

/// Opens a non-blocking TCP socket to the first of `addresses` that accepts, all
/// of them within one deadline (`connect` runs non-blocking, then waits in poll).
func connectTCP(to addresses: [ResolvedAddress], named name: String, timeoutMilliseconds: Int) -> Result<Int32, TransportError> {
    let deadline = Deadline(milliseconds: timeoutMilliseconds)
    var reasons: [String] = []
    for address in addresses {
        switch connectOne(address, before: deadline) {
        case .success(let fd):
            return .success(fd)
        case .failure(let error) where error.code == ETIMEDOUT && deadline.remainingMilliseconds == 0:
            return .failure(.timeout(.connect, milliseconds: timeoutMilliseconds))
        case .failure(let error):
            let reason = systemError(error.code)
            if !reasons.contains(reason) { reasons.append(reason) }
        }
    }
    return .failure(.connect(name, reason: reasons.joined(separator: "; ")))
}

private struct SocketErrno: Error {
    let code: Int32
}

/// The connected socket, or the errno that refused it (ETIMEDOUT when the deadline passed).
private func connectOne(_ address: ResolvedAddress, before deadline: Deadline) -> Result<Int32, SocketErrno> {
    let fd = socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), Int32(IPPROTO_TCP))
    guard fd >= 0 else { return .failure(SocketErrno(code: errno)) }
    var storage = address.storage
    let rc = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) }
    }
    if rc != 0 {
        guard errno == EINPROGRESS else { return closing(fd, errno) }
        switch waitUntil(Int32(POLLOUT), on: fd, before: deadline) {
        case .timedOut: return closing(fd, ETIMEDOUT)
        case .failed(let code): return closing(fd, code)
        case .ready: break
        }
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return closing(fd, errno) }
        if code != 0 { return closing(fd, code) }
    }
    // Commands and requests go out whole; do not hold their last segment back.
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return .success(fd)
}

private func closing(_ fd: Int32, _ code: Int32) -> Result<Int32, SocketErrno> {
    Glibc.close(fd)
    return .failure(SocketErrno(code: code))
}
