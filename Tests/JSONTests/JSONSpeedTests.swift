import Foundation
import JSON
import Testing

/// Timing loops, run by hand on a release build (nothing is asserted, so the
/// figures never fail a CI run on a slow or busy machine):
///
///     PARLEY_JSON_SPEED=1 swift test -c release --filter JSONSpeedTests
@Suite("JSON speed (PARLEY_JSON_SPEED=1)", .enabled(if: ProcessInfo.processInfo.environment["PARLEY_JSON_SPEED"] == "1"))
struct JSONSpeedTests {
    /// Nanoseconds per call of `body`, best of five rounds of `iterations` calls.
    func nanoseconds(_ iterations: Int, _ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { body() }
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
            best = min(best, elapsed / Double(iterations))
        }
        return best
    }

    @Test("parse and write a 100-byte chat body")
    func chatBody() throws {
        let body = Array(#"{"body":"hi there, the meeting moves to room 4 at three o'clock sharp, see you","ckey":"c-1f3a9d7e-0001"}"#.utf8)
        var sink = 0
        let parse = nanoseconds(200_000) {
            if let v = try? JSONValue.parse(body) { sink &+= v.object?.count ?? 0 }
        }
        let escaped = Array(#"{"body":"caf\u00e9 \"quoted\" line\nnext line, with accents: d\u00e9j\u00e0 vu","ckey":"c-1"}"#.utf8)
        let parseEscaped = nanoseconds(200_000) {
            if let v = try? JSONValue.parse(escaped) { sink &+= v.object?.count ?? 0 }
        }
        let write = nanoseconds(200_000) {
            var w = JSONWriter()
            w.object { o in
                o.field("id", 17)
                o.field("room", "general")
                o.field("from", "alice")
                o.field("ts", "2026-12-01T20:15:00.123Z")
                o.field("body", "hi there, the meeting moves to room 4 at three o'clock")
                o.field("ckey", "c-1f3a9d7e-0001")
            }
            sink &+= w.bytes.count
        }
        print("JSON speed: parse \(body.count) B chat body \(Int(parse)) ns; with escapes (\(escaped.count) B) \(Int(parseEscaped)) ns; write envelope \(Int(write)) ns (sink \(sink))")
    }
}
