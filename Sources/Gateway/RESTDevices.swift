import Chat
import JSON
import Notify

// The user's push destinations and the VAPID key for browsers (SPEC sections 4-5).
extension GatewayPlugin {
    func registerDeviceRoutes() {
        guard notify != nil, chat != nil else { return }
        router.add("GET", "/v1/devices", authenticated: true) { [unowned self] in devices($0) }
        router.add("POST", "/v1/devices", authenticated: true) { [unowned self] in addDevice($0) }
        router.add("DELETE", "/v1/devices/{id}", authenticated: true) { [unowned self] in removeDevice($0) }
        router.add("GET", "/v1/push/vapid") { [unowned self] in vapid($0) }
    }

    static func deviceJSON(_ d: Device, into o: inout JSONObjectWriter) {
        o.field("id", d.id)
        o.field("kind", d.kind.rawValue)
        o.field(d.kind == .webpush ? "endpoint" : "url", d.url)
        o.field("created_at", ChatPlugin.isoTime(d.createdAt))
        if let secret = d.secret { o.field("secret", secret) }
    }

    private func devices(_ ctx: RequestContext) {
        notify?.devices(of: ctx.user) { result in
            switch result {
            case .success(let list):
                var w = JSONWriter()
                w.array { a in for d in list { a.object { o in Self.deviceJSON(d, into: &o) } } }
                ctx.respond(.json(200, w.bytes))
            case .failure(let e):
                ctx.fail(e.status, e.code, e.message)
            }
        }
    }

    private func addDevice(_ ctx: RequestContext) {
        guard let notify else { return }
        guard let body = try? JSONValue.parse(ctx.request.body[...], maxBytes: ctx.request.body.count + 1, maxDepth: 8) else {
            return ctx.fail(400, "bad_json", "the body must be a JSON object")
        }
        switch DeviceRequest.parse(body) {
        case .failure(let e):
            ctx.fail(e.status, e.code, e.message)
        case .success(let request):
            notify.register(request, for: ctx.user) { result in
                switch result {
                case .success(let d):
                    var w = JSONWriter()
                    w.object { o in Self.deviceJSON(d, into: &o) }
                    ctx.respond(.json(201, w.bytes, headers: [("Location", "/v1/devices/\(d.id)")]))
                case .failure(let e):
                    ctx.fail(e.status, e.code, e.message)
                }
            }
        }
    }

    private func removeDevice(_ ctx: RequestContext) {
        notify?.removeDevice(ctx.params["id"] ?? "", of: ctx.user) { result in
            switch result {
            case .success: ctx.respond(.noContent)
            case .failure(let e): ctx.fail(e.status, e.code, e.message)
            }
        }
    }

    private func vapid(_ ctx: RequestContext) {
        guard let key = notify?.vapidKey else { return ctx.fail(404, "not_found", "Web Push is not set up") }
        ctx.respond(.json(200) { o in o.field("public_key", key.publicKeyBase64URL) })
    }
}
