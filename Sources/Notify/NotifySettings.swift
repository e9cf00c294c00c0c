import Broker

/// The notification bridge's settings (SPEC section 5).
public struct NotifySettings: Sendable {
    public enum SMTPTLS: String, Sendable { case starttls, implicit, none }

    /// `smtp_server = HOST:PORT`; nil: no e-mail.
    public var smtpServer: (host: String, port: UInt16)?
    public var smtpTLS = SMTPTLS.starttls
    public var smtpUsername: String?
    public var smtpPassword: String?
    public var smtpFrom = "parley@localhost"
    /// A CA bundle trusted for outgoing TLS besides the system's (tests, private services).
    public var caFile: String?
    /// Seconds an online session has to acknowledge a message before it counts as unseen.
    public var grace = 30
    public var maxAttempts = 10
    public var maxAge = 24 * 3600
    /// The VAPID `sub` claim (RFC 8292): a mailto: or https: contact.
    public var vapidSubject = "mailto:parley@localhost"
    /// Seconds before the first retry; each further one waits twice as long (at most an hour), with jitter.
    public var retryBase = 10
    /// Delivery threads.
    public var workers = 4
    /// Deliveries at once to one destination (host and port).
    public var perDestination = 2
    /// Seconds every network step of a delivery may take.
    public var timeout = 30
    /// The web client's address, linked from e-mails (empty: no link).
    public var webURL = ""

    public init() {}

    public static let keys: Set<String> = [
        "smtp_server", "smtp_tls", "smtp_username", "smtp_password", "smtp_from", "notify_ca_file", "notify_grace",
        "notify_max_attempts", "notify_max_age", "notify_vapid_subject", "notify_retry_base", "notify_workers",
        "notify_per_destination", "notify_timeout", "notify_web_url",
    ]

    public init(_ settings: PluginSettings) throws(ConfigError) {
        self.init()
        func fail(_ v: PluginSettings.Value, _ reason: String) -> ConfigError {
            ConfigError(file: v.file, line: v.line, reason: reason)
        }
        if let v = settings["smtp_server"], !v.text.isEmpty {
            guard let colon = v.text.lastIndex(of: ":"), let port = UInt16(v.text[v.text.index(after: colon)...]), port > 0,
                  colon > v.text.startIndex
            else { throw fail(v, "smtp_server must be HOST:PORT (e.g. smtp.example.com:587), not '\(v.text)'") }
            smtpServer = (String(v.text[..<colon]), port)
        }
        if let v = settings["smtp_tls"] {
            guard let mode = SMTPTLS(rawValue: v.text) else {
                throw fail(v, "smtp_tls must be starttls, implicit or none, not '\(v.text)'")
            }
            smtpTLS = mode
        }
        if let v = settings["smtp_username"], !v.text.isEmpty { smtpUsername = v.text }
        if let v = settings["smtp_password"], !v.text.isEmpty { smtpPassword = v.text }
        if let v = settings["smtp_from"] {
            guard (try? MailAddress(v.text)) != nil else { throw fail(v, "smtp_from must be an e-mail address, not '\(v.text)'") }
            smtpFrom = v.text
        }
        if let v = settings["notify_ca_file"], !v.text.isEmpty { caFile = v.text }
        func seconds(_ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            guard let v = settings[key] else { return nil }
            guard let n = ConfigValue.seconds(v.text), range.contains(Int(n)) else {
                throw fail(v, "\(key) must be a duration from \(range.lowerBound)s to \(range.upperBound)s, not '\(v.text)'")
            }
            return Int(n)
        }
        if let n = try seconds("notify_grace", 0...86_400) { grace = n }
        if let n = try seconds("notify_max_age", 60...(30 * 86_400)) { maxAge = n }
        if let n = try seconds("notify_retry_base", 1...3600) { retryBase = n }
        if let n = try seconds("notify_timeout", 1...600) { timeout = n }
        func count(_ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            guard let v = settings[key] else { return nil }
            guard let n = Int(v.text), range.contains(n) else {
                throw fail(v, "\(key) must be a number from \(range.lowerBound) to \(range.upperBound), not '\(v.text)'")
            }
            return n
        }
        if let n = try count("notify_max_attempts", 1...100) { maxAttempts = n }
        if let n = try count("notify_workers", 1...64) { workers = n }
        if let n = try count("notify_per_destination", 1...64) { perDestination = n }
        if let v = settings["notify_web_url"] {
            guard v.text.isEmpty || v.text.hasPrefix("https://") || v.text.hasPrefix("http://") else {
                throw fail(v, "notify_web_url must be an http:// or https:// URL, not '\(v.text)'")
            }
            webURL = v.text
        }
        if let v = settings["notify_vapid_subject"] {
            guard v.text.hasPrefix("mailto:") || v.text.hasPrefix("https:") else {
                throw fail(v, "notify_vapid_subject must be a mailto: or https: URL, not '\(v.text)'")
            }
            vapidSubject = v.text
        }
        if smtpServer != nil && smtpUsername != nil && smtpPassword == nil, let v = settings["smtp_username"] {
            throw fail(v, "smtp_username needs smtp_password")
        }
    }
}
