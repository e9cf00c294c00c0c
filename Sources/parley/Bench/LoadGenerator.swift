import Foundation
import MQTT
import Reactor
import Synchronization

/// `parley bench`: builds the scenario's clients on its own epoll loops, connects
/// them, publishes for the measuring time, drains, and reports.
final class LoadGenerator: @unchecked Sendable {
    nonisolated(unsafe) static var current: LoadGenerator?
    static let publishing = Atomic<Bool>(false)

    let options: BenchOptions
    var publishers: [PublisherState] = []
    private var loops: [EventLoop] = []
    private var loopStats: [BenchLoopStats] = []
    private var clients: [[BenchClient]] = []
    private let readyCount = Atomic<Int>(0)
    private var plan: [(clientID: String, publisher: Int?, subscribe: ByteString?)] = []

    init(options: BenchOptions) {
        self.options = options
    }

    /// The clients the scenario needs: who publishes where, who subscribes to what.
    private func buildPlan() {
        let o = options
        defer {
            if o.persistent {
                // Persistent sessions must not resume an earlier run's.
                let run = String(UInt32.random(in: 0...UInt32.max), radix: 36)
                plan = plan.map { ("\($0.clientID)-\(run)", $0.publisher, $0.subscribe) }
            }
        }
        func addPublisher(_ topic: String, fanout: Int) -> Int {
            publishers.append(PublisherState(index: publishers.count, topic: ByteString(topic), fanout: fanout))
            return publishers.count - 1
        }
        switch o.scenario {
        case .pairs:
            for i in 0..<o.count {
                let topic = "bench/pair/\(i)"
                plan.append(("bench-sub-\(i)", nil, ByteString(topic)))
                plan.append(("bench-pub-\(i)", addPublisher(topic, fanout: 1), nil))
            }
        case .fanIn:
            plan.append(("bench-sub-0", nil, "bench/fanin"))
            for i in 0..<o.count { plan.append(("bench-pub-\(i)", addPublisher("bench/fanin", fanout: 1), nil)) }
        case .fanOut:
            for i in 0..<o.count { plan.append(("bench-sub-\(i)", nil, "bench/fanout")) }
            plan.append(("bench-pub-0", addPublisher("bench/fanout", fanout: o.count), nil))
        case .rooms:
            for r in 0..<o.rooms {
                for m in 0..<o.members {
                    let topic = o.chat ? "rooms/b\(r)/messages" : "bench/room/\(r)"
                    plan.append(("bench-r\(r)-m\(m)", addPublisher(topic, fanout: o.members), ByteString(topic)))
                }
            }
        case .connections:
            for i in 0..<o.count { plan.append(("bench-idle-\(i)", nil, nil)) }
        }
    }

