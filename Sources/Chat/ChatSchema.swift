/// The chat plugin's tables in the broker's database. Each string takes the
/// tables one version up; never edit a released step, add one.
public enum ChatSchema {
    public static let name = "chat"
    public static let migrations = [
        """
        CREATE TABLE chat_users(name TEXT PRIMARY KEY, display TEXT NOT NULL, email TEXT,
            password TEXT NOT NULL, notify TEXT, created_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE chat_tokens(hash BLOB PRIMARY KEY, user TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX chat_tokens_user ON chat_tokens(user);
        CREATE TABLE chat_rooms(name TEXT PRIMARY KEY, title TEXT, owner TEXT NOT NULL,
            created_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE chat_members(room TEXT NOT NULL, user TEXT NOT NULL, joined_at INTEGER NOT NULL,
            read_up_to INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(room, user)) WITHOUT ROWID;
        CREATE INDEX chat_members_user ON chat_members(user);
        CREATE TABLE chat_messages(room TEXT NOT NULL, id INTEGER NOT NULL, sender TEXT NOT NULL,
            sender_key TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL, ckey TEXT,
            PRIMARY KEY(room, id)) WITHOUT ROWID;
        CREATE UNIQUE INDEX chat_messages_ckey ON chat_messages(room, sender_key, ckey) WHERE ckey IS NOT NULL;
        CREATE TABLE chat_inbox(user TEXT NOT NULL, id INTEGER NOT NULL, sender TEXT NOT NULL, ts INTEGER NOT NULL,
            body TEXT NOT NULL, PRIMARY KEY(user, id)) WITHOUT ROWID;
        CREATE TABLE chat_presence(user TEXT PRIMARY KEY, online INTEGER NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE chat_changes(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL,
            detail TEXT, created_at INTEGER NOT NULL);
        """,
    ]
}
