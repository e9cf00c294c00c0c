import MQTT
import Reactor

/// Session state that most sessions never need.
final class SessionExtras {
    var incomingQoS2: Set<UInt16> = []
    var will: Message?
    var willDelay: UInt32 = 0
    var expiryTimer = TimerID.none
    var willTimer = TimerID.none
    var internalClient: InternalClient?
    var durable: DurableQueue?
    var recheckDeliveries = false
}

/// A stored session's queue bookkeeping: the queue on disk is the truth; memory
/// holds a prefix of it (in flight, then queued), the rest is paged in on demand.
final class DurableQueue {
    /// The next delivery's sequence number.
    var nextSeq: Int64 = 1
    /// The highest sequence number held in memory.
    var lastLoadedSeq: Int64 = 0
    /// Deliveries on disk beyond what memory holds.
    var backlog = 0
    /// A page read is on its way.
    var loading = false
    /// Disk-only deliveries added while a page read was on its way: the read may
    /// not have seen them (it may run before their write).
    var addedWhileLoading = 0
    /// The last sequence number handed to the client (an order check).
    var lastSentSeq: Int64 = 0
    init(nextSeq: Int64 = 1) { self.nextSeq = nextSeq }
}

/// The handler of one of the broker's internal clients (a plugin subscribing).
final class InternalClient {
    let handler: (Message) -> Void
    init(handler: @escaping (Message) -> Void) { self.handler = handler }
}

/// A message waiting for its turn (window full, or the client offline).
struct QueuedDelivery {
    /// Position in the session's durable queue (0 when not stored).
    var seq: Int64 = 0
    let message: Message
    let qos: QoS
    let retain: Bool
    let subscriptionIDs: [UInt32]
}

/// A QoS 1/2 message sent to the client and not yet fully acknowledged.
struct InflightDelivery {
    enum State { case sent, released }
    var seq: Int64 = 0
    let message: Message
    let qos: QoS
    let retain: Bool
    let subscriptionIDs: [UInt32]
    var state: State
}

/// The state MQTT keeps for a client id, connected or not. Owned by the loop that
/// the client id hashes to: every connection for this id is moved to that loop.
final class Session {
    // Field order keeps the object small: words first, small numbers packed last.
    let clientID: String
    unowned(unsafe) let home: BrokerLoop
    /// The connection now attached, if any.
    var connection: ClientConnection?
    var username: String?
    /// Subscriptions by the filter as the client sent it.
    var subscriptions: [ByteString: SubscriptionEntry] = [:]

    // Outbound QoS 1/2.
    private(set) var inflight: [UInt16: InflightDelivery] = [:]
    private var inflightOrder: [UInt16] = []
    private(set) var queue: [QueuedDelivery] = []
    private(set) var queuedBytes = 0

    /// What most sessions never use (wills, timers, QoS 2 ids, storage), kept out
    /// of line so that an idle client costs less.
    private var extras: SessionExtras?
    // Routing scratch: de-duplicates overlapping subscriptions within one route pass.
    @exclusivity(unchecked) var routeStamp: UInt64 = 0
    @exclusivity(unchecked) var routeSlot: Int32 = 0

    private var inflightOrderHead: Int32 = 0
    private var queueHeadIndex32: Int32 = 0
    /// Seconds the session outlives its connection; `UInt32.max` means forever.
    var expiryInterval: UInt32 = 0
    private var nextPacketID: UInt16 = 1
    var version: ProtocolVersion = .v3_1_1
    /// Set once the session has ended; late deliveries to it are ignored.
    var ended = false

    private var queueHead: Int {
        get { Int(queueHeadIndex32) }
        set { queueHeadIndex32 = Int32(newValue) }
    }

    private var more: SessionExtras {
        if let extras { return extras }
        let made = SessionExtras()
        extras = made
        return made
    }

