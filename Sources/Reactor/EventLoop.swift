import CLinux
import Foundation
import Glibc
import Synchronization

/// Something an event loop calls when its file descriptor is ready.
public protocol EventHandler: AnyObject {
    /// `events` is the epoll event mask (EPOLLIN, EPOLLOUT, EPOLLHUP, ...).
    func handleEvent(_ events: UInt32)
}

/// One epoll loop on its own thread. Everything registered with a loop is touched
/// only by the thread that owns the loop: its own thread while it runs a turn, or,
/// while it is parked in `epoll_wait`, another loop's thread that `runIfParked`
/// lets do a small piece of work in its place (no wake-up). Other threads reach
/// it through `execute`, which queues a task and wakes the loop through an eventfd.
public final class EventLoop: @unchecked Sendable {
    public let index: Int
    public let name: String
    private let epfd: Int32
    private let wakeFD: Int32
    private var handlers: [EventHandler?] = []
    private let inbox = Mutex<[() -> Void]>([])
    private let wakeArmed = Atomic<Bool>(false)
    private let running = Atomic<Bool>(true)
    private var timers = TimerHeap()
    private var endOfTurn: [() -> Void] = []
    /// Connections with output queued this turn: one write each, after the events.
    @exclusivity(unchecked) private var flushQueue: [Connection] = []
    private var flushing: [Connection] = []
    /// When set (`useSendRing`), a turn's sends go to the kernel in one system call.
    private var sendRing: SendRing?
    /// Set when the ring is used only where it measures cheaper (`io_uring = auto`).
    @exclusivity(unchecked) private var sendChooser: SendPathChooser?
    private var announcedPath: SendPathChooser.Path?
    /// `pthread_self()` of the loop's own thread once it runs.
    private var runThread: UInt = 0
    private var ringQueued: [Int] = []
    private var ringLater: [Int] = []
    private var ringResults: [Int32?] = []
    private var runningTasks: [() -> Void] = []
    private var inboxSpare: [() -> Void] = []
    private var thread: Thread?
    private let finished = Atomic<Bool>(false)
    /// Held by whichever thread owns the loop's state (see the type's comment).
    private let ownership: UnsafeMutablePointer<pthread_mutex_t>
    /// `pthread_self()` of the owning thread, 0 while nobody owns the loop.
    private let owner = Atomic<UInt>(0)
    /// The loop's thread is in its run loop (not before start, not after stop).
    private let started = Atomic<Bool>(false)
    /// When the parked loop's thread will wake by itself (its timeout), milliseconds.
    @exclusivity(unchecked) private var parkedUntil: UInt64 = 0
    /// One read buffer per loop, shared by all of its connections: a read is
    /// handed to its connection and consumed before the next read.
    public let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    /// Milliseconds of the monotonic clock, read once per loop turn.
    @exclusivity(unchecked) public private(set) var now: UInt64 = EventLoop.monotonicMilliseconds()

