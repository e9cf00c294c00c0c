/// A framing layer between a connection's socket (plain or TLS) and the protocol
/// spoken over it: WebSocket carrying MQTT. One byte transport, layered: the
/// protocol above reads and writes plain bytes whatever carries them.
public protocol StreamLayer: AnyObject {
    /// Bytes from the socket. The layer hands the payload it unwraps to
    /// `connection.received`, answers control frames with `sendFramed`, and
    /// closes the connection on a violation.
    func decode(_ bytes: UnsafeRawBufferPointer, for connection: Connection)
    /// Wraps `buffer[start...]`, bytes the protocol queued, into the layer's framing,
    /// in place.
    func encode(_ buffer: inout [UInt8], from start: Int)
    /// The connection is about to close on this side: a last frame may be queued
    /// (a WebSocket close frame).
    func closing(_ connection: Connection)
}
