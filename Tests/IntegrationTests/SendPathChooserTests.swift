// The send-path chooser (io_uring = auto): it measures the ring and a write() each in
// alternating epochs, keeps the cheaper one (the ring when they are within noise),
// holds it, and measures again.
@testable import Reactor
import Testing

@Suite("send-path chooser")
struct SendPathChooserTests {
    /// Runs epochs in which a flushed connection costs `ring` or `write` ns on that
    /// path; returns the paths used, epoch by epoch, and how many rounds chose.
    static func run(epochs: Int, ring: (Int) -> UInt64, write: (Int) -> UInt64,
                    _ chooser: inout SendPathChooser) -> (paths: [SendPathChooser.Path], decisions: Int)
    {
        var cpu: UInt64 = 1_000_000
        var paths: [SendPathChooser.Path] = []
        var decisions = 0
        _ = chooser.endEpoch(cpu: cpu)  // the first epoch starts here
        for e in 0..<epochs {
            let path = chooser.path
            paths.append(path)
            var flushed = 0
            while !chooser.counted(64) { flushed += 64 }
            flushed += 64
            cpu += UInt64(flushed) * (path == .ring ? ring(e) : write(e))
            if chooser.endEpoch(cpu: cpu) { decisions += 1 }
        }
        return (paths, decisions)
    }

    @Test("an epoch ends after the set number of batched connections")
    func epochLength() {
        var c = SendPathChooser()
        var batches = 0
        while true {
            let over = c.counted(100)
            if over { break }
            batches += 1
        }
        #expect((batches + 1) * 100 >= SendPathChooser.epochFlushes)
        #expect(batches * 100 < SendPathChooser.epochFlushes)
    }

    @Test("tries both paths in turn, then keeps write() when it is clearly cheaper")
    func choosesWrite() {
        var c = SendPathChooser()
        let trials = 2 * SendPathChooser.trialsPerPath
        let (paths, decisions) = Self.run(epochs: trials + 10, ring: { _ in 1200 }, write: { _ in 1000 }, &c)
        #expect(Array(paths.prefix(trials)) == (0..<trials).map { $0 % 2 == 0 ? .ring : .write })
        #expect(decisions == 1)
        #expect(paths.suffix(10).allSatisfy { $0 == .write })
        #expect(c.lastRingCost == 1200 && c.lastWriteCost == 1000)
    }

    @Test("keeps the ring when it is cheaper, and when the two are within noise")
    func keepsRing() {
        for write: UInt64 in [1500, 990] {
            var c = SendPathChooser()
            let trials = 2 * SendPathChooser.trialsPerPath
            let (paths, _) = Self.run(epochs: trials + 5, ring: { _ in 1000 }, write: { _ in write }, &c)
            #expect(paths.suffix(5).allSatisfy { $0 == .ring }, "write \(write) ns")
        }
    }

    @Test("a noisy epoch does not decide: the median of each path does")
    func medianNotMean() {
        var c = SendPathChooser()
        // One ring epoch is very dear (another process took the core); write is dearer otherwise.
        let (paths, _) = Self.run(epochs: 2 * SendPathChooser.trialsPerPath + 3,
                                  ring: { $0 == 0 ? 50_000 : 1000 }, write: { _ in 1300 }, &c)
        #expect(paths.suffix(3).allSatisfy { $0 == .ring })
    }

    @Test("measures again after holding, and follows a load that changed")
    func measuresAgain() {
        var c = SendPathChooser()
        let trials = 2 * SendPathChooser.trialsPerPath
        let round = trials + SendPathChooser.holdEpochs
        // First the ring is cheaper, later write() is.
        let (paths, decisions) = Self.run(epochs: round + trials + 4, ring: { $0 < round ? 900 : 1500 },
                                          write: { _ in 1000 }, &c)
        #expect(decisions == 2)
        #expect(paths[trials + 1] == .ring)
        #expect(paths.suffix(4).allSatisfy { $0 == .write })
    }

    @Test("a clock that went backwards or an empty epoch is not a measurement")
    func ignoresBadSamples() {
        var c = SendPathChooser()
        _ = c.endEpoch(cpu: 5_000_000)
        _ = c.counted(SendPathChooser.epochFlushes)
        let backwards = c.endEpoch(cpu: 4_000_000)
        #expect(!backwards)
        #expect(c.path == .ring)
        let empty = c.endEpoch(cpu: 6_000_000)  // nothing flushed in it
        #expect(!empty)
        #expect(c.path == .ring)
    }
}
