/// The notification bridge's tables in the broker's database. Never edit a
/// released step; add one.
public enum NotifySchema {
    public static let name = "notify"
    public static let migrations = [
        """
        CREATE TABLE notify_devices(id TEXT PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, url TEXT NOT NULL,
            secret TEXT, p256dh BLOB, auth BLOB, created_at INTEGER NOT NULL);
        CREATE INDEX notify_devices_user ON notify_devices(user);
        CREATE TABLE notify_outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, channel TEXT NOT NULL,
            destination TEXT NOT NULL, room TEXT, message_id INTEGER, body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL,
            created_at INTEGER NOT NULL, last_error TEXT);
        CREATE INDEX notify_outbox_due ON notify_outbox(state, next_at);
        CREATE TABLE notify_keys(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        """,
        // Posts a member may not have seen, until their grace runs out (then they
        // become outbox rows) or a delivery, a receipt or a removal cancels them.
        // An e-mail digest is the set of rows sharing `digest` (the first one's id),
        // fixed before the first attempt so that a retry sends the same mail.
        """
        CREATE TABLE notify_unseen(user TEXT NOT NULL, room TEXT NOT NULL, id INTEGER NOT NULL, sender TEXT NOT NULL,
            ts TEXT NOT NULL, body TEXT NOT NULL, mention INTEGER NOT NULL, posted_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
            PRIMARY KEY(user, room, id)) WITHOUT ROWID;
        CREATE INDEX notify_unseen_due ON notify_unseen(due_at);
        ALTER TABLE notify_outbox ADD COLUMN digest INTEGER;
        ALTER TABLE notify_outbox ADD COLUMN sent_at INTEGER;
        CREATE INDEX notify_outbox_user ON notify_outbox(user, channel, state);
        """,
    ]
}
