import Reactor

/// Sends one mail per call to the submission server (`smtp_server`), on the
/// calling thread: for delivery workers, never an event loop. It carries what
/// `SMTPSession` says over one connection: implicit TLS before the greeting, or
/// STARTTLS when the session asks, the server's certificate always verified.
/// Neither the password nor the mail appears in what it returns or prints.
public final class SMTPClient: Sendable, CustomStringConvertible, CustomReflectable {
    public let host: String
    public let port: UInt16
    public let timeoutMilliseconds: Int
    private let configuration: SMTPConfiguration
    private let context: Result<TLSContext, TransportError>?

    /// `caFile` (`notify_ca_file`) is trusted besides the system's CAs;
    /// `timeoutMilliseconds` bounds each network step (`notify_timeout`).
    public init(host: String, port: UInt16, configuration: SMTPConfiguration, caFile: String?, timeoutMilliseconds: Int = 30_000) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.timeoutMilliseconds = timeoutMilliseconds
        context = configuration.security == .none ? nil : verifyingContext(caFile: caFile)
    }

    public var description: String { "SMTPClient(\(host):\(port), \(configuration.security.rawValue))" }
    public var customMirror: Mirror { Mirror(self, children: ["host": host, "port": port, "security": configuration.security]) }

    /// The server's verdict on the mail. A failure is a connection that could not
    /// be made or secured (nothing was sent under TLS); a close or a time-out in the
    /// middle of the conversation is `.protocolError(.connectionClosed(step))`.
    public func send(_ envelope: SMTPEnvelope) -> Result<SMTPOutcome, TransportError> {
        var tls: TLSContext?
        switch context {
        case .success(let c): tls = c
        case .failure(let error): return .failure(error)
        case nil: break
        }
        return OutboundConnection.open(host: host, port: port, timeoutMilliseconds: timeoutMilliseconds).flatMap { connection in
            defer { connection.close() }
            if configuration.security == .implicit, let tls, case .failure(let error) = connection.startTLS(context: tls) {
                return .failure(error)
            }
            return converse(SMTPSession(configuration: configuration, envelope: envelope), on: connection, tls: tls)
        }
    }

    /// Reads replies and does what the session asks until it settles the outcome.
    private func converse(_ start: SMTPSession, on connection: OutboundConnection, tls: TLSContext?) -> Result<SMTPOutcome, TransportError> {
        var session = start
        var pending: [SMTPAction] = []
        while true {
            if pending.isEmpty {
                switch connection.read() {
                case .success(let bytes) where !bytes.isEmpty: pending = session.receive(bytes)
                case .failure(let error) where Self.isTLSFailure(error): return .failure(error)
                default: pending = session.connectionClosed()
                }
                continue
            }
            switch pending.removeFirst() {
            case .send(let bytes):
                if case .failure(let error) = connection.write(bytes) {
                    if Self.isTLSFailure(error) { return .failure(error) }
                    // After the outcome (QUIT) a failed write changes nothing.
                    let closing = session.connectionClosed()
                    if !closing.isEmpty { pending = closing }
                }
            case .startTLS:
                guard let tls else { preconditionFailure("STARTTLS is asked for only in mode starttls") }
                if case .failure(let error) = connection.startTLS(context: tls) { return .failure(error) }
                pending = session.tlsEstablished() + pending
            case .close(let outcome):
                return .success(outcome)
            }
        }
    }

    private static func isTLSFailure(_ error: TransportError) -> Bool {
        if case .tls = error { return true }
        return false
    }
}
