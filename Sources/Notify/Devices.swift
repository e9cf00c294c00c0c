import Broker
import Chat
import JSON
import Store

/// A push destination of a user (SPEC section 5, `POST /v1/devices`).
public struct Device: Sendable, Equatable {
    public enum Kind: String, Sendable { case webhook, ntfy, webpush }

    public let id: String
    public let kind: Kind
    /// The webhook or ntfy URL, or the Web Push endpoint.
    public let url: String
    public let createdAt: Int64
    /// The Standard Webhooks secret (webhooks only); shown once, when made.
    public let secret: String?
}

/// Why a device was refused, with the SPEC's error code.
public struct DeviceError: Error, Sendable, Equatable {
    public let status: Int
    public let code: String
    public let message: String
}

/// A device as a registration asks for it, checked.
public struct DeviceRequest: Sendable {
    public let kind: Device.Kind
    public let url: String
    public let secret: WebhookSecret?
    public let keys: PushSubscriptionKeys?

    public static let maxURLLength = 2048

    /// Reads `{"kind": "webhook", "url", "secret"?}`, `{"kind": "ntfy", "url"}` or
    /// `{"kind": "webpush", "endpoint", "keys": {"p256dh", "auth"}}`.
    public static func parse(_ body: JSONValue) -> Result<DeviceRequest, DeviceError> {
        func bad(_ text: String) -> Result<DeviceRequest, DeviceError> {
            .failure(DeviceError(status: 400, code: "invalid_device", message: text))
        }
        guard body.object != nil else { return .failure(DeviceError(status: 400, code: "bad_json", message: "the body must be a JSON object")) }
        guard let kindText = body["kind"]?.string, let kind = Device.Kind(rawValue: kindText) else {
            return bad("kind must be webhook, ntfy or webpush")
        }
        let urlKey = kind == .webpush ? "endpoint" : "url"
        guard let url = body[urlKey]?.string else { return bad("\(urlKey) is required (a string)") }
        if let why = Self.urlProblem(url, webPush: kind == .webpush) { return bad("\(urlKey): \(why)") }
        switch kind {
        case .webhook:
            var secret: WebhookSecret? = nil
            if let s = body["secret"], !s.isNull {
                guard let text = s.string, let parsed = try? WebhookSecret(text) else {
                    return bad("secret must be a Standard Webhooks secret: whsec_ and base64 of 16 to 64 bytes")
                }
                secret = parsed
            }
            return .success(DeviceRequest(kind: kind, url: url, secret: secret ?? WebhookSecret.make(), keys: nil))
        case .ntfy:
            return .success(DeviceRequest(kind: kind, url: url, secret: nil, keys: nil))
        case .webpush:
            guard let p256dh = body["keys"]?["p256dh"]?.string, let auth = body["keys"]?["auth"]?.string else {
                return bad("keys must be {\"p256dh\": ..., \"auth\": ...} (base64url)")
            }
            do {
                return .success(DeviceRequest(kind: kind, url: url, secret: nil, keys: try PushSubscriptionKeys(p256dh: p256dh, auth: auth)))
            } catch {
                return bad("keys: \(error)")
            }
        }
    }

    /// Outgoing requests go over HTTPS; plain HTTP only to this machine (tests and
    /// local services). Nil when the URL is acceptable.
    static func urlProblem(_ url: String, webPush: Bool) -> String? {
        if url.utf8.count > maxURLLength { return "at most \(maxURLLength) bytes" }
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return "spaces and non-ASCII characters must be percent-encoded" }
        let lower = url.lowercased()
        let https = lower.hasPrefix("https://")
        guard https || lower.hasPrefix("http://") else { return "must be an https:// URL" }
        let rest = lower.dropFirst(https ? 8 : 7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if authority.isEmpty || authority.contains("@") { return "needs a host (and no user name)" }
        let host = authority.hasPrefix("[") ? String(authority.prefix { $0 != "]" }.dropFirst())
            : String(authority.prefix { $0 != ":" })
        if !https && !["127.0.0.1", "localhost", "::1"].contains(host) {
            return "must be an https:// URL (http:// only to this machine)"
        }
        if webPush {
            guard (try? VAPID.audience(ofEndpoint: url)) != nil else { return "not a push service URL" }
        }
        return nil
    }
}

