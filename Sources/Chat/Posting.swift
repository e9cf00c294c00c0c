import Broker
import JSON
import MQTT
import Store
import Synchronization

/// What a member published to `rooms/<room>/messages`: plain UTF-8 text, or
/// `{"body": "...", "ckey": "..."}`.
struct PostContent {
    let body: String
    let ckey: String?

    /// Nil when the payload is not a valid post (v5: 0x99 payload format invalid).
    static func parse(_ payload: ArraySlice<UInt8>, maxBody: Int) -> PostContent? {
        if payload.first == 0x7B, let value = try? JSONValue.parse(payload, maxBytes: maxBody + 4096, maxDepth: 4),
           case .object = value
        {
            guard let body = value["body"]?.string else { return nil }
            var ckey: String? = nil
            if let k = value["ckey"] {
                guard let text = k.string, (1...64).contains(text.unicodeScalars.count) else { return nil }  // code points, as JSON Schema counts
                ckey = text
            }
            return valid(body, maxBody) ? PostContent(body: body, ckey: ckey) : nil
        }
        guard let text = String(validating: payload, as: UTF8.self) else { return nil }
        return valid(text, maxBody) ? PostContent(body: text, ckey: nil) : nil
    }

    private static func valid(_ body: String, _ max: Int) -> Bool { (1...max).contains(body.utf8.count) }
}

/// A read receipt `{"up_to": id}`.
enum ReceiptContent {
    static func parse(_ payload: ArraySlice<UInt8>) -> Int64? {
        guard let value = try? JSONValue.parse(payload, maxBytes: 1024, maxDepth: 2), value.object != nil,
              let upTo = value["up_to"]?.int64, upTo >= 0
        else { return nil }
        return upTo
    }
}

// Posting, typing, receipts and history over MQTT (SPEC section 3).
extension ChatPlugin {
    /// A post: its id, envelope and history row are made on the room's loop, in one
    /// order; the publisher is acknowledged once the row is committed, and the
    /// envelope (not what was published) is what subscribers get.
    func post(_ message: Message, room: String, from client: ClientInfo,
              _ completion: @escaping @Sendable (PublishVerdict) -> Void)
    {
        guard let from = client.username,
              let content = PostContent.parse(message.payload, maxBody: settings.maxMessageBody)
        else {
            completion(.refuse(.payloadFormatInvalid))
            return
        }
        services.onLoop(of: "room/" + room) { [self] ctx in
            let sequence = sequences.sequence(room, loop: ctx.index)
            let ts = Timestamp.now()
            let key = content.ckey.map { Credentials.canonicalName(from) + "\u{0}" + $0 }
            if let key, sequence.repeated(key, now: ts) != nil {
                // A repeat: a success, delivered once; acknowledged only once the
                // original is stored (it may still wait for its commit).
                ctx.afterPending { [self] in
                    guard let original = sequence.repeated(key, now: ts) else { return completion(.refuse(.quotaExceeded)) }
                    leaveRESTReply(.repeated(original), for: message, client)
                    completion(.acceptWithoutRouting)
                }
                return
            }
            sequence.lastID += 1
            let id = sequence.lastID
            if let key { sequence.remember(key, id: id, ts: ts) }
            let envelope = Message(
                topic: ByteString(ChatTopic.messages(room)),
                payload: Envelope.post(id: id, room: room, from: from, ts: ts, body: content.body, ckey: content.ckey),
                qos: message.qos, retain: false, properties: Envelope.postProperties(id: id, from: from, ts: ts),
                origin: message.origin, receivedAt: ctx.now)
            let row = PluginWrite(plugin: name) { db in
                try db.cached("INSERT INTO chat_messages(room, id, sender, sender_key, ts, body, ckey) VALUES (?, ?, ?, ?, ?, ?, ?)")
                    .bind(1, room).bind(2, id).bind(3, from).bind(4, Credentials.canonicalName(from)).bind(5, ts)
                    .bind(6, content.body).bind(7, content.ckey).run()
            }
            ctx.publish(envelope, writes: [row]) { [self] ok in
                if ok {
                    unread.posted(room: room, by: from, directory: directory)
                    postsStored.add(1, ordering: .relaxed)
                    leaveRESTReply(.created(envelope.payload.map { $0 }), for: message, client)
                } else if let key {
                    sequence.forget(key)  // not stored: a retry is a new post
                }
                completion(ok ? .acceptWithoutRouting : .refuse(.quotaExceeded))
            }
        }
    }

    /// A REST post's answer (ChatRequests), for posts made by the gateway's clients only.
    private func leaveRESTReply(_ reply: RESTReply, for message: Message, _ client: ClientInfo) {
        guard client.listener == Self.restListener else { return }
        restReplies.withLock { $0[ObjectIdentifier(message)] = reply }
    }

