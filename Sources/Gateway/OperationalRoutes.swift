import Broker
import Reactor

// Health, metrics, the API description, the web client, and the WebSocket
// endpoints: `/mqtt`, and `/echo` for the Autobahn cases (a test setting).
extension GatewayPlugin {
    func registerOperationalRoutes() {
        router.add("GET", "/healthz") { [unowned self] in health($0) }
        router.add("GET", "/metrics") { [unowned self] in metricsPage($0) }
        router.add("GET", "/mqtt") { [unowned self] in mqttUpgrade($0) }
        if settings.testEcho { router.add("GET", "/echo") { [unowned self] in echoUpgrade($0) } }
        for file in StaticFiles.all {
            router.add("GET", file.path) { ctx in
                ctx.respond(HTTPResponse(status: 200, headers: [("Content-Type", file.contentType),
                                                                ("Cache-Control", "no-cache")], body: file.bytes))
            }
        }
    }

    static let healthy = HTTPResponse.json(200, Array(#"{"status":"ok"}"#.utf8))

    private func health(_ ctx: RequestContext) {
        if services.storeWritable {
            ctx.respond(Self.healthy)
        } else {
            ctx.respond(.json(503, Array(#"{"status":"unavailable","error":"store_unwritable","message":"the store cannot write (disk full or failing)"}"#.utf8)))
        }
    }

    private func metricsPage(_ ctx: RequestContext) {
        let figures = chat?.figures
        let notifications = notify?.figures
        let http = openCount.load(ordering: .relaxed)
        services.collectMetrics { [metrics] m in
            let page = metrics.page(m, chatPosts: figures?.postsStored, usersOnline: figures?.usersOnline, httpConnections: http,
                                    notifications: notifications)
            ctx.respond(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                     body: page))
        }
    }

    private func mqttUpgrade(_ ctx: RequestContext) {
        switch WebSocketHandshake.answer(ctx.request, protocols: ["mqtt", "mqttv3.1"], origins: settings.wsOrigins) {
        case .success(let greeting):
            count(route: "/mqtt", method: "GET", status: 101, seconds: 0)
            ctx.upgradeToMQTT(greeting)
        case .failure(let answer):
            ctx.respond(answer)
        }
    }

    private func echoUpgrade(_ ctx: RequestContext) {
        switch WebSocketHandshake.answer(ctx.request, protocols: [], origins: []) {
        case .success(let greeting): ctx.upgradeToEcho(greeting)
        case .failure(let answer): ctx.respond(answer)
        }
    }
}
