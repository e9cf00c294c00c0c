import Foundation
import MQTT
import Reactor

/// `parley bench` settings, from the command line.
struct BenchOptions {
    enum Scenario: String, CaseIterable {
        case fanIn = "fan-in", fanOut = "fan-out", pairs, rooms, connections
    }
    var scenario: Scenario = .pairs
    var broker = try! SocketAddress(parsing: "127.0.0.1:1883")
    var version: ProtocolVersion = .v3_1_1
    var qos: QoS = .atMostOnce
    var payloadSize = 64
    var seconds = 10.0
    /// Messages per second per publisher; 0 = as fast as the window allows.
    var rate = 0.0
    /// Unacknowledged (QoS 1/2) or undelivered (QoS 0) messages per publisher.
    var window = 64
    var loops = 2
    /// Publishers (fan-in), subscribers (fan-out), pairs, connections.
    var count = 100
    var rooms = 50
    var members = 10
    /// Source addresses 127.0.0.1 ... 127.0.0.N for the connections scenario.
    var sources = 8
    var brokerPID: Int32?
    var jsonPath: String?
    var label = "parley"
    /// Connect over TLS; verify the broker against `caFile` when given.
    var tls = false
    /// The name the broker's certificate must carry (default: the --broker host).
    var serverName: String?
    /// Subscribers keep their sessions (3.1.1 clean session 0, v5 session expiry),
    /// under client ids unique to this run.
    var persistent = false
    /// Connections being set up at once.
    var connectWindow = 64
    var caFile: String?
    var quiet = false
    /// Log in with these (user name, password or token) pairs, one per client in turn.
    var credentials: [(String, String)] = []
    /// Chat rooms: members post to `rooms/b<R>/messages` and check the envelopes'
    /// ids (one order, no gap) as well as the payloads.
    var chat = false
    /// MQTT over WebSocket on this path (`/mqtt` on Parley's gateway), subprotocol mqtt.
    var websocketPath: String?

    static let usage = """
        usage: parley bench SCENARIO [options]
          scenarios: fan-in | fan-out | pairs | rooms | connections | codec
          --broker HOST:PORT     broker to load (default 127.0.0.1:1883)
          --mqtt 3.1.1|5         protocol version (default 3.1.1)
          --qos 0|1|2            QoS of publishes and subscriptions (default 0)
          --size BYTES           payload size, at least 20 (default 64)
          --seconds S            measuring time (default 10)
          --rate N               messages/s per publisher; 0 = as fast as the window allows (default 0)
          --window N             unacknowledged/undelivered messages per publisher (default 64)
          --count N              publishers (fan-in), subscribers (fan-out), pairs, connections (default 100)
          --rooms R --members M  the rooms scenario (default 50 x 10)
          --sources N            source addresses 127.0.0.1..N for connections (default 8)
          --loops N              generator event loops (default 2)
          --pid PID              the broker's process: report its CPU seconds and peak RSS
          --json FILE            also write the result as JSON
          --label NAME           name of the broker in the result (default parley)
          --tls                  connect over TLS (MQTT over TLS listener)
          --persistent           subscribers use persistent sessions (client ids unique to the run)
          --connect-window N     connections being set up at once (default 64)
          --cafile FILE          CA to verify the broker's certificate (with --tls); the
                                 certificate must name the --broker host
          --servername NAME      the name to expect in the certificate instead (also sent as SNI)
          --quiet                no progress lines
          --users FILE           log in: one "NAME SECRET" line per client (a password or a
                                 chat access token), used in turn
          --chat                 rooms as chat rooms (the chat plugin): posts to
                                 rooms/b<R>/messages; subscribers check envelope ids
          --websocket PATH       MQTT over WebSocket: --broker is the HTTP listener and PATH
                                 the endpoint (/mqtt on Parley, /ws on RabbitMQ's web_mqtt)
        """

