import Chat
import JSON

/// The HTTP requests of the push channels (SPEC section 5), built from an outbox
/// row and its device; the transport fills in Host and the target from the URL.
enum PushRequests {
    /// A Standard Webhooks delivery: JSON, signed over `id.timestamp.body`.
    static func webhook(_ entry: OutboxEntry, device: StoredDevice, now: Int64) throws -> HTTPClientRequest {
        let c = entry.content
        var w = JSONWriter()
        w.object { o in
            o.field("type", "message.unseen")
            o.field("timestamp", Timestamp.iso(now * 1000))
            o.object("data") { d in
                d.field("user", entry.user)
                d.field("room", c.room)
                d.field("id", c.id)
                d.field("from", c.from)
                d.field("ts", c.ts)
                d.field("body", c.body)
                d.field("mention", c.mention)
            }
        }
        let body = w.bytes
        var headers = [HTTPHeaderField("Content-Type", "application/json")]
        if let text = device.secret {
            let secret = try WebhookSecret(text)
            headers += WebhookSignature.headers(id: entry.notificationID, timestamp: now, body: body, secret: secret)
                .map { HTTPHeaderField($0.name, $0.value) }
        } else {
            headers.append(HTTPHeaderField("webhook-id", entry.notificationID))
            headers.append(HTTPHeaderField("webhook-timestamp", String(now)))
        }
        return HTTPClientRequest(method: "POST", target: "/", host: "-", headers: headers, body: body)
    }

    /// An ntfy-style post: the text as the body, a title, a higher priority for a mention.
    static func ntfy(_ entry: OutboxEntry) -> HTTPClientRequest {
        var headers = [HTTPHeaderField("Title", headerSafe(entry.content.title)),
                       HTTPHeaderField("X-Parley-Id", entry.notificationID),
                       HTTPHeaderField("Content-Type", "text/plain; charset=utf-8")]
        if entry.content.mention { headers.append(HTTPHeaderField("Priority", "high")) }
        return HTTPClientRequest(method: "POST", target: "/", host: "-", headers: headers, body: Array(entry.content.body.utf8))
    }

    /// A Web Push message: the JSON encrypted for the subscription (RFC 8291),
    /// signed for the endpoint's origin with the VAPID key (RFC 8292).
    static func webPush(_ entry: OutboxEntry, device: StoredDevice, vapid: P256Key, subject: String, now: Int64)
        throws -> HTTPClientRequest
    {
        guard let p256dh = device.p256dh, let auth = device.auth else {
            throw WebPushError.invalidSubscription("the device has no subscription keys")
        }
        let keys = try PushSubscriptionKeys(p256dh: p256dh, auth: auth)
        let c = entry.content
        var w = JSONWriter()
        w.object { o in
            o.field("title", c.title)
            o.field("body", String(c.body.prefix(1000)))
            o.field("room", c.room)
            o.field("id", c.id)
            o.field("from", c.from)
            o.field("ts", c.ts)
            o.field("tag", entry.notificationID)
        }
        let body = try PushMessageEncryption.encrypt(w.bytes, for: keys)
        let authorization = try VAPID.authorization(endpoint: device.url, subject: subject, key: vapid, now: now)
        let headers = PushRequestHeaders.all(authorization: authorization, ttl: 86_400, urgency: c.mention ? .high : .normal)
            .map { HTTPHeaderField($0.name, $0.value) }
        return HTTPClientRequest(method: "POST", target: "/", host: "-", headers: headers, body: body)
    }

    /// A header value holds no control characters (a title from a user name and
    /// a room name never does; this is belt and braces).
    private static func headerSafe(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F })
    }
}
