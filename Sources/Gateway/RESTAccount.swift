import Chat
import JSON

// Sign-up, tokens and the signed-in user's own record (SPEC section 4).
extension GatewayPlugin {
    func signUp(_ ctx: RequestContext) {
        guard withinAuthBudget(ctx), let chat, let body = ctx.read(SignUpBody.parse(ctx.request.body)) else { return }
        let (username, password, email) = (body.username, body.password, body.email)
        chat.signUp(username: username, password: password, email: email) { [unowned self] result in
            switch result {
            case .success(let profile):
                ctx.respond(.json(201, headers: [("Location", "/v1/me")]) { o in
                    o.field("username", profile.username)
                    if let email = profile.email { o.field("email", email) } else { o.nullField("email") }
                })
            case .failure(let error):
                fail(ctx, error)
            }
        }
    }

    func issueToken(_ ctx: RequestContext) {
        guard withinAuthBudget(ctx), let chat, let body = ctx.read(TokenBody.parse(ctx.request.body)) else { return }
        let (username, password) = (body.username, body.password)
        chat.issueToken(username: username, password: password, address: ctx.peer?.host) { [unowned self] result in
            switch result {
            case .success(let (token, expiresAt)):
                ctx.respond(.json(201) { o in
                    o.field("token", token)
                    o.field("expires_at", ChatPlugin.isoTime(expiresAt))
                })
            case .failure(let error):
                fail(ctx, error)
            }
        }
    }

    func revokeToken(_ ctx: RequestContext) {
        chat?.revokeToken(ctx.token, user: ctx.user) { [unowned self] result in
            switch result {
            case .success: ctx.respond(.noContent)
            case .failure(let error): fail(ctx, error)
            }
        }
    }

    func me(_ ctx: RequestContext) {
        guard let profile = chat?.profile(ctx.user) else { return ctx.fail(401, "unauthorized", "the user is gone") }
        ctx.respond(.json(200, Self.profileJSON(profile)))
    }

    func updateMe(_ ctx: RequestContext) {
        guard let chat, let body = ctx.read(ProfilePatchBody.parse(ctx.request.body)) else { return }
        let (email, password, notify) = (body.email, body.password, body.notify)
        chat.updateProfile(ctx.user, email: email, password: password, notify: notify) { [unowned self] result in
            switch result {
            case .success(let profile): ctx.respond(.json(200, Self.profileJSON(profile)))
            case .failure(let error): fail(ctx, error)
            }
        }
    }

    func deleteMe(_ ctx: RequestContext) {
        chat?.deleteUser(ctx.user) { [unowned self] result in
            switch result {
            case .success:
                // Their devices and pending notifications go too.
                guard let notify else { return ctx.respond(.noContent) }
                notify.forgetUser(ctx.user) { ctx.respond(.noContent) }
            case .failure(let error): fail(ctx, error)
            }
        }
    }
}