    func run() -> Int32 {
        Sockets.ignoreSIGPIPE()
        LoadGenerator.current = self
        buildPlan()
        let o = options
        do {
            for i in 0..<o.loops {
                loops.append(try EventLoop(index: i, name: "bench-\(i)"))
                loopStats.append(BenchLoopStats())
                clients.append([])
            }
        } catch {
            printError("parley bench: \(error)")
            return 1
        }
        for l in loops { l.start() }
        var tlsContext: TLSContext? = nil
        if o.tls {
            do {
                tlsContext = try TLSContext(clientCA: o.caFile)
            } catch {
                printError("parley bench: \(error)")
                stopLoops()
                return 1
            }
        }
        let before = o.brokerPID.flatMap(ProcessSample.read)
        let genCPU0 = ProcessSample.selfCPU()

        // Connect, spread over the loops, in batches so the broker's backlog is not flooded.
        let connectStart = Date()
        let failures = Atomic<Int>(0)
        for (n, entry) in plan.enumerated() {
            let loopIndex = n % o.loops
            let loop = loops[loopIndex]
            let stats = loopStats[loopIndex]
            let source: SocketAddress? = o.scenario == .connections
                ? try? SocketAddress(host: "127.0.0.\(1 + n % o.sources)", port: 0) : nil
            loop.execute { [self] in
                do {
                    let fd = try Sockets.connect(o.broker, nonBlocking: true, source: source)
                    let client = BenchClient(
                        fd: fd, loop: loop, clientID: entry.clientID, options: o,
                        credentials: o.credentials.isEmpty ? nil : o.credentials[n % o.credentials.count],
                        publisher: entry.publisher.map { publishers[$0] }, subscribeTo: entry.subscribe, stats: stats
                    ) { [self] ok in
                        if ok { readyCount.add(1, ordering: .relaxed) } else { failures.add(1, ordering: .relaxed) }
                    }
                    clients[loopIndex].append(client)
                    client.start(tls: tlsContext)
                } catch {
                    failures.add(1, ordering: .relaxed)
                    if stats.errors.count < 20 { stats.errors.append("connect: \(error)") }
                }
            }
            // At most `connectWindow` handshakes outstanding: more would overflow a
            // broker's listen backlog and measure the kernel's SYN retry timer.
            while readyCount.load(ordering: .relaxed) + failures.load(ordering: .relaxed) < n + 1 - o.connectWindow {
                usleep(200)
                if Date().timeIntervalSince(connectStart) > 120 { break }
            }
        }
        let deadline = Date().addingTimeInterval(30 + Double(plan.count) / 500)
        while readyCount.load(ordering: .relaxed) + failures.load(ordering: .relaxed) < plan.count && Date() < deadline {
            usleep(2000)
        }
        let connectSeconds = Date().timeIntervalSince(connectStart)
        let ready = readyCount.load(ordering: .relaxed)
        if ready < plan.count {
            printError("parley bench: only \(ready) of \(plan.count) clients became ready")
            for s in loopStats { for e in s.errors.prefix(5) { printError("  \(e)") } }
            stopLoops()
            return 1
        }
        if !o.quiet {
            printError("bench: \(plan.count) clients ready in \(String(format: "%.2f", connectSeconds)) s")
        }

        var result = BenchResult(options: o, clients: plan.count)
        result.connectSeconds = connectSeconds
        if o.scenario == .connections {
            usleep(UInt32(min(o.seconds, 60) * 1_000_000))
            if let pid = o.brokerPID, let b = before, let after = ProcessSample.read(pid) {
                result.brokerRSSDeltaPerConnection = Double(after.rssKB - b.rssKB) * 1024 / Double(plan.count)
                result.brokerPeakRSSKB = after.peakRSSKB
                result.brokerCPUSeconds = after.cpuSeconds - b.cpuSeconds
            }
            result.generatorCPUSeconds = ProcessSample.selfCPU() - genCPU0
        } else {
            // CPU is counted over the measuring time only (not the connecting).
            let brokerBefore = o.brokerPID.flatMap(ProcessSample.read)
            let generatorBefore = ProcessSample.selfCPU()
            measure(&result, before: brokerBefore)
            result.generatorCPUSeconds = ProcessSample.selfCPU() - generatorBefore
        }
        stopLoops()
        for s in loopStats { for e in s.errors.prefix(5) { printError("  error: \(e)") } }
        result.print()
        if let path = o.jsonPath,
           !FileManager.default.createFile(atPath: path, contents: Data((result.json + "\n").utf8))
        {
            printError("parley bench: cannot write \(path)")
            return 1
        }
        return 0
    }

    private func measure(_ result: inout BenchResult, before: ProcessSample?) {
        let o = options
        // One timer per loop drives publishing: paced sends, and window top-ups.
        let start = BenchClient.nanoseconds()
        LoadGenerator.publishing.store(true, ordering: .relaxed)
        for (i, loop) in loops.enumerated() {
            loop.execute { [self] in self.tick(loopIndex: i, start: start) }
        }
        let delivered0 = totalDelivered()
        var last = delivered0
        let t0 = Date()
        var elapsed = 0.0
        while elapsed < o.seconds {
            usleep(UInt32(min(1.0, o.seconds - elapsed) * 1_000_000))
            elapsed = Date().timeIntervalSince(t0)
            let now = totalDelivered()
            if !o.quiet {
                printError(String(format: "bench: t=%.0fs delivered %d msg/s", elapsed, now - last))
            }
            last = now
        }
        let delivered = totalDelivered() - delivered0
        let measured = Date().timeIntervalSince(t0)
        LoadGenerator.publishing.store(false, ordering: .relaxed)
        let sample = o.brokerPID.flatMap(ProcessSample.read)
        // Drain: wait until deliveries stop (bounded).
        var quiet = 0
        var previous = totalDelivered()
        let drainDeadline = Date().addingTimeInterval(10)
        while quiet < 5 && Date() < drainDeadline {
            usleep(100_000)
            let now = totalDelivered()
            quiet = now == previous ? quiet + 1 : 0
            previous = now
        }
        result.seconds = measured
        result.delivered = delivered
        if let b = before, let a = sample {
            result.brokerCPUSeconds = a.cpuSeconds - b.cpuSeconds
            result.brokerPeakRSSKB = a.peakRSSKB
        }
        // Exact loss, duplicate and order counts, read on each loop's own thread.
        let done = DispatchSemaphore(value: 0)
        let totals = Mutex<(unique: Int, duplicates: Int, outOfOrder: Int, idErrors: Int)>((0, 0, 0, 0))
        let histogram = Mutex(LatencyHistogram())
        for (i, loop) in loops.enumerated() {
            loop.execute { [self] in
                var t = (unique: 0, duplicates: 0, outOfOrder: 0, idErrors: 0)
                for c in clients[i] { c.collect(into: &t) }
                totals.withLock {
                    $0.unique += t.unique; $0.duplicates += t.duplicates; $0.outOfOrder += t.outOfOrder
                    $0.idErrors += t.idErrors
                }
                let h = loopStats[i].histogram
                histogram.withLock { $0.merge(h) }
                done.signal()
            }
        }
        for _ in loops { done.wait() }
        let expected = publishers.reduce(0) { $0 + $1.sent * $1.fanout }
        let t = totals.withLock { $0 }
        result.sent = publishers.reduce(0) { $0 + $1.sent }
        result.expected = expected
        result.lost = max(0, expected - t.unique)
        result.duplicates = t.duplicates
        result.outOfOrder = t.outOfOrder
        result.idErrors = t.idErrors
        result.histogram = histogram.withLock { $0 }
    }

