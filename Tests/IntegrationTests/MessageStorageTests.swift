// A routed message copies its topic and payload out of the read buffer into one
// array: small ones through a buffer on the stack, large ones directly. Both ways
// must give the same bytes, own them, and not keep the read buffer alive.
@testable import Broker
import MQTT
import Testing

@Suite("message storage")
struct MessageStorageTests {
    /// A read buffer with noise around the topic and the payload, as in a frame.
    static func packet(topic: Int, payload: Int) -> (PublishPacket, ByteString, [UInt8]) {
        var buffer: [UInt8] = Array(repeating: 0xEE, count: 7)
        let topicStart = buffer.count
        buffer += (0..<topic).map { UInt8(0x61 + $0 % 26) }
        buffer += [0xEE, 0xEE, 0xEE]
        let payloadStart = buffer.count
        buffer += (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        buffer += [0xEE]
        let t = ByteString(buffer[topicStart..<topicStart + topic])
        let p = PublishPacket(topic: t, payload: buffer[payloadStart..<payloadStart + payload])
        return (p, t, buffer)
    }

    @Test("topic and payload are copied exactly, below, at and above the stack size",
          arguments: [(1, 0), (5, 1), (12, 64), (20, Message.smallMessage - 20), (20, Message.smallMessage - 19),
                      (3, 70_000)])
    func copiesExactly(topic: Int, payload: Int) {
        let (p, t, buffer) = Self.packet(topic: topic, payload: payload)
        let m = Message(publish: p, topic: t, origin: "c", now: 5)
        #expect(m.topic == t)
        #expect(Array(m.payload) == Array(p.payload))
        #expect(m.topic.count == topic && m.payload.count == payload)
        // One allocation of exactly topic + payload, not the read buffer.
        m.payload.withUnsafeBufferPointer { pay in
            m.topic.bytes.withUnsafeBufferPointer { top in
                #expect(top.baseAddress! + topic == pay.baseAddress!)
            }
            buffer.withUnsafeBufferPointer { read in
                let inside = pay.baseAddress! >= read.baseAddress! && pay.baseAddress! < read.baseAddress! + read.count
                #expect(!inside)
            }
        }
    }

    @Test("joining two empty slices gives an empty array")
    func joinsEmpty() {
        #expect(Message.joined([], []) == [])
        #expect(Message.joined([1, 2], []) == [1, 2])
        #expect(Message.joined([], [3]) == [3])
    }

    @Test("a 3.x QoS 0 message made from topic and payload is the one made from its PUBLISH",
          arguments: [(3, 0), (12, 64), (20, 3_000)])
    func qos0Message(topic: Int, payload: Int) {
        let (p, t, _) = Self.packet(topic: topic, payload: payload)
        let a = Message(publish: p, topic: t, origin: "c", now: 9)
        let b = Message(qos0Topic: t, payload: p.payload, origin: "c", now: 9)
        #expect(a.topic == b.topic && a.payload.elementsEqual(b.payload))
        #expect(a.qos == b.qos && a.retain == b.retain && a.properties == b.properties)
        #expect(a.expiresAt == b.expiresAt && a.origin == b.origin && a.receivedAt == b.receivedAt)
        b.payload.withUnsafeBufferPointer { pay in
            b.topic.bytes.withUnsafeBufferPointer { top in #expect(top.baseAddress! + topic == pay.baseAddress!) }
        }
    }
}
