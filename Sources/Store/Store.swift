import CSQLite
import Foundation
import Glibc
import Reactor
import Synchronization

/// How hard the store tries not to lose acknowledged work.
public enum Durability: Sendable, Equatable {
    /// Acknowledge QoS 1/2 work only after the commit that holds it (fsync).
    case full
    /// Acknowledge at once; commit at least every `milliseconds`. A crash may lose
    /// what was acknowledged within that window.
    case batch(milliseconds: Int)
    /// Keep nothing on disk: a restart forgets sessions, queues and retained messages.
    case none
}

/// The SQLite database in the data directory, and its single writer thread:
/// changes are queued from the event loops and committed in batches (one
/// transaction, one fsync for many changes); completions run on the loop that
/// asked, after the commit.
public final class Store: @unchecked Sendable {
    public static let schemaVersion: Int64 = 1
    public let directory: String
    public let durability: Durability
    private let db: SQLiteDatabase
    private let lockFD: Int32

    private struct Entry {
        let ops: [StoreOp]
        let completion: ((Bool) -> Void)?
        let executor: ((@escaping () -> Void) -> Void)?
        /// New work the broker can still refuse (a PUBLISH not yet acknowledged, a
        /// session before CONNACK): dropped with `completion(false)` when the disk
        /// is full. Everything else follows from what a client was already told and
        /// is kept, in order, until it is written.
        let failable: Bool
    }

    private let condition = NSCondition()
    private var pending: [Entry] = []
    /// Accepted work that a full disk kept out: written first, before anything newer
    /// and before any read (a read must see every write queued before it).
    private var retry: [Entry] = []
    private var stopping = false
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    /// Set while the store takes no new work: the database reached `maxBytes`, the
    /// disk is nearly full, or a write failed for want of space. The broker refuses
    /// new QoS 1/2 messages meanwhile; what it already accepted is still written.
    public let isFull = Atomic<Bool>(false)
    /// `store_max_size`: the database size at which new work is refused.
    private let maxBytes: Int?
    private var pageSize = 4096
    /// Commits done and operations written, for $SYS.
    public let commits = Atomic<Int>(0)
    public let operations = Atomic<Int>(0)
    /// How long each commit took (BEGIN to COMMIT, the fsync included).
    public let commitLatency = Histogram()
    /// Whether the last commit failed (an I/O error, a full disk): health checks report it.
    public let lastCommitFailed = Atomic<Bool>(false)
    private var statements: [String: Statement] = [:]
    private var lastCleanup = Date()
    private var lastSpaceCheck = Date.distantPast

