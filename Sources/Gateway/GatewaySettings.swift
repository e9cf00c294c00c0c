import Broker
import Reactor

/// The HTTP gateway's settings (SPEC section 4), from the configuration file and
/// the `--http` / `--https` options.
public struct GatewaySettings: Sendable {
    public var http: [SocketAddress] = [try! SocketAddress(parsing: "127.0.0.1:8080")]
    public var https: [SocketAddress] = []
    public var limits = HTTPLimits()
    /// Seconds to send a request's head (408 after), and an idle keep-alive connection's life.
    public var headerTimeout = 10
    public var idleTimeout = 60
    /// Origins that may call the REST routes from a browser (`*`: any).
    public var corsOrigins: [String] = []
    /// Origins whose pages may open `/mqtt` (empty: any; clients log in with a token,
    /// so a page from elsewhere gains nothing without one).
    public var wsOrigins: [String] = []
    /// Sign-up and token requests per source address: per second and burst.
    public var authRate = (perSecond: 1.0, burst: 20.0)
    /// The largest WebSocket frame accepted.
    public var wsMaxFrame = 16 * 1024 * 1024
    /// `/echo`, a WebSocket echo endpoint for the Autobahn test cases.
    public var testEcho = false

    public init() {}

    public static let keys: Set<String> = [
        "listen_http", "listen_https", "http_max_request_line", "http_max_header_bytes", "http_max_body",
        "http_header_timeout", "http_idle_timeout", "http_cors_origins", "ws_origins", "http_auth_rate",
        "ws_max_frame", "http_test_echo",
    ]

    public init(_ settings: PluginSettings) throws(ConfigError) {
        self.init()
        func fail(_ v: PluginSettings.Value, _ reason: String) -> ConfigError {
            ConfigError(file: v.file, line: v.line, reason: reason)
        }
        func addresses(_ key: String) throws(ConfigError) -> [SocketAddress]? {
            guard let v = settings[key] else { return nil }
            var out: [SocketAddress] = []
            for part in v.text.split(separator: ",") {
                do { out.append(try SocketAddress(parsing: part.trimmingCharacters(in: .whitespaces))) } catch {
                    throw fail(v, "\(key) must be HOST:PORT[, HOST:PORT...], not '\(v.text)'")
                }
            }
            return out
        }
        func size(_ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            guard let v = settings[key] else { return nil }
            guard let n = ConfigValue.size(v.text), range.contains(n) else {
                throw fail(v, "\(key) must be a size from \(range.lowerBound) to \(range.upperBound), not '\(v.text)'")
            }
            return n
        }
        func seconds(_ key: String) throws(ConfigError) -> Int? {
            guard let v = settings[key] else { return nil }
            guard let n = ConfigValue.seconds(v.text), n >= 1, n <= 86_400 else {
                throw fail(v, "\(key) must be a duration from 1s to 1d, not '\(v.text)'")
            }
            return Int(n)
        }
        func list(_ key: String) -> [String]? {
            settings[key].map { $0.text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        }
        if let a = try addresses("listen_http") { http = a }
        if let a = try addresses("listen_https") { https = a }
        if let n = try size("http_max_request_line", 256...(1 << 20)) { limits.requestLine = n }
        if let n = try size("http_max_header_bytes", 256...(1 << 20)) { limits.headerBytes = n }
        if let n = try size("http_max_body", 1...(64 << 20)) { limits.body = n }
        if let n = try size("ws_max_frame", 125...(64 << 20)) { wsMaxFrame = n }
        if let n = try seconds("http_header_timeout") { headerTimeout = n }
        if let n = try seconds("http_idle_timeout") { idleTimeout = n }
        if let l = list("http_cors_origins") { corsOrigins = l }
        if let l = list("ws_origins") { wsOrigins = l }
        if let v = settings["http_auth_rate"] {
            let parts = v.text.split(separator: "/").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(parts.count), let rate = parts[0], rate > 0, rate <= 1_000_000,
                  parts.count == 1 || (parts[1].map { $0 >= 1 && $0 <= 1_000_000 } ?? false)
            else { throw fail(v, "http_auth_rate must be REQUESTS_PER_SECOND[/BURST] (e.g. 1/20), not '\(v.text)'") }
            authRate = (rate, parts.count == 2 ? parts[1]! : max(1, rate * 20))
        }
        if let v = settings["http_test_echo"] {
            guard let b = ConfigValue.bool(v.text) else { throw fail(v, "http_test_echo must be true or false, not '\(v.text)'") }
            testEcho = b
        }
    }
}
