// Runs the real `parley` binary for a test: port 0 on loopback, an optional
// config file, a private data directory; stopped by PID with SIGTERM (SIGKILL
// after a bound). Its stderr is kept for diagnostics.
import Foundation
import Glibc
import Testing

struct BrokerError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

final class BrokerProcess: @unchecked Sendable {
    let process: Process
    let port: UInt16
    let directory: URL
    private let log: LogCollector
    private var stopped = false
    private var termSent = false

    /// Sends SIGTERM now (by PID); `stop()` then waits for the exit and checks its status.
    func signalTerm() {
        termSent = true
        kill(pid, SIGTERM)
    }

    /// The `parley` executable built next to the test bundle.
    static func binaryPath() throws -> String {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["PARLEY_BINARY"] { candidates.append(env) }
        // `swift test` on Linux runs `<bin>/parleyPackageTests.xctest` (an executable).
        let arg0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(arg0.deletingLastPathComponent().appendingPathComponent("parley").path)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("parley").path)
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("parley").path)
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        throw BrokerError("parley binary not found; tried \(candidates)")
    }

    /// Starts a broker and waits (bounded) for its listen line.
    init(config: String? = nil, loops: Int = 2, startTimeout: Double = 10) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        directory = dir
        var args = ["serve", "--mqtt", "127.0.0.1:0", "--loops", "\(loops)", "--data", dir.appendingPathComponent("data").path]
        // Plain MQTT (anonymous clients allowed) unless the test's config names plugins.
        if !(config ?? "").contains("plugins") { args += ["--plugins", ""] }
        if let config {
            let file = dir.appendingPathComponent("parley.conf")
            try config.write(to: file, atomically: true, encoding: .utf8)
            args += ["--config", file.path]
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.binaryPath())
        p.arguments = args
        p.currentDirectoryURL = dir
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        let log = LogCollector(err.fileHandleForReading)
        self.log = log
        process = p
        try p.run()
        log.start()
        guard let line = log.waitForLine(containing: "event=listener.open", timeout: startTimeout) else {
            Self.terminate(p)
            throw BrokerError("broker did not report listener.open within \(startTimeout)s; stderr:\n\(log.text)")
        }
        guard let range = line.range(of: #"address=127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = UInt16(line[range].split(separator: ":").last!)
        else {
            Self.terminate(p)
            throw BrokerError("no port in listen line: \(line)")
        }
        self.port = port
    }

    var pid: Int32 { process.processIdentifier }
    var stderrText: String { log.text }

    /// Waits (bounded) for a stderr line containing `needle` (e.g. an event the test must
    /// see happen before going on); the line, or nil after `timeout` seconds.
    func waitForLog(containing needle: String, timeout: Double = 3) -> String? {
        log.waitForLine(containing: needle, timeout: timeout)
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM by PID, wait up to `timeout`, then SIGKILL. Returns the exit status.
    /// (`immediate` is kept for callers that say so; SIGTERM is safe at any moment.)
    @discardableResult
    func stop(timeout: Double = 5, immediate: Bool = false) -> Int32 {
        if stopped { return process.isRunning ? -1 : process.terminationStatus }
        stopped = true
        if termSent {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(10_000) }
        }
        if !process.isRunning && !termSent {
            // Nobody stopped it: it crashed or exited during the test.
            log.waitForEOF(timeout: 2)
            Issue.record("broker exited during the test (status \(process.terminationStatus)); stderr tail:\n\(tail)")
            try? FileManager.default.removeItem(at: directory)
            return process.terminationStatus
        }
        Self.terminate(process, timeout: timeout)
        log.waitForEOF(timeout: 2)
        try? FileManager.default.removeItem(at: directory)
        if process.isRunning {
            Issue.record("broker did not exit after SIGTERM + SIGKILL")
            return -1
        }
        if process.terminationReason != .exit || process.terminationStatus != 0 {
            Issue.record("broker did not shut down cleanly on SIGTERM (status \(process.terminationStatus)); stderr tail:\n\(tail)")
        }
        return process.terminationStatus
    }

    /// The last lines of stderr (a crash report starts with "Fatal error").
    var tail: String {
        let text = log.text
        if let r = text.range(of: "Fatal error") { return String(text[r.lowerBound...].prefix(600)) }
        return String(text.suffix(1500))
    }

    private static func terminate(_ p: Process, timeout: Double = 5) {
        guard p.isRunning else { return }
        let pid = p.processIdentifier
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning {
            kill(pid, SIGKILL)
            let hard = Date().addingTimeInterval(5)
            while p.isRunning && Date() < hard { usleep(10_000) }
        }
    }

    deinit { stop() }
}

/// Reads a pipe on its own thread and keeps every line.
final class LogCollector: @unchecked Sendable {
    private let handle: FileHandle
    private let cond = NSCondition()
    private var data = Data()
    private var eof = false

    init(_ handle: FileHandle) { self.handle = handle }

    func start() {
        let t = Thread { [self] in
            while true {
                let chunk = handle.availableData
                cond.lock()
                if chunk.isEmpty { eof = true } else { data.append(chunk) }
                cond.broadcast()
                cond.unlock()
                if chunk.isEmpty { return }
            }
        }
        t.start()
    }

    var text: String {
        cond.lock()
        defer { cond.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    func waitForLine(containing needle: String, timeout: Double) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock()
        defer { cond.unlock() }
        while true {
            let s = String(decoding: data, as: UTF8.self)
            if let line = s.split(separator: "\n").first(where: { $0.contains(needle) }) { return String(line) }
            if eof || !cond.wait(until: deadline) { return nil }
        }
    }

    func waitForEOF(timeout: Double) {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock()
        defer { cond.unlock() }
        while !eof { if !cond.wait(until: deadline) { return } }
    }
}
