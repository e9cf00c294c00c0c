import Chat
import JSON

// Sign-up, tokens and the signed-in user's own record (SPEC section 4).
extension GatewayPlugin {
    func signUp(_ ctx: RequestContext) {
        guard withinAuthBudget(ctx), let chat, let body = ctx.jsonObject() else { return }
        var ok = true
        let username = ctx.string(body, "username", ok: &ok)
        let password = ctx.string(body, "password", ok: &ok)
        let email = ctx.string(body, "email", ok: &ok)
        guard ok else { return }
        guard let username else { return ctx.fail(400, "invalid_username", "username is required") }
        guard let password else { return ctx.fail(400, "invalid_password", "password is required") }
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
        guard withinAuthBudget(ctx), let chat, let body = ctx.jsonObject() else { return }
        var ok = true
        let username = ctx.string(body, "username", ok: &ok)
        let password = ctx.string(body, "password", ok: &ok)
        guard ok else { return }
        guard let username, let password else {
            return ctx.fail(401, "invalid_credentials", "username and password are required")
        }
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
        guard let chat, let body = ctx.jsonObject() else { return }
        var ok = true
        let password = ctx.string(body, "password", ok: &ok)
        var email: String?? = nil
        if let e = body["email"] {
            if e.isNull {
                email = .some(nil)
            } else if let s = e.string {
                email = .some(s)
            } else {
                return ctx.fail(400, "bad_json", "email must be a string or null")
            }
        }
        let notify = body["notify"]
        if let notify, notify.object == nil { return ctx.fail(400, "bad_json", "notify must be an object") }
        guard ok else { return }
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
            case .success: ctx.respond(.noContent)
            case .failure(let error): fail(ctx, error)
            }
        }
    }
}
