// The system-library shims import and link: the Linux calls Glibc hides, the
// OpenSSL macros wrapped as inline functions, and SQLite with its sentinels.
import CLinux
import COpenSSL
import CSQLite
import Glibc
import Testing

@Suite("System shims")
struct SystemShimTests {
    @Test("epoll, eventfd and timerfd are reachable and work together")
    func epollEventfdTimerfd() throws {
        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        #expect(ep >= 0)
        defer { close(ep) }
        let efd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        #expect(efd >= 0)
        defer { close(efd) }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.fd = efd
        #expect(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0)
        var one: UInt64 = 1
        #expect(write(efd, &one, 8) == 8)
        var events = [epoll_event](repeating: epoll_event(), count: 4)
        let n = epoll_wait(ep, &events, 4, 1000)
        #expect(n == 1)
        #expect(events[0].data.fd == efd)
        #expect(MemoryLayout<epoll_event>.size == 12)

        let tfd = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        #expect(tfd >= 0)
        close(tfd)
    }

    @Test("accept4 hands out non-blocking sockets on loopback")
    func accept4Loopback() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(bound == 0)
        #expect(listen(listener, 8) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        let accepted = accept4(listener, nil, nil, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        #expect(accepted >= 0)
        defer { close(accepted) }
        #expect(fcntl(accepted, F_GETFL) & O_NONBLOCK != 0)
        var byte: UInt8 = 0
        // Nothing sent yet: a non-blocking read must say EAGAIN rather than wait.
        #expect(read(accepted, &byte, 1) == -1 && errno == EAGAIN)
    }

    @Test("OpenSSL 3 is linked and its macro wrappers work")
    func openSSL() throws {
        #expect(OpenSSL_version_num() >= 0x3000_0000)
        let ctx = SSL_CTX_new(TLS_server_method())
        #expect(ctx != nil)
        defer { SSL_CTX_free(ctx) }
        #expect(parley_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1)
        #expect(parley_SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION)
        _ = parley_SSL_CTX_set_options(ctx, PARLEY_SSL_OP_NO_COMPRESSION)
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let key: [UInt8] = Array("key".utf8)
        let data: [UInt8] = Array("The quick brown fox jumps over the lazy dog".utf8)
        _ = HMAC(EVP_sha256(), key, Int32(key.count), data, data.count, &digest, &length)
        // RFC 4231-style known answer for this classic pair.
        let hex = digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        #expect(hex == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    }

    @Test("SQLite opens, writes with SQLITE_TRANSIENT and reads back")
    func sqlite() throws {
        var db: OpaquePointer? = nil
        #expect(sqlite3_open(":memory:", &db) == SQLITE_OK)
        defer { sqlite3_close(db) }
        #expect(sqlite3_exec(db, "CREATE TABLE t(v TEXT)", nil, nil, nil) == SQLITE_OK)
        var stmt: OpaquePointer? = nil
        #expect(sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &stmt, nil) == SQLITE_OK)
        #expect(sqlite3_bind_text(stmt, 1, "hello", -1, parley_sqlite_transient()) == SQLITE_OK)
        #expect(sqlite3_step(stmt) == SQLITE_DONE)
        sqlite3_finalize(stmt)
        #expect(sqlite3_prepare_v2(db, "SELECT v FROM t", -1, &stmt, nil) == SQLITE_OK)
        #expect(sqlite3_step(stmt) == SQLITE_ROW)
        #expect(String(cString: sqlite3_column_text(stmt, 0)) == "hello")
        sqlite3_finalize(stmt)
    }

    @Test("read, write and epoll_wait without cancellation points give the usual results and errno")
    func directSystemCalls() throws {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        defer { close(ep) }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.fd = fds[1]
        #expect(epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], &ev) == 0)
        var events = [epoll_event](repeating: epoll_event(), count: 4)
        #expect(parley_epoll_wait(ep, &events, 4, 0) == 0)
        var buffer = [UInt8](repeating: 0, count: 16)
        errno = 0
        #expect(parley_read(fds[1], &buffer, 16) == -1)
        #expect(errno == EAGAIN)
        let sent: [UInt8] = [1, 2, 3, 4, 5]
        #expect(parley_write(fds[0], sent, 5) == 5)
        #expect(parley_epoll_wait(ep, &events, 4, 1000) == 1)
        #expect(events[0].data.fd == fds[1])
        #expect(parley_read(fds[1], &buffer, 16) == 5)
        #expect(Array(buffer[0..<5]) == sent)
        errno = 0
        #expect(parley_write(-1, sent, 5) == -1)
        #expect(errno == EBADF)
    }
}
