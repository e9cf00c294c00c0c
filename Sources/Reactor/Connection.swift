import CLinux
import Glibc

/// A non-blocking stream socket owned by one event loop: reads whatever arrives
/// and hands it to `received`, buffers what is sent and writes it once per loop
/// turn (one system call for everything queued during the turn).
open class Connection: EventHandler {
    // Field order keeps the object small: an idle connection costs what is here.
    /// A loop outlives the connections registered with it. It changes only when
    /// the connection moves (`leaveLoop` on the old loop, `joinLoop` on the new).
    @exclusivity(unchecked) public private(set) unowned(unsafe) var loop: EventLoop
    @exclusivity(unchecked) private var outBuffer: [UInt8] = []
    @exclusivity(unchecked) private var outOffset = 0
    public let peer: SocketAddress?
    /// TLS state for connections on a TLS listener.
    public private(set) var tls: TLSStream?
    public let fd: Int32
    @exclusivity(unchecked) private var flushScheduled = false
    private var pollingWrites = false
    private var readingPaused = false
    public private(set) var isClosed = false
    /// A framing layer between the socket (or TLS) and the protocol: WebSocket.
    public private(set) var layer: StreamLayer?
    /// Output before this offset is framed by the layer; after it, not yet.
    @exclusivity(unchecked) private var framedUpTo = 0

    public init(fd: Int32, loop: EventLoop, peer: SocketAddress?) {
        self.fd = fd
        self.loop = loop
        self.peer = peer
    }

    /// Makes this a TLS connection (before `activate`): the server side, or with
    /// `asClient` the client side, which checks that the server's certificate names
    /// `serverName` when its context verifies the server.
    public func startTLS(_ context: TLSContext, asClient: Bool = false, serverName: String? = nil) -> Bool {
        guard let stream = TLSStream(context: context, fd: fd, client: asClient, serverName: serverName) else {
            return false
        }
        tls = stream
        return true
    }

    /// For the client side: sends the first handshake record (after `activate`).
    public func beginTLSHandshake() {
        if let tls, !tls.handshakeDone { continueHandshake(tls) }
    }

    /// Continues an existing TLS session (a connection moved to another loop).
    public func adoptTLS(_ stream: TLSStream?) {
        tls = stream
    }

    /// Puts a framing layer between the socket and `received` / `send` (an upgraded
    /// HTTP connection speaking WebSocket). Output queued before it stays unframed.
    public func setLayer(_ newLayer: StreamLayer) {
        framedUpTo = outBuffer.count
        layer = newLayer
    }

    /// Starts reading. Call on the loop's thread.
    public func activate() throws(SystemError) {
        // On a loop it has moved to, a connection still waiting to write keeps EPOLLOUT.
        try loop.register(fd, self, events: watchedEvents(writes: pollingWrites))
    }

    /// Moving to another loop, step 1 (on the current loop's thread): stop
    /// watching the socket here. Nothing may be queued for output.
    public func leaveLoop() {
        loop.unregister(fd)
    }

    /// Step 2 (on the new loop's thread): watch the socket there. Bytes that
    /// arrived in between are still in the kernel and are reported at once.
    public func joinLoop(_ newLoop: EventLoop) throws(SystemError) {
        loop = newLoop
        try activate()
    }

    /// Bytes queued and not yet written.
    public var pendingOutput: Int { outBuffer.count - outOffset }

    /// What epoll watches: input unless reading is paused, output while writes wait.
    private func watchedEvents(writes: Bool) -> UInt32 {
        (readingPaused ? 0 : EPOLLIN.rawValue | EPOLLRDHUP.rawValue) | (writes ? EPOLLOUT.rawValue : 0)
    }

    /// Stops reading from the socket (the peer is sending faster than it is
    /// answered): what it sends waits in the kernel, whose window then holds it
    /// back. A hang-up or an error still ends the connection.
    public func pauseReading() {
        if readingPaused || isClosed { return }
        readingPaused = true
        loop.modify(fd, events: watchedEvents(writes: pollingWrites))
    }

