import JSON
import Store

/// A page of a room's history: ids between `after` and `before` (both exclusive),
/// at most `limit` (default 50, at most 500), in ascending id order. With `after`
/// the page starts right after it (paging forward); otherwise it ends right
/// before `before` (or at the newest message), paging back.
struct HistoryQuery: Sendable {
    var before: Int64?
    var after: Int64?
    var limit = 50
    static let maxLimit = 500

    init(before: Int64? = nil, after: Int64? = nil, limit: Int = 50) {
        self.before = before
        self.after = after
        self.limit = limit
    }

    /// From an MQTT request body (`{}` or empty means the newest page); nil when malformed.
    init?(_ payload: ArraySlice<UInt8>) {
        if payload.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return }
        guard let value = try? JSONValue.parse(payload, maxBytes: 1024, maxDepth: 2), value.object != nil else { return nil }
        func id(_ key: String) -> Int64?? {
            guard let v = value[key], !v.isNull else { return .some(nil) }
            guard let n = v.int64, n >= 0 else { return nil }
            return .some(n)
        }
        guard let b = id("before"), let a = id("after"), let l = id("limit") else { return nil }
        before = b
        after = a
        if let l {
            guard (1...Int64(Self.maxLimit)).contains(l) else { return nil }
            limit = Int(l)
        }
    }

    struct Row: Sendable {
        let id: Int64, sender: String, ts: Int64, body: String, ckey: String?
    }

    /// The rows of the page and whether more lie beyond it in its direction.
    func rows(room: String, db: SQLiteDatabase) -> (rows: [Row], hasMore: Bool) {
        let upper = before ?? Int64.max
        let lower = after ?? 0
        let forward = after != nil
        let sql = forward
            ? "SELECT id, sender, ts, body, ckey FROM chat_messages WHERE room = ? AND id > ? AND id < ? ORDER BY id ASC LIMIT ?"
            : "SELECT id, sender, ts, body, ckey FROM chat_messages WHERE room = ? AND id > ? AND id < ? ORDER BY id DESC LIMIT ?"
        var rows: [Row] = []
        do {
            let s = try db.cached(sql)
            s.bind(1, room).bind(2, lower).bind(3, upper).bind(4, Int64(limit + 1))
            defer { s.reset() }
            while try s.step() {
                rows.append(Row(id: s.int(0), sender: s.text(1) ?? "", ts: s.int(2), body: s.text(3) ?? "", ckey: s.text(4)))
            }
        } catch {
            return ([], false)
        }
        let hasMore = rows.count > limit
        if hasMore { rows.removeLast() }
        if !forward { rows.reverse() }
        return (rows, hasMore)
    }

    /// `{"messages": [envelope, ...], "has_more": bool}`
    func answer(room: String, db: SQLiteDatabase) -> [UInt8] {
        let (rows, hasMore) = self.rows(room: room, db: db)
        var out: [UInt8] = Array(#"{"messages":["#.utf8)
        for (i, r) in rows.enumerated() {
            if i > 0 { out.append(0x2C) }
            out += Envelope.post(id: r.id, room: room, from: r.sender, ts: r.ts, body: r.body, ckey: r.ckey)
        }
        out += Array(#"],"has_more":"#.utf8) + Array((hasMore ? "true" : "false").utf8) + [0x7D]
        return out
    }
}
