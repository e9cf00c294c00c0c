/// Picks, by measuring, how a loop writes a turn's batch of outputs: through its
/// send ring (one `io_uring_enter`) or with one `write` each.
///
/// Neither is cheaper everywhere. Where system calls are dear, the ring saves one
/// per connection; where they are cheap, it saves little, and on some machines a
/// batch of sends made in one call costs more than the same sends made one by one
/// (measured: Tests/bench/floor-notes.md). So the loop tries both in alternating
/// epochs of `epochFlushes` batched connections, keeps the one that cost less of
/// its thread's CPU per connection, holds it for `holdEpochs` epochs and then tries
/// again, since the load changes. Only the caller reads clocks: this is arithmetic.
struct SendPathChooser {
    /// Connections flushed in batches (turns with more than one) per epoch.
    static let epochFlushes = 2048
    /// Epochs measured per path in a round of trials (alternating).
    static let trialsPerPath = 3
    /// Epochs the chosen path is kept before the next round of trials.
    static let holdEpochs = 48
    /// `write` must cost this much less than the ring to be chosen: the ring is
    /// kept when the two are within noise (it needs fewer system calls).
    static let margin = 0.97

    enum Path: Equatable { case ring, write }

    /// The path for the current epoch.
    private(set) var path = Path.ring
    /// The last round's medians, nanoseconds of CPU per flushed connection.
    private(set) var lastRingCost: Double?
    private(set) var lastWriteCost: Double?
    private var flushes = 0
    private var epochStartCPU: UInt64?
    private var ringCosts: [Double] = []
    private var writeCosts: [Double] = []
    private var holding = 0

    /// Counts connections flushed in one batch; true when the epoch is over and the
    /// caller should call `endEpoch` with its thread's CPU clock.
    mutating func counted(_ connections: Int) -> Bool {
        flushes += connections
        return flushes >= Self.epochFlushes
    }

    /// Ends an epoch at `cpu` (the loop thread's CPU time, nanoseconds). Returns
    /// true when a round of trials has just chosen a path (`path`, and the costs
    /// it was chosen on, are then worth telling).
    mutating func endEpoch(cpu: UInt64) -> Bool {
        defer {
            flushes = 0
            epochStartCPU = cpu
        }
        guard let start = epochStartCPU, cpu >= start, flushes > 0 else { return false }
        if holding > 0 {
            holding -= 1
            return false
        }
        let cost = Double(cpu - start) / Double(flushes)
        if path == .ring { ringCosts.append(cost) } else { writeCosts.append(cost) }
        if ringCosts.count < Self.trialsPerPath || writeCosts.count < Self.trialsPerPath {
            path = path == .ring ? .write : .ring
            return false
        }
        let ring = Self.median(ringCosts)
        let write = Self.median(writeCosts)
        lastRingCost = ring
        lastWriteCost = write
        ringCosts.removeAll(keepingCapacity: true)
        writeCosts.removeAll(keepingCapacity: true)
        path = write < ring * Self.margin ? .write : .ring
        holding = Self.holdEpochs
        return true
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
}
