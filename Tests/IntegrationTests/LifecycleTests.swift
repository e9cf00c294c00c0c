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

    @Test("SIGTERM with clients connected: 5.0 clients get DISCONNECT 0x8B, 3.1.1 clients are closed, exit 0")
    func sigtermWithClients() throws {
        let b = try BrokerProcess()
        let v5 = try TestClient.connected(port: b.port, version: .v5, clientID: unique("a"))
        let v3 = try TestClient.connected(port: b.port, version: .v3_1_1, clientID: unique("b"))
        try v5.sync()
        try v3.sync()
        Thread.sleep(forTimeInterval: 0.3)  // let the broker finish starting
        b.signalTerm()
        #expect(try v5.expectDisconnect(timeout: 5).reasonCode == .serverShuttingDown)
        #expect(v5.isClosed(within: 3))
        #expect(v3.isClosed(within: 5))
        #expect(b.stop() == 0)
    }
}
