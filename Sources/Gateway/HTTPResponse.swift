import JSON

/// An answer, encoded once when it is sent.
public struct HTTPResponse: Sendable, Error {
    public var status: Int
    public var headers: [(String, String)] = []
    public var body: [UInt8] = []
    /// Close the connection once this is written.
    public var closes = false

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = [], closes: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.closes = closes
    }

    /// A JSON answer.
    public static func json(_ status: Int, _ body: [UInt8], headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    public static func json(_ status: Int, headers: [(String, String)] = [], _ write: (inout JSONObjectWriter) -> Void) -> HTTPResponse {
        var w = JSONWriter()
        w.object(write)
        return json(status, w.bytes, headers: headers)
    }

    /// `{"error": code, "message": text}`.
    public static func error(_ status: Int, _ code: String, _ message: String, headers: [(String, String)] = []) -> HTTPResponse {
        json(status, headers: headers) { o in
            o.field("error", code)
            o.field("message", message)
        }
    }

    public static let noContent = HTTPResponse(status: 204)

    /// The bytes on the wire; `head` leaves the body out (a HEAD request) but keeps its length.
    public func encoded(head: Bool = false, extraHeaders: [(String, String)] = []) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        text += "Date: \(HTTPDate.now())\r\n"
        for (name, value) in headers + extraHeaders { text += "\(name): \(value)\r\n" }
        if status != 204 && status != 304 && !(100..<200).contains(status) {
            text += "Content-Length: \(body.count)\r\n"
        }
        if closes { text += "Connection: close\r\n" }
        text += "\r\n"
        var out = Array(text.utf8)
        if !head { out += body }
        return out
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 417: return "Expectation Failed"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}
