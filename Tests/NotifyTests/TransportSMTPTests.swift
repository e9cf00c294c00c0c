// SMTPClient against a real submission server (aiosmtpd, Tests/notify/smtp_peer.py):
// STARTTLS and implicit TLS with verified certificates, AUTH PLAIN and LOGIN, the
// server's refusals, and the connection failures.
import Foundation
import Notify
import Testing

@Suite(.timeLimit(.minutes(1)))
final class TransportSMTPTests {
    let certificates: TestCertificates
    let mailDirectory: URL
    let peer: PeerProcess

    init() throws {
        certificates = try TestCertificates()
        mailDirectory = try makeTemporaryDirectory("parley-transport-mail")
        peer = try PeerProcess(script: "smtp_peer.py", arguments: [certificates.directory.path, mailDirectory.path])
    }

    deinit {
        certificates.remove()
        try? FileManager.default.removeItem(at: mailDirectory)
    }

    static let message = "From: notify@parley.test\r\nTo: bob@example.org\r\nSubject: 1 new message in general\r\n"
        + "Message-ID: <parley-notify-7@parley.test>\r\nMIME-Version: 1.0\r\n\r\ngeneral\r\n  alice: hi @bob\r\n.a line starting with a dot\r\n"

    func client(_ listener: String, host: String = "localhost", security: SMTPSecurity = .starttls, password: String? = "s3cret",
                caFile: String? = nil, timeout: Int = 5_000) throws -> SMTPClient {
        let credentials = password.map { SMTPCredentials(username: "parley", password: $0) }
        let configuration = try SMTPConfiguration(security: security, clientName: "parley.test", credentials: credentials)
        return SMTPClient(host: host, port: peer.port(listener), configuration: configuration,
                          caFile: caFile ?? certificates.caFile, timeoutMilliseconds: timeout)
    }

    func envelope(to recipient: String = "bob@example.org") throws -> SMTPEnvelope {
        try SMTPEnvelope(sender: "notify@parley.test", recipients: [recipient], message: Array(Self.message.utf8))
    }

