import Reactor

/// Sends one HTTP/1.1 request per call to a push endpoint or webhook, over a
/// verified TLS connection (`http://` only to loopback hosts), on the calling
/// thread: for delivery workers, never an event loop. Redirects are not followed
/// (a 3xx comes back as it is); the response is bounded by the parser's limits.
public final class HTTPSClient: Sendable {
    public let timeoutMilliseconds: Int
    private let context: Result<TLSContext, TransportError>

    /// `caFile` (`notify_ca_file`) is trusted besides the system's CAs;
    /// `timeoutMilliseconds` bounds each network step (`notify_timeout`).
    public init(caFile: String?, timeoutMilliseconds: Int = 30_000) {
        self.timeoutMilliseconds = timeoutMilliseconds
        context = verifyingContext(caFile: caFile)
    }

    /// `url` is absolute (`https://host[:port]/path?query`); it sets the request's
    /// `host` and `target`. Answers of any status are a success.
    public func send(_ request: HTTPClientRequest, to url: String) -> Result<HTTPClientResponse, TransportError> {
        let endpoint: HTTPURL
        do {
            endpoint = try HTTPURL(parsing: url)
        } catch {
            return .failure(error)
        }
        guard endpoint.secure || endpoint.isLoopback else {
            return .failure(.invalidURL(url, reason: "plain http is allowed only to loopback hosts (127.0.0.0/8, ::1, localhost): use https"))
        }
        let bytes: [UInt8]
        do {
            bytes = try HTTPRequestWriter.encode(Self.addressed(request, to: endpoint))
        } catch let error as HTTPRequestError {
            return .failure(.invalidRequest(error))
        } catch {
            preconditionFailure("HTTPRequestWriter throws only HTTPRequestError")
        }
        var tls: TLSContext?
        if endpoint.secure {
            switch context {
            case .success(let c): tls = c
            case .failure(let error): return .failure(error)
            }
        }
        return OutboundConnection.open(host: endpoint.host, port: endpoint.port, timeoutMilliseconds: timeoutMilliseconds,
                                       loopbackOnly: !endpoint.secure)
            .flatMap { connection in
                defer { connection.close() }
                return exchange(bytes, method: request.method, on: connection, tls: tls)
            }
    }

    private static func addressed(_ request: HTTPClientRequest, to endpoint: HTTPURL) -> HTTPClientRequest {
        var request = request
        request.host = endpoint.hostHeader
        request.target = endpoint.target
        if !request.headers.contains(where: { $0.name.lowercased() == "connection" }) {
            request.headers.append(HTTPHeaderField("Connection", "close"))
        }
        return request
    }

    private func exchange(_ bytes: [UInt8], method: String, on connection: OutboundConnection, tls: TLSContext?)
        -> Result<HTTPClientResponse, TransportError>
    {
        if let tls, case .failure(let error) = connection.startTLS(context: tls) { return .failure(error) }
        switch connection.write(bytes) {
        case .success:
            return readResponse(method: method, from: connection)
        case .failure(.closed(let step)):
            // A server may answer (413, 401) and close before reading the whole body.
            if case .success(let response) = readResponse(method: method, from: connection) { return .success(response) }
            return .failure(.closed(step))
        case .failure(let error):
            return .failure(error)
        }
    }

    private func readResponse(method: String, from connection: OutboundConnection) -> Result<HTTPClientResponse, TransportError> {
        var parser = HTTPResponseParser(requestMethod: method)
        while true {
            let bytes: [UInt8]
            switch connection.read() {
            case .success(let b): bytes = b
            case .failure(let error): return .failure(error)
            }
            do {
                if bytes.isEmpty {
                    guard let response = try parser.finish() else { return .failure(.closed(.read)) }
                    return .success(response)
                }
                parser.append(bytes)
                if let response = try parser.next() { return .success(response) }
            } catch HTTPResponseError.truncated {
                return .failure(.closed(.read))
            } catch let error as HTTPResponseError {
                return .failure(.invalidResponse(error))
            } catch {
                preconditionFailure("HTTPResponseParser throws only HTTPResponseError")
            }
        }
    }
}

/// The TLS context of notification clients, or why `notify_ca_file` cannot be used.
func verifyingContext(caFile: String?) -> Result<TLSContext, TransportError> {
    do {
        return .success(try TLSContext.verifyingServers(extraCAFile: caFile))
    } catch {
        return .failure(.setup("notify_ca_file: \(error)"))
    }
}
