import MQTT
import Reactor
import Store

/// Everything the broker core can be told. Defaults are the safe, documented ones
/// in conf/parley.conf.
public struct BrokerConfig: Sendable {
    /// Plain MQTT over TCP listeners.
    public var mqttListeners: [SocketAddress] = [try! SocketAddress(parsing: "127.0.0.1:1883")]
    /// MQTT over TLS listeners (they share `tls`).
    public var mqttsListeners: [SocketAddress] = []
    /// Certificate, key and client-certificate policy of the TLS listeners.
    public var tls: TLSSettings?
    /// Use the verified client certificate's common name as the user name.
    public var useIdentityAsUsername = false
    /// Where the database lives.
    public var dataDirectory = "./data"
    /// full: QoS 1/2 acks wait for the commit; batch: commit every few ms, ack at
    /// once; none: nothing on disk.
    public var durability = Durability.full
    /// A cap on the database's size (0 = none); reaching it behaves like a full disk.
    public var storeMaxBytes = 0
    /// Event loops (threads); 0 means `Broker.defaultLoopCount` (one per core but one).
    public var loops = 0
    /// A loop turn's socket sends in one io_uring system call: where the kernel
    /// allows it and it measures cheaper than a write() each (auto), always (on:
    /// refuse to start without it), or never (off).
    public var ioUring = IOUringUse.auto
    public enum IOUringUse: String, Sendable { case auto, on, off }
    /// Blocking plugin jobs (password checks) that may wait for a worker; beyond it
    /// new ones are refused (CONNACK 0x89 server busy).
    public var blockingQueueLimit = 256
    /// Largest packet accepted from a client, fixed header included.
    public var maxPacketSize = 1_048_576
    /// QoS 1/2 messages in flight to a client at once (v5: also capped by its receive
    /// maximum) and the receive maximum the broker announces.
    public var maxInflight = 100
    /// Messages and bytes queued per session beyond those in flight.
    public var maxQueuedMessages = 1000
    public var maxQueuedBytes = 16 * 1_048_576
    /// Messages a stored session may have queued on disk (0 = no limit); its
    /// memory holds at most a page of them, so this is a disk budget.
    public var maxStoredMessages = 1_000_000
    /// All sessions' queues together.
    public var queueMemoryBudget = 512 * 1_048_576
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    public var queueQoS0Messages = false
    /// Bytes waiting in a connection's socket buffer before QoS 0 messages to it are
    /// dropped and QoS 1/2 ones wait in its queue: a slow reader never grows memory
    /// without bound nor slows anyone else.
    public var slowConsumerBytes = 1_048_576
    /// Concurrent client connections; further ones are refused (v5 CONNACK 0x97... or closed).
    public var maxConnections = 100_000
    /// Topic names and filters longer than this many bytes, or with more levels, are refused.
    public var maxTopicLength = 65_535
    public var maxTopicLevels = 200
    /// Seconds a new connection has to send CONNECT.
    public var connectTimeout = 10
    /// The largest keep alive granted (seconds); above it, v5 clients are told the
    /// server keep alive. 0 keep alive is allowed unless `allowZeroKeepAlive` is false.
    public var maxKeepAlive: UInt16 = 65_535
    public var allowZeroKeepAlive = true
    /// Topic aliases a v5 client may set up towards the broker.
    public var topicAliasMaximum: UInt16 = 64
    /// Session expiry granted at most (seconds); `UInt32.max` = no cap. 3.x persistent
    /// sessions use `persistentSessionExpiry`.
    public var maxSessionExpiry: UInt32 = UInt32.max
    public var persistentSessionExpiry: UInt32 = UInt32.max
    public var retainAvailable = true
    /// Seconds between `$SYS/broker/...` updates; 0 turns them off.
    public var sysInterval = 10
    /// Whether clients that no authentication plugin vouches for may connect. The
    /// chat/auth plugin turns this off by default once it is loaded.
    public var allowAnonymous = true
    /// Whether v5 reason strings are sent (only ever to clients that allow them).
    public var reasonStrings = true

    public init() {}
}