    /// A direct message to `users/<user>/inbox`: stamped like a post, with an id in
    /// the recipient's inbox sequence, stored, then delivered.
    func directMessage(_ message: Message, to owner: String, from client: ClientInfo,
                       _ completion: @escaping @Sendable (PublishVerdict) -> Void)
    {
        guard let from = client.username, let recipient = directory.user(owner) else {
            completion(.refuse(.notAuthorized))
            return
        }
        guard let content = PostContent.parse(message.payload, maxBody: settings.maxMessageBody) else {
            completion(.refuse(.payloadFormatInvalid))
            return
        }
        let key = Credentials.canonicalName(recipient.name)
        services.onLoop(of: "inbox/" + key) { [self] ctx in
            let sequence = inboxes.sequence(key, loop: ctx.index)
            sequence.lastID += 1
            let id = sequence.lastID
            let ts = Timestamp.now()
            let envelope = Message(
                topic: ByteString(ChatTopic.inbox(recipient.name)),
                payload: Envelope.direct(id: id, from: from, ts: ts, body: content.body), qos: message.qos, retain: false,
                properties: Envelope.postProperties(id: id, from: from, ts: ts), origin: message.origin, receivedAt: ctx.now)
            let row = PluginWrite(plugin: name) { db in
                try db.cached("INSERT INTO chat_inbox(user, id, sender, ts, body) VALUES (?, ?, ?, ?, ?)")
                    .bind(1, key).bind(2, id).bind(3, from).bind(4, ts).bind(5, content.body).run()
            }
            ctx.publish(envelope, writes: [row]) { ok in completion(ok ? .acceptWithoutRouting : .refuse(.quotaExceeded)) }
        }
    }

    /// Typing: members receive `{"from", "ts"}`, QoS 0, never stored.
    func typing(room: String, from client: ClientInfo, _ completion: @escaping @Sendable (PublishVerdict) -> Void) {
        guard let from = client.username else {
            completion(.refuse(.notAuthorized))
            return
        }
        completion(.acceptWithoutRouting)
        let message = Message(topic: ByteString(ChatTopic.typing(room)),
                              payload: Envelope.typing(from: from, ts: Timestamp.now()), qos: .atMostOnce, retain: false,
                              origin: client.clientID, receivedAt: 0)
        services.onLoop(of: "room/" + room) { ctx in ctx.publish(message) }
    }

    /// A read receipt `{"up_to": id}`: the marker only moves forward and is stored;
    /// members receive `{"from", "up_to", "ts"}`.
    func receipt(_ message: Message, room: String, from client: ClientInfo,
                 _ completion: @escaping @Sendable (PublishVerdict) -> Void)
    {
        guard let from = client.username, let upTo = ReceiptContent.parse(message.payload) else {
            completion(.refuse(.payloadFormatInvalid))
            return
        }
        let canonical = Credentials.canonicalName(from)
        services.onLoop(of: "room/" + room) { [self] ctx in
            let last = sequences.sequence(room, loop: ctx.index).lastID
            let marker = min(upTo, last)
            let ts = Timestamp.now()
            let out = Message(topic: ByteString(ChatTopic.receipts(room)),
                              payload: Envelope.receipt(from: from, upTo: marker, ts: ts), qos: message.qos, retain: false,
                              origin: message.origin, receivedAt: ctx.now)
            let write = PluginWrite(plugin: name) { db in
                try db.cached("UPDATE chat_members SET read_up_to = max(read_up_to, ?) WHERE room = ? AND user = ?")
                    .bind(1, marker).bind(2, room).bind(3, canonical).run()
            }
            ctx.publish(out, writes: [write]) { [self] ok in
                if ok { recountUnread(user: canonical, room: room, marker: marker) }
                completion(ok ? .acceptWithoutRouting : .refuse(.quotaExceeded))
            }
        }
    }

    /// A history query over MQTT 5 request/response: `{"before", "after", "limit"}`
    /// to `rooms/<room>/history`, answered on the response topic (under the user's
    /// own `users/<user>/`) with `{"messages": [...], "has_more": bool}` and the
    /// same correlation data.
    func history(_ message: Message, room: String, from client: ClientInfo,
                 _ completion: @escaping @Sendable (PublishVerdict) -> Void)
    {
        guard let user = client.username, let responseTopic = message.properties.responseTopic,
              Self.isOwnTopic(responseTopic, of: user)
        else {
            completion(.refuse(.notAuthorized))
            return
        }
        guard let query = HistoryQuery(message.payload) else {
            completion(.refuse(.payloadFormatInvalid))
            return
        }
        completion(.acceptWithoutRouting)
        let correlation = message.properties.correlationData.map { Array($0) }
        let qos = message.qos
        services.storage.read { [self] db in
            let payload = query.answer(room: room, db: db)
            var properties = Properties()
            properties.payloadFormatIndicator = true
            properties.contentType = "application/json"
            if let correlation { properties.correlationData = correlation[...] }
            services.publish(topic: responseTopic, payload: payload, qos: qos, retain: false, properties: properties)
        }
    }

    static func isOwnTopic(_ topic: String, of user: String) -> Bool {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        return levels.count >= 3 && levels[0] == "users" && Credentials.canonicalName(String(levels[1])) ==
            Credentials.canonicalName(user) && !topic.contains("+") && !topic.contains("#")
    }
}
