import Chat
import Store

/// The `notify_outbox` table as the delivery side uses it: unseen posts turned
/// into one row per channel and destination, due rows claimed as jobs, outcomes
/// recorded. Every function runs on the store's thread.
enum OutboxRows {
    // MARK: From unseen posts to outbox rows

    /// Each post whose grace ended becomes an e-mail row (held until the user's
    /// digest window closes) and one row per device, as the member's preferences
    /// are now; nothing when the member has read it or left the room meanwhile.
    static func expand(_ due: [UnseenRows.Due], chat: ChatPlugin, emailConfigured: Bool, now: Int64,
                       _ db: SQLiteDatabase) throws -> Int
    {
        var made = 0
        for d in due {
            guard let marker = try ChatPlugin.readMarker(db, room: d.post.room, user: d.user), marker < d.post.id,
                  let recipient = chat.recipient(d.user)
            else { continue }
            let content = NotificationContent(post: d.post, mention: d.mention).json
            let prefs = recipient.preferences
            if emailConfigured, let address = recipient.email, prefs.wantsEmail(mentioned: d.mention) {
                let closes = try openDigestWindow(of: d.user, db) ?? now + Int64(prefs.digestMinutes) * 60_000
                try insert(user: d.user, channel: .email, destination: address, d, content, nextAt: closes, db)
                made += 1
            }
            if prefs.wantsPush(mentioned: d.mention) {
                for (id, kind) in try deviceIDs(of: d.user, db) {
                    try insert(user: d.user, channel: kind, destination: id, d, content, nextAt: now, db)
                    made += 1
                }
            }
        }
        return made
    }

    /// When the user's e-mails already wait for a digest, the time it goes.
    private static func openDigestWindow(of user: String, _ db: SQLiteDatabase) throws -> Int64? {
        let q = try db.cached("""
            SELECT next_at FROM notify_outbox WHERE user = ? AND channel = 'email' AND state = 'pending' AND digest IS NULL LIMIT 1
            """).bind(1, user)
        defer { q.reset() }
        return try q.step() ? q.int(0) : nil
    }

    private static func deviceIDs(of user: String, _ db: SQLiteDatabase) throws -> [(String, Channel)] {
        let q = try db.cached("SELECT id, kind FROM notify_devices WHERE user = ? ORDER BY rowid").bind(1, user)
        defer { q.reset() }
        var out: [(String, Channel)] = []
        while try q.step() {
            if let id = q.text(0), let kind = q.text(1).flatMap(Channel.init(rawValue:)) { out.append((id, kind)) }
        }
        return out
    }

