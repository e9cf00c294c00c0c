import COpenSSL
import Glibc
import Synchronization

/// Why a TLS context could not be built, in words a user can act on.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ text: String) {
        var detail = ""
        var code = ERR_get_error()
        while code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            detail += detail.isEmpty ? text : "; " + text
            code = ERR_get_error()
        }
        description = detail.isEmpty ? text : "\(text) (\(detail))"
    }
}

/// TLS settings of one listener.
public struct TLSSettings: Sendable, Equatable {
    public var certificateChain: String
    public var privateKey: String
    /// CA bundle to verify client certificates against.
    public var clientCA: String?
    public var requireClientCertificate = false
    /// TLS 1.2 (default) or 1.3.
    public var minimumVersion = "1.2"
    /// TLS 1.2 cipher list (TLS 1.3 suites are OpenSSL's defaults, all strong).
    public var ciphers = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!MD5:!DSS"

    public init(certificateChain: String, privateKey: String) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }
}

/// An OpenSSL server context: certificate, key, protocol floor, client-certificate
/// policy. Immutable once built; SIGHUP builds a new one for new connections.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let settings: TLSSettings

    public init(_ settings: TLSSettings) throws(TLSError) {
        self.settings = settings
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("cannot create a TLS context") }
        // From here on `deinit` frees the context, also when a check below throws.
        self.ctx = ctx
        let floor = settings.minimumVersion == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION
        guard settings.minimumVersion == "1.2" || settings.minimumVersion == "1.3" else {
            throw TLSError("minimum TLS version must be 1.2 or 1.3, not \(settings.minimumVersion)")
        }
        _ = parley_SSL_CTX_set_min_proto_version(ctx, floor)
        _ = parley_SSL_CTX_set_options(
            ctx, PARLEY_SSL_OP_NO_COMPRESSION | PARLEY_SSL_OP_NO_RENEGOTIATION | PARLEY_SSL_OP_CIPHER_SERVER_PREFERENCE)
        _ = parley_SSL_CTX_set_mode(
            ctx, PARLEY_SSL_MODE_ENABLE_PARTIAL_WRITE | PARLEY_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                | PARLEY_SSL_MODE_RELEASE_BUFFERS)
        guard SSL_CTX_set_cipher_list(ctx, settings.ciphers) == 1 else {
            throw TLSError("bad cipher list '\(settings.ciphers)'")
        }
        guard access(settings.certificateChain, R_OK) == 0 else {
            throw TLSError("cannot read certificate file \(settings.certificateChain): \(String(cString: strerror(errno)))")
        }
        guard access(settings.privateKey, R_OK) == 0 else {
            throw TLSError("cannot read private key file \(settings.privateKey): \(String(cString: strerror(errno)))")
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, settings.certificateChain) == 1 else {
            throw TLSError("\(settings.certificateChain) is not a PEM certificate chain")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, settings.privateKey, SSL_FILETYPE_PEM) == 1 else {
            let detail = TLSError("").description
            if detail.contains("mismatch") {
                throw TLSError("the private key \(settings.privateKey) does not match the certificate \(settings.certificateChain)")
            }
            throw TLSError("\(settings.privateKey) is not a PEM private key\(detail)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError("the private key \(settings.privateKey) does not match the certificate \(settings.certificateChain)")
        }
        if let ca = settings.clientCA {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else {
                    throw TLSError("cannot load client CA file \(ca)")
            }
            var mode = SSL_VERIFY_PEER
            if settings.requireClientCertificate { mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT }
            SSL_CTX_set_verify(ctx, mode, nil)
        } else if settings.requireClientCertificate {
            throw TLSError("requiring client certificates needs a client CA file")
        }
        ERR_clear_error()
    }

    /// A client context (the load generator, tests): verifies the server against
    /// `caFile` when given, else accepts any certificate.
    public init(clientCA caFile: String?) throws(TLSError) {
        settings = TLSSettings(certificateChain: "", privateKey: "")
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSError("cannot create a TLS context") }
        self.ctx = ctx
        _ = parley_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        _ = parley_SSL_CTX_set_mode(ctx, PARLEY_SSL_MODE_ENABLE_PARTIAL_WRITE | PARLEY_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                    throw TLSError("cannot load CA file \(caFile)")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// A TLS context that SIGHUP may replace; connections take the current one.
public final class TLSContextHolder: @unchecked Sendable {
    private let current: Mutex<TLSContext>
    public init(_ context: TLSContext) { current = Mutex(context) }
    public var context: TLSContext { current.withLock { $0 } }
    public func replace(_ context: TLSContext) { current.withLock { $0 = context } }
}

/// The TLS state of one connection, driven by the event loop: handshake, then
/// records in and out, all non-blocking.
public final class TLSStream {
    let ssl: OpaquePointer
    public private(set) var handshakeDone = false
    /// The subject common name of a verified client certificate.
    public private(set) var peerCommonName: String?
    /// SSL_read needed to write (a post-handshake message): read again once the
    /// socket is writable.
    var readWantsWrite = false
    /// SSL_write needed to read: write again once the socket is readable.
    var writeWantsRead = false

    enum Outcome {
        case done(Int)
        case wantRead
        case wantWrite
        case closed
        case failed(String)
    }

    /// `serverName` (client side): sent as SNI unless it is an IP address, and, when the
    /// context verifies the server, the name or address its certificate must carry.
    init?(context: TLSContext, fd: Int32, client: Bool = false, serverName: String? = nil) {
        guard let ssl = SSL_new(context.ctx) else { return nil }
        self.ssl = ssl
        guard SSL_set_fd(ssl, fd) == 1 else { return nil }
        if client, let name = serverName, !name.isEmpty {
            guard TLSStream.expectServer(named: name, ssl: ssl, context: context) else { return nil }
        }
        if client { SSL_set_connect_state(ssl) } else { SSL_set_accept_state(ssl) }
    }

    /// A client stream over two memory BIOs, which it owns from here on: the caller
    /// moves the encrypted bytes between them and its socket (`TLSClientEngine`).
    init?(context: TLSContext, serverName: String, input: OpaquePointer, output: OpaquePointer) {
        guard let ssl = SSL_new(context.ctx) else {
            BIO_free(input)
            BIO_free(output)
            return nil
        }
        self.ssl = ssl
        SSL_set_bio(ssl, input, output)
        guard !serverName.isEmpty, TLSStream.expectServer(named: serverName, ssl: ssl, context: context) else { return nil }
        SSL_set_connect_state(ssl)
    }

    /// SNI (for a name, not an address) and, when the context verifies the server,
    /// the DNS name or IP address its certificate must carry.
    private static func expectServer(named name: String, ssl: OpaquePointer, context: TLSContext) -> Bool {
        let isAddress = isIPAddress(name)
        if !isAddress { _ = parley_SSL_set_tlsext_host_name(ssl, name) }
        guard SSL_CTX_get_verify_mode(context.ctx) & SSL_VERIFY_PEER != 0 else { return true }
        if isAddress { return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 }
        SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        return SSL_set1_host(ssl, name) == 1
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    deinit { SSL_free(ssl) }

    private func outcome(_ rc: Int32) -> Outcome {
        let error = SSL_get_error(ssl, rc)
        switch error {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            let e = errno
            ERR_clear_error()
            return e == 0 ? .closed : .failed("tls: \(String(cString: strerror(e)))")
        default:
            let text = TLSError("tls").description
            return .failed(text)
        }
    }

    // OpenSSL's error queue is per thread and shared by every connection of a loop:
    // it must be empty before each call, or a failure left by one connection (a
    // refused handshake) would be read as this connection's error and close it.
    func handshake() -> Outcome {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 {
            handshakeDone = true
            if let cert = SSL_get1_peer_certificate(ssl) {
                if SSL_get_verify_result(ssl) == X509_V_OK, let name = X509_get_subject_name(cert) {
                    var buffer = [CChar](repeating: 0, count: 256)
                    let n = X509_NAME_get_text_by_NID(name, NID_commonName, &buffer, Int32(buffer.count))
                    if n > 0 {
                        peerCommonName = String(decoding: buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    }
                }
                X509_free(cert)
            }
            return .done(0)
        }
        return outcome(rc)
    }

    func read(_ buffer: UnsafeMutableRawBufferPointer) -> Outcome {
        ERR_clear_error()
        let rc = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
        return rc > 0 ? .done(Int(rc)) : outcome(rc)
    }

    func write(_ pointer: UnsafeRawPointer, _ count: Int) -> Outcome {
        ERR_clear_error()
        let rc = SSL_write(ssl, pointer, Int32(min(count, Int(Int32.max))))
        return rc > 0 ? .done(Int(rc)) : outcome(rc)
    }

    /// Sends close_notify, without waiting for the peer's.
    func shutdown() {
        ERR_clear_error()
        if handshakeDone { _ = SSL_shutdown(ssl) }
        ERR_clear_error()
    }
}