    // Inbound QoS 2: ids received (PUBREC sent) and not yet released.
    var incomingQoS2: Set<UInt16> {
        get { extras?.incomingQoS2 ?? [] }
        _modify { yield &more.incomingQoS2 }
    }
    var will: Message? {
        get { extras?.will }
        set { if newValue != nil || extras != nil { more.will = newValue } }
    }
    var willDelay: UInt32 {
        get { extras?.willDelay ?? 0 }
        set { if newValue != 0 || extras != nil { more.willDelay = newValue } }
    }
    var expiryTimer: TimerID {
        get { extras?.expiryTimer ?? .none }
        set { if newValue != .none || extras != nil { more.expiryTimer = newValue } }
    }
    var willTimer: TimerID {
        get { extras?.willTimer ?? .none }
        set { if newValue != .none || extras != nil { more.willTimer = newValue } }
    }
    /// For the broker's internal clients: messages go to a handler, not a socket.
    var internalClient: InternalClient? {
        get { extras?.internalClient }
        set { if newValue != nil || extras != nil { more.internalClient = newValue } }
    }
    /// What the user may read changed: queued deliveries are checked again before they go.
    var recheckDeliveries: Bool {
        get { extras?.recheckDeliveries ?? false }
        set { if newValue || extras != nil { more.recheckDeliveries = newValue } }
    }
    /// Removes queued deliveries for which `keep` is false; returns their store sequence numbers.
    func removeQueued(where drop: (QueuedDelivery) -> Bool) -> (removed: [QueuedDelivery], bytes: Int) {
        var removed: [QueuedDelivery] = []
        var kept: [QueuedDelivery] = []
        var bytes = 0
        for d in queue[queueHead...] {
            if drop(d) {
                removed.append(d)
                bytes += d.message.byteCost
            } else {
                kept.append(d)
            }
        }
        if removed.isEmpty { return ([], 0) }
        queue = kept
        queueHead = 0
        queuedBytes -= bytes
        return (removed, bytes)
    }
    /// For sessions kept in the store: where its durable queue stands.
    var durable: DurableQueue? {
        get { extras?.durable }
        set { if newValue != nil || extras != nil { more.durable = newValue } }
    }

    init(clientID: String, home: BrokerLoop) {
        self.clientID = clientID
        self.home = home
    }

    var isConnected: Bool { connection != nil }
    var queuedCount: Int { queue.count - queueHead }
    var inflightCount: Int { inflight.count }

    // MARK: Packet identifiers

    /// The next free packet identifier, or nil when all 65535 are in use.
    func allocatePacketID() -> UInt16? {
        if inflight.count >= 65_535 { return nil }
        while inflight[nextPacketID] != nil {
            nextPacketID = nextPacketID == 65_535 ? 1 : nextPacketID + 1
        }
        let id = nextPacketID
        nextPacketID = nextPacketID == 65_535 ? 1 : nextPacketID + 1
        return id
    }

    /// Puts a restored delivery back in the queue (start-up only).
    func restoreQueued(_ delivery: QueuedDelivery) {
        queue.append(delivery)
        queuedBytes += delivery.message.byteCost
    }

    func addInflight(_ id: UInt16, _ delivery: InflightDelivery) {
        inflight[id] = delivery
        inflightOrder.append(id)
    }

    @discardableResult
    func removeInflight(_ id: UInt16) -> InflightDelivery? {
        let removed = inflight.removeValue(forKey: id)
        if inflight.isEmpty {
            inflightOrder.removeAll(keepingCapacity: true)
            inflightOrderHead = 0
        } else {
            var head = Int(inflightOrderHead)
            while head < inflightOrder.count && inflight[inflightOrder[head]] == nil { head += 1 }
            if head > 1024 && head * 2 > inflightOrder.count {
                inflightOrder.removeFirst(head)
                head = 0
            }
            inflightOrderHead = Int32(head)
        }
        return removed
    }

    func markReleased(_ id: UInt16) -> Bool {
        guard inflight[id] != nil else { return false }
        inflight[id]!.state = .released
        return true
    }

    /// In-flight deliveries in the order they were first sent (for resending).
    var inflightInOrder: [(UInt16, InflightDelivery)] {
        var out: [(UInt16, InflightDelivery)] = []
        var seen = Set<UInt16>()
        for i in Int(inflightOrderHead)..<inflightOrder.count {
            let id = inflightOrder[i]
            if let d = inflight[id], !seen.contains(id) {
                // An id reused after its first use appears twice; the later entry is current.
                out.append((id, d))
                seen.insert(id)
            }
        }
        return out
    }

    // MARK: Queue

    func enqueue(_ delivery: QueuedDelivery) {
        queue.append(delivery)
        queuedBytes += delivery.message.byteCost
    }

    func dequeue() -> QueuedDelivery? {
        guard queueHead < queue.count else { return nil }
        let d = queue[queueHead]
        queueHead += 1
        queuedBytes -= d.message.byteCost
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: queue.count < 1024)
            queueHead = 0
        } else if queueHead > 1024 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        return d
    }

    /// Drops the oldest queued QoS 0 message, if any, to make room; returns whether it did.
    func dropOldestQoS0() -> Bool {
        guard let i = queue[queueHead...].firstIndex(where: { $0.qos == .atMostOnce }) else { return false }
        queuedBytes -= queue[i].message.byteCost
        queue.remove(at: i)
        return true
    }

    func clearQueues() {
        queue.removeAll()
        queueHead = 0
        queuedBytes = 0
        inflight.removeAll()
        inflightOrder.removeAll()
        inflightOrderHead = 0
        if extras != nil { incomingQoS2.removeAll() }
    }
}
