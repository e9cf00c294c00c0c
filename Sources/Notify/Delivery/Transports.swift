// The delivery threads' network clients, from the settings.
extension NotifyPlugin {
    /// SMTP to `smtp_server`, or nil when it is not set.
    static func mailTransport(_ s: NotifySettings) -> (any MailSending)? {
        guard let server = s.smtpServer else { return nil }
        let credentials = s.smtpUsername.map { SMTPCredentials(username: $0, password: s.smtpPassword ?? "") }
        let security = SMTPSecurity(rawValue: s.smtpTLS.rawValue) ?? .starttls
        let clientName = s.smtpFrom.split(separator: "@").last.map(String.init) ?? "localhost"
        guard let configuration = (try? SMTPConfiguration(security: security, clientName: clientName, credentials: credentials))
            ?? (try? SMTPConfiguration(security: security, clientName: "localhost", credentials: credentials))
        else { return nil }
        return SMTPClient(host: server.host, port: server.port, configuration: configuration, caFile: s.caFile,
                          timeoutMilliseconds: s.timeout * 1000)
    }

    static func webTransport(_ s: NotifySettings) -> any WebSending {
        HTTPSClient(caFile: s.caFile, timeoutMilliseconds: s.timeout * 1000)
    }
}

extension SMTPClient: MailSending {
    func send(_ envelope: SMTPEnvelope) -> Result<SMTPOutcome, any Error> {
        let result: Result<SMTPOutcome, TransportError> = send(envelope)
        return result.mapError { $0 }
    }
}

extension HTTPSClient: WebSending {
    func send(_ request: HTTPClientRequest, to url: String) -> Result<HTTPClientResponse, any Error> {
        let result: Result<HTTPClientResponse, TransportError> = send(request, to: url)
        return result.mapError { $0 }
    }
}
