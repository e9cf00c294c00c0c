// HTTPSClient against a real receiver (Python http.server + ssl,
// Tests/notify/https_peer.py): statuses, framings, time-outs, plain http to
// loopback only, and certificates that must not be accepted.
import Foundation
import Notify
import Testing

@Suite(.timeLimit(.minutes(1)))
final class TransportHTTPSTests {
    let certificates: TestCertificates
    let peer: PeerProcess

    init() throws {
        certificates = try TestCertificates()
        peer = try PeerProcess(script: "https_peer.py", arguments: [certificates.directory.path])
    }

    deinit { certificates.remove() }

    func client(timeout: Int = 5_000, caFile: String?? = .none) -> HTTPSClient {
        HTTPSClient(caFile: caFile ?? certificates.caFile, timeoutMilliseconds: timeout)
    }

    func url(_ path: String, host: String = "localhost", listener: String = "https") -> String {
        "\(listener == "http" ? "http" : "https")://\(host):\(peer.port(listener))\(path)"
    }

    func post(_ body: String = "{}") -> HTTPClientRequest {
        HTTPClientRequest(method: "POST", target: "/", host: "unset",
                          headers: [HTTPHeaderField("Content-Type", "application/json"), HTTPHeaderField("webhook-id", "ntf_7")],
                          body: Array(body.utf8))
    }

    func response(_ result: Result<HTTPClientResponse, TransportError>) throws -> HTTPClientResponse {
        switch result {
        case .success(let response): return response
        case .failure(let error): throw PeerError("expected a response, got: \(error)")
        }
    }

