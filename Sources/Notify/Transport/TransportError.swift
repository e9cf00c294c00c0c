import Reactor

/// The network step that was under way when a transport failed.
public enum TransportStep: String, Equatable, Sendable {
    case connect
    case tlsHandshake = "TLS handshake"
    case write
    case read
}

/// Why a notification could not be carried to its server. The description is a
/// sentence for the outbox's `last_error`; it never holds what was sent (no
/// password, no message).
public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The client cannot be set up: `notify_ca_file` unreadable or not PEM.
    case setup(String)
    /// Not an absolute `https://` URL (or `http://` to a loopback host).
    case invalidURL(String, reason: String)
    /// The host name has no address.
    case resolve(host: String, reason: String)
    /// No address of the host accepted the TCP connection (`host:port`).
    case connect(String, reason: String)
    /// The server's certificate or the TLS handshake failed; nothing was sent under TLS.
    case tls(host: String, TLSClientFailure)
    /// The step waited `milliseconds` (the `notify_timeout`) for the server.
    case timeout(TransportStep, milliseconds: Int)
    /// The server closed the connection during the step (before a whole answer).
    case closed(TransportStep)
    /// A socket error other than a close.
    case io(TransportStep, String)
    case invalidRequest(HTTPRequestError)
    case invalidResponse(HTTPResponseError)

    public var description: String {
        switch self {
        case .setup(let text): return text
        case .invalidURL(let url, let reason): return "invalid URL '\(url)': \(reason)"
        case .resolve(let host, let reason): return "cannot resolve \(host): \(reason)"
        case .connect(let address, let reason): return "cannot connect to \(address): \(reason)"
        case .tls(let host, let failure): return "TLS with \(host): \(failure)"
        case .timeout(let step, let ms): return "timed out after \(ms) ms (\(step.rawValue))"
        case .closed(let step): return "the server closed the connection (\(step.rawValue))"
        case .io(let step, let reason): return "\(step.rawValue) failed: \(reason)"
        case .invalidRequest(let error): return "cannot write the request: \(error)"
        case .invalidResponse(let error): return "invalid HTTP response: \(error)"
        }
    }

    /// Whether another attempt later may succeed: false for a bad URL, request or
    /// CA file (the same attempt would fail the same way).
    public var isTransient: Bool {
        switch self {
        case .setup, .invalidURL, .invalidRequest: return false
        default: return true
        }
    }
}
