import Glibc
import Synchronization

/// One line per event on stderr: `ts=... level=info event=client.connect key=value ...`.
/// Values with spaces or quotes are quoted. Lines are written with one write(2)
/// so that lines from several threads never interleave.
public enum Log {
    public enum Level: Int, Comparable, Sendable {
        case debug = 0, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        var name: String {
            switch self {
            case .debug: return "debug"
            case .info: return "info"
            case .warning: return "warn"
            case .error: return "error"
            }
        }
        public init?(name: String) {
            switch name.lowercased() {
            case "debug": self = .debug
            case "info": self = .info
            case "warn", "warning": self = .warning
            case "error": self = .error
            default: return nil
            }
        }
    }

    private static let minimum = Atomic<Int>(Level.info.rawValue)

    public static var level: Level {
        get { Level(rawValue: minimum.load(ordering: .relaxed)) ?? .info }
        set { minimum.store(newValue.rawValue, ordering: .relaxed) }
    }

    @inline(__always)
    public static func enabled(_ level: Level) -> Bool { level.rawValue >= minimum.load(ordering: .relaxed) }

    public static func debug(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        if enabled(.debug) { write(.debug, event, fields) }
    }
    public static func info(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        if enabled(.info) { write(.info, event, fields) }
    }
    public static func warning(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        if enabled(.warning) { write(.warning, event, fields) }
    }
    public static func error(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        if enabled(.error) { write(.error, event, fields) }
    }

    static func write(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, Any>) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &tm)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        var line = "ts=\(tm.tm_year + 1900)-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
        line += "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
        line += " level=\(level.name) event=\(event)"
        for (key, value) in fields {
            line += " \(key)=\(quote(String(describing: value)))"
        }
        line += "\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    static func quote(_ s: String) -> String {
        if s.isEmpty { return "\"\"" }
        var needs = false
        for u in s.utf8 where u <= 0x20 || u == 0x22 || u == 0x3D || u == 0x5C || u >= 0x7F {
            needs = true
            break
        }
        if !needs { return s }
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if ch.value < 0x20 { out += "\\u{\(String(ch.value, radix: 16))}" } else { out.unicodeScalars.append(ch) }
            }
        }
        return out + "\""
    }
}
