import Reactor
import Synchronization

/// What the bridge counts, for the gateway's `/metrics` (SPEC section 5).
public struct NotifyFigures: Sendable {
    /// Outbox rows waiting to go (as of the last count, every few seconds).
    public let pending: Int
    /// Per channel (`email`, `webhook`, `ntfy`, `webpush`): notifications sent,
    /// failed attempts, and notifications given up.
    public let sent: [String: Int]
    public let failed: [String: Int]
    public let dead: [String: Int]
    /// Post to delivery, in seconds.
    public let deliveryBounds: [Double]
    public let deliveryCumulative: [Int]
    public let deliverySeconds: Double
}

/// The counters behind `NotifyFigures`, bumped by the delivery threads.
final class NotifyCounters: Sendable {
    private struct Counts {
        var sent: [String: Int] = [:]
        var failed: [String: Int] = [:]
        var dead: [String: Int] = [:]
    }

    private let counts = Mutex(Counts())
    let pending = Atomic<Int>(0)
    let delivery = Histogram(bounds: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600])

    init() {
        counts.withLock { c in
            for channel in Channel.allCases {
                c.sent[channel.rawValue] = 0
                c.failed[channel.rawValue] = 0
                c.dead[channel.rawValue] = 0
            }
        }
    }

    func count(_ outcome: DeliveryOutcome, channel: Channel, notifications: Int, secondsSincePost: Double) {
        counts.withLock { c in
            switch outcome {
            case .delivered: c.sent[channel.rawValue, default: 0] += notifications
            case .retry: c.failed[channel.rawValue, default: 0] += 1
            case .dead, .gone:
                c.failed[channel.rawValue, default: 0] += 1
                c.dead[channel.rawValue, default: 0] += notifications
            }
        }
        if outcome == .delivered { delivery.record(seconds: max(0, secondsSincePost)) }
    }

    /// A row given up without an attempt (its device went, its age passed).
    func countDead(_ channel: Channel) {
        counts.withLock { $0.dead[channel.rawValue, default: 0] += 1 }
    }

    var figures: NotifyFigures {
        let c = counts.withLock { $0 }
        let (cumulative, sum) = delivery.snapshot()
        return NotifyFigures(pending: pending.load(ordering: .relaxed), sent: c.sent, failed: c.failed, dead: c.dead,
                             deliveryBounds: delivery.bounds, deliveryCumulative: cumulative, deliverySeconds: sum)
    }
}
