import Foundation
import Reactor

/// A configuration error, pointing at the file and line.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let line: Int
    public let reason: String
    public init(file: String, line: Int, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }
    public var description: String { line > 0 ? "\(file):\(line): \(reason)" : "\(file): \(reason)" }
}

/// `key = value` lines, `#` comments, blank lines. Keys may repeat where a
/// setting is a list (`listen`, `acl`). Values may be quoted with double quotes.
public struct ConfigFile: Sendable {
    public struct Entry: Sendable {
        public let key: String
        public let value: String
        public let line: Int
    }

    public let path: String
    public let entries: [Entry]

    public init(path: String, text: String) throws(ConfigError) {
        self.path = path
        var entries: [Entry] = []
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ConfigError(file: path, line: lineNumber, reason: "expected 'key = value'")
            }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            var value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if key.isEmpty || !key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) {
                throw ConfigError(file: path, line: lineNumber, reason: "'\(key)' is not a valid setting name")
            }
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else {
                    throw ConfigError(file: path, line: lineNumber, reason: "unterminated quoted value")
                }
                value = String(value.dropFirst().dropLast())
            } else if let hash = value.range(of: " #") {
                value = value[..<hash.lowerBound].trimmingCharacters(in: .whitespaces)
            }
            entries.append(Entry(key: key, value: value, line: lineNumber))
        }
        self.entries = entries
    }

    public static func load(_ path: String) throws(ConfigError) -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: 0, reason: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 0, reason: "the file is not UTF-8 text")
        }
        return try ConfigFile(path: path, text: text)
    }
}

/// Parsers for setting values; each error names what was expected.
public enum ConfigValue {
    public static func bool(_ v: String) -> Bool? {
        switch v.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    /// A byte size: `1048576`, `64K`, `16M`, `1G` (powers of 1024; `KiB`, `MB` also read).
    public static func size(_ v: String) -> Int? {
        let lower = v.lowercased()
        let units: [(String, Int)] = [("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("kb", 1 << 10),
                                      ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30),
                                      ("b", 1)]
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            guard let n = Int(lower.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), n >= 0 else {
                return nil
            }
            let (product, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow ? nil : product
        }
        guard let n = Int(lower), n >= 0 else { return nil }
        return n
    }

    /// A duration in seconds: `30`, `30s`, `5m`, `2h`, `7d`; `never` is UInt32.max.
    public static func seconds(_ v: String) -> UInt32? {
        let lower = v.lowercased()
        if lower == "never" { return UInt32.max }
        let units: [(String, UInt64)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            // Multiplied with an overflow check: a huge number is an error, not a crash.
            guard let n = UInt64(lower.dropLast()) else { return nil }
            let (product, overflow) = n.multipliedReportingOverflow(by: factor)
            guard !overflow, product < UInt64(UInt32.max) else { return nil }
            return UInt32(product)
        }
        guard let n = UInt32(lower), n < UInt32.max else { return nil }
        return n
    }
}
