@testable import Gateway
import Testing

func upgradeRequest(method: String = "GET", minor: Int = 1, drop: Set<String> = [], extra: [(String, String)] = [],
                    key: String = "dGhlIHNhbXBsZSBub25jZQ==", version: String = "13") -> HTTPRequest {
    var headers: [(name: String, value: String)] = [
        ("host", "server.example.com"), ("upgrade", "websocket"), ("connection", "Upgrade"),
        ("sec-websocket-key", key), ("sec-websocket-version", version),
    ]
    headers.removeAll { drop.contains($0.name) }
    headers += extra.map { (name: $0.0, value: $0.1) }
    return HTTPRequest(method: method, path: "/mqtt", query: nil, minorVersion: minor, headers: headers)
}

func failure(_ result: Result<[UInt8], HTTPResponse>) -> HTTPResponse? {
    if case .failure(let r) = result { return r }
    return nil
}

func errorCode(_ r: HTTPResponse?) -> String? {
    guard let body = r.map({ String(decoding: $0.body, as: UTF8.self) }) else { return nil }
    guard body.hasPrefix(#"{"error":""#), let end = body.dropFirst(10).firstIndex(of: "\"") else { return nil }
    return String(body[body.index(body.startIndex, offsetBy: 10)..<end])
}

@Suite("WebSocket opening handshake (RFC 6455 section 4.2)")
struct WebSocketHandshakeTests {
    @Test("RFC 6455's sample key")
    func acceptValue() {
        #expect(WebSocketHandshake.acceptValue("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("the 101 answer, with the subprotocol chosen")
    func switching() throws {
        let request = upgradeRequest(extra: [("sec-websocket-protocol", "chat, mqtt")])
        guard case .success(let bytes) = WebSocketHandshake.answer(request, protocols: ["mqtt"], origins: []) else {
            Issue.record("refused")
            return
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
    }

    @Test("no subprotocol offered: none in the answer; header names and tokens in any case")
    func noProtocol() {
        let request = upgradeRequest(drop: ["upgrade", "connection"], extra: [("upgrade", "WebSocket"), ("connection", "keep-alive, Upgrade")])
        guard case .success(let bytes) = WebSocketHandshake.answer(request, protocols: ["mqtt"], origins: []) else {
            Issue.record("refused")
            return
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    }

    @Test("no Upgrade: websocket is 426 with Upgrade and the version")
    func noUpgrade() throws {
        let r = try #require(failure(WebSocketHandshake.answer(upgradeRequest(drop: ["upgrade"]), protocols: [], origins: [])))
        #expect(r.status == 426)
        #expect(errorCode(r) == "upgrade_required")
        #expect(r.headers.contains { $0 == ("Upgrade", "websocket") })
        #expect(r.headers.contains { $0 == ("Sec-WebSocket-Version", "13") })
    }

    @Test("another WebSocket version is 426 naming 13")
    func version() throws {
        let r = try #require(failure(WebSocketHandshake.answer(upgradeRequest(version: "8"), protocols: [], origins: [])))
        #expect(r.status == 426)
        #expect(r.headers.map(\.0) == ["Content-Type", "Sec-WebSocket-Version"])
        #expect(r.headers.last! == ("Sec-WebSocket-Version", "13"))
        #expect(failure(WebSocketHandshake.answer(upgradeRequest(drop: ["sec-websocket-version"]), protocols: [], origins: []))?.status == 426)
    }

    @Test("400: not a GET, HTTP/1.0, no Connection: Upgrade, a bad key, an unknown subprotocol")
    func badRequests() {
        let cases: [HTTPRequest] = [
            upgradeRequest(method: "POST"),
            upgradeRequest(minor: 0),
            upgradeRequest(drop: ["connection"]),
            upgradeRequest(drop: ["sec-websocket-key"]),
            upgradeRequest(key: "dGhlIHNhbXBsZSBub25jZQ"),
            upgradeRequest(key: "dGhlIHNhbXBsZSBub25jZQ==".lowercased() + "x"),
            upgradeRequest(key: "dGhlIHNhbXBsZSBub25j===="),
            upgradeRequest(key: "!!!!!!!!!!!!!!!!!!!!!!=="),
            upgradeRequest(extra: [("sec-websocket-protocol", "chat")]),
        ]
        for request in cases {
            let r = failure(WebSocketHandshake.answer(request, protocols: ["mqtt"], origins: []))
            #expect(r?.status == 400, "\(request.headers)")
            #expect(errorCode(r) == "bad_request")
        }
    }

    @Test("an Origin not on the list is 403; on the list, or no Origin, passes")
    func origins() {
        let allowed = ["https://chat.example.com"]
        let other = upgradeRequest(extra: [("origin", "https://evil.example")])
        let r = failure(WebSocketHandshake.answer(other, protocols: [], origins: allowed))
        #expect(r?.status == 403)
        #expect(errorCode(r) == "origin_not_allowed")
        let ok = upgradeRequest(extra: [("origin", "https://chat.example.com")])
        #expect(failure(WebSocketHandshake.answer(ok, protocols: [], origins: allowed)) == nil)
        #expect(failure(WebSocketHandshake.answer(upgradeRequest(), protocols: [], origins: allowed)) == nil)
        #expect(failure(WebSocketHandshake.answer(other, protocols: [], origins: [])) == nil)
    }
}
