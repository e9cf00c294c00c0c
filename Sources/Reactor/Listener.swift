import CLinux
import Glibc

/// Accepts connections on one listening socket for one loop.
public final class Listener: EventHandler {
    public let fd: Int32
    public unowned let loop: EventLoop
    private let onAccept: (Int32, SocketAddress?) -> Void

    /// `onAccept` runs on the loop's thread with each new non-blocking socket.
    /// Several loops may watch one listening socket: with `exclusive`, the kernel
    /// wakes only one of them per incoming connection (EPOLLEXCLUSIVE).
    public init(fd: Int32, loop: EventLoop, exclusive: Bool = false,
                onAccept: @escaping (Int32, SocketAddress?) -> Void) throws(SystemError)
    {
        self.fd = fd
        self.loop = loop
        self.onAccept = onAccept
        try loop.register(fd, self, events: EPOLLIN.rawValue | (exclusive ? EPOLLEXCLUSIVE.rawValue : 0))
    }

    public func handleEvent(_ events: UInt32) {
        // Bounded per turn so that a connection storm cannot starve established clients.
        for _ in 0..<64 {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    accept4(fd, $0, &length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
                }
            }
            if client < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                // EMFILE/ENFILE: out of descriptors. Stop for this turn; level-triggered
                // epoll reports the backlog again next turn.
                return
            }
            Sockets.setNoDelay(client)
            onAccept(client, SocketAddress.from(storage))
        }
    }

    /// Stops watching the socket on this loop (the socket itself stays open).
    public func stop() {
        loop.unregister(fd)
    }
}
