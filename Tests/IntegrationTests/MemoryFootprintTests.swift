// What one idle client costs the broker in user space: the connection object,
// its session, and their entries in the loop's tables. Measured with
// malloc_usable_size, so the numbers are exact for this build, not estimates.
@testable import Broker
import CLinux
import Glibc
import MQTT
@testable import Reactor
import Testing

@Suite("Memory footprint of an idle client")
struct MemoryFootprintTests {
    static func allocated(_ object: AnyObject) -> Int {
        malloc_usable_size(Unmanaged.passUnretained(object).toOpaque())
    }

    @Test("connection and session objects stay small")
    func objectSizes() throws {
        var config = BrokerConfig()
        config.mqttListeners = []
        config.loops = 1
        let broker = Broker(config: config)
        let loop = try EventLoop(index: 0)
        let ctx = BrokerLoop(loop: loop, broker: broker, loopCount: 1)
        let connection = ClientConnection(fd: -1, ctx: ctx, peer: try SocketAddress(parsing: "127.0.0.1:50000"))
        let session = Session(clientID: "sensor-000123", home: ctx)
        let c = Self.allocated(connection)
        let s = Self.allocated(session)
        print("idle client: connection \(c) B, session \(s) B")
        // Budget for both objects together; tables and the kernel's socket come on top.
        #expect(c + s <= 400, "connection \(c) B + session \(s) B")
    }
}
