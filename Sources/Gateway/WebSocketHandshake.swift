import COpenSSL
import Chat

/// The server side of the opening handshake (RFC 6455 section 4.2).
enum WebSocketHandshake {
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// The 101 answer for a valid upgrade request, or the error answer. `protocols`:
    /// the subprotocols this endpoint speaks, best first (empty: none needed);
    /// `origins`: the Origin values allowed (empty: any).
    static func answer(_ request: HTTPRequest, protocols: [String], origins: [String]) -> Result<[UInt8], HTTPResponse> {
        let upgrade = tokens(request.header("upgrade"))
        guard upgrade.contains("websocket") else {
            return .failure(.error(426, "upgrade_required", "this endpoint speaks WebSocket only",
                                   headers: [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]))
        }
        guard request.method == "GET", request.minorVersion >= 1 else {
            return .failure(.error(400, "bad_request", "a WebSocket upgrade is an HTTP/1.1 GET"))
        }
        guard tokens(request.header("connection")).contains("upgrade") else {
            return .failure(.error(400, "bad_request", "Connection: Upgrade is missing"))
        }
        guard request.header("sec-websocket-version") == "13" else {
            return .failure(.error(426, "upgrade_required", "only WebSocket version 13 is spoken",
                                   headers: [("Sec-WebSocket-Version", "13")]))
        }
        guard let key = request.header("sec-websocket-key"), key.count == 24, key.hasSuffix("=="),
              let raw = Base64.decode(key.dropLast(2), alphabet: .standard), raw.count == 16
        else {
            return .failure(.error(400, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64"))
        }
        if !origins.isEmpty, let origin = request.header("origin"), !origins.contains(origin) {
            return .failure(.error(403, "origin_not_allowed", "WebSocket connections from \(origin) are not allowed"))
        }
        var chosen: String? = nil
        if !protocols.isEmpty {
            let offered = request.headers.filter { $0.name == "sec-websocket-protocol" }
                .flatMap { $0.value.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            chosen = protocols.first { offered.contains($0) }
            if chosen == nil && !offered.isEmpty {
                return .failure(.error(400, "bad_request", "subprotocol \(protocols[0]) is required"))
            }
        }
        var text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        text += "Sec-WebSocket-Accept: \(acceptValue(key))\r\n"
        if let chosen { text += "Sec-WebSocket-Protocol: \(chosen)\r\n" }
        text += "\r\n"
        return .success(Array(text.utf8))
    }

    static func acceptValue(_ key: String) -> String {
        let input = Array((key + guid).utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 0
        _ = EVP_Digest(input, input.count, &digest, &length, EVP_sha1(), nil)
        return Base64.encode(digest, alphabet: .standard) + "="
    }

    private static func tokens(_ value: String?) -> [String] {
        (value ?? "").lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
