import COpenSSL
import Glibc

/// Why a TLS client connection failed, with OpenSSL's reason.
public enum TLSClientFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The chain does not lead to a trusted CA (unknown issuer, self-signed, expired, ...).
    case certificateNotTrusted(String)
    /// A valid certificate, but not for the host name or address that was asked for.
    case hostNameMismatch(String)
    /// Anything else in the handshake: no common version or cipher, an alert from
    /// the server, bytes that are not TLS, the server closing.
    case handshakeFailed(String)
    /// After the handshake: a record that does not decrypt, an alert.
    case recordFailed(String)

    public var description: String {
        switch self {
        case .certificateNotTrusted(let reason): return "certificate not trusted (\(reason))"
        case .hostNameMismatch(let reason): return "certificate does not match the host name (\(reason))"
        case .handshakeFailed(let reason): return "handshake failed (\(reason))"
        case .recordFailed(let reason): return "TLS session failed (\(reason))"
        }
    }
}

extension TLSContext {
    /// The context of outgoing connections that verify their server: the system's
    /// CA certificates plus `extraCAFile` (PEM) when given, TLS 1.2 or later.
    /// Unlike `init(clientCA:)`, it never accepts an unverified server.
    public static func verifyingServers(extraCAFile: String?) throws(TLSError) -> TLSContext {
        let context = try TLSContext(clientCA: nil)
        let ctx = context.ctx
        _ = parley_SSL_CTX_set_options(ctx, PARLEY_SSL_OP_NO_COMPRESSION | PARLEY_SSL_OP_NO_RENEGOTIATION)
        guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw TLSError("cannot load the system's CA certificates") }
        if let file = extraCAFile {
            guard access(file, R_OK) == 0 else { throw TLSError("cannot read CA file \(file): \(String(cString: strerror(errno)))") }
            guard SSL_CTX_load_verify_locations(ctx, file, nil) == 1 else { throw TLSError("\(file) is not a PEM CA certificate file") }
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        ERR_clear_error()
        return context
    }
}

/// A TLS client session without I/O: handshake and records run over memory
/// buffers, and the caller carries `takeOutput()` to the server and `feed`s what
/// the server sends. For blocking connections on worker threads (the notification
/// bridge), which write with MSG_NOSIGNAL themselves; the event loops use
/// `Connection`'s TLS instead. One thread at a time.
public final class TLSClientEngine {
    private let stream: TLSStream
    private let input: OpaquePointer
    private let output: OpaquePointer

    /// Whether the handshake has completed.
    public var handshakeDone: Bool { stream.handshakeDone }

    /// What decrypting the bytes fed so far gave.
    public enum Opened: Equatable {
        case bytes([UInt8])
        /// No whole record yet: feed more.
        case needsInput
        /// The server sent close_notify.
        case closed
    }

    /// `serverName` is sent as SNI (unless an IP address) and, with a verifying
    /// context, is what the certificate must be valid for.
    public init(context: TLSContext, serverName: String) throws(TLSClientFailure) {
        guard let input = BIO_new(BIO_s_mem()) else { throw .handshakeFailed("out of memory") }
        guard let output = BIO_new(BIO_s_mem()) else {
            BIO_free(input)
            throw .handshakeFailed("out of memory")
        }
        guard let stream = TLSStream(context: context, serverName: serverName, input: input, output: output) else {
            throw .handshakeFailed("cannot set up TLS for '\(serverName)'")
        }
        self.stream = stream
        self.input = input
        self.output = output
    }

    /// Runs the handshake as far as the bytes fed so far allow; true once it is
    /// done. Send `takeOutput()` after every call, whatever it returns or throws
    /// (the last flight, or the alert that tells the server why).
    public func handshake() throws(TLSClientFailure) -> Bool {
        switch stream.handshake() {
        case .done: return true
        case .wantRead, .wantWrite: return false
        case .closed: throw .handshakeFailed("the server closed the connection")
        case .failed(let text): throw handshakeFailure(text)
        }
    }

    /// Encrypted bytes waiting to go to the server.
    public func takeOutput() -> [UInt8] {
        let pending = parley_BIO_pending(output)
        guard pending > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let n = bytes.withUnsafeMutableBytes { BIO_read(output, $0.baseAddress, Int32($0.count)) }
        return n > 0 ? Array(bytes.prefix(Int(n))) : []
    }

    /// Encrypted bytes from the server.
    public func feed(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        _ = BIO_write(input, base, Int32(bytes.count))
    }

    /// Encrypts application data into records, to be sent with `takeOutput()`.
    public func seal(_ bytes: [UInt8]) throws(TLSClientFailure) {
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { stream.write($0.baseAddress! + offset, $0.count - offset) }
            switch result {
            case .done(let n): offset += n
            // Memory buffers grow: only a renegotiation could want the server first,
            // and it is switched off.
            case .wantRead, .wantWrite: throw .recordFailed("the session wants a renegotiation")
            case .closed: throw .recordFailed("the server ended the TLS session")
            case .failed(let text): throw .recordFailed(Self.reason(text))
            }
        }
    }

    /// Decrypts what has been fed, up to `maximum` bytes. Send `takeOutput()`
    /// afterwards: a key update asks for an answer.
    public func open(maximum: Int = 16 * 1024) throws(TLSClientFailure) -> Opened {
        var buffer = [UInt8](repeating: 0, count: maximum)
        let result = buffer.withUnsafeMutableBytes { stream.read($0) }
        switch result {
        case .done(let n): return .bytes(Array(buffer.prefix(n)))
        case .wantRead, .wantWrite: return .needsInput
        case .closed: return .closed
        case .failed(let text): throw .recordFailed(Self.reason(text))
        }
    }

    /// Queues close_notify (then `takeOutput()`).
    public func close() { stream.shutdown() }

    /// A verification failure names the certificate problem; otherwise OpenSSL's
    /// error queue says what went wrong.
    private func handshakeFailure(_ text: String) -> TLSClientFailure {
        let result = SSL_get_verify_result(stream.ssl)
        guard result != X509_V_OK else { return .handshakeFailed(Self.reason(text)) }
        let reason = String(cString: X509_verify_cert_error_string(result))
        if result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH {
            return .hostNameMismatch(reason)
        }
        return .certificateNotTrusted(reason)
    }

    /// `TLSStream` words a failure as `tls (<OpenSSL errors>)`: keep the errors.
    private static func reason(_ text: String) -> String {
        if text.hasPrefix("tls ("), text.hasSuffix(")") { return String(text.dropFirst(5).dropLast()) }
        if text.hasPrefix("tls: ") { return String(text.dropFirst(5)) }
        return text == "tls" ? "no reason given" : text
    }
}