    /// The mails the server took, in order.
    func delivered() throws -> [[String: Any]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: mailDirectory.path)
            .filter { $0.hasPrefix("mail-") && $0.hasSuffix(".json") }.sorted()
        return try names.map { name in
            let data = try Data(contentsOf: mailDirectory.appendingPathComponent(name))
            return try JSONSerialization.jsonObject(with: data) as! [String: Any]
        }
    }

    func authLog() -> String {
        (try? String(contentsOf: mailDirectory.appendingPathComponent("auth.log"), encoding: .utf8)) ?? ""
    }

    func expectDelivered(_ result: Result<SMTPOutcome, TransportError>) {
        guard case .success(.delivered(let reply, let refused)) = result else {
            Issue.record("expected delivery, got \(result)")
            return
        }
        #expect(reply.code == 250)
        #expect(refused.isEmpty)
    }

    @Test func startTLSThenAuthPlainDeliversTheMailByteForByte() throws {
        expectDelivered(try client("starttls").send(try envelope()))
        let mails = try delivered()
        try #require(mails.count == 1)
        #expect(mails[0]["from"] as? String == "notify@parley.test")
        #expect(mails[0]["to"] as? [String] == ["bob@example.org"])
        #expect(mails[0]["message"] as? String == Self.message)
        #expect(mails[0]["tls"] as? Bool == true)
        #expect(mails[0]["mechanism"] as? String == "PLAIN")
    }

    @Test func authLoginWhenPlainIsNotOffered() throws {
        expectDelivered(try client("login").send(try envelope()))
        let mails = try delivered()
        try #require(mails.count == 1)
        #expect(mails[0]["mechanism"] as? String == "LOGIN")
        #expect(mails[0]["tls"] as? Bool == true)
    }

    @Test func implicitTLSToAnIPAddress() throws {
        expectDelivered(try client("implicit", host: "127.0.0.1", security: .implicit).send(try envelope()))
        let mails = try delivered()
        try #require(mails.count == 1)
        #expect(mails[0]["tls"] as? Bool == true)
        #expect((mails[0]["message"] as? String)?.contains("Message-ID: <parley-notify-7@parley.test>") == true)
    }

    @Test func noTLSWhenConfiguredSo() throws {
        expectDelivered(try client("plain", host: "127.0.0.1", security: .none, password: nil).send(try envelope()))
        let mails = try delivered()
        try #require(mails.count == 1)
        #expect(mails[0]["tls"] as? Bool == false)
    }

    @Test func wrongPasswordIsAPermanentFailure() throws {
        let client = try client("starttls", password: "not-the-password")
        let result = client.send(try envelope())
        guard case .success(.permanentFailure(.authentication, let reply)) = result else {
            Issue.record("expected 535, got \(result)")
            return
        }
        #expect(reply.code == 535)
        #expect(try delivered().isEmpty)
        #expect(authLog().contains("PLAIN parley refused"))
        // The password is in no text the client makes.
        #expect(!"\(client) \(String(reflecting: client)) \(result)".contains("not-the-password"))
        var dumped = ""
        dump(client, to: &dumped)
        #expect(!dumped.contains("not-the-password"))
    }

    @Test func a451IsATemporaryFailure() throws {
        let result = try client("starttls").send(try envelope(to: "later@example.org"))
        guard case .success(.temporaryFailure(.rcptTo, let reply)) = result else {
            Issue.record("expected 451, got \(result)")
            return
        }
        #expect(reply.code == 451)
        #expect(try delivered().isEmpty)
    }

    @Test func a550IsAPermanentFailure() throws {
        let result = try client("starttls").send(try envelope(to: "nobody@example.org"))
        guard case .success(.permanentFailure(.rcptTo, let reply)) = result else {
            Issue.record("expected 550, got \(result)")
            return
        }
        #expect(reply.code == 550)
    }

    @Test func startTLSCertificateForAnotherNameSendsNothing() throws {
        let result = try client("wrong_starttls").send(try envelope())
        guard case .failure(.tls(let host, .hostNameMismatch(let reason))) = result else {
            Issue.record("expected a host name mismatch, got \(result)")
            return
        }
        #expect(host == "localhost")
        #expect(reason.lowercased().contains("mismatch"))
        #expect("\(result)".contains("does not match"))
        #expect(authLog().isEmpty)
        #expect(try delivered().isEmpty)
    }

    @Test func implicitTLSCertificateForAnotherAddressSendsNothing() throws {
        let result = try client("wrong_implicit", host: "127.0.0.1", security: .implicit).send(try envelope())
        guard case .failure(.tls(_, .hostNameMismatch)) = result else {
            Issue.record("expected an IP address mismatch, got \(result)")
            return
        }
        #expect(authLog().isEmpty)
        #expect(try delivered().isEmpty)
    }

    @Test(arguments: ["other", "system"])
    func certificateOfAnUntrustedCAIsRefused(trust: String) throws {
        // The system's CAs alone, or with a CA that did not sign the server's certificate.
        let configuration = try SMTPConfiguration(security: .implicit, clientName: "parley.test",
                                                  credentials: SMTPCredentials(username: "parley", password: "s3cret"))
        let client = SMTPClient(host: "localhost", port: peer.port("implicit"), configuration: configuration,
                                caFile: trust == "other" ? certificates.otherCAFile : nil, timeoutMilliseconds: 5_000)
        let result = client.send(try envelope())
        guard case .failure(.tls(_, .certificateNotTrusted(let reason))) = result else {
            Issue.record("expected an untrusted certificate, got \(result)")
            return
        }
        #expect(!reason.isEmpty)
        #expect(authLog().isEmpty)
    }

    @Test func unreadableCAFileIsASetupError() throws {
        let result = try client("implicit", security: .implicit, caFile: "/nonexistent/ca.pem").send(try envelope())
        guard case .failure(.setup(let text)) = result else {
            Issue.record("expected a setup error, got \(result)")
            return
        }
        #expect(text.contains("/nonexistent/ca.pem"))
    }

    @Test func aServerThatNeverSpeaksTimesOut() throws {
        let silent = try SilentSocket(listening: true)
        let configuration = try SMTPConfiguration(security: .starttls, clientName: "parley.test")
        let client = SMTPClient(host: "127.0.0.1", port: silent.port, configuration: configuration, caFile: nil,
                                timeoutMilliseconds: 500)
        let (result, seconds) = measure { client.send(try! envelope()) }
        #expect(result == .success(.protocolError(.connectionClosed(.greeting))))
        #expect(seconds >= 0.45 && seconds < 2, "took \(seconds) s")
    }

    @Test func implicitTLSToAServerThatNeverSpeaksTimesOutInTheHandshake() throws {
        let silent = try SilentSocket(listening: true)
        let configuration = try SMTPConfiguration(security: .implicit, clientName: "parley.test")
        let client = SMTPClient(host: "127.0.0.1", port: silent.port, configuration: configuration, caFile: nil,
                                timeoutMilliseconds: 500)
        let (result, seconds) = measure { client.send(try! envelope()) }
        #expect(result == .failure(.timeout(.tlsHandshake, milliseconds: 500)))
        #expect(seconds < 2, "took \(seconds) s")
    }

    @Test func connectionRefusedIsAConnectError() throws {
        let closed = try SilentSocket(listening: false)
        let configuration = try SMTPConfiguration(security: .starttls, clientName: "parley.test")
        let client = SMTPClient(host: "127.0.0.1", port: closed.port, configuration: configuration, caFile: nil)
        let result = client.send(try envelope())
        guard case .failure(.connect(let address, let reason)) = result else {
            Issue.record("expected a connect error, got \(result)")
            return
        }
        #expect(address == "127.0.0.1:\(closed.port)")
        #expect(reason.contains("refused"))
    }
}
