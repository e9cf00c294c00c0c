import CSQLite
import Foundation

/// A failed database operation, with SQLite's message.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let description: String
    public init(_ text: String, code: Int32 = 0) {
        self.code = code
        self.description = text
    }
    /// The code of "another running Parley holds the data directory".
    public static let heldByAnotherParley: Int32 = -2
    /// The disk (or the configured size cap) is full.
    public var isFull: Bool { code == SQLITE_FULL || (code & 0xFF) == SQLITE_IOERR && errno == ENOSPC }
}

/// A thin SQLite connection: one per thread that uses it. Plugins get the store's
/// connection inside their writes and reads (on the store's thread).
public final class SQLiteDatabase {
    let handle: OpaquePointer
    let path: String
    private var statements: [String: Statement] = [:]

    public init(path: String) throws(StoreError) {
        var db: OpaquePointer? = nil
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let text = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close(db) }
            throw StoreError("cannot open \(path): \(text)", code: rc)
        }
        handle = db
        self.path = path
        sqlite3_busy_timeout(db, 5000)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { sqlite3_close_v2(handle) }

    /// A prepared statement kept for reuse (reset after each use).
    public func cached(_ sql: String) throws(StoreError) -> Statement {
        if let s = statements[sql] { return s }
        let s = try prepare(sql)
        statements[sql] = s
        return s
    }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    var lastError: String { String(cString: sqlite3_errmsg(handle)) }

    public func exec(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>? = nil
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? lastError
            sqlite3_free(message)
            throw StoreError("\(text) (in: \(sql.prefix(80)))", code: rc)
        }
    }

    public func prepare(_ sql: String) throws(StoreError) -> Statement {
        var stmt: OpaquePointer? = nil
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw StoreError("\(lastError) (in: \(sql.prefix(80)))", code: rc) }
        return Statement(stmt, db: self)
    }

    public func scalarInt(_ sql: String) throws(StoreError) -> Int64? {
        let s = try prepare(sql)
        guard try s.step() else { return nil }
        return s.isNull(0) ? nil : s.int(0)
    }
}

/// A prepared statement, reset after each use.
public final class Statement {
    let stmt: OpaquePointer
    unowned let db: SQLiteDatabase

    init(_ stmt: OpaquePointer, db: SQLiteDatabase) {
        self.stmt = stmt
        self.db = db
    }

    deinit { sqlite3_finalize(stmt) }

    @discardableResult
    public func bind(_ index: Int32, _ value: Int64?) -> Statement {
        if let value { sqlite3_bind_int64(stmt, index, value) } else { sqlite3_bind_null(stmt, index) }
        return self
    }

    @discardableResult
    public func bind(_ index: Int32, _ value: String?) -> Statement {
        guard var value else {
            sqlite3_bind_null(stmt, index)
            return self
        }
        // By its length in bytes, not as a C string: text may hold U+0000 (a chat body
        // may), and a C string would end there, storing less than was acknowledged.
        value.withUTF8 { p in
            p.withMemoryRebound(to: CChar.self) { c in
                _ = sqlite3_bind_text(stmt, index, c.baseAddress ?? Self.emptyText, Int32(c.count), parley_sqlite_transient())
            }
        }
        return self
    }

    /// Where an empty text is bound from: SQLite binds NULL for a null pointer.
    private static let emptyText: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.initialize(to: 0)
        return UnsafePointer(p)
    }()

    @discardableResult
    public func bind<C: Collection>(_ index: Int32, bytes: C?) -> Statement where C.Element == UInt8 {
        guard let bytes else {
            sqlite3_bind_null(stmt, index)
            return self
        }
        let array = Array(bytes)
        array.withUnsafeBytes { p in
            _ = sqlite3_bind_blob(stmt, index, p.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(p.count),
                                  parley_sqlite_transient())
        }
        return self
    }

    /// Steps once: true when a row is available.
    public func step() throws(StoreError) -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw StoreError(db.lastError, code: rc)
    }

    /// The first column of the first row (0 without a row), then resets.
    public func scalar() throws(StoreError) -> Int64 {
        defer { reset() }
        return try step() ? int(0) : 0
    }

    /// Runs to completion and resets.
    public func run() throws(StoreError) {
        defer { reset() }
        while try step() {}
    }

    public func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
    public func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }
    public func text(_ column: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, column) else { return nil }
        // Its length in bytes (asked after the text, as SQLite wants): U+0000 included.
        let count = Int(sqlite3_column_bytes(stmt, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: count), as: UTF8.self)
    }
    public func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(stmt, column))
        guard count > 0, let p = sqlite3_column_blob(stmt, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: count))
    }
}