    private static func insert(user: String, channel: Channel, destination: String, _ d: UnseenRows.Due, _ content: String,
                               nextAt: Int64, _ db: SQLiteDatabase) throws
    {
        try db.cached("""
            INSERT INTO notify_outbox(user, channel, destination, room, message_id, body, next_at, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).bind(1, user).bind(2, channel.rawValue).bind(3, destination).bind(4, d.post.room).bind(5, d.post.id)
            .bind(6, content).bind(7, nextAt).bind(8, d.postedAt).run()
    }

    // MARK: Due rows to jobs

    /// Whether unseen posts and outbox rows are due by `now` (a cheap look before a write).
    static func due(now: Int64, _ db: SQLiteDatabase) throws -> (unseen: Bool, outbox: Bool) {
        let unseen = try db.cached("SELECT 1 FROM notify_unseen WHERE due_at <= ? LIMIT 1").bind(1, now)
        defer { unseen.reset() }
        let outbox = try db.cached("SELECT 1 FROM notify_outbox WHERE state = 'pending' AND next_at <= ? LIMIT 1").bind(1, now)
        defer { outbox.reset() }
        return (try unseen.step(), try outbox.step())
    }

    /// Up to `limit` jobs due by `now`, none of the ids in `busy`: an e-mail job
    /// holds every pending e-mail of its user (the digest, fixed here, so that a
    /// retry sends the same mail under the same Message-ID); a push job one row.
    /// A row whose device is gone is marked dead. Runs as a read (between the
    /// store's batches, so its rare writes, a digest fixed or a row given up,
    /// commit on their own): claiming waits for no batch.
    static func claimDue(now: Int64, limit: Int, busy: Set<Int64>, _ db: SQLiteDatabase) throws -> [DeliveryJob] {
        let q = try db.cached("""
            SELECT id, user, channel, destination, body, attempts, created_at, digest FROM notify_outbox
            WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?
            """).bind(1, now).bind(2, Int64(limit + busy.count))
        var rows: [OutboxEntry] = []
        do {
            defer { q.reset() }
            while try q.step() {
                let id = q.int(0)
                guard !busy.contains(id), let entry = entry(q) else { continue }
                rows.append(entry)
            }
        }
        var jobs: [DeliveryJob] = []
        var taken = busy
        for row in rows where !taken.contains(row.id) && jobs.count < limit {
            if row.channel == .email {
                let entries = try digest(for: row, db)
                guard !entries.isEmpty else { continue }
                entries.forEach { taken.insert($0.id) }
                jobs.append(.email(address: row.destination, entries: entries))
            } else if let device = try device(row.destination, db) {
                taken.insert(row.id)
                jobs.append(.push(device: device, entry: row))
            } else {
                try record([row.id], .dead("the device was removed"), now: now, policy: .standard, db)
            }
        }
        return jobs
    }

    private static func entry(_ q: Statement) -> OutboxEntry? {
        guard let channel = q.text(2).flatMap(Channel.init(rawValue:)), let content = q.text(4).flatMap(NotificationContent.init(json:))
        else { return nil }
        return OutboxEntry(id: q.int(0), user: q.text(1) ?? "", channel: channel, destination: q.text(3) ?? "", content: content,
                           attempts: Int(q.int(5)), createdAt: q.int(6), digest: q.isNull(7) ? nil : q.int(7))
    }

    /// The rows of the digest `row` belongs to, fixing it first when it is new.
    private static func digest(for row: OutboxEntry, _ db: SQLiteDatabase) throws -> [OutboxEntry] {
        var key = row.digest
        if key == nil {
            let first = try db.cached("""
                SELECT min(id) FROM notify_outbox WHERE user = ? AND channel = 'email' AND state = 'pending' AND digest IS NULL
                """).bind(1, row.user).scalar()
            try db.cached("""
                UPDATE notify_outbox SET digest = ? WHERE user = ? AND channel = 'email' AND state = 'pending' AND digest IS NULL
                """).bind(1, first).bind(2, row.user).run()
            key = first
        }
        let q = try db.cached("""
            SELECT id, user, channel, destination, body, attempts, created_at, digest FROM notify_outbox
            WHERE digest = ? AND user = ? AND channel = 'email' AND state = 'pending' ORDER BY id
            """).bind(1, key).bind(2, row.user)
        defer { q.reset() }
        var out: [OutboxEntry] = []
        while try q.step() { if let e = entry(q) { out.append(e) } }
        return out
    }

    private static func device(_ id: String, _ db: SQLiteDatabase) throws -> StoredDevice? {
        let q = try db.cached("SELECT kind, url, secret, p256dh, auth FROM notify_devices WHERE id = ?").bind(1, id)
        defer { q.reset() }
        guard try q.step(), let kind = q.text(0).flatMap(Channel.init(rawValue:)) else { return nil }
        return StoredDevice(id: id, kind: kind, url: q.text(1) ?? "", secret: q.text(2),
                            p256dh: q.isNull(3) ? nil : q.blob(3), auth: q.isNull(4) ? nil : q.blob(4))
    }

    // MARK: Outcomes

    /// How failures are retried and when they are given up.
    struct RetryPolicy: Sendable {
        var maxAttempts = 10
        var maxAgeMilliseconds: Int64 = 24 * 3_600_000
        var baseSeconds = 10
        var random: @Sendable () -> Double = { Double.random(in: 0.5...1.0) }
        static let standard = RetryPolicy()
    }

    /// Records one attempt's outcome for every row of a job.
    static func record(_ ids: [Int64], _ outcome: DeliveryOutcome, now: Int64, policy: RetryPolicy, _ db: SQLiteDatabase) throws {
        switch outcome {
        case .delivered:
            let q = try db.cached("""
                UPDATE notify_outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL
                WHERE id = ? AND state = 'pending'
                """)
            for id in ids { try q.bind(1, now).bind(2, id).run() }
        case .dead(let reason), .gone(let reason):
            try markDead(ids, reason, db)
        case .retry(let reason, let after):
            for id in ids { try retry(id, reason, after: after, now: now, policy: policy, db) }
        }
    }

    private static func markDead(_ ids: [Int64], _ reason: String, _ db: SQLiteDatabase) throws {
        let q = try db.cached("""
            UPDATE notify_outbox SET state = 'dead', attempts = attempts + 1, last_error = ? WHERE id = ? AND state = 'pending'
            """)
        for id in ids { try q.bind(1, reason).bind(2, id).run() }
    }

    private static func retry(_ id: Int64, _ reason: String, after: Int64?, now: Int64, policy: RetryPolicy,
                              _ db: SQLiteDatabase) throws
    {
        let q = try db.cached("SELECT attempts, created_at FROM notify_outbox WHERE id = ? AND state = 'pending'").bind(1, id)
        let found = try q.step()
        let attempts = found ? Int(q.int(0)) + 1 : 0
        let createdAt = found ? q.int(1) : 0
        q.reset()
        guard found else { return }
        if attempts >= policy.maxAttempts {
            return try markDeadAfterRetries(id, "\(reason) (gave up after \(attempts) attempts)", db)
        }
        let wait = Backoff.seconds(attempt: attempts, base: policy.baseSeconds, retryAfter: after, random: policy.random())
        if now + wait * 1000 - createdAt > policy.maxAgeMilliseconds {
            return try markDeadAfterRetries(id, "\(reason) (older than notify_max_age)", db)
        }
        try db.cached("UPDATE notify_outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?")
            .bind(1, Int64(attempts)).bind(2, now + wait * 1000).bind(3, reason).bind(4, id).run()
    }

    private static func markDeadAfterRetries(_ id: Int64, _ reason: String, _ db: SQLiteDatabase) throws {
        try db.cached("UPDATE notify_outbox SET state = 'dead', attempts = attempts + 1, last_error = ? WHERE id = ?")
            .bind(1, reason).bind(2, id).run()
    }

    static func removeDevice(_ id: String, _ db: SQLiteDatabase) throws -> String? {
        let q = try db.cached("SELECT user FROM notify_devices WHERE id = ?").bind(1, id)
        let user = try q.step() ? q.text(0) : nil
        q.reset()
        try db.cached("DELETE FROM notify_devices WHERE id = ?").bind(1, id).run()
        return user
    }

    // MARK: Upkeep

    /// Pending rows past `notify_max_age` go dead; sent rows older than it are removed.
    static func expire(now: Int64, maxAgeMilliseconds: Int64, _ db: SQLiteDatabase) throws {
        try db.cached("""
            UPDATE notify_outbox SET state = 'dead', last_error = coalesce(last_error || ' ', '') || '(older than notify_max_age)'
            WHERE state = 'pending' AND created_at < ?
            """).bind(1, now - maxAgeMilliseconds).run()
        try db.cached("DELETE FROM notify_outbox WHERE state = 'sent' AND sent_at < ?").bind(1, now - maxAgeMilliseconds).run()
    }

    static func pendingCount(_ db: SQLiteDatabase) throws -> Int64 {
        try db.cached("SELECT count(*) FROM notify_outbox WHERE state = 'pending'").scalar()
    }
}

/// Retry delays: exponential from `base`, capped at an hour, with jitter (a
/// factor from 0.5 to 1), never sooner than a receiver's `Retry-After`.
enum Backoff {
    static let cap: Int64 = 3600

    static func seconds(attempt: Int, base: Int, retryAfter: Int64?, random: Double) -> Int64 {
        let exponent = min(max(attempt - 1, 0), 20)
        let raw = min(Int64(base) << Int64(exponent), cap)
        let jittered = max(1, Int64((Double(raw) * min(max(random, 0.5), 1.0)).rounded()))
        return min(max(jittered, retryAfter ?? 0), cap)
    }
}