    static func parse(_ args: [String]) throws -> BenchOptions {
        var o = BenchOptions()
        guard let first = args.first, let scenario = Scenario(rawValue: first) else {
            throw UsageError("unknown scenario; one of: \(Scenario.allCases.map(\.rawValue).joined(separator: ", ")), codec")
        }
        o.scenario = scenario
        var i = 1
        func value() throws -> String {
            guard i + 1 < args.count else { throw UsageError("\(args[i]) needs a value") }
            return args[i + 1]
        }
        func number(_ name: String, _ range: ClosedRange<Double>) throws -> Double {
            let text = try value()
            guard let n = Double(text), range.contains(n) else {
                throw UsageError("\(name) must be a number from \(range.lowerBound) to \(range.upperBound), not '\(text)'")
            }
            return n
        }
        while i < args.count {
            switch args[i] {
            case "--broker": o.broker = try SocketAddress(parsing: try value())
            case "--mqtt":
                switch try value() {
                case "3.1.1", "4": o.version = .v3_1_1
                case "5", "5.0": o.version = .v5
                default: throw UsageError("--mqtt must be 3.1.1 or 5")
                }
            case "--qos": o.qos = QoS(rawValue: UInt8(try number("--qos", 0...2)))!
            case "--size": o.payloadSize = Int(try number("--size", 20...1_000_000))
            case "--seconds": o.seconds = try number("--seconds", 0.1...3600)
            case "--rate": o.rate = try number("--rate", 0...10_000_000)
            case "--window": o.window = Int(try number("--window", 1...65_535))
            case "--count": o.count = Int(try number("--count", 1...1_000_000))
            case "--rooms": o.rooms = Int(try number("--rooms", 1...100_000))
            case "--members": o.members = Int(try number("--members", 1...10_000))
            case "--sources": o.sources = Int(try number("--sources", 1...250))
            case "--connect-window": o.connectWindow = Int(try number("--connect-window", 1...100_000))
            case "--loops": o.loops = Int(try number("--loops", 1...64))
            case "--pid": o.brokerPID = Int32(try number("--pid", 1...4_194_304))
            case "--json": o.jsonPath = try value()
            case "--label": o.label = try value()
            case "--cafile":
                o.caFile = try value()
                o.tls = true
            case "--servername":
                o.serverName = try value()
                o.tls = true
            case "--tls":
                o.tls = true
                i += 1
                continue
            case "--persistent":
                o.persistent = true
                i += 1
                continue
            case "--users":
                let path = try value()
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw UsageError("cannot read --users file \(path)")
                }
                o.credentials = text.split(separator: "\n").compactMap { line in
                    let parts = line.split(separator: " ", maxSplits: 1)
                    return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
                }
                if o.credentials.isEmpty { throw UsageError("--users file \(path) has no NAME SECRET lines") }
            case "--websocket":
                let path = try value()
                guard path.hasPrefix("/") else { throw UsageError("--websocket needs a path such as /mqtt") }
                o.websocketPath = path
            case "--chat":
                o.chat = true
                i += 1
                continue
            case "--quiet":
                o.quiet = true
                i += 1
                continue
            default: throw UsageError("unknown option '\(args[i])'")
            }
            i += 2
        }
        // A chat body carries the 20 header bytes as 40 hex digits.
        if o.chat { o.payloadSize = max(o.payloadSize, 40) }
        return o
    }
}

/// CPU and memory of a process, from /proc.
struct ProcessSample {
    var cpuSeconds: Double
    var rssKB: Int
    var peakRSSKB: Int

    static func read(_ pid: Int32) -> ProcessSample? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the name: state(0) ... utime(11) stime(12).
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        func kb(_ key: String) -> Int {
            for line in status.split(separator: "\n") where line.hasPrefix(key) {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
            }
            return 0
        }
        return ProcessSample(cpuSeconds: (utime + stime) / ticks, rssKB: kb("VmRSS:"), peakRSSKB: kb("VmHWM:"))
    }

    static func selfCPU() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
    }
}
