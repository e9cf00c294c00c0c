/// A request to a push endpoint or webhook, before encoding.
public struct HTTPClientRequest: Equatable, Sendable {
    public var method: String
    /// origin-form: the path and query (`/hooks/1?x=y`).
    public var target: String
    /// `example.com`, or `example.com:8443` off the default port.
    public var host: String
    /// Headers besides Host, Content-Length and Transfer-Encoding, which the writer sets.
    public var headers: [HTTPHeaderField]
    public var body: [UInt8]

    public init(method: String, target: String, host: String, headers: [HTTPHeaderField] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.host = host
        self.headers = headers
        self.body = body
    }
}

/// Why a request cannot be written; each names the part to fix. All of them keep
/// a caller's value from adding a line to the request.
public enum HTTPRequestError: Error, Equatable, Sendable {
    case invalidMethod(String)
    /// The target must start with `/` and hold only visible ASCII.
    case invalidTarget(String)
    case invalidHost(String)
    case invalidHeaderName(String)
    /// No CR, LF, NUL or other controls but HT.
    case invalidHeaderValue(name: String)
    /// Host, Content-Length and Transfer-Encoding are the writer's to set.
    case reservedHeader(String)
}

/// Encodes an HTTP/1.1 request (RFC 9112): request line, Host, the caller's
/// headers, Content-Length (for any body, and for POST, PUT and PATCH without
/// one), then the body.
public enum HTTPRequestWriter {
    public static func encode(_ request: HTTPClientRequest) throws -> [UInt8] {
        guard !request.method.isEmpty, request.method.utf8.allSatisfy(isTokenByte) else { throw HTTPRequestError.invalidMethod(request.method) }
        guard request.target.hasPrefix("/"), request.target.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw HTTPRequestError.invalidTarget(request.target)
        }
        guard !request.host.isEmpty, request.host.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "@") }) else {
            throw HTTPRequestError.invalidHost(request.host)
        }
        var head = "\(request.method) \(request.target) HTTP/1.1\r\nHost: \(request.host)\r\n"
        for field in request.headers {
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenByte) else { throw HTTPRequestError.invalidHeaderName(field.name) }
            guard !["host", "content-length", "transfer-encoding"].contains(field.name.lowercased()) else {
                throw HTTPRequestError.reservedHeader(field.name)
            }
            guard field.value.utf8.allSatisfy({ $0 == 0x09 || $0 >= 0x20 && $0 != 0x7F }) else {
                throw HTTPRequestError.invalidHeaderValue(name: field.name)
            }
            head += "\(field.name): \(field.value.trimmingHTTPWhitespace())\r\n"
        }
        if !request.body.isEmpty || ["POST", "PUT", "PATCH"].contains(request.method) {
            head += "Content-Length: \(request.body.count)\r\n"
        }
        head += "\r\n"
        return Array(head.utf8) + request.body
    }
}

/// RFC 9110 tchar.
func isTokenByte(_ b: UInt8) -> Bool {
    (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || Array("!#$%&'*+-.^_`|~".utf8).contains(b)
}