    @Test func postArrivesWithHostTargetAndBody() throws {
        let answer = try response(client().send(post(#"{"type":"message.unseen"}"#), to: url("/echo?room=general")))
        #expect(answer.status == 200)
        let seen = try JSONSerialization.jsonObject(with: Data(answer.body)) as! [String: Any]
        #expect(seen["method"] as? String == "POST")
        #expect(seen["path"] as? String == "/echo?room=general")
        #expect(seen["body"] as? String == #"{"type":"message.unseen"}"#)
        let headers = Dictionary((seen["headers"] as! [[String]]).map { ($0[0].lowercased(), $0[1]) }, uniquingKeysWith: { a, _ in a })
        #expect(headers["host"] == "localhost:\(peer.port("https"))")
        #expect(headers["connection"] == "close")
        #expect(headers["webhook-id"] == "ntf_7")
        #expect(headers["content-length"] == "25")
    }

    @Test func noContent() throws {
        let answer = try response(client().send(post(), to: url("/empty")))
        #expect(answer.status == 204)
        #expect(answer.body.isEmpty)
    }

    @Test func gone() throws {
        #expect(try response(client().send(post(), to: url("/gone"))).status == 410)
    }

    @Test func unavailableWithRetryAfter() throws {
        let answer = try response(client().send(post(), to: url("/busy")))
        #expect(answer.status == 503)
        #expect(answer.retryAfter(now: 1_700_000_000) == 7)
    }

    @Test func redirectIsReturnedNotFollowed() throws {
        let answer = try response(client().send(post(), to: url("/moved")))
        #expect(answer.status == 302)
        #expect(answer.header("location") == "/echo")
    }

    @Test func chunkedBody() throws {
        let answer = try response(client().send(HTTPClientRequest(method: "GET", target: "/", host: "x"), to: url("/chunked")))
        #expect(answer.status == 200)
        #expect(answer.body == Array("hello, chunked world".utf8))
    }

    @Test func interimResponseIsSkipped() throws {
        let answer = try response(client().send(post(), to: url("/early")))
        #expect(answer.status == 200)
        #expect(answer.body == Array("after hints".utf8))
    }

    @Test func bodyDelimitedByTheClose() throws {
        let answer = try response(client().send(post(), to: url("/until-close")))
        #expect(answer.closeDelimited)
        #expect(answer.body == Array("the body runs to the close".utf8))
    }

    @Test func closeWithoutAnAnswer() throws {
        #expect(client().send(post(), to: url("/hangup")) == .failure(.closed(.read)))
    }

    /// A write into a connection the server has closed fails with EPIPE or a reset;
    /// it must not raise SIGPIPE (this test process does not ignore it).
    @Test(arguments: ["https", "http"])
    func serverClosingWhileTheBodyIsWrittenIsNoSignal(listener: String) throws {
        let request = HTTPClientRequest(method: "POST", target: "/", host: "x", body: [UInt8](repeating: 0x61, count: 8 << 20))
        let result = client().send(request, to: url("/hangup", host: "127.0.0.1", listener: listener))
        #expect(result == .failure(.closed(.write)) || result == .failure(.closed(.read)), "\(result)")
    }

    @Test func responseOverTheSizeLimitIsRefused() throws {
        #expect(client().send(post(), to: url("/big")) == .failure(.invalidResponse(.bodyTooLarge)))
    }

    @Test func slowAnswerTimesOut() throws {
        let client = client(timeout: 500)
        let (result, seconds) = measure { client.send(post(), to: url("/slow")) }
        #expect(result == .failure(.timeout(.read, milliseconds: 500)))
        #expect(seconds >= 0.45 && seconds < 2, "took \(seconds) s")
    }

    @Test(arguments: ["127.0.0.1", "localhost"])
    func plainHTTPToLoopback(host: String) throws {
        let answer = try response(client().send(post("hi"), to: url("/echo", host: host, listener: "http")))
        #expect(answer.status == 200)
        let seen = try JSONSerialization.jsonObject(with: Data(answer.body)) as! [String: Any]
        #expect(seen["body"] as? String == "hi")
    }

    @Test(arguments: ["http://example.com/hook", "http://10.0.0.1:8080/hook", "http://[2001:db8::1]/hook"])
    func plainHTTPElsewhereIsRefusedBeforeConnecting(url: String) throws {
        let (result, seconds) = measure { client().send(post(), to: url) }
        guard case .failure(.invalidURL(let text, let reason)) = result else {
            Issue.record("expected a refusal, got \(result)")
            return
        }
        #expect(text == url)
        #expect(reason.contains("loopback"))
        #expect(seconds < 0.5)
    }

    @Test(arguments: ["localhost", "127.0.0.1"])
    func certificateForAnotherNameIsRefused(host: String) throws {
        let result = client().send(post(), to: url("/echo", host: host, listener: "wrong"))
        guard case .failure(.tls(let seenHost, .hostNameMismatch)) = result else {
            Issue.record("expected a host name mismatch, got \(result)")
            return
        }
        #expect(seenHost == host)
    }

    @Test func certificateOfAnUnknownCAIsRefused() throws {
        for caFile in [nil, certificates.otherCAFile] {
            let result = client(caFile: .some(caFile)).send(post(), to: url("/echo"))
            guard case .failure(.tls(_, .certificateNotTrusted)) = result else {
                Issue.record("expected an untrusted certificate with CA file \(caFile ?? "none"), got \(result)")
                continue
            }
        }
    }

    @Test func httpsToAPlainServerFailsTheHandshake() throws {
        let result = client().send(post(), to: url("/echo", listener: "http").replacingOccurrences(of: "http://", with: "https://"))
        guard case .failure(.tls(_, .handshakeFailed(let reason))) = result else {
            Issue.record("expected a handshake failure, got \(result)")
            return
        }
        #expect(!reason.isEmpty)
    }

    @Test func connectionRefused() throws {
        let closed = try SilentSocket(listening: false)
        let result = client().send(post(), to: "https://127.0.0.1:\(closed.port)/")
        guard case .failure(.connect(_, let reason)) = result else {
            Issue.record("expected a connect error, got \(result)")
            return
        }
        #expect(reason.contains("refused"))
    }

    @Test func invalidHeaderIsRefusedBeforeConnecting() throws {
        var request = post()
        request.headers.append(HTTPHeaderField("Title", "a\r\nInjected: yes"))
        #expect(client().send(request, to: "https://127.0.0.1:1/") == .failure(.invalidRequest(.invalidHeaderValue(name: "Title"))))
    }
}
