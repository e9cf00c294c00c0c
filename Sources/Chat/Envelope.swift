import Glibc
import JSON
import MQTT

/// The server-stamped forms of what members publish (SPEC section 3). Built with
/// `JSONWriter`, straight into the payload bytes.
enum Envelope {
    /// `{"id", "room", "from", "ts", "body", "ckey"?}`
    static func post(id: Int64, room: String, from: String, ts: Int64, body: String, ckey: String?) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.field("id", id)
            o.field("room", room)
            o.field("from", from)
            o.field("ts", Timestamp.iso(ts))
            o.field("body", body)
            if let ckey { o.field("ckey", ckey) }
        }
        return w.bytes
    }

    /// The v5 user properties of a post: `parley-id`, `parley-from`, `parley-ts`.
    static func postProperties(id: Int64, from: String, ts: Int64) -> Properties {
        var p = Properties()
        p.payloadFormatIndicator = true
        p.contentType = "application/json"
        p.userProperties = [UserProperty("parley-id", String(id)),
                            UserProperty("parley-from", from),
                            UserProperty("parley-ts", Timestamp.iso(ts))]
        return p
    }

    /// `{"id", "from", "ts", "body"}` (a direct message; `id` in the recipient's inbox).
    static func direct(id: Int64, from: String, ts: Int64, body: String) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.field("id", id)
            o.field("from", from)
            o.field("ts", Timestamp.iso(ts))
            o.field("body", body)
        }
        return w.bytes
    }

    /// `{"from", "ts"}` (typing).
    static func typing(from: String, ts: Int64) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.field("from", from)
            o.field("ts", Timestamp.iso(ts))
        }
        return w.bytes
    }

    /// `{"from", "up_to", "ts"}` (read receipts).
    static func receipt(from: String, upTo: Int64, ts: Int64) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.field("from", from)
            o.field("up_to", upTo)
            o.field("ts", Timestamp.iso(ts))
        }
        return w.bytes
    }

    /// `{"type", "user", "by", "ts"}` (room events).
    static func event(_ type: String, user: String?, by: String?, ts: Int64) -> [UInt8] {
        var w = JSONWriter()
        w.object { o in
            o.field("type", type)
            if let user { o.field("user", user) } else { o.nullField("user") }
            if let by { o.field("by", by) } else { o.nullField("by") }
            o.field("ts", Timestamp.iso(ts))
        }
        return w.bytes
    }
}

/// Wall-clock times as the chat layer writes them.
public enum Timestamp {
    /// Milliseconds since 1970.
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// `2026-12-01T20:15:00.123Z`
    public static func iso(_ millis: Int64) -> String {
        var seconds = time_t(millis / 1000)
        var t = tm()
        gmtime_r(&seconds, &t)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let ms = Int(millis % 1000)
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(t.tm_year + 1900)-\(two(t.tm_mon + 1))-\(two(t.tm_mday))T\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)).\(msText)Z"
    }
}