    /// Opens (creating if needed) the database in `directory`. Refuses a database
    /// held by another running Parley, one from a newer Parley, or one that is not
    /// a Parley database; never deletes anything.
    public init(directory: String, durability: Durability, maxBytes: Int? = nil) throws(StoreError) {
        self.directory = directory
        self.durability = durability
        self.maxBytes = maxBytes
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StoreError("cannot create the data directory \(directory): \(error.localizedDescription)")
            }
        } else if !isDirectory.boolValue {
            throw StoreError("the data directory \(directory) is a file, not a directory")
        }
        if access(directory, W_OK) != 0 {
            throw StoreError("the data directory \(directory) is not writable")
        }
        let lockPath = directory + "/parley.lock"
        let lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        self.lockFD = lockFD
        if lockFD < 0 { throw StoreError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = Glibc.read(lockFD, &buffer, 31)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(lockFD)
            throw StoreError("the database in \(directory) is in use by another running Parley (pid \(holder))",
                             code: StoreError.heldByAnotherParley)
        }
        ftruncate(lockFD, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(lockFD, $0.baseAddress, $0.count, 0) }

        let path = directory + "/parley.db"
        do {
            db = try SQLiteDatabase(path: path)
            // Look before touching: a foreign, corrupt or newer database is refused
            // before anything (even the journal mode) is written to it.
            let version = try Self.checkSchema(db, path: path)
            try db.exec("PRAGMA journal_mode = WAL")
            try db.exec(durability == .full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            try db.exec("PRAGMA foreign_keys = OFF")
            // No max_page_count: a hard cap would also stop the writes that follow from
            // work already acknowledged. `maxBytes` only stops new work (`checkSpace`).
            pageSize = Int(try db.scalarInt("PRAGMA page_size") ?? 4096)
            try Self.migrate(db, from: version)
        } catch {
            close(lockFD)
            throw error
        }
    }

    deinit {
        close(lockFD)
    }

    /// The schema version, after checking this is a database Parley may use.
    private static func checkSchema(_ db: SQLiteDatabase, path: String) throws(StoreError) -> Int64 {
        let version: Int64
        let tables: Int64
        do {
            version = try db.scalarInt("PRAGMA user_version") ?? 0
            tables = try db.scalarInt("SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
        } catch {
            throw StoreError("\(path) is not a usable SQLite database (\(error.description)); it was left untouched",
                             code: error.code)
        }
        if version > schemaVersion {
            throw StoreError("\(path) has schema version \(version), newer than this Parley understands (\(schemaVersion)); refusing to start and leaving it untouched")
        }
        if version == 0 && tables > 0 {
            throw StoreError("\(path) holds tables but no Parley schema version; refusing to start and leaving it untouched")
        }
        return version
    }

    /// Brings the schema up to `schemaVersion`, one step per version.
    private static func migrate(_ db: SQLiteDatabase, from version: Int64) throws(StoreError) {
        if version == 0 {
            try db.exec("""
                BEGIN;
                CREATE TABLE messages(id INTEGER PRIMARY KEY, topic BLOB NOT NULL, payload BLOB NOT NULL,
                    qos INTEGER NOT NULL, retain INTEGER NOT NULL, properties BLOB, expires_at INTEGER,
                    origin TEXT, routed INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE sessions(client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL,
                    expires_at INTEGER, username TEXT, version INTEGER NOT NULL, will BLOB,
                    will_delay INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE subscriptions(client_id TEXT NOT NULL, filter BLOB NOT NULL, options INTEGER NOT NULL,
                    identifier INTEGER, PRIMARY KEY(client_id, filter)) WITHOUT ROWID;
                CREATE TABLE deliveries(client_id TEXT NOT NULL, seq INTEGER NOT NULL, message_id INTEGER NOT NULL,
                    qos INTEGER NOT NULL, retain INTEGER NOT NULL, sub_ids BLOB, packet_id INTEGER,
                    state INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(client_id, seq)) WITHOUT ROWID;
                CREATE UNIQUE INDEX deliveries_once ON deliveries(client_id, message_id);
                CREATE INDEX deliveries_message ON deliveries(message_id);
                CREATE TABLE incoming(client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
                    PRIMARY KEY(client_id, packet_id)) WITHOUT ROWID;
                CREATE TABLE retained(topic BLOB PRIMARY KEY, message_id INTEGER NOT NULL) WITHOUT ROWID;
                PRAGMA user_version = 1;
                COMMIT;
                """)
        }
    }

    // MARK: Start-up

    /// Reads everything back, dropping sessions and messages that expired (also
    /// while the broker was down). `page` deliveries per session are loaded; the
    /// rest stay on disk and are counted in `backlog`.
    public func load(now: Int64, page pageSize: Int) throws(StoreError) -> StoreSnapshot {
        var snap = StoreSnapshot()
        try db.exec("BEGIN")
        do {
            try deleteExpired(now: now)
            try db.exec("COMMIT")
        } catch {
            try? db.exec("ROLLBACK")
            throw error
        }
        let sessions = try db.prepare("SELECT client_id, expiry_interval, expires_at, username, version, will, will_delay FROM sessions")
        while try sessions.step() {
            let will = sessions.isNull(5) ? nil : StoredMessage(blob: sessions.blob(5))
            snap.sessions.append(StoredSession(
                clientID: sessions.text(0) ?? "", expiryInterval: UInt32(truncatingIfNeeded: sessions.int(1)),
                expiresAt: sessions.optionalInt(2), username: sessions.text(3), version: UInt8(truncatingIfNeeded: sessions.int(4)),
                will: will, willDelay: UInt32(truncatingIfNeeded: sessions.int(6))))
        }
        let subs = try db.prepare("SELECT client_id, filter, options, identifier FROM subscriptions")
        while try subs.step() {
            snap.subscriptions.append(StoredSubscription(
                clientID: subs.text(0) ?? "", filter: subs.blob(1), options: UInt8(truncatingIfNeeded: subs.int(2)),
                identifier: subs.optionalInt(3).map { UInt32(truncatingIfNeeded: $0) }))
        }
        let seqs = try db.prepare("SELECT client_id, max(seq), count(*) FROM deliveries GROUP BY client_id")
        var counts: [String: Int] = [:]
        while try seqs.step() {
            let id = seqs.text(0) ?? ""
            snap.maxSeq[id] = seqs.int(1)
            counts[id] = Int(seqs.int(2))
        }
        let page = try db.prepare("""
            SELECT client_id, seq, message_id, qos, retain, sub_ids, packet_id, state FROM deliveries
            WHERE client_id = ? ORDER BY seq LIMIT ?
            """)
        for (clientID, count) in counts {
            page.bind(1, clientID).bind(2, Int64(max(1, pageSize)))
            var loaded = 0
            while try page.step() {
                snap.deliveries.append(Self.delivery(page))
                loaded += 1
            }
            page.reset()
            if count > loaded { snap.backlog[clientID] = count - loaded }
        }
        for d in snap.deliveries where snap.messages[d.messageID] == nil {
            if let m = try message(d.messageID) { snap.messages[m.id] = m }
        }
        let retained = try db.prepare("SELECT m.id FROM retained r JOIN messages m ON m.id = r.message_id")
        var retainedIDs: [Int64] = []
        while try retained.step() { retainedIDs.append(retained.int(0)) }
        for id in retainedIDs { if let m = try message(id) { snap.retained.append(m) } }
        let unrouted = try db.prepare("SELECT id FROM messages WHERE routed = 0 ORDER BY id")
        var unroutedIDs: [Int64] = []
        while try unrouted.step() { unroutedIDs.append(unrouted.int(0)) }
        for id in unroutedIDs { if let m = try message(id) { snap.unrouted.append(m) } }
        let incoming = try db.prepare("SELECT client_id, packet_id FROM incoming")
        while try incoming.step() {
            snap.incoming.append((incoming.text(0) ?? "", UInt16(truncatingIfNeeded: incoming.int(1))))
        }
        snap.maxMessageID = try db.scalarInt("SELECT max(id) FROM messages") ?? 0
        return snap
    }

    static func delivery(_ s: Statement) -> StoredDelivery {
        let ids = s.blob(5)
        var subIDs: [UInt32] = []
        var i = 0
        while i + 4 <= ids.count {
            subIDs.append(UInt32(ids[i]) << 24 | UInt32(ids[i + 1]) << 16 | UInt32(ids[i + 2]) << 8 | UInt32(ids[i + 3]))
            i += 4
        }
        return StoredDelivery(
            clientID: s.text(0) ?? "", seq: s.int(1), messageID: s.int(2), qos: UInt8(truncatingIfNeeded: s.int(3)),
            retain: s.int(4) != 0, subscriptionIDs: subIDs, packetID: s.optionalInt(6).map { UInt16(truncatingIfNeeded: $0) },
            state: StoredDelivery.State(rawValue: UInt8(truncatingIfNeeded: s.int(7))) ?? .queued)
    }

    private func message(_ id: Int64) throws(StoreError) -> StoredMessage? {
        let s = try cached("SELECT id, topic, payload, qos, retain, properties, expires_at, origin FROM messages WHERE id = ?")
        defer { s.reset() }
        s.bind(1, id)
        guard try s.step() else { return nil }
        return StoredMessage(id: s.int(0), topic: s.blob(1), payload: s.blob(2), qos: UInt8(truncatingIfNeeded: s.int(3)),
                             retain: s.int(4) != 0, properties: s.blob(5), expiresAt: s.optionalInt(6), origin: s.text(7))
    }

    private func deleteExpired(now: Int64) throws(StoreError) {
        try db.exec("""
            CREATE TEMP TABLE IF NOT EXISTS gone(client_id TEXT PRIMARY KEY);
            DELETE FROM gone;
            INSERT INTO gone SELECT client_id FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= \(now);
            DELETE FROM subscriptions WHERE client_id IN (SELECT client_id FROM gone);
            DELETE FROM deliveries WHERE client_id IN (SELECT client_id FROM gone);
            DELETE FROM incoming WHERE client_id IN (SELECT client_id FROM gone);
            DELETE FROM sessions WHERE client_id IN (SELECT client_id FROM gone);
            DELETE FROM deliveries WHERE message_id IN
                (SELECT id FROM messages WHERE expires_at IS NOT NULL AND expires_at <= \(now));
            DELETE FROM retained WHERE message_id IN
                (SELECT id FROM messages WHERE expires_at IS NOT NULL AND expires_at <= \(now));
            DELETE FROM messages WHERE routed = 1 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id)
                AND NOT EXISTS (SELECT 1 FROM retained r WHERE r.message_id = messages.id);
            DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= \(now);
            """)
    }

    /// The next page of a session's deliveries after `seq`, with their messages.
    /// Runs on the writer thread (in order with the writes), answers on `executor`.
    public func loadDeliveries(clientID: String, after seq: Int64, limit: Int,
                               executor: @escaping (@escaping () -> Void) -> Void,
                               _ reply: @escaping ([StoredDelivery], [Int64: StoredMessage]) -> Void)
    {
        submitRead { [self] in
            var rows: [StoredDelivery] = []
            var bodies: [Int64: StoredMessage] = [:]
            do {
                let s = try cached("""
                    SELECT client_id, seq, message_id, qos, retain, sub_ids, packet_id, state FROM deliveries
                    WHERE client_id = ? AND seq > ? ORDER BY seq LIMIT ?
                    """)
                s.bind(1, clientID).bind(2, seq).bind(3, Int64(limit))
                while try s.step() { rows.append(Self.delivery(s)) }
                s.reset()
                for r in rows where bodies[r.messageID] == nil {
                    if let m = try message(r.messageID) { bodies[m.id] = m }
                }
            } catch {
                Log.error("store.read_failed", ["error": error])
            }
            executor { reply(rows, bodies) }
        }
    }

    // MARK: Writing

    /// Queues changes. `completion(true)` runs on `executor` once they are
    /// committed (`false` if the commit failed: disk full, I/O error).
    ///
    /// `failable`: new work that may be refused when the disk is full (the
    /// completion then gets `false`). Other work is never dropped for want of
    /// space: it waits, in order, until it can be written.
    public func submit(_ ops: [StoreOp], executor: ((@escaping () -> Void) -> Void)? = nil,
                       failable: Bool = false, completion: ((Bool) -> Void)? = nil)
    {
        condition.lock()
        pending.append(Entry(ops: ops, completion: completion, executor: executor, failable: failable))
        condition.signal()
        condition.unlock()
    }

    private var reads: [() -> Void] = []

    private func submitRead(_ work: @escaping () -> Void) {
        condition.lock()
        reads.append(work)
        condition.signal()
        condition.unlock()
    }

    public func start() {
        // Before the writer runs: whoever asks right after start (a health check)
        // sees whether the store has room.
        checkSpace()
        let t = Thread { [self] in run() }
        t.name = "parley-store"
        thread = t
        t.start()
    }

    /// Commits what is queued and stops the writer.
    public func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        if thread != nil { finished.wait() }
    }

    private func run() {
        let batchDelay: Double
        if case .batch(let ms) = durability { batchDelay = Double(ms) / 1000 } else { batchDelay = 0 }
        checkSpace()
        while true {
            condition.lock()
            while pending.isEmpty && (reads.isEmpty || !retry.isEmpty) && !stopping {
                if isFull.load(ordering: .relaxed) || !retry.isEmpty {
                    // Look again for space (and try the kept work) once a second.
                    _ = condition.wait(until: Date().addingTimeInterval(1))
                    break
                }
                condition.wait()
            }
            if batchDelay > 0 && !stopping && reads.isEmpty {
                // Batch mode: gather for up to the window before committing.
                condition.unlock()
                Thread.sleep(forTimeInterval: batchDelay)
                condition.lock()
            }
            // Taken together: each read runs after every write queued before it.
            let batch = retry + pending
            retry.removeAll()
            pending.removeAll(keepingCapacity: true)
            let readWork = reads
            reads.removeAll()
            let stop = stopping
            condition.unlock()
            var kept: [Entry] = []
            if !batch.isEmpty { kept = write(batch) } else if isFull.load(ordering: .relaxed) { checkSpace() }
            if kept.isEmpty {
                for r in readWork { r() }
            } else {
                // Writes were kept back for want of space: the reads wait behind them.
                condition.lock()
                retry = kept
                reads = readWork + reads
                condition.unlock()
            }
            // Message bodies are the bulk of the file: while full, free them every second.
            let full = isFull.load(ordering: .relaxed)
            if kept.isEmpty && Date().timeIntervalSince(lastCleanup) > (full ? 1 : 10) {
                cleanup()
                if full { checkSpace() }
            }
            if stop {
                condition.lock()
                let idle = pending.isEmpty && reads.isEmpty
                condition.unlock()
                if !kept.isEmpty {
                    Log.error("store.unsaved", ["operations": kept.reduce(0) { $0 + $1.ops.count },
                                                "reason": "no space left at shutdown"])
                    break
                }
                if idle { break }
            }
        }
        statements.removeAll()
        finished.signal()
    }

    private enum CommitResult {
        case committed
        case full(StoreError)
        case failed(StoreError)
    }

    private func commit(_ entries: [Entry]) -> CommitResult {
        let started = EventLoop.monotonicNanoseconds()
        do {
            try db.exec("BEGIN IMMEDIATE")
            for entry in entries { for op in entry.ops { try apply(op) } }
            try db.exec("COMMIT")
            commitLatency.record(seconds: Double(EventLoop.monotonicNanoseconds() - started) / 1e9)
            lastCommitFailed.store(false, ordering: .relaxed)
            commits.add(1, ordering: .relaxed)
            operations.add(entries.reduce(0) { $0 + $1.ops.count }, ordering: .relaxed)
            return .committed
        } catch {
            try? db.exec("ROLLBACK")
            for (_, s) in statements { s.reset() }
            lastCommitFailed.store(true, ordering: .relaxed)
            return error.isFull || error.code == SQLITE_FULL ? .full(error) : .failed(error)
        }
    }

    /// Commits `batch`; returns what must be tried again later (the disk is full).
    private func write(_ batch: [Entry]) -> [Entry] {
        switch commit(batch) {
        case .committed:
            complete(batch, true)
            // Not after every commit: ten times a second is soon enough to stop new work.
            if isFull.load(ordering: .relaxed) || Date().timeIntervalSince(lastSpaceCheck) >= 0.1 { checkSpace() }
            return []
        case .failed(let error):
            Log.error("store.write_failed", ["error": error])
            complete(batch, false)
            return []
        case .full(let error):
            setFull(true, "\(error)")
            let refused = batch.filter { $0.failable }
            let kept = batch.filter { !$0.failable }
            complete(refused, false)
            // Without the refused new work, what was already accepted may fit now.
            if refused.isEmpty || kept.isEmpty { return kept }
            switch commit(kept) {
            case .committed:
                complete(kept, true)
                return []
            case .full:
                return kept
            case .failed(let error):
                Log.error("store.write_failed", ["error": error])
                complete(kept, false)
                return []
            }
        }
    }

    /// Completions, grouped so that each loop is woken once per commit.
    private func complete(_ entries: [Entry], _ ok: Bool) {
        for entry in entries {
            guard let completion = entry.completion else { continue }
            if let executor = entry.executor {
                executor { completion(ok) }
            } else {
                completion(ok)
            }
        }
    }

    /// Whether new work fits: the database below `maxBytes`, and some room left on
    /// the disk (a twentieth of the file system, at most 16 MiB), so that the
    /// writes that follow from accepted work can still be made.
    private func checkSpace() {
        lastSpaceCheck = Date()
        guard let pages = try? cached("PRAGMA page_count").scalar(),
              let free = try? cached("PRAGMA freelist_count").scalar()
        else { return }
        let freeBytes = Int(free) * pageSize
        if let maxBytes, (Int(pages) - Int(free)) * pageSize >= maxBytes {
            setFull(true, "the database reached store_max_size (\(maxBytes) bytes)")
            return
        }
        var fs = statvfs()
        if statvfs(directory, &fs) == 0 {
            let available = Int(fs.f_bavail) * Int(fs.f_frsize)
            let reserve = min(16 << 20, Int(fs.f_blocks) * Int(fs.f_frsize) / 20)
            if available + freeBytes < reserve {
                setFull(true, "less than \(reserve) bytes left on the disk")
                return
            }
        }
        setFull(false, "")
    }

    private func setFull(_ full: Bool, _ why: String) {
        if isFull.exchange(full, ordering: .relaxed) == full { return }
        if full {
            Log.error("store.full", ["reason": why])
        } else {
            Log.info("store.space_recovered")
        }
    }

    /// Drops message bodies nothing refers to any more.
    private func cleanup() {
        lastCleanup = Date()
        do {
            try db.exec("""
                DELETE FROM messages WHERE routed = 1
                  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id)
                  AND NOT EXISTS (SELECT 1 FROM retained r WHERE r.message_id = messages.id)
                """)
        } catch {
            Log.warning("store.cleanup_failed", ["error": error])
        }
    }

    private func applyPlugin(_ write: PluginWrite) throws(StoreError) {
        // Prepared once: a post's history row costs its INSERT, not three parses more.
        try cached("SAVEPOINT plugin_write").run()
        do {
            try write.work(db)
        } catch {
            Log.error("store.plugin_write_failed", ["plugin": write.plugin, "error": error])
            try cached("ROLLBACK TO plugin_write").run()
        }
        try cached("RELEASE plugin_write").run()
    }

    // MARK: Plugins

    /// Brings a plugin's tables to the newest version: `migrations[i]` takes them
    /// from version i to i + 1, each in its own transaction. Refuses tables newer
    /// than the plugin knows. Only before `start()`.
    public func migratePlugin(_ name: String, _ migrations: [String]) throws(StoreError) {
        precondition(thread == nil, "plugin migrations run before the store starts")
        try db.exec("CREATE TABLE IF NOT EXISTS plugin_schema(name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        let s = try db.prepare("SELECT version FROM plugin_schema WHERE name = ?")
        s.bind(1, name)
        let current = try s.step() ? Int(s.int(0)) : 0
        s.reset()
        if current > migrations.count {
            throw StoreError("the \(name) tables in \(db.path) have version \(current), newer than this Parley understands (\(migrations.count))")
        }
        for version in current..<migrations.count {
            do {
                try db.exec("BEGIN IMMEDIATE")
                try db.exec(migrations[version])
                let set = try db.prepare("INSERT OR REPLACE INTO plugin_schema(name, version) VALUES (?, ?)")
                try set.bind(1, name).bind(2, Int64(version + 1)).run()
                try db.exec("COMMIT")
            } catch {
                try? db.exec("ROLLBACK")
                throw StoreError("\(name) migration to version \(version + 1) failed: \(error)", code: error.code)
            }
        }
    }

    /// Runs `body` on the database now, on the calling thread. Only before `start()`
    /// (loading a plugin's state at start) or from the command line's own store.
    public func withDatabase<T>(_ body: (SQLiteDatabase) throws -> T) throws -> T {
        precondition(thread == nil, "direct database access only before the store starts")
        return try body(db)
    }

    /// Runs `work` on the store's thread after every write queued before it; the
    /// loops never wait for it.
    public func read(_ work: @escaping @Sendable (SQLiteDatabase) -> Void) {
        submitRead { [self] in work(db) }
    }

    private func cached(_ sql: String) throws(StoreError) -> Statement {
        if let s = statements[sql] { return s }
        let s = try db.prepare(sql)
        statements[sql] = s
        return s
    }

    private func apply(_ op: StoreOp) throws(StoreError) {
        switch op {
        case .message(let m):
            try cached("""
                INSERT OR IGNORE INTO messages(id, topic, payload, qos, retain, properties, expires_at, origin, routed)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)
                """)
                .bind(1, m.id).bind(2, bytes: m.topic).bind(3, bytes: m.payload).bind(4, Int64(m.qos))
                .bind(5, Int64(m.retain ? 1 : 0)).bind(6, bytes: m.properties).bind(7, m.expiresAt).bind(8, m.origin).run()
        case .messageBody(let m):
            try cached("""
                INSERT OR IGNORE INTO messages(id, topic, payload, qos, retain, properties, expires_at, origin, routed)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
                """)
                .bind(1, m.id).bind(2, bytes: m.topic).bind(3, bytes: m.payload).bind(4, Int64(m.qos))
                .bind(5, Int64(m.retain ? 1 : 0)).bind(6, bytes: m.properties).bind(7, m.expiresAt).bind(8, m.origin).run()
        case .retain(let topic, let id):
            if let id {
                try cached("INSERT OR REPLACE INTO retained(topic, message_id) VALUES (?, ?)").bind(1, bytes: topic).bind(2, id).run()
            } else {
                try cached("DELETE FROM retained WHERE topic = ?").bind(1, bytes: topic).run()
            }
        case .routed(let id):
            try cached("UPDATE messages SET routed = 1 WHERE id = ?").bind(1, id).run()
        case .enqueue(let d):
            var ids: [UInt8] = []
            for v in d.subscriptionIDs { ids += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
            try cached("""
                INSERT OR IGNORE INTO deliveries(client_id, seq, message_id, qos, retain, sub_ids, packet_id, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
                .bind(1, d.clientID).bind(2, d.seq).bind(3, d.messageID).bind(4, Int64(d.qos)).bind(5, Int64(d.retain ? 1 : 0))
                .bind(6, bytes: ids.isEmpty ? nil : ids).bind(7, d.packetID.map { Int64($0) }).bind(8, Int64(d.state.rawValue)).run()
        case .deliverySent(let c, let seq, let packetID):
            try cached("UPDATE deliveries SET state = 1, packet_id = ? WHERE client_id = ? AND seq = ?")
                .bind(1, Int64(packetID)).bind(2, c).bind(3, seq).run()
        case .deliveryReleased(let c, let seq):
            try cached("UPDATE deliveries SET state = 2 WHERE client_id = ? AND seq = ?").bind(1, c).bind(2, seq).run()
        case .deliveryDone(let c, let seq):
            try cached("DELETE FROM deliveries WHERE client_id = ? AND seq = ?").bind(1, c).bind(2, seq).run()
        case .incoming(let c, let id):
            try cached("INSERT OR IGNORE INTO incoming(client_id, packet_id) VALUES (?, ?)").bind(1, c).bind(2, Int64(id)).run()
        case .incomingDone(let c, let id):
            try cached("DELETE FROM incoming WHERE client_id = ? AND packet_id = ?").bind(1, c).bind(2, Int64(id)).run()
        case .session(let s):
            try cached("""
                INSERT OR REPLACE INTO sessions(client_id, expiry_interval, expires_at, username, version, will, will_delay)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
                .bind(1, s.clientID).bind(2, Int64(s.expiryInterval)).bind(3, s.expiresAt).bind(4, s.username)
                .bind(5, Int64(s.version)).bind(6, bytes: s.will?.blob).bind(7, Int64(s.willDelay)).run()
        case .sessionDisconnected(let c, let expiresAt):
            try cached("UPDATE sessions SET expires_at = ? WHERE client_id = ?").bind(1, expiresAt).bind(2, c).run()
        case .clearWill(let c):
            try cached("UPDATE sessions SET will = NULL WHERE client_id = ?").bind(1, c).run()
        case .deleteSession(let c):
            for sql in [
                "DELETE FROM subscriptions WHERE client_id = ?", "DELETE FROM deliveries WHERE client_id = ?",
                "DELETE FROM incoming WHERE client_id = ?", "DELETE FROM sessions WHERE client_id = ?",
            ] {
                try cached(sql).bind(1, c).run()
            }
        case .subscribe(let s):
            try cached("INSERT OR REPLACE INTO subscriptions(client_id, filter, options, identifier) VALUES (?, ?, ?, ?)")
                .bind(1, s.clientID).bind(2, bytes: s.filter).bind(3, Int64(s.options))
                .bind(4, s.identifier.map { Int64($0) }).run()
        case .unsubscribe(let c, let filter):
            try cached("DELETE FROM subscriptions WHERE client_id = ? AND filter = ?").bind(1, c).bind(2, bytes: filter).run()
        case .dropDeliveries(let c, let prefix):
            try cached("""
                DELETE FROM deliveries WHERE client_id = ? AND state = 0 AND message_id IN
                    (SELECT id FROM messages WHERE substr(topic, 1, ?) = ?)
                """).bind(1, c).bind(2, Int64(prefix.count)).bind(3, bytes: prefix).run()
        case .plugin(let write):
            try applyPlugin(write)
        }
    }
}
