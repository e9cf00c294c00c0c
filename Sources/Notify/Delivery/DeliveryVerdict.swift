/// What an answer means for a notification (SPEC section 5): delivered, worth
/// another attempt, never worth one, or a push endpoint that is gone.
enum DeliveryVerdict {
    /// A push endpoint's or webhook's answer. Redirects are not followed.
    static func http(_ response: HTTPClientResponse, now: Int64) -> DeliveryOutcome {
        let status = response.status
        let text = "HTTP \(status)" + (response.reason.isEmpty ? "" : " \(response.reason)")
        switch status {
        case 200...299: return .delivered
        case 404, 410: return .gone("\(text): the endpoint is gone; the device was removed")
        case 408, 425, 429, 500...599: return .retry(text, after: response.retryAfter(now: now))
        case 300...399: return .dead("\(text): redirects are not followed")
        default: return .dead(text)
        }
    }

    /// An SMTP conversation's end: 4yz and protocol trouble retried, 5yz given up.
    static func smtp(_ outcome: SMTPOutcome) -> DeliveryOutcome {
        switch outcome {
        case .delivered: return .delivered
        case .temporaryFailure(let step, let reply): return .retry("SMTP \(step.rawValue): \(reply.summary)", after: nil)
        case .permanentFailure(let step, let reply): return .dead("SMTP \(step.rawValue): \(reply.summary)")
        case .protocolError(let error): return .retry("SMTP: \(error)", after: nil)
        }
    }

    /// A connection, TLS or time-out failure: always retried.
    static func transport(_ error: any Error) -> DeliveryOutcome {
        .retry("\(error)", after: nil)
    }
}

extension SMTPReply {
    /// `550 5.1.1 no such user` on one line, at most 200 characters.
    var summary: String {
        let text = "\(code) " + lines.joined(separator: " ")
        return text.count > 200 ? String(text.prefix(200)) + "..." : text
    }
}
