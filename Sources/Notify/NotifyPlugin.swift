import Broker
import Chat
import Foundation
import Reactor
import Store
import Synchronization

/// The notification bridge plugin (SPEC section 5). So far: its settings, its
/// tables (devices, outbox, keys), the VAPID key pair made at first start and
/// kept in the database, and the devices users register through the gateway.
/// Delivery (the outbox workers, SMTP, webhooks, ntfy, Web Push) is to come.
public final class NotifyPlugin: BrokerPlugin, @unchecked Sendable {
    public let name = Notify.pluginName
    public var hooks: PluginHooks { [.storage] }
    private let currentSettings: Mutex<NotifySettings>
    public var settings: NotifySettings { currentSettings.withLock { $0 } }
    private(set) var services: BrokerServices!
    /// The VAPID key pair (RFC 8292), made once.
    public private(set) var vapidKey: P256Key!

    public init(settings: NotifySettings = NotifySettings()) {
        currentSettings = Mutex(settings)
    }

    public func start(_ services: BrokerServices) throws {
        self.services = services
        try services.storage.migrate(NotifySchema.name, NotifySchema.migrations)
        vapidKey = try services.storage.load { db in try Self.loadOrMakeVAPIDKey(db) }
    }

    public func reload(_ pluginSettings: PluginSettings) {
        do {
            let new = try NotifySettings(pluginSettings)
            currentSettings.withLock { $0 = new }
        } catch {
            Log.error("notify.reload_failed", ["error": error])
        }
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
