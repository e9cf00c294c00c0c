import Broker
import JSON
import MQTT
import Reactor
import Store
import Synchronization

/// Why a request was refused: the SPEC's error code, one line for people, and
/// for rate limits the seconds to wait.
public struct ChatRequestError: Error, Sendable {
    public let code: String
    public let message: String
    public let retryAfter: Int?

    init(_ code: String, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    init(_ admin: ChatAdminError) { self.init(admin.code, admin.description) }
}

public typealias ChatResult<T> = Result<T, ChatRequestError>

/// A user as `GET /v1/me` shows them.
public struct ChatProfile: Sendable {
    public let username: String
    public let email: String?
    /// The notification preferences, JSON (SPEC section 5), defaults filled in.
    public let notify: JSONValue
}

/// A room as the room list and `GET /v1/rooms/<room>` show it.
public struct ChatRoomView: Sendable {
    public let name: String
    public let title: String?
    public let owner: String
    public let lastID: Int64
    public let unread: Int
    /// Display names, in the detail view only.
    public let members: [String]?
}

/// What the HTTP gateway asks of the chat plugin: the same users, rooms and posts
/// as over MQTT, as request/answer operations. Completions run on any thread.
/// Changes are made on the store's thread (in order with everything else it writes)
/// and applied to the running broker before the answer, so the next request sees
/// them; password hashing runs on the bounded worker pool, never on a loop.
extension ChatPlugin {
    /// Wall milliseconds as the envelopes write times (`2026-12-01T20:15:00.123Z`).
    public static func isoTime(_ millis: Int64) -> String { Timestamp.iso(millis) }

    public static let defaultNotify: JSONValue = .object([("email", "mentions"), ("push", "all"), ("digest_minutes", 10)])

    // MARK: Users and tokens

    public func signUp(username: String, password: String, email: String?,
                       completion: @escaping @Sendable (ChatResult<ChatProfile>) -> Void)
    {
        do {
            try ChatAdmin.validateNewUser(username, password: password, email: email)
        } catch let error as ChatAdminError {
            return completion(.failure(ChatRequestError(error)))
        } catch {
            return completion(.failure(ChatRequestError("invalid_username", "\(error)")))
        }
        if directory.user(username) != nil {
            return completion(.failure(ChatRequestError("username_taken", "user \(username) exists already")))
        }
        hashing(password, completion) { [self] hash in
            change(completion) { admin in
                try admin.addUser(username, passwordHash: hash, email: email)
                return ChatProfile(username: username, email: email, notify: Self.defaultNotify)
            }
        }
    }

    /// A token for a user name and password: the same lock-outs as MQTT logins.
    public func issueToken(username: String, password: String, address: String?,
                           completion: @escaping @Sendable (ChatResult<(token: String, expiresAt: Int64)>) -> Void)
    {
        let canonical = Credentials.canonicalName(username)
        if case .lockedOut(let seconds) = limiter.beginAttempt(user: canonical, address: address, now: Self.clock()) {
            return completion(.failure(ChatRequestError("rate_limited", "too many failed logins; try again later",
                                                        retryAfter: Int(seconds))))
        }
        let user = directory.user(username)
        let lifetime = settings.tokenLifetime
        let accepted = services.runBounded { [self] in
            let ok = user.map { PasswordHash.verify(password: Array(password.utf8), against: $0.password) }
                ?? PasswordHash.verifyUnknownUser(password: Array(password.utf8))
            guard ok, let user else {
                for lockout in limiter.recordFailure(user: canonical, address: address, now: Self.clock()) {
                    Log.warning("chat.lockout", ["subject": "\(lockout.subject)", "seconds": lockout.seconds])
                }
                return completion(.failure(ChatRequestError("invalid_credentials", "wrong user name or password")))
            }
            limiter.recordSuccess(user: canonical)
            let (token, hash) = AccessToken.make()
            let expiresAt = Timestamp.now() + lifetime * 1000
            change(completion) { admin in
                try admin.storeToken(hash, user: user.name, expiresAt: expiresAt)
                return (token, expiresAt)
            }
        }
        if !accepted {
            limiter.cancelAttempt(user: canonical)
            completion(.failure(ChatRequestError("server_busy", "too many logins at once; try again", retryAfter: 1)))
        }
    }

