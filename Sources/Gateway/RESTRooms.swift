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
        guard let chat, let body = ctx.read(NewRoomBody.parse(ctx.request.body)) else { return }
        let (name, title) = (body.name, body.title)
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
        guard let chat, let body = ctx.read(NewMemberBody.parse(ctx.request.body)) else { return }
        let member = body.username
        let room = ctx.params["room"] ?? ""
        chat.addMember(member, to: room, by: ctx.user) { [unowned self] result in
            switch result {
            case .success(let registered):
                ctx.respond(.json(201) { o in
                    o.field("room", room)
                    o.field("username", registered)
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
        guard let chat, let query = ctx.read(HistoryParams.parse(query: ctx.request.query)) else { return }
        let (before, after, limit) = (query.before, query.after, query.limit)
        chat.history(ctx.params["room"] ?? "", for: ctx.user, before: before, after: after, limit: limit) { [unowned self] result in
            switch result {
            case .success(let page): ctx.respond(.json(200, page))
            case .failure(let error): fail(ctx, error)
            }
        }
    }

    func post(_ ctx: RequestContext) {
        guard let chat, let body = ctx.read(NewPostBody.parse(ctx.request.body)) else { return }
        let (text, ckey) = (body.body, body.ckey)
        chat.post(text, ckey: ckey, to: ctx.params["room"] ?? "", as: ctx.user, address: ctx.peer) { [unowned self] result in
            switch result {
            case .success(let (envelope, created)): ctx.respond(.json(created ? 201 : 200, envelope))
            case .failure(let error): fail(ctx, error)
            }
        }
    }
}
