import Chat
import JSON
import Store

/// The `notify_unseen` table: posts members may not have seen, until each is
/// cancelled or turned into outbox rows. Every function runs on the store's
/// thread, inside a write's transaction.
enum UnseenRows {
    static func insert(_ rows: [UnseenRow], _ db: SQLiteDatabase) throws {
        let q = try db.cached("""
            INSERT OR IGNORE INTO notify_unseen(user, room, id, sender, ts, body, mention, posted_at, due_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for r in rows {
            try q.bind(1, r.user).bind(2, r.post.room).bind(3, r.post.id).bind(4, r.post.from).bind(5, r.post.ts)
                .bind(6, r.post.body).bind(7, r.mention ? 1 : 0).bind(8, r.postedAt).bind(9, r.dueAt).run()
        }
    }

    static func delete(_ seen: [SeenPost], _ db: SQLiteDatabase) throws {
        let q = try db.cached("DELETE FROM notify_unseen WHERE user = ? AND room = ? AND id = ?")
        for s in seen { try q.bind(1, s.user).bind(2, s.room).bind(3, s.id).run() }
    }

    /// A read receipt: the member has seen everything up to `upTo`; what waits for
    /// its grace or in an e-mail digest window not yet closed is cancelled.
    static func cancel(_ receipt: ReceiptNotice, _ db: SQLiteDatabase) throws {
        try db.cached("DELETE FROM notify_unseen WHERE user = ? AND room = ? AND id <= ?")
            .bind(1, receipt.user).bind(2, receipt.room).bind(3, receipt.upTo).run()
        try db.cached("""
            DELETE FROM notify_outbox WHERE user = ? AND room = ? AND message_id <= ? AND state = 'pending'
            AND attempts = 0 AND digest IS NULL
            """).bind(1, receipt.user).bind(2, receipt.room).bind(3, receipt.upTo).run()
    }

    struct Due {
        let user: String
        let post: PostedMessage
        let mention: Bool
        let postedAt: Int64
    }

    /// Up to `limit` rows whose grace ended by `cutoff`, removed from the table.
    static func takeDue(cutoff: Int64, limit: Int, _ db: SQLiteDatabase) throws -> [Due] {
        let q = try db.cached("""
            SELECT user, room, id, sender, ts, body, mention, posted_at FROM notify_unseen
            WHERE due_at <= ? ORDER BY due_at LIMIT ?
            """).bind(1, cutoff).bind(2, Int64(limit))
        var out: [Due] = []
        do {
            defer { q.reset() }
            while try q.step() {
                let post = PostedMessage(room: q.text(1) ?? "", id: q.int(2), from: q.text(3) ?? "", ts: q.text(4) ?? "",
                                         body: q.text(5) ?? "")
                out.append(Due(user: q.text(0) ?? "", post: post, mention: q.int(6) != 0, postedAt: q.int(7)))
            }
        }
        try delete(out.map { SeenPost(user: $0.user, room: $0.post.room, id: $0.post.id) }, db)
        return out
    }

    static func forget(user: String, _ db: SQLiteDatabase) throws {
        try db.cached("DELETE FROM notify_unseen WHERE user = ?").bind(1, user).run()
    }
}
