import Broker
import Chat
import Foundation
import Reactor
import Store
import Synchronization

/// The notification bridge plugin (SPEC section 5). It reads the chat plugin's
/// posts as they are committed: each member who may not see one gets a
/// `notify_unseen` row in the post's own commit, settled after the grace (a
/// delivery to one of their sessions or a read receipt cancels it); what is left
/// becomes outbox rows, delivered by e-mail digests, webhooks, ntfy and Web Push
/// on delivery threads, with retries, dead letters and metrics.
public final class NotifyPlugin: BrokerPlugin, @unchecked Sendable {
    public let name = Notify.pluginName
    public var hooks: PluginHooks { chat == nil ? [.storage] : [.storage, .sessionEvents, .markedDeliveries, .companionWrites] }
    private let currentSettings: Mutex<NotifySettings>
    public var settings: NotifySettings { currentSettings.withLock { $0 } }
    private(set) var services: BrokerServices!
    let chat: ChatPlugin?
    /// The VAPID key pair (RFC 8292), made once.
    public private(set) var vapidKey: P256Key!
    let watch = UnseenWatch()
    let devicesByUser = Mutex<[String: Int]>([:])
    let counters = NotifyCounters()
    private var dispatcher: OutboxDispatcher?

    public init(settings: NotifySettings = NotifySettings(), chat: ChatPlugin? = nil) {
        currentSettings = Mutex(settings)
        self.chat = chat
    }

    public func start(_ services: BrokerServices) throws {
        self.services = services
        try services.storage.migrate(NotifySchema.name, NotifySchema.migrations)
        vapidKey = try services.storage.load { db in try Self.loadOrMakeVAPIDKey(db) }
        let counts = try services.storage.load { db in try Self.deviceCounts(db) }
        devicesByUser.withLock { $0 = counts }
        guard let chat else {
            Log.warning("notify.idle", ["reason": "the chat plugin is off: no posts to notify of"])
            return
        }
        let s = settings
        let d = OutboxDispatcher(storage: services.storage, watch: watch, chat: chat, counters: counters,
                                 configuration: Self.configuration(s), deliverer: makeDeliverer(s)) { [weak self] user in
            self?.deviceCountChanged(user, by: -1)
        }
        dispatcher = d
        d.start()
    }

    public func stop() { dispatcher?.stop() }

    public func reload(_ pluginSettings: PluginSettings) {
        do {
            let new = try NotifySettings(pluginSettings)
            currentSettings.withLock { $0 = new }
            dispatcher?.update(Self.configuration(new), makeDeliverer(new))
            Log.info("notify.reloaded", ["smtp_server": new.smtpServer.map { "\($0.host):\($0.port)" } ?? "",
                                         "workers": new.workers, "grace_s": new.grace])
        } catch {
            Log.error("notify.reload_failed", ["error": error])
        }
    }

    public var figures: NotifyFigures { counters.figures }

    // MARK: Hooks

    public func sessionOnline(_ client: ClientInfo) {
        guard let user = client.username else { return }
        watch.sessionChanged(Credentials.canonicalName(user), by: 1)
    }

    public func sessionOffline(_ client: ClientInfo) {
        guard let user = client.username else { return }
        watch.sessionChanged(Credentials.canonicalName(user), by: -1)
    }

    public func delivered(_ message: Message, to client: ClientInfo) {
        guard let user = client.username else { return }
        watch.delivered(message, to: Credentials.canonicalName(user))
    }

    /// A post: the rows of the members who may not see it, in its commit; a
    /// receipt: what it covers is cancelled, in its commit.
    public func companionWrites(for message: Message) -> [PluginWrite] {
        guard let chat, let topic = WatchedTopic(message.topic.bytes) else { return [] }
        switch topic {
        case .receipts(let room):
            guard let receipt = ReceiptNotice(room: room, envelope: message.payload) else { return [] }
            return [PluginWrite(plugin: name) { db in try UnseenRows.cancel(receipt, db) }]
        case .messages(let room):
            guard let post = PostedMessage(envelope: message.payload), post.room == room else { return [] }
            return postWrites(post, message, chat)
        }
    }

    private func postWrites(_ post: PostedMessage, _ message: Message, _ chat: ChatPlugin) -> [PluginWrite] {
        let s = settings
        let notice = PostNotice(post: post, now: Timestamp.now(), graceMilliseconds: Int64(s.grace) * 1000,
                                emailConfigured: s.smtpServer != nil)
        let rows = notice.rows(members: chat.memberKeys(of: post.room), recipient: chat.recipient,
                               hasDevices: hasDevices, isOnline: watch.isOnline)
        guard !rows.isEmpty else { return [] }
        let watched = Set(rows.filter { $0.dueAt > notice.now }.map(\.user))
        if !watched.isEmpty {
            message.reportDeliveries()
            watch.watch(message, room: post.room, id: post.id, users: watched, due: notice.now + notice.graceMilliseconds)
        }
        let dispatcher = self.dispatcher
        let anyDueNow = watched.count < rows.count
        return [PluginWrite(plugin: name) { db in
            try UnseenRows.insert(rows, db)
            if anyDueNow { dispatcher?.kick() }
        }]
    }

    // MARK: Set-up

    static func configuration(_ s: NotifySettings) -> OutboxDispatcher.Configuration {
        var c = OutboxDispatcher.Configuration()
        c.workers = s.workers
        c.perDestination = s.perDestination
        c.graceMilliseconds = Int64(s.grace) * 1000
        c.emailConfigured = s.smtpServer != nil
        c.policy.maxAttempts = s.maxAttempts
        c.policy.maxAgeMilliseconds = Int64(s.maxAge) * 1000
        c.policy.baseSeconds = s.retryBase
        return c
    }

    func makeDeliverer(_ s: NotifySettings) -> Deliverer {
        Deliverer(mail: Self.mailTransport(s), web: Self.webTransport(s), sender: s.smtpFrom, webURL: s.webURL,
                  vapidKey: vapidKey, vapidSubject: s.vapidSubject)
    }

    func hasDevices(_ user: String) -> Bool { devicesByUser.withLock { $0[user] != nil } }

    func deviceCountChanged(_ user: String, by delta: Int) {
        devicesByUser.withLock { counts in
            let n = counts[user, default: 0] + delta
            counts[user] = n > 0 ? n : nil
        }
    }

    static func deviceCounts(_ db: SQLiteDatabase) throws -> [String: Int] {
        let q = try db.prepare("SELECT user, count(*) FROM notify_devices GROUP BY user")
        var out: [String: Int] = [:]
        while try q.step() { out[q.text(0) ?? ""] = Int(q.int(1)) }
        return out
    }

    /// The key in notify_keys, or a new one stored there.
    static func loadOrMakeVAPIDKey(_ db: SQLiteDatabase) throws -> P256Key {
        let q = try db.prepare("SELECT value FROM notify_keys WHERE name = 'vapid'")
        if try q.step(), let pem = q.text(0) {
            do { return try P256Key(pem: pem) } catch {
                throw StoreError("the stored VAPID key cannot be read: \(error)", code: 0)
            }
        }
        let key = P256Key.generate()
        try db.prepare("INSERT INTO notify_keys(name, value) VALUES ('vapid', ?)").bind(1, key.privateKeyPEM()).run()
        Log.info("notify.vapid_key_made")
        return key
    }

    /// Wall-clock milliseconds.
    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
