import Broker
import JSON
import MQTT
import Reactor
import Store
import Synchronization

/// The chat plugin's settings (SPEC sections 2-3), from the configuration file.
public struct ChatSettings: Sendable {
    /// Largest post body, bytes (`max_message_body`).
    public var maxMessageBody = 16 * 1024
    /// Access token lifetime, seconds (`token_lifetime`).
    public var tokenLifetime: Int64 = 30 * 24 * 3600
    /// Posts per second and burst per user (`chat_post_rate = 20/100`).
    public var postRate = (perSecond: 20.0, burst: 100.0)
    public init() {}

    /// The keys this plugin reads from the configuration file.
    public static let keys: Set<String> = ["max_message_body", "token_lifetime", "chat_post_rate"]

    public init(_ settings: PluginSettings) throws(ConfigError) {
        self.init()
        if let v = settings["max_message_body"] {
            guard let n = ConfigValue.size(v.text), (1...(1 << 20)).contains(n) else {
                throw ConfigError(file: v.file, line: v.line, reason: "max_message_body must be a size from 1 to 1M, not '\(v.text)'")
            }
            maxMessageBody = n
        }
        if let v = settings["chat_post_rate"] {
            let parts = v.text.split(separator: "/").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(parts.count), let rate = parts[0], rate > 0, rate <= 1_000_000,
                  parts.count == 1 || (parts[1].map { $0 >= 1 && $0 <= 1_000_000 } ?? false)
            else {
                throw ConfigError(file: v.file, line: v.line,
                                  reason: "chat_post_rate must be POSTS_PER_SECOND[/BURST] (e.g. 20/100), not '\(v.text)'")
            }
            postRate = (rate, parts.count == 2 ? parts[1]! : max(1, rate * 5))
        }
        if let v = settings["token_lifetime"] {
            guard let s = ConfigValue.seconds(v.text), s > 0, s != UInt32.max else {
                throw ConfigError(file: v.file, line: v.line, reason: "token_lifetime must be a duration (e.g. 30d, 12h), not '\(v.text)'")
            }
            tokenLifetime = Int64(s)
        }
    }
}

/// The chat plugin: users, login, rooms as topics, server-stamped ordered history,
/// receipts, typing and presence (SPEC sections 2-3), on the broker's plugin
/// protocol only. Its internal API (`ChatAdmin`) is what the command line and the
/// HTTP gateway use.
public final class ChatPlugin: BrokerPlugin, @unchecked Sendable {
    public let name = "chat"
    public var hooks: PluginHooks {
        [.authenticate, .authorizePublish, .authorizeSubscribe, .decidePublish, .authorizeDelivery, .storage,
         .sessionEvents, .tick]
    }
    private let currentSettings: Mutex<ChatSettings>
    /// The settings in force (SIGHUP may replace them).
    var settings: ChatSettings { currentSettings.withLock { $0 } }
    let directory = ChatDirectory()
    let sequences = RoomSequences()
    /// The inbox sequences, keyed by the recipient's canonical name.
    let inboxes = RoomSequences()
    let limiter = LoginLimiter()
    let presence = PresenceCounter()
    let unread = UnreadCounts()
    let postLimit: PostRateLimit
    /// Typing and receipts: a quarter of the post budget, shed first.
    let signalLimit: PostRateLimit
    private(set) var services: BrokerServices!
    /// The last chat_changes row applied.
    let lastChangeSeen = Atomic<Int64>(0)
    let polling = Atomic<Bool>(false)
    /// Posts stored since the start (metrics).
    let postsStored = Atomic<Int>(0)
    /// Answers for REST posts, left by `post` for `ChatRequests.post`, by message.
    let restReplies = Mutex<[ObjectIdentifier: RESTReply]>([:])

    public init(settings: ChatSettings = ChatSettings()) {
        currentSettings = Mutex(settings)
        postLimit = PostRateLimit(Self.postRate(settings))
        signalLimit = PostRateLimit(Self.signalRate(settings))
    }

