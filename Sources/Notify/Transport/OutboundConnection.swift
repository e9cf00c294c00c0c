import CLinux
import Glibc
import Reactor

/// One blocking TCP connection from a delivery worker thread to a server, in the
/// clear or under a verified TLS session (`startTLS`). Every wait for the socket
/// (each read, each write, the connect, the whole handshake) is bounded by the
/// timeout. Writes use MSG_NOSIGNAL, TLS included (its records go through memory
/// buffers), so a closed peer never raises SIGPIPE. One thread at a time.
final class OutboundConnection {
    let host: String
    let port: UInt16
    let timeoutMilliseconds: Int
    private var fd: Int32
    private var tls: TLSClientEngine?

    private init(host: String, port: UInt16, fd: Int32, timeoutMilliseconds: Int) {
        self.host = host
        self.port = port
        self.fd = fd
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    deinit { close() }

    /// Resolves `host` and connects. `loopbackOnly` refuses a name that resolves
    /// anywhere but 127.0.0.0/8 or ::1 (plain http).
    static func open(host: String, port: UInt16, timeoutMilliseconds: Int, loopbackOnly: Bool = false)
        -> Result<OutboundConnection, TransportError>
    {
        resolveHost(host, port: port).flatMap { addresses in
            if loopbackOnly, !addresses.allSatisfy(\.isLoopback) {
                return .failure(.invalidURL(host, reason: "plain http is allowed only to loopback hosts, and \(host) resolves elsewhere"))
            }
            return connectTCP(to: addresses, named: "\(host):\(port)", timeoutMilliseconds: timeoutMilliseconds).map {
                OutboundConnection(host: host, port: port, fd: $0, timeoutMilliseconds: timeoutMilliseconds)
            }
        }
    }

    /// Sends `bytes` whole (encrypted under TLS).
    func write(_ bytes: [UInt8]) -> Result<Void, TransportError> {
        guard let tls else { return sendAll(bytes, step: .write, deadline: nil) }
        do {
            try tls.seal(bytes)
        } catch {
            return .failure(.tls(host: host, error))
        }
        return sendAll(tls.takeOutput(), step: .write, deadline: nil)
    }

    /// The next bytes from the server (decrypted under TLS); empty at the end of the
    /// stream (a close_notify, or the TCP close).
    func read() -> Result<[UInt8], TransportError> {
        guard let tls else { return receive(step: .read, deadline: nil) }
        while true {
            let opened: TLSClientEngine.Opened
            do {
                opened = try tls.open()
            } catch {
                return .failure(.tls(host: host, error))
            }
            switch opened {
            case .bytes(let bytes):
                if case .failure(let error) = sendAll(tls.takeOutput(), step: .read, deadline: nil) { return .failure(error) }
                return .success(bytes)
            case .closed:
                return .success([])
            case .needsInput:
                switch receive(step: .read, deadline: nil) {
                case .failure(let error): return .failure(error)
                case .success(let bytes) where bytes.isEmpty: return .success([])
                case .success(let bytes): bytes.withUnsafeBytes { tls.feed($0) }
                }
            }
        }
    }

    /// Sends close_notify under TLS (without waiting for the server's) and closes
    /// the socket. Safe to call more than once.
    func close() {
        guard fd >= 0 else { return }
        if let tls, tls.handshakeDone {
            tls.close()
            sendWithoutWaiting(tls.takeOutput())
        }
        tls = nil
        Glibc.close(fd)
        fd = -1
    }

    // MARK: - TLS

    /// The TLS client handshake, now (implicit TLS, https) or after the server
    /// agreed to STARTTLS; the certificate must verify for `host`. On failure,
    /// nothing has been sent under TLS and the connection is to be closed.
    func startTLS(context: TLSContext) -> Result<Void, TransportError> {
        let engine: TLSClientEngine
        do {
            engine = try TLSClientEngine(context: context, serverName: host)
        } catch {
            return .failure(.tls(host: host, error))
        }
        let deadline = Deadline(milliseconds: timeoutMilliseconds)
        while true {
            let done: Bool
            do {
                done = try engine.handshake()
            } catch {
                sendWithoutWaiting(engine.takeOutput())  // the alert that says why
                return .failure(.tls(host: host, error))
            }
            if case .failure(let error) = sendAll(engine.takeOutput(), step: .tlsHandshake, deadline: deadline) { return .failure(error) }
            if done {
                tls = engine
                return .success(())
            }
            switch receive(step: .tlsHandshake, deadline: deadline) {
            case .failure(let error):
                return .failure(error)
            case .success(let bytes) where bytes.isEmpty:
                return .failure(.tls(host: host, .handshakeFailed("the server closed the connection")))
            case .success(let bytes):
                bytes.withUnsafeBytes { engine.feed($0) }
            }
        }
    }

    // MARK: - The socket

    /// `deadline` bounds the whole call; without one, each wait gets the timeout.
    private func sendAll(_ bytes: [UInt8], step: TransportStep, deadline: Deadline?) -> Result<Void, TransportError> {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n >= 0 {
                offset += n
                continue
            }
            let code = errno
            guard code == EAGAIN || code == EWOULDBLOCK || code == EINTR else { return .failure(socketFailure(code, step)) }
            if code == EINTR { continue }
            if let failure = wait(Int32(POLLOUT), step: step, deadline: deadline) { return .failure(failure) }
        }
        return .success(())
    }

    /// Up to 16 KiB from the socket; empty at the end of the stream.
    private func receive(step: TransportStep, deadline: Deadline?) -> Result<[UInt8], TransportError> {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return .success(Array(buffer.prefix(n))) }
            let code = errno
            guard code == EAGAIN || code == EWOULDBLOCK || code == EINTR else { return .failure(socketFailure(code, step)) }
            if code == EINTR { continue }
            if let failure = wait(Int32(POLLIN), step: step, deadline: deadline) { return .failure(failure) }
        }
    }

    private func wait(_ events: Int32, step: TransportStep, deadline: Deadline?) -> TransportError? {
        switch waitUntil(events, on: fd, before: deadline ?? Deadline(milliseconds: timeoutMilliseconds)) {
        case .ready: return nil
        case .timedOut: return .timeout(step, milliseconds: timeoutMilliseconds)
        case .failed(let code): return .io(step, systemError(code))
        }
    }

    private func socketFailure(_ code: Int32, _ step: TransportStep) -> TransportError {
        code == ECONNRESET || code == EPIPE ? .closed(step) : .io(step, systemError(code))
    }

    /// One try, for a last alert or close_notify: the connection ends either way.
    private func sendWithoutWaiting(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, fd >= 0 else { return }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }
}
