import Broker
import Chat
import Foundation
import Notify
import Reactor
import Synchronization

/// The HTTP gateway plugin (SPEC section 4): HTTP/1.1 and HTTPS listeners on the
/// broker's event loops serving the REST routes, `/metrics`, `/healthz`,
/// `/openapi.json`, the web client, and MQTT over WebSocket on `/mqtt`.
public final class GatewayPlugin: BrokerPlugin, @unchecked Sendable {
    public let name = "gateway"
    public var hooks: PluginHooks { [] }
    private let currentSettings: Mutex<GatewaySettings>
    var settings: GatewaySettings { currentSettings.withLock { $0 } }
    let chat: ChatPlugin?
    let notify: NotifyPlugin?
    let router = Router()
    private(set) var services: BrokerServices!
    /// The open HTTP connections of each loop, touched only by that loop's thread.
    private var perLoop: [LoopConnections] = []
    /// Sign-up and token requests per source address.
    let authLimit: PostRateLimit
    let metrics = HTTPMetrics()
    /// HTTP connections open now (upgraded ones count as MQTT clients).
    let openCount = Atomic<Int>(0)
    /// The addresses bound, for logs and tests.
    public private(set) var boundHTTP: [SocketAddress] = []
    public private(set) var boundHTTPS: [SocketAddress] = []

    final class LoopConnections {
        var open: [ObjectIdentifier: HTTPConnection] = [:]
        var sweeping = false
    }

    public init(settings: GatewaySettings = GatewaySettings(), chat: ChatPlugin?, notify: NotifyPlugin? = nil) {
        currentSettings = Mutex(settings)
        self.chat = chat
        self.notify = notify
        authLimit = PostRateLimit(.init(perSecond: settings.authRate.perSecond, burst: settings.authRate.burst))
    }

    public func start(_ services: BrokerServices) throws {
        self.services = services
        perLoop = (0..<services.loopCount).map { _ in LoopConnections() }
        registerRoutes()
        let s = settings
        for address in s.http { boundHTTP.append(try open(address, secure: false)) }
        for address in s.https { boundHTTPS.append(try open(address, secure: true)) }
    }

    public func reload(_ pluginSettings: PluginSettings) {
        do {
            var new = try GatewaySettings(pluginSettings)
            let old = settings
            // Listeners stay as they are until a restart.
            new.http = old.http
            new.https = old.https
            currentSettings.withLock { $0 = new }
            authLimit.setRate(.init(perSecond: new.authRate.perSecond, burst: new.authRate.burst))
            Log.info("gateway.reloaded", ["cors_origins": new.corsOrigins.joined(separator: ",")])
        } catch {
            Log.error("gateway.reload_failed", ["error": error])
        }
    }

    private func open(_ address: SocketAddress, secure: Bool) throws -> SocketAddress {
        try services.listen(address, name: secure ? "https" : "http", secure: secure) { [unowned self] socket in
            accepted(socket, secure: secure)
        }
    }

    private func accepted(_ socket: AcceptedSocket, secure: Bool) {
        let conn = HTTPConnection(fd: socket.fd, loop: socket.loop, peer: socket.peer, gateway: self, secure: secure)
        if let tls = socket.tls, !conn.startTLS(tls) {
            conn.close()
            return
        }
        let registry = perLoop[socket.loop.index]
        do {
            try conn.activate()
        } catch {
            conn.close()
            return
        }
        registry.open[ObjectIdentifier(conn)] = conn
        openCount.add(1, ordering: .relaxed)
        if !registry.sweeping {
            registry.sweeping = true
            sweep(registry, loop: socket.loop)
        }
    }

    private func sweep(_ registry: LoopConnections, loop: EventLoop) {
        _ = loop.schedule(afterMilliseconds: 1000) { [unowned self] in
            let now = loop.now
            for conn in Array(registry.open.values) { conn.checkTimeouts(now: now) }
            sweep(registry, loop: loop)
        }
    }

    /// A closed or upgraded connection leaves its loop's list.
    func forget(_ conn: HTTPConnection) {
        if perLoop[conn.loop.index].open.removeValue(forKey: ObjectIdentifier(conn)) != nil {
            openCount.subtract(1, ordering: .relaxed)
        }
    }

    // MARK: CORS

    /// The CORS headers for a request from `origin`, when it is allowed.
    func corsHeaders(origin: String?) -> [(String, String)] {
        guard let origin else { return [] }
        let allowed = settings.corsOrigins
        guard allowed.contains("*") || allowed.contains(origin) else { return [] }
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    }

    /// A preflight's answer headers (the origin itself is added by `corsHeaders`).
    func preflightHeaders(_ request: HTTPRequest) -> [(String, String)] {
        guard request.header("access-control-request-method") != nil, !corsHeaders(origin: request.header("origin")).isEmpty
        else { return [] }
        return [("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
                ("Access-Control-Max-Age", "600")]
    }

    /// Records one answer for the metrics.
    func count(route: String, method: String, status: Int, seconds: Double) {
        metrics.record(route: route, method: method, status: status, seconds: seconds)
    }
}
