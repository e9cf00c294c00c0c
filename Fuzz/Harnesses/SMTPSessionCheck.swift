// Part of harness (j), fuzz-smtp-reply: the same stream, in the same chunks, read
// as a server's side of a conversation by an SMTPSession in mode starttls (with
// credentials, two recipients). Whatever the server says:
//   - before the TLS handshake the client sends only EHLO, STARTTLS and QUIT:
//     no credentials, no envelope, no message in the clear;
//   - STARTTLS is asked for at most once; credentials go out only under TLS;
//   - `.close` comes once, last, with the outcome the session reports, and
//     nothing follows it.
// (The session is not chunking-independent, on purpose: replies that arrive
// ahead of the command they answer are refused.)
import Notify

func checkSMTPSession(_ stream: [UInt8], chunks: [Int]) {
    guard let configuration = try? SMTPConfiguration(
        security: .starttls, clientName: "parley.example", credentials: SMTPCredentials(username: "user", password: "pw")),
        let envelope = try? SMTPEnvelope(sender: "n@parley.example", recipients: ["a@example.org", "b@example.org"],
                                         message: Array("Subject: x\r\n\r\n.body\r\n".utf8))
    else { fatalError("the harness's own session does not set up") }
    var session = SMTPSession(configuration: configuration, envelope: envelope)
    let clear: Set<String> = ["EHLO parley.example\r\n", "STARTTLS\r\n", "QUIT\r\n"]
    var handshakes = 0
    var closes = 0
    var offset = 0

    func take(_ actions: [SMTPAction]) {
        for (i, action) in actions.enumerated() {
            guard closes == 0 else { fatalError("\(action) after the close") }
            switch action {
            case .send(let bytes):
                let text = String(decoding: bytes, as: UTF8.self)
                if !session.tlsActive && !clear.contains(text) { fatalError("sent in the clear: \(text.debugDescription)") }
            case .startTLS:
                handshakes += 1
                guard handshakes == 1 else { fatalError("STARTTLS twice") }
                take(session.tlsEstablished())
            case .close(let outcome):
                closes += 1
                guard i == actions.count - 1 else { fatalError("actions after the close: \(actions)") }
                guard session.outcome == outcome else { fatalError("closed with \(outcome), session says \(String(describing: session.outcome))") }
            }
        }
    }

    for n in chunks {
        take(session.receive(stream[offset..<(offset + n)]))
        offset += n
    }
    take(session.connectionClosed())
    guard closes == 1, session.outcome != nil else { fatalError("\(closes) closes at the end of the connection") }
}
