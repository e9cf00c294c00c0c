import CLinux
import Glibc

/// An IPv4 or IPv6 address and port, parsed from `HOST:PORT` or `[V6]:PORT`.
public struct SocketAddress: Sendable, CustomStringConvertible, Equatable {
    enum Family { case v4(in_addr), v6(in6_addr) }
    // Kept compact (it is stored with every connection): the text form is made on demand.
    let family: Family
    public let port: UInt16

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.host == b.host && a.port == b.port }

    /// The address as text (`127.0.0.1`, `::1`).
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch family {
        case .v4(var a): inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
        case .v6(var a): inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
        }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Parses `127.0.0.1:1883`, `localhost:1883`, `[::1]:1883`, `0.0.0.0:1883`.
    public init(parsing text: String) throws(AddressError) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw AddressError(text, "missing ']'") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw AddressError(text, "missing ':PORT'") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw AddressError(text, "missing ':PORT'") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { throw AddressError(text, "port must be a number 0-65535") }
        if host == "localhost" || host.isEmpty { host = "127.0.0.1" }
        try self.init(host: String(host), port: port)
    }

    public init(host: String, port: UInt16) throws(AddressError) {
        self.port = port
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            family = .v4(v4)
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            family = .v6(v6)
        } else {
            throw AddressError(host, "not an IPv4 or IPv6 address")
        }
    }

    public var description: String {
        if case .v6 = family { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }

    var domain: Int32 {
        if case .v6 = family { return AF_INET6 }
        return AF_INET
    }

    /// Calls `body` with this address as a `sockaddr`.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch family {
        case .v4(let a):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr = a
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let a):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            sa.sin6_addr = a
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    init(family: Family, port: UInt16) {
        self.family = family
        self.port = port
    }

    /// The address a `sockaddr_storage` holds (no text conversion: accept stays cheap).
    static func from(_ storage: sockaddr_storage) -> SocketAddress? {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    SocketAddress(family: .v4($0.pointee.sin_addr), port: UInt16(bigEndian: $0.pointee.sin_port))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    SocketAddress(family: .v6($0.pointee.sin6_addr), port: UInt16(bigEndian: $0.pointee.sin6_port))
                }
            }
        default:
            return nil
        }
    }
}

public struct AddressError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public let reason: String
    init(_ text: some StringProtocol, _ reason: String) {
        self.text = String(text)
        self.reason = reason
    }
    public var description: String { "bad address '\(text)': \(reason)" }
}

/// Socket calls the reactor and its users need.
public enum Sockets {
    /// A non-blocking listening socket. With `reusePort`, several loops may each
    /// listen on the same address and the kernel spreads connections among them.
    public static func listen(_ address: SocketAddress, reusePort: Bool, backlog: Int32 = 1024) throws(SystemError)
        -> Int32
    {
        let fd = socket(address.domain, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        if bound != 0 {
            let error = SystemError("bind \(address)")
            close(fd)
            throw error
        }
        if Glibc.listen(fd, backlog) != 0 {
            let error = SystemError("listen \(address)")
            close(fd)
            throw error
        }
        return fd
    }

    /// The local address of a socket (the port chosen for port 0).
    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return ok == 0 ? SocketAddress.from(storage) : nil
    }

    /// A connected TCP socket (blocking connect, then switched to non-blocking
    /// when `nonBlocking`). For clients: tests, the benchmark.
    public static func connect(_ address: SocketAddress, nonBlocking: Bool, source: SocketAddress? = nil)
        throws(SystemError) -> Int32
    {
        let fd = socket(address.domain, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw SystemError("socket") }
        if let source {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if source.withSockaddr({ bind(fd, $0, $1) }) != 0 {
                let error = SystemError("bind \(source)")
                close(fd)
                throw error
            }
        }
        let ok = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if ok != 0 {
            let error = SystemError("connect \(address)")
            close(fd)
            throw error
        }
        setNoDelay(fd)
        if nonBlocking { setNonBlocking(fd) }
        return fd
    }

    public static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    public static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Ignore SIGPIPE: a write to a closed peer must fail with EPIPE, not kill us.
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}