// The devices routes' work: on the store's thread, in order with everything else
// it writes. Completions run on that thread.
extension NotifyPlugin {
    /// At most this many devices per user.
    public static let maxDevicesPerUser = 50

    public func register(_ request: DeviceRequest, for user: String,
                         completion: @escaping @Sendable (Result<Device, DeviceError>) -> Void)
    {
        let canonical = Credentials.canonicalName(user)
        let id = "dev_" + Base64.encode(RandomBytes.make(12), alphabet: .urlSafe)
        let device = Device(id: id, kind: request.kind, url: request.url, createdAt: Self.now(), secret: request.secret?.text)
        services.storage.read { db in
            do {
                let count = try db.prepare("SELECT count(*) FROM notify_devices WHERE user = ?").bind(1, canonical).scalar()
                if count >= Int64(Self.maxDevicesPerUser) {
                    return completion(.failure(DeviceError(status: 409, code: "too_many_devices",
                                                           message: "at most \(Self.maxDevicesPerUser) devices per user")))
                }
                try db.prepare("""
                    INSERT INTO notify_devices(id, user, kind, url, secret, p256dh, auth, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                    .bind(1, id).bind(2, canonical).bind(3, request.kind.rawValue).bind(4, request.url)
                    .bind(5, request.secret?.text).bind(6, bytes: request.keys?.p256dh).bind(7, bytes: request.keys?.auth)
                    .bind(8, device.createdAt).run()
                self.deviceCountChanged(canonical, by: 1)
                completion(.success(device))
            } catch {
                completion(.failure(DeviceError(status: 500, code: "internal", message: "\(error)")))
            }
        }
    }

    /// The user's devices in the order they were registered, without their secrets.
    public func devices(of user: String, completion: @escaping @Sendable (Result<[Device], DeviceError>) -> Void) {
        let canonical = Credentials.canonicalName(user)
        services.storage.read { db in
            do {
                let q = try db.prepare("SELECT id, kind, url, created_at FROM notify_devices WHERE user = ? ORDER BY rowid")
                q.bind(1, canonical)
                var out: [Device] = []
                while try q.step() {
                    out.append(Device(id: q.text(0) ?? "", kind: Device.Kind(rawValue: q.text(1) ?? "") ?? .webhook,
                                      url: q.text(2) ?? "", createdAt: q.int(3), secret: nil))
                }
                completion(.success(out))
            } catch {
                completion(.failure(DeviceError(status: 500, code: "internal", message: "\(error)")))
            }
        }
    }

    /// Removes one of the user's devices (404 when the user has none with that id).
    public func removeDevice(_ id: String, of user: String, completion: @escaping @Sendable (Result<Void, DeviceError>) -> Void) {
        let canonical = Credentials.canonicalName(user)
        services.storage.read { db in
            do {
                try db.prepare("DELETE FROM notify_devices WHERE id = ? AND user = ?").bind(1, id).bind(2, canonical).run()
                if db.changes == 0 {
                    return completion(.failure(DeviceError(status: 404, code: "device_not_found", message: "no device \(id)")))
                }
                self.deviceCountChanged(canonical, by: -1)
                completion(.success(()))
            } catch {
                completion(.failure(DeviceError(status: 500, code: "internal", message: "\(error)")))
            }
        }
    }

    /// A deleted user's devices and pending notifications go too.
    public func forgetUser(_ user: String, completion: @escaping @Sendable () -> Void) {
        let canonical = Credentials.canonicalName(user)
        services.storage.read { db in
            try? db.prepare("DELETE FROM notify_devices WHERE user = ?").bind(1, canonical).run()
            try? db.prepare("DELETE FROM notify_outbox WHERE user = ? AND state = 'pending'").bind(1, canonical).run()
            try? UnseenRows.forget(user: canonical, db)
            self.devicesByUser.withLock { $0[canonical] = nil }
            completion()
        }
    }
}
