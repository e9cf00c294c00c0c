import Store

/// `parley outbox list|retry ID|drop ID` (SPEC section 7): the notifications
/// waiting, sent, failed or dead, straight in the database, whether or not the
/// broker runs.
public struct OutboxAdmin {
    let db: SQLiteDatabase
    public init(_ db: SQLiteDatabase) { self.db = db }

    public struct Row: Sendable {
        public let id: Int64, user: String, channel: String, destination: String, state: String, attempts: Int64
        public let lastError: String?
    }

    /// Every notification not yet sent (pending, failing, dead), oldest first.
    public func list() throws -> [Row] {
        let q = try db.prepare("""
            SELECT id, user, channel, destination, state, attempts, last_error FROM notify_outbox
            WHERE state != 'sent' ORDER BY id
            """)
        var out: [Row] = []
        while try q.step() {
            out.append(Row(id: q.int(0), user: q.text(1) ?? "", channel: q.text(2) ?? "", destination: q.text(3) ?? "",
                           state: q.text(4) ?? "", attempts: q.int(5), lastError: q.text(6)))
        }
        return out
    }

    /// A dead or failing notification is tried again now, with its attempts reset.
    public func retry(_ id: Int64, now: Int64) throws {
        try db.prepare("UPDATE notify_outbox SET state = 'pending', attempts = 0, next_at = ? WHERE id = ? AND state != 'sent'")
            .bind(1, now).bind(2, id).run()
        if db.changes == 0 { throw StoreError("no notification \(id) waiting or dead") }
    }

    /// A notification is dropped (never sent).
    public func drop(_ id: Int64) throws {
        try db.prepare("DELETE FROM notify_outbox WHERE id = ? AND state != 'sent'").bind(1, id).run()
        if db.changes == 0 { throw StoreError("no notification \(id) waiting or dead") }
    }
}
