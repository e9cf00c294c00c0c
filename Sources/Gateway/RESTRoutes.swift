import Broker
import Chat
import JSON
import Reactor

// The route table (SPEC section 4) and the answers common to the REST routes.
extension GatewayPlugin {
    func registerRoutes() {
        router.authenticate = { [weak self] token in self?.chat?.bearerUser(token) }
        registerOperationalRoutes()
        guard chat != nil else { return }
        router.add("POST", "/v1/users") { [unowned self] in signUp($0) }
        router.add("POST", "/v1/tokens") { [unowned self] in issueToken($0) }
        router.add("DELETE", "/v1/tokens/current", authenticated: true) { [unowned self] in revokeToken($0) }
        router.add("GET", "/v1/me", authenticated: true) { [unowned self] in me($0) }
        router.add("PATCH", "/v1/me", authenticated: true) { [unowned self] in updateMe($0) }
        router.add("DELETE", "/v1/me", authenticated: true) { [unowned self] in deleteMe($0) }
        router.add("GET", "/v1/rooms", authenticated: true) { [unowned self] in rooms($0) }
        router.add("POST", "/v1/rooms", authenticated: true) { [unowned self] in createRoom($0) }
        router.add("GET", "/v1/rooms/{room}", authenticated: true) { [unowned self] in room($0) }
        router.add("POST", "/v1/rooms/{room}/members", authenticated: true) { [unowned self] in addMember($0) }
        router.add("DELETE", "/v1/rooms/{room}/members/{user}", authenticated: true) { [unowned self] in removeMember($0) }
        router.add("GET", "/v1/rooms/{room}/messages", authenticated: true) { [unowned self] in history($0) }
        router.add("POST", "/v1/rooms/{room}/messages", authenticated: true) { [unowned self] in post($0) }
        registerDeviceRoutes()
    }

    /// The status of a refusal, by its code.
    static func status(of code: String) -> Int {
        switch code {
        case "invalid_credentials": return 401
        case "not_a_member", "not_owner": return 403
        case "room_not_found", "user_not_found", "not_found", "device_not_found": return 404
        case "username_taken", "room_exists", "already_member", "owner_cannot_leave": return 409
        case "rate_limited": return 429
        case "server_busy": return 503
        case "internal": return 500
        default: return 400
        }
    }

    /// Answers a chat request's failure.
    func fail(_ ctx: RequestContext, _ error: ChatRequestError) {
        let status = Self.status(of: error.code)
        if status == 500 { Log.error("gateway.request_failed", ["route": ctx.request.path, "error": error.message]) }
        ctx.fail(status, error.code, error.message, headers: error.retryAfter.map { [("Retry-After", String($0))] } ?? [])
    }

    /// The per-source budget of sign-up and token requests; answers 429 when spent.
    func withinAuthBudget(_ ctx: RequestContext) -> Bool {
        let source = ctx.peer?.host ?? "-"
        if authLimit.take(source, now: EventLoop.monotonicMilliseconds()) { return true }
        // The seconds until the bucket holds a request again.
        let wait = Int((1 / max(settings.authRate.perSecond, 0.0001)).rounded(.up))
        ctx.fail(429, "rate_limited", "too many sign-up or login requests from \(source); try again in \(wait) s",
                 headers: [("Retry-After", String(max(1, wait)))])
        return false
    }

    // MARK: JSON forms

    static func profileJSON(_ p: ChatProfile) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.field("username", p.username)
            if let email = p.email { o.field("email", email) } else { o.nullField("email") }
            o.field("notify", p.notify)
        }
        return w.bytes
    }

    static func roomJSON(_ r: ChatRoomView, into o: inout JSONObjectWriter, list: Bool) {
        o.field("name", r.name)
        if let title = r.title { o.field("title", title) } else { o.nullField("title") }
        o.field("owner", r.owner)
        o.field("last_id", r.lastID)
        if list { o.field("unread", r.unread) }
        if let members = r.members { o.array("members") { a in for m in members { a.element(m) } } }
    }
}
