// Real peers for the transport tests: certificates made by the openssl CLI at run
// time, and helper servers (Tests/notify/*_peer.py) started as child processes on
// free loopback ports. Each is stopped by its PID; a helper also exits when its
// stdin closes, so none outlives the test process.
import Foundation
import Glibc
import Testing

struct PeerError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

/// Tests/notify, found from this file's path.
let notifyScriptsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("notify")

/// A fresh directory under the system's temporary one, removed by `remove()`.
func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// ca.pem, other-ca.pem, server.pem/key (localhost, 127.0.0.1, ::1), wrong.pem/key
/// (wrong.example), made by Tests/notify/make_test_certs.sh.
struct TestCertificates: Sendable {
    let directory: URL
    var caFile: String { directory.appendingPathComponent("ca.pem").path }
    var otherCAFile: String { directory.appendingPathComponent("other-ca.pem").path }

    init() throws {
        directory = try makeTemporaryDirectory("parley-transport-certs")
        let script = notifyScriptsDirectory.appendingPathComponent("make_test_certs.sh").path
        let status = try runTool("/bin/sh", [script, directory.path], timeout: 20)
        guard status == 0 else { throw PeerError("make_test_certs.sh failed (exit \(status)): is the openssl CLI installed?") }
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// Runs a tool to its end (bounded); its exit status.
func runTool(_ path: String, _ arguments: [String], timeout: Double) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    p.standardInput = FileHandle.nullDevice
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let end = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < end { usleep(10_000) }
    if p.isRunning {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw PeerError("\(path) \(arguments) did not finish within \(timeout) s")
    }
    return p.terminationStatus
}

/// A helper server (python3 script) that prints its ports as one JSON line.
final class PeerProcess: @unchecked Sendable {
    private let process = Process()
    private let stdin = Pipe()
    private let errorLog: URL
    /// Listener name -> port, from the helper's first line.
    let ports: [String: UInt16]

    init(script: String, arguments: [String], startTimeout: Double = 15) throws {
        errorLog = FileManager.default.temporaryDirectory.appendingPathComponent("parley-peer-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: errorLog.path, contents: nil)
        let stdout = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", notifyScriptsDirectory.appendingPathComponent(script).path] + arguments
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: errorLog)
        do {
            try process.run()
        } catch {
            throw PeerError("cannot start python3 for \(script): \(error) (Tests/setup.sh installs python3)")
        }
        let line = Self.firstLine(of: stdout.fileHandleForReading.fileDescriptor, timeout: startTimeout)
        guard let line, let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Int] else {
            let log = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
            try? stdin.fileHandleForWriting.close()
            Self.stop(process, grace: 1)
            try? FileManager.default.removeItem(at: errorLog)
            throw PeerError("\(script) did not report its ports within \(startTimeout) s; stderr:\n\(log)")
        }
        ports = object.mapValues { UInt16($0) }
    }

    func port(_ name: String) -> UInt16 { ports[name] ?? 0 }

    deinit {
        // The helper exits when its stdin closes; SIGTERM and SIGKILL (by PID) are
        // for one that does not (a child may inherit a mask that blocks SIGTERM).
        try? stdin.fileHandleForWriting.close()
        Self.stop(process, grace: 2)
        try? FileManager.default.removeItem(at: errorLog)
    }

    private static func stop(_ process: Process, grace: Double = 0) {
        let pid = process.processIdentifier
        for signal in [0, SIGTERM, SIGKILL] {
            if signal != 0 { kill(pid, signal) }
            let end = Date().addingTimeInterval(signal == 0 ? grace : 1)
            while process.isRunning && Date() < end { usleep(5_000) }
            if !process.isRunning { break }
        }
        process.waitUntilExit()
    }

    private static func firstLine(of fd: Int32, timeout: Double) -> String? {
        var bytes: [UInt8] = []
        let end = Date().addingTimeInterval(timeout)
        while !bytes.contains(0x0A) {
            let left = Int32(max(0, end.timeIntervalSinceNow * 1000))
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard left > 0, poll(&entry, 1, left) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 512)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { return nil }
            bytes += chunk.prefix(n)
        }
        return String(decoding: bytes.prefix { $0 != 0x0A }, as: UTF8.self)
    }
}

/// A loopback TCP socket for the failure cases: `listening` accepts connections
/// into its backlog and never answers; otherwise the port is bound but refuses.
final class SilentSocket: @unchecked Sendable {
    let fd: Int32
    let port: UInt16

    init(listening: Bool) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, !listening || listen(fd, 8) == 0 else {
            close(fd)
            throw PeerError("cannot bind a loopback socket: \(errno)")
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }
}

/// Seconds taken by `body`.
func measure<T>(_ body: () -> T) -> (T, Double) {
    let start = Date()
    let result = body()
    return (result, Date().timeIntervalSince(start))
}