    public func resumeReading() {
        if !readingPaused || isClosed { return }
        readingPaused = false
        loop.modify(fd, events: watchedEvents(writes: pollingWrites))
        readAvailable()
    }

    public func handleEvent(_ events: UInt32) {
        if readingPaused {
            if events & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { return close(reason: .peerClosed) }
            if events & EPOLLOUT.rawValue != 0 { flush() }
            return
        }
        let readable = events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
        let writable = events & EPOLLOUT.rawValue != 0
        guard let tls else {
            if writable { flush() }
            if readable { readAvailable() }
            return
        }
        if !tls.handshakeDone {
            continueHandshake(tls)
            if !tls.handshakeDone || isClosed { return }
        }
        if writable {
            flush()
            // A read that had to write first goes on now that it can.
            if tls.readWantsWrite && !isClosed { readAvailable() }
        }
        if readable && !isClosed {
            readAvailable()
            // A write that had to read first goes on now that it can.
            if tls.writeWantsRead && !isClosed { flush() }
        }
    }

    private func continueHandshake(_ tls: TLSStream) {
        switch tls.handshake() {
        case .done:
            setPollingWrites(false)
            tlsHandshakeCompleted()
            // Application data may have come with the last handshake record.
            if !isClosed { readAvailable() }
            if !isClosed && pendingOutput > 0 { flush() }
        case .wantRead:
            setPollingWrites(false)
        case .wantWrite:
            setPollingWrites(true)
        case .closed:
            close(reason: .peerClosed)
        case .failed(let why):
            close(reason: .error(SystemError(why, code: 0)))
        }
    }

    private func setPollingWrites(_ on: Bool) {
        if pollingWrites == on { return }
        pollingWrites = on
        loop.modify(fd, events: watchedEvents(writes: on))
    }

