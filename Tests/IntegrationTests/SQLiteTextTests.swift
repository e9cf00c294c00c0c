import Store
import Testing

/// Text goes into SQLite and comes back whole: by its length in bytes, not as a C
/// string, so a U+0000 inside (a chat body may hold one) does not cut it short.
@Suite("SQLite text")
struct SQLiteTextTests {
    @Test("text round-trips whole", arguments: ["", "\u{0}", "a\u{0}b", "plain", "héllo \u{1F600}", String(repeating: "x\u{0}", count: 5_000)])
    func roundTrip(text: String) throws {
        let db = try SQLiteDatabase(path: ":memory:")
        try db.exec("CREATE TABLE t (v TEXT)")
        try db.prepare("INSERT INTO t (v) VALUES (?1)").bind(1, text).run()
        let read = try db.prepare("SELECT v, length(CAST(v AS BLOB)), v IS NULL FROM t")
        #expect(try read.step())
        #expect(read.text(0) == text)
        #expect(read.int(1) == Int64(text.utf8.count))
        #expect(read.int(2) == 0)  // an empty text is not NULL
    }

    @Test("a nil text is NULL")
    func null() throws {
        let db = try SQLiteDatabase(path: ":memory:")
        try db.exec("CREATE TABLE t (v TEXT)")
        try db.prepare("INSERT INTO t (v) VALUES (?1)").bind(1, nil as String?).run()
        let read = try db.prepare("SELECT v FROM t")
        #expect(try read.step())
        #expect(read.text(0) == nil)
    }
}