    static func postRate(_ s: ChatSettings) -> PostRateLimit.Rate {
        .init(perSecond: s.postRate.perSecond, burst: s.postRate.burst)
    }

    static func signalRate(_ s: ChatSettings) -> PostRateLimit.Rate {
        .init(perSecond: max(1, s.postRate.perSecond / 4), burst: max(1, s.postRate.burst / 4))
    }

    /// SIGHUP: new limits and lifetimes apply from now on; bad values keep the old ones.
    public func reload(_ settings: PluginSettings) {
        do {
            let new = try ChatSettings(settings)
            currentSettings.withLock { $0 = new }
            postLimit.setRate(Self.postRate(new))
            signalLimit.setRate(Self.signalRate(new))
            Log.info("chat.reloaded", ["max_message_body": new.maxMessageBody, "chat_post_rate": "\(new.postRate.perSecond)/\(new.postRate.burst)"])
        } catch {
            Log.error("chat.reload_failed", ["error": error])
        }
    }

    public func start(_ services: BrokerServices) throws {
        self.services = services
        let storage = services.storage
        try storage.migrate(ChatSchema.name, ChatSchema.migrations)
        let now = Timestamp.now()
        let (rooms, inboxIDs) = try storage.load { db -> ([String: RoomSequence], [String: RoomSequence]) in
            try directory.load(from: db, now: now)
            try unread.load(db)
            lastChangeSeen.store(try db.scalarInt("SELECT max(id) FROM chat_changes") ?? 0, ordering: .relaxed)
            var inboxes: [String: RoomSequence] = [:]
            let q = try db.prepare("SELECT user, max(id) FROM chat_inbox GROUP BY user")
            while try q.step() { inboxes[q.text(0) ?? ""] = RoomSequence(lastID: q.int(1)) }
            return (try Self.loadSequences(db, now: now), inboxes)
        }
        sequences.prepare(loops: services.loopCount, loaded: rooms)
        inboxes.prepare(loops: services.loopCount, loaded: inboxIDs)
        try clearStalePresence(storage, now: now)
    }

    /// Last ids and recent client keys of every room.
    static func loadSequences(_ db: SQLiteDatabase, now: Int64) throws -> [String: RoomSequence] {
        var rooms: [String: RoomSequence] = [:]
        let last = try db.prepare("SELECT room, max(id) FROM chat_messages GROUP BY room")
        while try last.step() { rooms[last.text(0) ?? ""] = RoomSequence(lastID: last.int(1)) }
        let keys = try db.prepare("SELECT room, sender_key, ckey, id, ts FROM chat_messages WHERE ckey IS NOT NULL AND ts > ?")
        keys.bind(1, now - RoomSequence.clientKeyLifetime)
        while try keys.step() {
            let key = (keys.text(1) ?? "") + "\u{0}" + (keys.text(2) ?? "")
            rooms[keys.text(0) ?? ""]?.clientKeys[key] = (keys.int(3), keys.int(4))
        }
        return rooms
    }

    // MARK: Authentication

