/// Sends a mail over SMTP (blocking, on a delivery thread).
protocol MailSending: Sendable {
    func send(_ envelope: SMTPEnvelope) -> Result<SMTPOutcome, any Error>
}

/// Sends one HTTP request to an absolute URL (blocking, on a delivery thread);
/// fills in Host and the target from the URL; follows no redirect.
protocol WebSending: Sendable {
    func send(_ request: HTTPClientRequest, to url: String) -> Result<HTTPClientResponse, any Error>
}

/// Carries out one delivery job: builds the mail or the request, sends it, and
/// says what the answer means.
struct Deliverer: Sendable {
    let mail: (any MailSending)?
    let web: any WebSending
    let sender: String
    let webURL: String
    let vapidKey: P256Key
    let vapidSubject: String

    func deliver(_ job: DeliveryJob, now: Int64) -> DeliveryOutcome {
        switch job {
        case .email(let address, let entries): return email(address, entries, now: now)
        case .push(let device, let entry): return push(device, entry, now: now)
        }
    }

    private func email(_ address: String, _ entries: [OutboxEntry], now: Int64) -> DeliveryOutcome {
        guard let mail else { return .dead("no smtp_server is set") }
        let envelope: SMTPEnvelope
        do {
            let message = try DigestMail.message(to: address, entries: entries, from: sender, webURL: webURL, now: now)
            envelope = try SMTPEnvelope(sender: sender, recipients: [address], message: message.encoded())
        } catch {
            return .dead("the mail cannot be made: \(error)")
        }
        switch mail.send(envelope) {
        case .success(let outcome): return DeliveryVerdict.smtp(outcome)
        case .failure(let error): return DeliveryVerdict.transport(error)
        }
    }

    private func push(_ device: StoredDevice, _ entry: OutboxEntry, now: Int64) -> DeliveryOutcome {
        let request: HTTPClientRequest
        do {
            switch device.kind {
            case .webhook: request = try PushRequests.webhook(entry, device: device, now: now)
            case .ntfy: request = PushRequests.ntfy(entry)
            case .webpush:
                request = try PushRequests.webPush(entry, device: device, vapid: vapidKey, subject: vapidSubject, now: now)
            case .email: return .dead("an e-mail row names a device")
            }
        } catch {
            return .dead("the request cannot be made: \(error)")
        }
        switch web.send(request, to: device.url) {
        case .success(let response): return DeliveryVerdict.http(response, now: now)
        case .failure(let error): return DeliveryVerdict.transport(error)
        }
    }

    /// Where a job goes, for the per-destination limit: the SMTP server, or the
    /// URL's authority.
    static func destination(of job: DeliveryJob) -> String {
        switch job {
        case .email: return "smtp"
        case .push(let device, _):
            let afterScheme = device.url.firstRange(of: "://").map { device.url[$0.upperBound...] } ?? device.url[...]
            return String(afterScheme.prefix { $0 != "/" && $0 != "?" && $0 != "#" }).lowercased()
        }
    }
}
