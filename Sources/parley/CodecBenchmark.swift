import Foundation
import JSON
import MQTT

/// `parley bench codec`: single-core decode and encode rates of typical PUBLISH packets.
struct CodecBenchmark {
    let secondsPerCase: Double
    /// Run only the cases whose name contains this text.
    var only: String? = nil

    struct Result {
        let name: String
        let bytes: Int
        let operations: Int
        let seconds: Double
        var rate: Double { Double(operations) / seconds }
    }

    /// A 64-byte QoS 1 PUBLISH: topic `rooms/general/messages`, packet id, payload.
    static func publish(version: ProtocolVersion, properties: Properties, total: Int) -> PublishPacket {
        var packet = PublishPacket(topic: "rooms/general/messages", qos: .atLeastOnce, packetID: 4242,
                                   properties: properties)
        let overhead = (try? Packet.publish(packet).encoded(version: version).count) ?? 0
        packet.payload = ArraySlice(repeating: UInt8(ascii: "x"), count: max(0, total - overhead))
        return packet
    }

    static var v5Properties: Properties {
        var p = Properties()
        p.payloadFormatIndicator = true
        p.messageExpiryInterval = 3600
        p.topicAlias = 7
        return p
    }

    static var v5RichProperties: Properties {
        var p = Properties()
        p.payloadFormatIndicator = true
        p.messageExpiryInterval = 3600
        p.responseTopic = "reply/alice"
        p.correlationData = [1, 2, 3, 4, 5, 6, 7, 8][...]
        p.userProperties = [UserProperty("k", "v")]
        return p
    }

    func run(json: Bool) -> Int32 {
        var results: [Result] = []
        let cases: [(String, ProtocolVersion, Properties, Int)] = [
            ("publish-qos1-64B-v3.1.1", .v3_1_1, Properties(), 64),
            ("publish-qos1-64B-v5-props", .v5, Self.v5Properties, 64),
            ("publish-qos1-96B-v5-rich-props", .v5, Self.v5RichProperties, 96),
        ]
        for (name, version, properties, size) in cases {
            let packet = Packet.publish(Self.publish(version: version, properties: properties, total: size))
            let bytes = try! packet.encoded(version: version)
            func wanted(_ caseName: String) -> Bool { only.map { caseName.contains($0) } ?? true }
            if wanted("decode " + name) {
                results.append(decode(name: "decode " + name, bytes: bytes, version: version))
            }
            if wanted("frame+decode " + name) {
                results.append(frameAndDecode(name: "frame+decode " + name, bytes: bytes, version: version))
            }
            if wanted("encode " + name) {
                results.append(encode(name: "encode " + name, packet: packet, size: bytes.count, version: version))
            }
        }
        let body = Array(#"{"body":"hi there, the meeting moves to room 4 at three o'clock sharp, see you","ckey":"c-1f3a9d7e-0001"}"#.utf8)
        if only.map({ "json parse chat body".contains($0) }) ?? true {
            results.append(measure("json parse chat body", bytes: body.count, batch: 10_000) {
                var sum = 0
                for _ in 0..<10_000 { if let v = try? JSONValue.parse(body) { sum &+= v.object?.count ?? 0 } }
                return sum
            })
        }
        if only.map({ "json write envelope".contains($0) }) ?? true {
            results.append(measure("json write envelope", bytes: 130, batch: 10_000) {
                var sum = 0
                for i in 0..<10_000 {
                    var w = JSONWriter()
                    w.object { o in
                        o.field("id", i)
                        o.field("room", "general")
                        o.field("from", "alice")
                        o.field("ts", "2026-12-01T20:15:00.123Z")
                        o.field("body", "hi there, the meeting moves to room 4")
                        o.field("ckey", "c-1")
                    }
                    sum &+= w.bytes.count
                }
                return sum
            })
        }
        if json {
            let items = results.map {
                "{\"case\":\"\($0.name)\",\"bytes\":\($0.bytes),\"ops\":\($0.operations),\"seconds\":\(String(format: "%.3f", $0.seconds)),\"rate\":\(Int($0.rate))}"
            }
            print("[" + items.joined(separator: ",") + "]")
        } else {
            print("case".padding(toLength: 46, withPad: " ", startingAt: 0) + "bytes   million/s   ns/op")
            for r in results {
                let line = r.name.padding(toLength: 46, withPad: " ", startingAt: 0)
                    + String(format: "%5d   %9.2f   %5.1f", r.bytes, r.rate / 1e6, 1e9 / r.rate)
                print(line)
            }
        }
        return 0
    }

    private func measure(_ name: String, bytes: Int, batch: Int, _ body: () -> Int) -> Result {
        var sink = 0
        // Warm up, then run whole batches until the time is spent.
        sink &+= body()
        var operations = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed: UInt64 = 0
        repeat {
            sink &+= body()
            operations += batch
            elapsed = DispatchTime.now().uptimeNanoseconds - start
        } while Double(elapsed) < secondsPerCase * 1e9
        if sink == 42 { print("", terminator: "") }  // keeps the work observable
        return Result(name: name, bytes: bytes, operations: operations, seconds: Double(elapsed) / 1e9)
    }

    func decode(name: String, bytes: [UInt8], version: ProtocolVersion) -> Result {
        var decoder = FrameDecoder()
        decoder.append(bytes)
        let frame = try! decoder.next()!
        let batch = 100_000
        return measure(name, bytes: bytes.count, batch: batch) {
            var sum = 0
            for _ in 0..<batch {
                if case .publish(let p) = try! Packet.decode(frame, version: version, from: .client) {
                    sum &+= Int(p.packetID) &+ p.payload.count
                }
            }
            return sum
        }
    }

    func frameAndDecode(name: String, bytes: [UInt8], version: ProtocolVersion) -> Result {
        // A stream of many back-to-back packets, fed in 64 KiB reads as a socket would.
        let perChunk = max(1, 65_536 / bytes.count)
        var chunk: [UInt8] = []
        for _ in 0..<perChunk { chunk += bytes }
        let rounds = max(1, 100_000 / perChunk)
        var decoder = FrameDecoder()
        return measure(name, bytes: bytes.count, batch: rounds * perChunk) {
            var sum = 0
            for _ in 0..<rounds {
                chunk.withUnsafeBytes { decoder.append($0) }
                while let frame = try! decoder.next() {
                    if case .publish(let p) = try! Packet.decode(frame, version: version, from: .client) {
                        sum &+= Int(p.packetID)
                    }
                }
            }
            return sum
        }
    }

    func encode(name: String, packet: Packet, size: Int, version: ProtocolVersion) -> Result {
        var out: [UInt8] = []
        out.reserveCapacity(size * 1024)
        let batch = 100_000
        return measure(name, bytes: size, batch: batch) {
            var sum = 0
            for i in 0..<batch {
                if i & 1023 == 0 { out.removeAll(keepingCapacity: true) }
                try! packet.encode(into: &out, version: version)
                sum &+= out.count
            }
            return sum
        }
    }
}
