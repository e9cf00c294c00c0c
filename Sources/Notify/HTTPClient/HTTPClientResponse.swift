/// One header field. In a parsed response the name is lower-cased.
public struct HTTPHeaderField: Equatable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A final (non-1xx) HTTP/1.1 response as the notification client reads it:
/// what a webhook, ntfy or Web Push endpoint answered.
public struct HTTPClientResponse: Equatable, Sendable {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var status: Int
    public var reason: String
    /// In arrival order, names lower-cased; values without the white space around them.
    public var headers: [HTTPHeaderField]
    /// The body with any chunked framing removed.
    public var body: [UInt8]
    /// The body ran to the end of the connection (no Content-Length, not chunked).
    public var closeDelimited: Bool

    public init(minorVersion: Int, status: Int, reason: String, headers: [HTTPHeaderField], body: [UInt8], closeDelimited: Bool) {
        self.minorVersion = minorVersion
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.closeDelimited = closeDelimited
    }

    /// The first value of a header, the name matched without regard to case.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }

    /// Whether the connection may carry another request (RFC 9112 9.3).
    public var keepAlive: Bool {
        if closeDelimited { return false }
        let tokens = headers.filter { $0.name == "connection" }
            .flatMap { $0.value.lowercased().split(separator: ",").map { $0.trimmingHTTPWhitespace() } }
        if tokens.contains("close") { return false }
        return minorVersion >= 1 || tokens.contains("keep-alive")
    }

    /// `Retry-After` (on 429 and 503) as seconds from `now`; nil without one or when
    /// it is neither delay-seconds nor an HTTP-date.
    public func retryAfter(now secondsSince1970: Int64) -> Int64? {
        header("retry-after").flatMap { HTTPRetryAfter.seconds($0, now: secondsSince1970) }
    }
}

extension StringProtocol {
    /// Without the spaces and tabs (OWS, RFC 9110 5.6.3) at either end.
    func trimmingHTTPWhitespace() -> String {
        var s = self[...]
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
