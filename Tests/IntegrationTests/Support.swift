import Foundation
import MQTT
import Testing

let bothVersions: [ProtocolVersion] = [.v3_1_1, .v5]

/// Session properties that keep a v5 session after the connection (3.x: clean=false does it).
func persistent(_ v: ProtocolVersion, expiry: UInt32 = 300) -> Properties {
    v == .v5 ? props { $0.sessionExpiryInterval = expiry } : .none
}

/// A protocol violation: v5 gets DISCONNECT with `reason` (any failure code when nil)
/// and then the close; 3.x just the close.
func expectViolation(_ c: TestClient, _ reason: ReasonCode?, within: Double = 3,
                     sourceLocation: SourceLocation = #_sourceLocation)
{
    let closed = c.isClosed(within: within)
    #expect(closed, "connection still open after \(within)s", sourceLocation: sourceLocation)
    let disconnects = c.received.compactMap { p -> DisconnectPacket? in
        if case .disconnect(let d) = p { return d }
        return nil
    }
    if c.version == .v5 {
        #expect(disconnects.count == 1, "expected one DISCONNECT, got \(c.received)", sourceLocation: sourceLocation)
        if let d = disconnects.first {
            if let reason {
                #expect(d.reasonCode == reason, "DISCONNECT reason", sourceLocation: sourceLocation)
            } else {
                #expect(d.reasonCode.isFailure, sourceLocation: sourceLocation)
            }
        }
    } else {
        #expect(disconnects.isEmpty, "3.x server never sends DISCONNECT", sourceLocation: sourceLocation)
    }
}

/// A CONNECT written byte by byte (for what the encoder will not produce).
func rawConnect(name: String = "MQTT", level: UInt8, flags: UInt8 = 0x02, keepAlive: UInt16 = 60,
                v5Properties: Bool = false, clientID: String = "raw") -> [UInt8]
{
    var body: [UInt8] = []
    body += [UInt8(name.utf8.count >> 8), UInt8(name.utf8.count & 0xFF)] + Array(name.utf8)
    body.append(level)
    body.append(flags)
    body += [UInt8(keepAlive >> 8), UInt8(keepAlive & 0xFF)]
    if v5Properties { body.append(0) }
    body += [UInt8(clientID.utf8.count >> 8), UInt8(clientID.utf8.count & 0xFF)] + Array(clientID.utf8)
    return [0x10, UInt8(body.count)] + body
}

/// A PUBLISH written byte by byte: first byte, topic bytes, optional id, v5 property bytes, payload.
func rawPublish(first: UInt8 = 0x30, topic: [UInt8], packetID: UInt16? = nil, v5Properties: [UInt8]? = nil,
                payload: [UInt8] = Array("x".utf8)) -> [UInt8]
{
    var body: [UInt8] = [UInt8(topic.count >> 8), UInt8(topic.count & 0xFF)] + topic
    if let packetID { body += [UInt8(packetID >> 8), UInt8(packetID & 0xFF)] }
    if let v5Properties { body += [UInt8(v5Properties.count)] + v5Properties }
    body += payload
    precondition(body.count < 128)
    return [first, UInt8(body.count)] + body
}

func sub(_ filter: String, _ qos: QoS = .atMostOnce, noLocal: Bool = false, rap: Bool = false,
         rh: UInt8 = 0) -> Subscription
{
    Subscription(topicFilter: ByteString(filter), qos: qos, noLocal: noLocal, retainAsPublished: rap, retainHandling: rh)
}

func subID(_ id: UInt32) -> Properties { props { $0.subscriptionIdentifiers = [id] } }

extension Packet {
    var publish: PublishPacket? { if case .publish(let p) = self { return p }; return nil }
}

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass; true if it held.
/// A wait for something observable, instead of a fixed sleep:
/// `let gone = eventually { plugin.seen("offline x").count == 1 }; #expect(gone)`.
func eventually(timeout: Double = 3, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        Thread.sleep(forTimeInterval: 0.01)
    }
}