    public init(index: Int, name: String? = nil) throws(SystemError) {
        self.index = index
        self.name = name ?? "loop-\(index)"
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if epfd < 0 { throw SystemError("epoll_create1") }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if wakeFD < 0 { throw SystemError("eventfd") }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.fd = wakeFD
        if epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev) != 0 { throw SystemError("epoll_ctl(eventfd)") }
        ownership = .allocate(capacity: 1)
        pthread_mutex_init(ownership, nil)
    }

    deinit {
        pthread_mutex_destroy(ownership)
        ownership.deallocate()
        readBuffer.deallocate()
        close(wakeFD)
        close(epfd)
    }

    public static func monotonicMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
    }

    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// True when the calling thread owns the loop: its own thread during a turn,
    /// or a thread inside `runIfParked`.
    public var inLoop: Bool { owner.load(ordering: .relaxed) == Self.callingThread }

    private static var callingThread: UInt { UInt(bitPattern: Int(bitPattern: pthread_self())) }

    private func own() {
        pthread_mutex_lock(ownership)
        owner.store(Self.callingThread, ordering: .relaxed)
    }

    private func disown() {
        owner.store(0, ordering: .relaxed)
        pthread_mutex_unlock(ownership)
    }

    // MARK: Registration (loop thread only)

    public func register(_ fd: Int32, _ handler: EventHandler, events: UInt32) throws(SystemError) {
        if Int(fd) >= handlers.count {
            handlers.append(contentsOf: repeatElement(nil, count: Int(fd) + 1 - handlers.count + 64))
        }
        handlers[Int(fd)] = handler
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0 {
            handlers[Int(fd)] = nil
            throw SystemError("epoll_ctl(ADD)")
        }
    }

    public func modify(_ fd: Int32, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        _ = epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev)
    }

    public func unregister(_ fd: Int32) {
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
        if Int(fd) < handlers.count { handlers[Int(fd)] = nil }
    }

    // MARK: Cross-thread tasks

    /// Runs `task` on this loop's thread, soon. Safe from any thread.
    public func execute(_ task: @escaping () -> Void) {
        inbox.withLock { $0.append(task) }
        wake()
    }

    /// Wakes the loop once however many times it is called before the loop runs.
    private func wake() {
        if !wakeArmed.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    /// Runs `work` on the calling thread in the loop's place if the loop is parked
    /// (waiting for events, with nothing to do), and returns true; returns false,
    /// doing nothing, when the loop is busy or not running. Tasks queued for the
    /// loop before run first, so work handed over either way keeps its order; the
    /// loop's end-of-turn work (socket flushes) runs before this returns. The
    /// caller saves the loop a wake-up: the cost of a hand-off at moderate rates.
    /// `work` must be short, and must not wait for anything.
    public func runIfParked(_ work: () -> Void) -> Bool {
        guard started.load(ordering: .acquiring), pthread_mutex_trylock(ownership) == 0 else { return false }
        guard running.load(ordering: .acquiring) else {
            pthread_mutex_unlock(ownership)
            return false
        }
        owner.store(Self.callingThread, ordering: .relaxed)
        now = EventLoop.monotonicMilliseconds()
        runInbox()
        work()
        runEndOfTurn()
        // Work left over, or a timer due before the loop would wake by itself.
        let next = timers.millisecondsUntilNext(now: now).map { now + $0 }
        let wakeNeeded = !endOfTurn.isEmpty || !flushQueue.isEmpty || (next.map { $0 < parkedUntil } ?? false)
        disown()
        if wakeNeeded { wake() }
        return true
    }

    /// Runs `task` after the current batch of events, once per call (loop thread only).
    /// Used to batch work such as socket flushes into one pass per loop turn.
    public func atEndOfTurn(_ task: @escaping () -> Void) {
        endOfTurn.append(task)
    }

    /// Queues a connection's output to be written once this turn's events are handled.
    @inline(__always)
    func flushAtEndOfTurn(_ connection: Connection) {
        flushQueue.append(connection)
    }

    /// Writes each turn's output through an io_uring send ring: one `io_uring_enter`
    /// for all the connections that have output, in place of a `write` each. Call
    /// before `start`; throws when the kernel refuses io_uring (the loop then keeps
    /// writing the usual way).
    /// `measured`: the loop uses the ring only while it measures cheaper than a
    /// `write` each (`SendPathChooser`); otherwise always.
    public func useSendRing(entries: UInt32 = 256, measured: Bool = false) throws(SystemError) {
        sendRing = try SendRing(entries: entries)
        sendChooser = measured ? SendPathChooser() : nil
    }

    /// Ends a measuring epoch of the send-path chooser. Only the loop's own thread
    /// counts and measures: one working in a parked loop's place has another CPU clock.
    private func endSendEpoch() {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        let cpu = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        guard sendChooser!.endEpoch(cpu: cpu) else { return }
        let chooser = sendChooser!
        if chooser.path == announcedPath { return }
        let fields: KeyValuePairs<String, Any> = ["loop": index, "sends": chooser.path == .ring ? "io_uring" : "write",
                                                  "io_uring_ns": Int(chooser.lastRingCost ?? 0),
                                                  "write_ns": Int(chooser.lastWriteCost ?? 0)]
        // The first choice at info; later changes (a load that changed, or two paths
        // within noise of each other) at debug, so that a busy broker's log stays quiet.
        if announcedPath == nil { Log.info("reactor.sends", fields) } else { Log.debug("reactor.sends", fields) }
        announcedPath = chooser.path
    }

    /// Whether io_uring can be used on this machine: nil, or why not.
    public static func sendRingUnavailableReason() -> String? { SendRing.unavailableReason() }

    // MARK: Timers (loop thread only)

    @discardableResult
    public func schedule(afterMilliseconds delay: UInt64, _ callback: @escaping () -> Void) -> TimerID {
        timers.schedule(at: now + delay, callback)
    }

    public func cancel(_ timer: TimerID) {
        timers.cancel(timer)
    }

    // MARK: Running

    /// Starts the loop on a new thread.
    public func start() {
        let t = Thread { [self] in
            self.run()
        }
        t.name = name
        t.stackSize = 1 << 20
        thread = t
        t.start()
    }

    /// Asks the loop to finish its current turn and stop.
    public func stop() {
        running.store(false, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Blocks until the loop's thread has returned.
    public func join() {
        while !finished.load(ordering: .acquiring) { usleep(1000) }
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        own()
        runThread = Self.callingThread
        started.store(true, ordering: .releasing)
        while running.load(ordering: .acquiring) {
            let pending = !endOfTurn.isEmpty || !flushQueue.isEmpty
            let timeout = pending ? 0 : timers.millisecondsUntilNext(now: now).map { Int32(min($0, 1000)) } ?? 1000
            parkedUntil = now + UInt64(timeout)
            disown()
            let n = events.withUnsafeMutableBufferPointer { parley_epoll_wait(epfd, $0.baseAddress, 256, timeout) }
            own()
            now = EventLoop.monotonicMilliseconds()
            if n < 0 {
                if errno == EINTR { continue }
                fatalError("epoll_wait failed: \(String(cString: strerror(errno)))")
            }
            for i in 0..<Int(n) {
                let fd = events[i].data.fd
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                    continue
                }
                if Int(fd) < handlers.count, let handler = handlers[Int(fd)] {
                    handler.handleEvent(events[i].events)
                }
            }
            runInbox()
            for callback in timers.takeDue(now: now) { callback() }
            runEndOfTurn()
        }
        runInbox()
        runEndOfTurn()
        disown()
        finished.store(true, ordering: .releasing)
    }

    private func runInbox() {
        // Producers append, then arm the flag; a false flag means nothing new.
        guard wakeArmed.exchange(false, ordering: .acquiringAndReleasing) else { return }
        var taken = inboxSpare
        inbox.withLock { swap(&$0, &taken) }
        for task in taken { task() }
        taken.removeAll(keepingCapacity: true)
        inboxSpare = taken
    }

    /// The end-of-turn flush of `flushing` with one `io_uring_enter` per ring-full
    /// of connections. Every send of a batch is accounted for before any connection
    /// goes on (a connection that goes on may close or write another one).
    private func flushThroughRing(_ ring: SendRing) {
        if ringResults.count < flushing.count { ringResults = Array(repeating: nil, count: flushing.count) }
        ringLater.removeAll(keepingCapacity: true)
        var next = 0
        while next < flushing.count {
            ringQueued.removeAll(keepingCapacity: true)
            while next < flushing.count && ring.queued < ring.capacity {
                if flushing[next].queueSend(on: ring, tag: next) {
                    ringQueued.append(next)
                    ringResults[next] = nil
                } else {
                    ringLater.append(next)
                }
                next += 1
            }
            ring.submit { tag, result in ringResults[tag] = result }
            for i in ringQueued { if let r = ringResults[i] { flushing[i].ringSendWrote(r) } }
            for i in ringQueued { flushing[i].ringSendDone(ringResults[i]) }
        }
        // The rest the usual way (TLS, sockets waiting for EPOLLOUT), once no send is pending.
        for i in ringLater { flushing[i].endOfTurnFlush() }
    }

    private func runEndOfTurn() {
        // Tasks may queue more tasks (a flush that finishes a write); run until quiet.
        var rounds = 0
        while (!endOfTurn.isEmpty || !flushQueue.isEmpty) && rounds < 8 {
            // Swap with spare arrays so that no turn allocates.
            if !endOfTurn.isEmpty {
                swap(&endOfTurn, &runningTasks)
                for task in runningTasks { task() }
                runningTasks.removeAll(keepingCapacity: true)
            }
            if !flushQueue.isEmpty {
                swap(&flushQueue, &flushing)
                let batched = flushing.count > 1
                if let sendRing, batched, sendChooser?.path != .write {
                    flushThroughRing(sendRing)
                } else {
                    for c in flushing { c.endOfTurnFlush() }
                }
                if batched, sendChooser != nil, Self.callingThread == runThread, sendChooser!.counted(flushing.count) {
                    endSendEpoch()
                }
                flushing.removeAll(keepingCapacity: true)
            }
            rounds += 1
        }
    }
}

/// A failed system call, with errno's text.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let code: Int32
    public init(_ call: String, code: Int32 = errno) {
        self.call = call
        self.code = code
    }
    public var description: String { code == 0 ? call : "\(call): \(String(cString: strerror(code)))" }
}