    private func readTLS(_ tls: TLSStream) {
        let buffer = loop.readBuffer
        tls.readWantsWrite = false
        // Read until OpenSSL wants more from the socket: records it has already
        // decrypted would not make epoll report the socket again.
        while !isClosed {
            switch tls.read(buffer) {
            case .done(let n):
                arrived(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            case .wantRead:
                return
            case .wantWrite:
                tls.readWantsWrite = true
                setPollingWrites(true)
                return
            case .closed:
                close(reason: .peerClosed)
                return
            case .failed(let why):
                close(reason: .error(SystemError(why, code: 0)))
                return
            }
        }
    }

    private func readAvailable() {
        if let tls {
            readTLS(tls)
            return
        }
        let buffer = loop.readBuffer
        // Level-triggered: one full buffer per turn is fair; the rest is reported again.
        for _ in 0..<4 {
            if isClosed { return }
            let n = parley_read(fd, buffer.baseAddress, buffer.count)
            if n > 0 {
                arrived(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                if n < buffer.count { return }
            } else if n == 0 {
                close(reason: .peerClosed)
                return
            } else {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                close(reason: .error(SystemError("read")))
                return
            }
        }
    }

    @inline(__always)
    private func arrived(_ bytes: UnsafeRawBufferPointer) {
        if let layer { layer.decode(bytes, for: self) } else { received(bytes) }
    }

    /// Reads what the socket (or the TLS session) has now, as if it were reported.
    public func readNow() {
        if !isClosed { readAvailable() }
    }

    /// Hands bytes to the layer above in place of the socket: what arrived with an
    /// HTTP upgrade request after its headers.
    public func deliver(_ bytes: UnsafeRawBufferPointer) {
        if isClosed || bytes.isEmpty { return }
        arrived(bytes)
    }

    // MARK: Writing

    /// Queues bytes the layer made (a control frame), after framing what the
    /// protocol queued before them.
    public func sendFramed(_ bytes: [UInt8]) {
        if isClosed { return }
        frameOutput()
        outBuffer.append(contentsOf: bytes)
        framedUpTo = outBuffer.count
        scheduleFlush()
    }

    @inline(__always)
    private func frameOutput() {
        if let layer, framedUpTo < outBuffer.count {
            layer.encode(&outBuffer, from: framedUpTo)
            framedUpTo = outBuffer.count
        }
    }

    /// Queues bytes; they are written at the end of this loop turn.
    @inline(__always)
    public func send(_ bytes: [UInt8]) {
        if isClosed { return }
        outBuffer.append(contentsOf: bytes)
        scheduleFlush()
    }

    /// Queues bytes with a big-endian 16-bit value written over two of them (a
    /// packet identifier in a shared encoding).
    @inline(__always)
    public func send(_ bytes: [UInt8], patchingUInt16 value: UInt16, at offset: Int) {
        if isClosed { return }
        let start = outBuffer.count
        outBuffer.append(contentsOf: bytes)
        outBuffer[start + offset] = UInt8(truncatingIfNeeded: value >> 8)
        outBuffer[start + offset + 1] = UInt8(truncatingIfNeeded: value)
        scheduleFlush()
    }

    /// Gives direct access to the output buffer to encode into it without a copy.
    @inline(__always)
    public func sendEncoding(_ encode: (inout [UInt8]) -> Void) {
        if isClosed { return }
        encode(&outBuffer)
        scheduleFlush()
    }

    @inline(__always)
    private func scheduleFlush() {
        if !flushScheduled && !pollingWrites {
            flushScheduled = true
            loop.flushAtEndOfTurn(self)
        }
    }

    /// Called by the loop for connections queued with `flushAtEndOfTurn`.
    func endOfTurnFlush() {
        flushScheduled = false
        flush()
    }

    /// Writes what is queued now.
    public func flush() {
        if isClosed { return }
        frameOutput()
        if let tls {
            if !tls.handshakeDone { return }
            flushTLS(tls)
            return
        }
        while outOffset < outBuffer.count {
            let n = outBuffer.withUnsafeBytes { p in
                parley_write(fd, p.baseAddress! + outOffset, p.count - outOffset)
            }
            if n > 0 {
                outOffset += n
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                startPollingWrites()
                return
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                close(reason: .error(SystemError("write")))
                return
            }
        }
        finishedWriting()
    }

    /// Everything queued is written: keep a small buffer for the next turn, give a
    /// large one back, stop watching for writability.
    private func finishedWriting() {
        if outBuffer.capacity > 16_384 { outBuffer = [] } else { outBuffer.removeAll(keepingCapacity: true) }
        outOffset = 0
        framedUpTo = 0
        if pollingWrites {
            pollingWrites = false
            loop.modify(fd, events: watchedEvents(writes: false))
        }
        writeDrained()
    }

    private func startPollingWrites() {
        if !pollingWrites {
            pollingWrites = true
            loop.modify(fd, events: watchedEvents(writes: true))
        }
    }

    // MARK: Writing through the loop's send ring

    /// The end-of-turn flush, through `ring`: queues what is waiting as one send and
    /// returns true, or returns false and leaves it to `endOfTurnFlush` after the
    /// ring's batch (TLS, a socket waiting for EPOLLOUT, nothing to send, a full
    /// ring). Nothing is written here: a write now could run code that closes a
    /// connection whose send is queued. The output buffer stays untouched until
    /// `ringSendWrote`.
    func queueSend(on ring: SendRing, tag: Int) -> Bool {
        guard !isClosed, tls == nil, !pollingWrites else { return false }
        frameOutput()
        guard outOffset < outBuffer.count else { return false }
        let queued = outBuffer.withUnsafeBytes { p in
            ring.send(fd, p.baseAddress! + outOffset, p.count - outOffset, tag: tag)
        }
        if queued { flushScheduled = false }
        return queued
    }

    /// Step 1 of a completed ring send, for every connection of the batch before
    /// any goes on: what the kernel wrote is no longer queued here.
    func ringSendWrote(_ result: Int32) {
        if result > 0 { outOffset += Int(result) }
    }

    /// Step 2: go on as `flush` would after its `write`. `nil`: the kernel did not
    /// take the send, which is then written the usual way.
    func ringSendDone(_ result: Int32?) {
        if isClosed { return }
        guard let result else { return flush() }
        if result >= 0 {
            if outOffset < outBuffer.count { flush() } else { finishedWriting() }
        } else if result == -EAGAIN || result == -EWOULDBLOCK {
            startPollingWrites()
        } else if result == -EINTR || result == -EINVAL || result == -EOPNOTSUPP {
            // Interrupted, or a send the ring cannot make: `write` tries it, and tells.
            flush()
        } else {
            close(reason: .error(SystemError("send", code: -result)))
        }
    }

    private func flushTLS(_ tls: TLSStream) {
        tls.writeWantsRead = false
        while outOffset < outBuffer.count {
            let result = outBuffer.withUnsafeBytes { p in tls.write(p.baseAddress! + outOffset, p.count - outOffset) }
            switch result {
            case .done(let n):
                outOffset += n
            case .wantWrite:
                setPollingWrites(true)
                return
            case .wantRead:
                // Polling for writes would spin: the socket is writable, OpenSSL waits for input.
                tls.writeWantsRead = true
                setPollingWrites(tls.readWantsWrite)
                return
            case .closed:
                close(reason: .peerClosed)
                return
            case .failed(let why):
                close(reason: .error(SystemError(why, code: 0)))
                return
            }
        }
        if outBuffer.capacity > 16_384 { outBuffer = [] } else { outBuffer.removeAll(keepingCapacity: true) }
        outOffset = 0
        framedUpTo = 0
        setPollingWrites(tls.readWantsWrite)
        writeDrained()
    }

    /// Releases the output buffer of an idle connection.
    public func releaseIdleBuffers() {
        if outOffset == outBuffer.count { outBuffer = []; outOffset = 0; framedUpTo = 0 }
    }

    // MARK: Closing

    public enum CloseReason: Sendable {
        case peerClosed
        case error(SystemError)
        case local
    }

    /// Closes the socket after trying to write what is queued (without blocking).
    public func close(reason: CloseReason = .local) {
        if isClosed { return }
        if case .local = reason, let layer { layer.closing(self) }
        if case .local = reason, pendingOutput > 0 { flush() }
        isClosed = true
        loop.unregister(fd)
        if case .local = reason { tls?.shutdown() }
        Glibc.close(fd)
        didClose(reason)
    }

    /// Takes what is queued and not yet written (for a hand-over: it goes first on
    /// the new connection object).
    public func takeOutput() -> [UInt8] {
        let rest = Array(outBuffer[outOffset...])
        outBuffer = []
        outOffset = 0
        framedUpTo = 0
        return rest
    }

    /// Hands the socket over to another connection object (an HTTP connection that
    /// became an MQTT one): stops watching it, without closing it or calling
    /// `didClose`. Nothing may be queued for output. Returns the TLS session, if any.
    public func detach() -> TLSStream? {
        if isClosed { return nil }
        isClosed = true
        loop.unregister(fd)
        let stream = tls
        tls = nil
        return stream
    }

    // MARK: For subclasses

    /// Bytes arrived. Valid only during the call.
    open func received(_ bytes: UnsafeRawBufferPointer) {}
    /// The socket is closed; called once.
    open func didClose(_ reason: CloseReason) {}
    /// Everything queued has been written.
    open func writeDrained() {}
    /// The TLS handshake finished (`tls.peerCommonName` is known from here on).
    open func tlsHandshakeCompleted() {}
}
