import Foundation
import Glibc
import MQTT
import Testing

@Suite("Process life cycle (SPEC 7: SIGTERM drains and shuts down cleanly)")
struct LifecycleTests {
    @Test("SIGTERM right after the listen line: exit status 0 (not killed, not hung)")
    func sigtermRightAfterStart() throws {
        for _ in 0..<5 {
            let b = try BrokerProcess()
            // stop() sends SIGTERM at once and records an issue unless the exit is clean.
            let status = b.stop(immediate: true)
            #expect(status == 0)
        }
    }

    @Test("SIGTERM at any moment after exec (config, store, listeners still opening): drains, exit status 0")
    func sigtermAtAnyMomentAfterExec() throws {
        for delayMicros: UInt32 in [0, 100, 500, 2_000, 5_000, 10_000, 20_000, 50_000] {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-term-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try BrokerProcess.binaryPath())
            p.arguments = ["serve", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", dir.appendingPathComponent("data").path]
            p.standardError = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            p.standardInput = FileHandle.nullDevice
            try p.run()
            // "After exec": the process runs parley's code once it blocks the stop signals.
            let deadline = Date().addingTimeInterval(10)
            while p.isRunning && !Self.blocksSIGTERM(p.processIdentifier) && Date() < deadline { usleep(100) }
            #expect(Self.blocksSIGTERM(p.processIdentifier), "parley never blocked SIGTERM")
            usleep(delayMicros)
            kill(p.processIdentifier, SIGTERM)
            let exitDeadline = Date().addingTimeInterval(10)
            while p.isRunning && Date() < exitDeadline { usleep(1_000) }
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                Issue.record("no exit within 10 s of SIGTERM sent \(delayMicros) µs after exec")
                continue
            }
            #expect(p.terminationReason == .exit, "SIGTERM \(delayMicros) µs after exec killed the process")
            #expect(p.terminationStatus == 0, "SIGTERM \(delayMicros) µs after exec: exit \(p.terminationStatus)")
        }
    }

    /// Whether the process's blocked-signal mask (/proc/PID/status SigBlk) holds SIGTERM.
    static func blocksSIGTERM(_ pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
              let mask = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << UInt64(SIGTERM - 1)) != 0
    }

    @Test("SIGTERM with clients connected: 5.0 clients get DISCONNECT 0x8B, 3.1.1 clients are closed, exit 0")
    func sigtermWithClients() throws {
        let b = try BrokerProcess()
        let v5 = try TestClient.connected(port: b.port, version: .v5, clientID: unique("a"))
        let v3 = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("b"))
        try v5.sync()
        try v3.sync()
        b.signalTerm()  // both clients are in (their PINGRESPs came back); SIGTERM is safe at any moment
        #expect(try v5.expectDisconnect(timeout: 5).reasonCode == .serverShuttingDown)
        #expect(v5.isClosed(within: 3))
        #expect(v3.isClosed(within: 5))
        #expect(b.stop() == 0)
    }
}