    /// The user a bearer token stands for (display name), if it is valid now.
    public func bearerUser(_ token: String) -> String? {
        guard AccessToken.isWellFormed(token) else { return nil }
        return directory.tokenUser(AccessToken.hash(token), now: Timestamp.now())
    }

    public func revokeToken(_ token: String, user: String, completion: @escaping @Sendable (ChatResult<Void>) -> Void) {
        let hash = AccessToken.hash(token)
        change(completion) { admin in try admin.dropToken(hash, user: user) }
    }

    public func profile(_ user: String) -> ChatProfile? {
        guard let u = directory.user(user) else { return nil }
        let notify = u.notify.flatMap { try? JSONValue.parse(Array($0.utf8)[...], maxBytes: 4096, maxDepth: 4) }
        return ChatProfile(username: u.name, email: u.email, notify: notify ?? Self.defaultNotify)
    }

    /// PATCH /v1/me: `email` (`.some(nil)` removes it), `password` (revokes every
    /// token), `notify` (validated preferences, merged over the current ones).
    public func updateProfile(_ user: String, email: String??, password: String?, notify: JSONValue?,
                              completion: @escaping @Sendable (ChatResult<ChatProfile>) -> Void)
    {
        if let address = email ?? nil {
            do { try Credentials.validateEmail(address) } catch {
                return completion(.failure(ChatRequestError(error.code, error.description)))
            }
        }
        let notifyText: String?
        if let notify {
            guard let merged = Self.mergedNotify(profile(user)?.notify ?? Self.defaultNotify, notify) else {
                return completion(.failure(ChatRequestError("invalid_notify",
                    #"notify is {"email": "all"|"mentions"|"off", "push": "all"|"mentions"|"off", "digest_minutes": 0-1440}"#)))
            }
            var w = JSONWriter()
            w.value(merged)
            notifyText = String(decoding: w.bytes, as: UTF8.self)
        } else {
            notifyText = nil
        }
        let apply: @Sendable (String?) -> Void = { [self] hash in
            change({ [self] (result: ChatResult<Void>) in
                completion(result.flatMap {
                    profile(user).map { .success($0) } ?? .failure(ChatRequestError("internal", "the user is gone"))
                })
            }) { admin in
                try admin.setProfile(user, email: email, notify: notifyText)
                if let hash { try admin.setPassword(user, hash: hash) }
            }
        }
        guard let password else { return apply(nil) }
        do { try Credentials.validatePassword(password) } catch {
            return completion(.failure(ChatRequestError(error.code, error.description)))
        }
        hashing(password, completion) { hash in apply(hash) }
    }

    /// Preferences with the given keys replaced; nil when a key or value is not allowed.
    static func mergedNotify(_ current: JSONValue, _ patch: JSONValue) -> JSONValue? {
        guard let changes = patch.object else { return nil }
        var fields = current.object ?? []
        for (key, value) in changes {
            switch key {
            case "email", "push":
                guard let s = value.string, ["all", "mentions", "off"].contains(s) else { return nil }
            case "digest_minutes":
                guard let n = value.int64, (0...1440).contains(n) else { return nil }
            default:
                continue  // unknown fields are ignored
            }
            if let i = fields.firstIndex(where: { $0.0 == key }) { fields[i].1 = value } else { fields.append((key, value)) }
        }
        return .object(fields)
    }

    public func deleteUser(_ user: String, completion: @escaping @Sendable (ChatResult<Void>) -> Void) {
        change(completion) { admin in try admin.deleteUser(user) }
    }

    // MARK: Rooms

    /// The rooms `user` is a member of, with last ids and unread counts.
    public func rooms(of user: String, completion: @escaping @Sendable (ChatResult<[ChatRoomView]>) -> Void) {
        let canonical = Credentials.canonicalName(user)
        services.storage.read { db in
            completion(Result {
                let q = try db.prepare("""
                    SELECT r.name, r.title, coalesce(u.display, r.owner),
                           (SELECT coalesce(max(id), 0) FROM chat_messages WHERE room = r.name),
                           (SELECT count(*) FROM chat_messages c WHERE c.room = r.name AND c.id > m.read_up_to
                                AND c.sender_key != m.user)
                    FROM chat_members m JOIN chat_rooms r ON r.name = m.room LEFT JOIN chat_users u ON u.name = r.owner
                    WHERE m.user = ? ORDER BY r.name
                    """)
                q.bind(1, canonical)
                var out: [ChatRoomView] = []
                while try q.step() {
                    out.append(ChatRoomView(name: q.text(0) ?? "", title: q.text(1), owner: q.text(2) ?? "",
                                            lastID: q.int(3), unread: Int(q.int(4)), members: nil))
                }
                return out
            }.mapError { ChatRequestError("internal", "\($0)") })
        }
    }

    public func createRoom(_ room: String, title: String?, owner: String,
                           completion: @escaping @Sendable (ChatResult<ChatRoomView>) -> Void)
    {
        change(completion) { admin in
            try admin.createRoom(room, owner: owner, title: title)
            return try Self.roomView(room, db: admin.db)
        }
    }

    /// A room with its members, for one of them.
    public func room(_ room: String, for user: String, completion: @escaping @Sendable (ChatResult<ChatRoomView>) -> Void) {
        guard let found = roomAccess(room, for: user, completion) else { return }
        _ = found
        services.storage.read { db in
            completion(Result { try Self.roomView(room, db: db) }.mapError { ChatRequestError("internal", "\($0)") })
        }
    }

    /// Adds a member; the answer is the member's name as registered.
    public func addMember(_ member: String, to room: String, by user: String,
                          completion: @escaping @Sendable (ChatResult<String>) -> Void)
    {
        guard let found = roomAccess(room, for: user, completion, ownerOnly: true) else { return }
        _ = found
        guard let registered = directory.user(member)?.name else {
            return completion(.failure(ChatRequestError("user_not_found", "no user \(member)")))
        }
        change(completion) { admin in
            try admin.addMember(room, member)
            return registered
        }
    }

    /// The owner removes a member, or a member leaves.
    public func removeMember(_ member: String, from room: String, by user: String,
                             completion: @escaping @Sendable (ChatResult<Void>) -> Void)
    {
        let leaving = Credentials.canonicalName(member) == Credentials.canonicalName(user)
        guard let found = roomAccess(room, for: user, completion, ownerOnly: !leaving) else { return }
        if leaving && found.owner == Credentials.canonicalName(user) {
            // A room without its owner could never get members again.
            return completion(.failure(ChatRequestError("owner_cannot_leave",
                "the owner stays in the room (`parley room delete` removes it)")))
        }
        if !directory.isMember(member, of: room) {
            return completion(.failure(ChatRequestError("not_a_member", "\(member) is not a member of \(room)")))
        }
        change(completion) { admin in try admin.removeMember(room, member, leaving: leaving) }
    }

    /// A page of history (SPEC 3), `{"messages": [...], "has_more": bool}` as JSON bytes.
    public func history(_ room: String, for user: String, before: Int64?, after: Int64?, limit: Int,
                        completion: @escaping @Sendable (ChatResult<[UInt8]>) -> Void)
    {
        guard roomAccess(room, for: user, completion) != nil else { return }
        let query = HistoryQuery(before: before, after: after, limit: limit)
        services.storage.read { db in completion(.success(query.answer(room: room, db: db))) }
    }

    /// A post made over REST: the same pipeline as an MQTT PUBLISH from the user (ACL,
    /// rate limit, stamping, storing, routing); the answer is the envelope, and
    /// `created` is false for a repeated `ckey` (then the original's envelope).
    public func post(_ body: String, ckey: String?, to room: String, as user: String, address: SocketAddress?,
                     completion: @escaping @Sendable (ChatResult<(envelope: [UInt8], created: Bool)>) -> Void)
    {
        guard roomAccess(room, for: user, completion) != nil else { return }
        var w = JSONWriter()
        w.object { o in
            o.field("body", body)
            if let ckey { o.field("ckey", ckey) }
        }
        let clientID = "rest/" + Credentials.canonicalName(user)
        let message = Message(topic: ByteString(ChatTopic.messages(room)), payload: w.bytes, qos: .atLeastOnce,
                              retain: false, origin: clientID, receivedAt: 0)
        let info = ClientInfo(clientID: clientID, username: user, peer: address, protocolVersion: .v5, tlsIdentity: nil,
                              isInternal: false, listener: Self.restListener, transport: "http")
        services.publish(message, as: info) { [self] code in
            let reply = restReplies.withLock { $0.removeValue(forKey: ObjectIdentifier(message)) }
            switch (code, reply) {
            case (.success, .created(let envelope)?), (.noMatchingSubscribers, .created(let envelope)?):
                completion(.success((envelope, true)))
            case (.success, .repeated(let id)?), (.noMatchingSubscribers, .repeated(let id)?):
                services.storage.read { db in
                    let page = HistoryQuery(before: id + 1, after: id - 1, limit: 1).rows(room: room, db: db).rows
                    guard let r = page.first else {
                        return completion(.failure(ChatRequestError("internal", "the original post is gone")))
                    }
                    completion(.success((Envelope.post(id: r.id, room: room, from: r.sender, ts: r.ts, body: r.body,
                                                       ckey: r.ckey), false)))
                }
            case (.payloadFormatInvalid, _):
                completion(.failure(ChatRequestError("invalid_body", "body must be 1 to \(settings.maxMessageBody) bytes of UTF-8; ckey at most 64 characters")))
            case (.quotaExceeded, _):
                let wait = max(1, Int((1 / max(settings.postRate.perSecond, 0.0001)).rounded(.up)))
                completion(.failure(ChatRequestError("rate_limited", "too many posts; slow down", retryAfter: wait)))
            case (.notAuthorized, _):
                completion(.failure(ChatRequestError("not_a_member", "not a member of \(room)")))
            default:
                completion(.failure(ChatRequestError("internal", "the post was not stored (\(code))")))
            }
        }
    }

    /// `ClientInfo.listener` of the clients this plugin makes for REST posts.
    static let restListener = "rest"

    /// What `post` left for a REST post's answer, by its message.
    enum RESTReply: Sendable {
        case created([UInt8])
        case repeated(Int64)
    }

    // MARK: Helpers

    /// The room when it exists and `user` is a member (or its owner, with
    /// `ownerOnly`); otherwise answers the completion and returns nil.
    private func roomAccess<T>(_ room: String, for user: String, _ completion: (ChatResult<T>) -> Void,
                               ownerOnly: Bool = false) -> ChatRoom?
    {
        guard let found = directory.room(room) else {
            completion(.failure(ChatRequestError("room_not_found", "no room \(room)")))
            return nil
        }
        let canonical = Credentials.canonicalName(user)
        guard found.members.contains(canonical) else {
            completion(.failure(ChatRequestError("not_a_member", "not a member of \(room)")))
            return nil
        }
        if ownerOnly && found.owner != canonical {
            completion(.failure(ChatRequestError("not_owner", "only the owner of \(room) may do that")))
            return nil
        }
        return found
    }

    static func roomView(_ room: String, db: SQLiteDatabase) throws -> ChatRoomView {
        let q = try db.prepare("""
            SELECT r.name, r.title, coalesce(u.display, r.owner),
                   (SELECT coalesce(max(id), 0) FROM chat_messages WHERE room = r.name)
            FROM chat_rooms r LEFT JOIN chat_users u ON u.name = r.owner WHERE r.name = ?
            """)
        q.bind(1, room)
        guard try q.step() else { throw ChatAdminError("room_not_found", "no room \(room)") }
        let members = try ChatAdmin(db).members(room)
        return ChatRoomView(name: q.text(0) ?? "", title: q.text(1), owner: q.text(2) ?? "", lastID: q.int(3),
                            unread: 0, members: members)
    }

    /// Hashes a password on the worker pool, then goes on there.
    private func hashing<T>(_ password: String, _ completion: @escaping @Sendable (ChatResult<T>) -> Void,
                            then next: @escaping @Sendable (String) -> Void)
    {
        let accepted = services.runBounded {
            next(PasswordHash.make(password: Array(password.utf8), parameters: ChatAdmin.scryptParameters))
        }
        if !accepted { completion(.failure(ChatRequestError("server_busy", "too many requests at once; try again", retryAfter: 1))) }
    }

    /// Runs an admin change in one transaction on the store's thread, applies it to
    /// the running broker, then answers.
    func change<T>(_ completion: @escaping @Sendable (ChatResult<T>) -> Void,
                   _ body: @escaping @Sendable (ChatAdmin) throws -> T)
    {
        services.storage.read { [self] db in
            let result: ChatResult<T>
            do {
                try db.exec("BEGIN IMMEDIATE")
                let value = try body(ChatAdmin(db))
                try db.exec("COMMIT")
                result = .success(value)
            } catch {
                try? db.exec("ROLLBACK")
                result = .failure((error as? ChatAdminError).map(ChatRequestError.init) ?? ChatRequestError("internal", "\(error)"))
            }
            applyChanges(db)
            completion(result)
        }
    }
}