    public func authenticate(_ request: ConnectRequest, completion: @escaping @Sendable (AuthDecision) -> Void) {
        guard let name = request.username else {
            completion(.abstain)  // allow_anonymous decides (plain topics only)
            return
        }
        let canonical = Credentials.canonicalName(name)
        let address = request.peer.map { $0.host }
        if case .lockedOut(let seconds) = limiter.beginAttempt(user: canonical, address: address, now: Self.clock()) {
            Log.info("chat.login_locked", ["user": name, "retry_after": seconds])
            completion(.deny(.connectionRateExceeded))
            return
        }
        let password = request.password ?? []
        let user = directory.user(name)
        if let user, AccessToken.isWellFormed(password) {
            // The token path: one SHA-256, no password hashing.
            let hash = AccessToken.hash(password)
            if directory.tokenUser(hash, now: Timestamp.now()) == user.name {
                return finishLogin(true, user: user, canonical: canonical, address: address, completion)
            }
            // Perhaps one made by `parley user token` a moment ago: the database says,
            // and its change is applied before the answer.
            services.storage.read { [self] db in
                let stored = (try? db.prepare("SELECT 1 FROM chat_tokens WHERE hash = ? AND user = ? AND expires_at > ?")
                    .bind(1, bytes: hash).bind(2, canonical).bind(3, Timestamp.now()).step()) ?? false
                if stored { applyChanges(db) }
                finishLogin(stored, user: user, canonical: canonical, address: address, completion)
            }
            return
        }
        let accepted = services.runBounded { [self] in
            // An unknown user costs the same hashing as a known one.
            let ok = user.map { PasswordHash.verify(password: password, against: $0.password) }
                ?? PasswordHash.verifyUnknownUser(password: password)
            finishLogin(ok, user: user, canonical: canonical, address: address, completion)
        }
        if !accepted {
            limiter.cancelAttempt(user: canonical)
            completion(.deny(.serverBusy))
        }
    }

    private func finishLogin(_ ok: Bool, user: ChatUser?, canonical: String, address: String?,
                             _ completion: @Sendable (AuthDecision) -> Void)
    {
        if ok, let user {
            limiter.recordSuccess(user: canonical)
            completion(.allow(username: user.name))
            return
        }
        for lockout in limiter.recordFailure(user: canonical, address: address, now: Self.clock()) {
            Log.warning("chat.lockout", ["subject": "\(lockout.subject)", "seconds": lockout.seconds])
        }
        completion(.deny(.badUserNameOrPassword))
    }

    /// Milliseconds for the login limiter.
    static func clock() -> UInt64 { UInt64(Timestamp.now()) }

    // MARK: Publishing

    public func decidePublish(_ message: Message, from client: ClientInfo,
                              completion: @escaping @Sendable (PublishVerdict) -> Void)
    {
        let topic = ChatTopic(message.topic)
        if let limit = rateLimit(for: topic), let user = client.username,
           !limit.take(Credentials.canonicalName(user), now: Self.clock())
        {
            Log.info("chat.rate_limited", ["user": user, "topic": message.topic])
            // 0x96 (message rate too high) exists only for DISCONNECT; a PUBACK says 0x97.
            completion(.refuse(.quotaExceeded))
            return
        }
        switch topic {
        case .roomMessages(let room): post(message, room: room, from: client, completion)
        case .roomTyping(let room): typing(room: room, from: client, completion)
        case .roomReceipts(let room): receipt(message, room: room, from: client, completion)
        case .roomHistory(let room): history(message, room: room, from: client, completion)
        case .inbox(let owner): directMessage(message, to: owner, from: client, completion)
        default: completion(.accept)
        }
    }

    private func rateLimit(for topic: ChatTopic) -> PostRateLimit? {
        switch topic {
        case .roomMessages, .inbox, .roomHistory: return postLimit
        case .roomTyping, .roomReceipts: return signalLimit
        default: return nil
        }
    }

    // MARK: Presence and background work

    public func sessionOnline(_ client: ClientInfo) {
        guard let user = client.username, directory.user(user) != nil else { return }
        presenceChanged(user, online: true)
    }

    public func sessionOffline(_ client: ClientInfo) {
        guard let user = client.username, directory.user(user) != nil else { return }
        presenceChanged(user, online: false)
    }

    /// Figures for a metrics endpoint: posts stored since the start, users online.
    public var figures: (postsStored: Int, usersOnline: Int) {
        (postsStored.load(ordering: .relaxed), presence.usersOnline.load(ordering: .relaxed))
    }

    public func tick(now: UInt64) {
        pollChanges()
        publishUnread()
    }
}
