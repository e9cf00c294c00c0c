import Chat
import JSON

// Rooms, members, history and posts (SPEC section 4): the same rooms and the same
// posts as over MQTT.
extension GatewayPlugin {
    func rooms(_ ctx: RequestContext) {
        chat?.rooms(of: ctx.user) { [unowned self] result in
            switch result {
            case .success(let rooms):
                var w = JSONWriter()
                w.array { a in for r in rooms { a.object { o in Self.roomJSON(r, into: &o, list: true) } } }
                ctx.respond(.json(200, w.bytes))
            case .failure(let error):
                fail(ctx, error)
            }
        }
    }

    func createRoom(_ ctx: RequestContext) {
        guard let chat, let body = ctx.jsonObject() else { return }
        var ok = true
        let name = ctx.string(body, "name", ok: &ok)
        let title = ctx.string(body, "title", ok: &ok)
        guard ok else { return }
        guard let name else { return ctx.fail(400, "invalid_room", "name is required") }
        if let title, title.utf8.count > 200 { return ctx.fail(400, "invalid_room", "title is at most 200 bytes") }
        chat.createRoom(name, title: title, owner: ctx.user) { [unowned self] result in
            answerRoom(ctx, result, status: 201)
        }
    }

    func room(_ ctx: RequestContext) {
        chat?.room(ctx.params["room"] ?? "", for: ctx.user) { [unowned self] result in answerRoom(ctx, result, status: 200) }
    }

    private func answerRoom(_ ctx: RequestContext, _ result: ChatResult<ChatRoomView>, status: Int) {
        switch result {
        case .success(let room):
            var w = JSONWriter()
            w.object { o in Self.roomJSON(room, into: &o, list: false) }
            ctx.respond(.json(status, w.bytes))
        case .failure(let error):
            fail(ctx, error)
        }
    }

    func addMember(_ ctx: RequestContext) {
        guard let chat, let body = ctx.jsonObject() else { return }
        var ok = true
        let member = ctx.string(body, "username", ok: &ok)
        guard ok else { return }
        guard let member else { return ctx.fail(400, "invalid_username", "username is required") }
        let room = ctx.params["room"] ?? ""
        chat.addMember(member, to: room, by: ctx.user) { [unowned self] result in
            switch result {
            case .success:
                ctx.respond(.json(201) { o in
                    o.field("room", room)
                    o.field("username", member)
                })
            case .failure(let error):
                fail(ctx, error)
            }
        }
    }

    func removeMember(_ ctx: RequestContext) {
        chat?.removeMember(ctx.params["user"] ?? "", from: ctx.params["room"] ?? "", by: ctx.user) { [unowned self] result in
            switch result {
            case .success: ctx.respond(.noContent)
            case .failure(let error): fail(ctx, error)
            }
        }
    }

    func history(_ ctx: RequestContext) {
        guard let chat else { return }
        guard let query = Router.queryItems(ctx.request.query) else {
            return ctx.fail(400, "bad_request", "the query string is malformed")
        }
        func id(_ key: String) -> Int64?? {
            guard let text = query[key] else { return .some(nil) }
            guard let n = Int64(text), n >= 0 else { return nil }
            return .some(n)
        }
        guard let before = id("before"), let after = id("after") else {
            return ctx.fail(400, "bad_request", "before and after are message ids (integers, 0 or more)")
        }
        var limit = 50
        if let text = query["limit"] {
            guard let n = Int(text), (1...500).contains(n) else {
                return ctx.fail(400, "bad_request", "limit is an integer from 1 to 500")
            }
            limit = n
        }
        chat.history(ctx.params["room"] ?? "", for: ctx.user, before: before, after: after, limit: limit) { [unowned self] result in
            switch result {
            case .success(let page): ctx.respond(.json(200, page))
            case .failure(let error): fail(ctx, error)
            }
        }
    }

    func post(_ ctx: RequestContext) {
        guard let chat, let body = ctx.jsonObject() else { return }
        var ok = true
        let text = ctx.string(body, "body", ok: &ok)
        let ckey = ctx.string(body, "ckey", ok: &ok)
        guard ok else { return }
        guard let text else { return ctx.fail(400, "invalid_body", "body is required") }
        if let ckey, !(1...64).contains(ckey.count) { return ctx.fail(400, "invalid_body", "ckey is 1 to 64 characters") }
        chat.post(text, ckey: ckey, to: ctx.params["room"] ?? "", as: ctx.user, address: ctx.peer) { [unowned self] result in
            switch result {
            case .success(let (envelope, created)): ctx.respond(.json(created ? 201 : 200, envelope))
            case .failure(let error): fail(ctx, error)
            }
        }
    }
}