    /// Every millisecond on each loop: paced publishers send what is due; unpaced
    /// ones refill their window.
    private func tick(loopIndex: Int, start: UInt64) {
        guard LoadGenerator.publishing.load(ordering: .relaxed) else { return }
        let o = options
        let elapsed = Double(BenchClient.nanoseconds() - start) / 1e9
        for c in clients[loopIndex] {
            guard let p = c.publisher else { continue }
            if o.rate > 0 {
                // Each publisher has its own phase, so paced sends spread over the
                // period instead of all firing in the same millisecond.
                let phase = Double(p.index) / Double(max(1, publishers.count))
                let due = Int(elapsed * o.rate + phase) - p.sent
                var n = min(due, 1000)
                while n > 0 && (o.qos == .atMostOnce || p.inflight < o.window) && c.pendingOutput < 1_048_576 {
                    c.publishOne()
                    n -= 1
                }
            } else {
                c.publishAvailable(limit: o.window)
            }
        }
        loops[loopIndex].schedule(afterMilliseconds: 1) { [self] in tick(loopIndex: loopIndex, start: start) }
    }

    private func totalDelivered() -> Int {
        loopStats.reduce(0) { $0 + $1.delivered.load(ordering: .relaxed) }
    }

    private func stopLoops() {
        for l in loops { l.stop() }
        for l in loops { l.join() }
    }
}

/// What one run measured.
struct BenchResult {
    let options: BenchOptions
    let clients: Int
    var connectSeconds = 0.0
    var seconds = 0.0
    var sent = 0
    var expected = 0
    var delivered = 0
    var lost = 0
    var duplicates = 0
    var outOfOrder = 0
    /// Chat: envelopes whose id was not the next of their room at that subscriber.
    var idErrors = 0
    var histogram = LatencyHistogram()
    var brokerCPUSeconds: Double?
    var brokerPeakRSSKB: Int?
    var brokerRSSDeltaPerConnection: Double?
    var generatorCPUSeconds = 0.0

    var rate: Double { seconds > 0 ? Double(delivered) / seconds : 0 }

    var fields: [(String, String)] {
        let o = options
        var f: [(String, String)] = [
            ("broker", o.label), ("scenario", o.scenario.rawValue), ("mqtt", o.version.description),
            ("qos", "\(o.qos.rawValue)"), ("size", "\(o.payloadSize)"), ("clients", "\(clients)"),
            ("rate_per_publisher", "\(o.rate)"), ("window", "\(o.window)"),
            ("connect_s", String(format: "%.3f", connectSeconds)),
            ("connect_per_s", String(format: "%.0f", connectSeconds > 0 ? Double(clients) / connectSeconds : 0)),
        ]
        if o.scenario != .connections {
            f += [
                ("seconds", String(format: "%.2f", seconds)), ("sent", "\(sent)"), ("expected", "\(expected)"),
                ("delivered_per_s", String(format: "%.0f", rate)),
                ("p50_us", String(format: "%.1f", Double(histogram.percentile(0.5)) / 1000)),
                ("p99_us", String(format: "%.1f", Double(histogram.percentile(0.99)) / 1000)),
                ("p999_us", String(format: "%.1f", Double(histogram.percentile(0.999)) / 1000)),
                ("max_us", String(format: "%.1f", Double(histogram.maximum) / 1000)),
                ("lost", "\(lost)"), ("duplicated", "\(duplicates)"), ("out_of_order", "\(outOfOrder)"),
            ]
            if o.chat { f.append(("id_errors", "\(idErrors)")) }
        }
        if let c = brokerCPUSeconds {
            f.append(("broker_cpu_s", String(format: "%.3f", c)))
            if delivered > 0 { f.append(("broker_cpu_us_per_msg", String(format: "%.3f", c * 1e6 / Double(delivered)))) }
        }
        if let r = brokerPeakRSSKB { f.append(("broker_peak_rss_kb", "\(r)")) }
        if let b = brokerRSSDeltaPerConnection { f.append(("broker_bytes_per_connection", String(format: "%.0f", b))) }
        f.append(("generator_cpu_s", String(format: "%.3f", generatorCPUSeconds)))
        return f
    }

    func print() {
        Swift.print("RESULT " + fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    var json: String {
        "{" + fields.map { k, v in
            let numeric = Double(v) != nil
            return "\"\(k)\":" + (numeric ? v : "\"\(v)\"")
        }.joined(separator: ",") + "}"
    }
}
