// Harness (d): the configuration file parser and the settings it feeds.
// Any bytes must end in a configuration or a ConfigError that names a line of
// the file; never a crash, a trap or a hang.
import Broker

/// The harness: one input, returns 0; a finding traps.
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
    do {
        let file = try ConfigFile(path: "fuzz.conf", text: text)
        for e in file.entries where e.line < 1 || e.line > lines {
            fatalError("entry '\(e.key)' claims line \(e.line) of \(lines)")
        }
        var config = ServerConfig()
        do {
            try config.apply(file)
        } catch {
            if error.line < 0 || error.line > lines { fatalError("error points at line \(error.line) of \(lines)") }
        }
    } catch {
        if error.line < 1 || error.line > lines { fatalError("parse error points at line \(error.line) of \(lines)") }
    }
    return 0
}
