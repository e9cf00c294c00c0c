import Foundation
import MQTT
import Reactor
import Store

/// Everything `parley serve` is configured with: the broker core's settings and
/// the process's own (data directory, log level, access rules).
public struct ServerConfig: Sendable {
    public var broker = BrokerConfig()
    public var dataDirectory: String {
        get { broker.dataDirectory }
        set { broker.dataDirectory = newValue }
    }
    public var logLevel = Log.Level.info
    public var aclRules: [ACLRule] = []
    public var aclDefaultAllow = true
    /// Where the settings came from, for messages.
    public var source = "built-in defaults"
    /// The plugins to run (`plugins = chat, gateway, notify`), in order; `plugins =` runs none.
    public var plugins: [String] = ["chat", "gateway", "notify"]
    /// The settings of the plugins, by the keys they declared.
    public var pluginSettings = PluginSettings()
    /// Whether the file set allow_anonymous (a plugin may change its default).
    public var allowAnonymousSet = false
    /// The plugins this build knows (the value of `plugins` must name only these).
    public static let knownPlugins: Set<String> = ["chat", "gateway", "notify"]

    /// `chat, ...` (comma-separated; empty: none), every name known.
    public static func pluginList(_ text: String) throws(ConfigError) -> [String] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for n in names where !knownPlugins.contains(n) {
            throw ConfigError(file: "", line: 0,
                              reason: "unknown plugin '\(n)' (known: \(knownPlugins.sorted().joined(separator: ", ")))")
        }
        return names
    }

    public init() {}

    /// Applies a file's settings over the defaults; the first bad value stops it.
    /// `pluginKeys`: the settings plugins read; they are kept for them in `pluginSettings`.
    public mutating func apply(_ file: ConfigFile, pluginKeys: Set<String> = []) throws(ConfigError) {
        source = file.path
        var listenersSet = false
        var tlsListenersSet = false
        var tlsLine = 0
        for e in file.entries {
            func fail(_ reason: String) -> ConfigError { ConfigError(file: file.path, line: e.line, reason: reason) }
            func int(_ range: ClosedRange<Int>) throws(ConfigError) -> Int {
                guard let n = Int(e.value), range.contains(n) else {
                    throw fail("\(e.key) must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(e.value)'")
                }
                return n
            }
            func size(_ range: ClosedRange<Int>) throws(ConfigError) -> Int {
                guard let n = ConfigValue.size(e.value), range.contains(n) else {
                    throw fail("\(e.key) must be a size from \(range.lowerBound) to \(range.upperBound) bytes (e.g. 64K, 16M), not '\(e.value)'")
                }
                return n
            }
            func bool() throws(ConfigError) -> Bool {
                guard let b = ConfigValue.bool(e.value) else { throw fail("\(e.key) must be true or false, not '\(e.value)'") }
                return b
            }
            func seconds() throws(ConfigError) -> UInt32 {
                guard let s = ConfigValue.seconds(e.value) else {
                    throw fail("\(e.key) must be a duration (e.g. 3600, 90s, 5m, 2h, 7d) or never, not '\(e.value)'")
                }
                return s
            }
            switch e.key {
            case "listen":
                do {
                    let address = try SocketAddress(parsing: e.value)
                    if !listenersSet {
                        broker.mqttListeners = []
                        listenersSet = true
                    }
                    broker.mqttListeners.append(address)
                } catch {
                    throw fail("\(error)")
                }
            case "listen_tls":
                do {
                    let address = try SocketAddress(parsing: e.value)
                    if !tlsListenersSet {
                        broker.mqttsListeners = []
                        tlsListenersSet = true
                    }
                    broker.mqttsListeners.append(address)
                    if tlsLine == 0 { tlsLine = e.line }
                } catch {
                    throw fail("\(error)")
                }
            case "tls_cert": tlsCertificate = e.value
            case "tls_key": tlsKey = e.value
            case "tls_ca": tlsCA = e.value
            case "tls_require_client_certificate": tlsRequireClientCertificate = try bool()
            case "tls_use_identity_as_username": broker.useIdentityAsUsername = try bool()
            case "tls_min_version":
                guard e.value == "1.2" || e.value == "1.3" else { throw fail("tls_min_version must be 1.2 or 1.3") }
                tlsMinimumVersion = e.value
            case "tls_ciphers":
                if e.value.isEmpty { throw fail("tls_ciphers must not be empty") }
                tlsCiphers = e.value
            case "loops": broker.loops = try int(0...256)
            case "io_uring":
                guard let use = BrokerConfig.IOUringUse(rawValue: e.value) else {
                    throw fail("io_uring must be auto, on or off, not '\(e.value)'")
                }
                broker.ioUring = use
            case "data_dir":
                if e.value.isEmpty { throw fail("data_dir must not be empty") }
                dataDirectory = e.value
            case "durability":
                switch e.value {
                case "full": broker.durability = .full
                case "none": broker.durability = .none
                case "batch": broker.durability = .batch(milliseconds: batchMilliseconds)
                default: throw fail("durability must be full, batch or none, not '\(e.value)'")
                }
            case "durability_batch_ms":
                batchMilliseconds = try int(1...10_000)
                if case .batch = broker.durability { broker.durability = .batch(milliseconds: batchMilliseconds) }
            case "store_max_size": broker.storeMaxBytes = try size(0...Int.max / 2)
            case "log_level":
                guard let level = Log.Level(name: e.value) else { throw fail("log_level must be debug, info, warn or error") }
                logLevel = level
            case "allow_anonymous":
                broker.allowAnonymous = try bool()
                allowAnonymousSet = true
            case "plugins":
                do {
                    plugins = try Self.pluginList(e.value)
                } catch {
                    throw fail("plugins: " + error.reason)
                }
            case let key where pluginKeys.contains(key):
                pluginSettings.values[key] = PluginSettings.Value(text: e.value, file: file.path, line: e.line)
            case "max_packet_size": broker.maxPacketSize = try size(64...maximumVariableInt + 5)
            case "max_inflight": broker.maxInflight = try int(1...65_535)
            case "max_queued_messages": broker.maxQueuedMessages = try int(0...1_000_000_000)
            case "max_stored_messages": broker.maxStoredMessages = try int(0...1_000_000_000)
            case "max_queued_bytes": broker.maxQueuedBytes = try size(0...Int(Int32.max))
            case "queue_memory_budget": broker.queueMemoryBudget = try size(0...Int.max / 2)
            case "queue_qos0_messages": broker.queueQoS0Messages = try bool()
            case "slow_consumer_bytes": broker.slowConsumerBytes = try size(1024...Int(Int32.max))
            case "max_connections": broker.maxConnections = try int(1...10_000_000)
            case "max_topic_length": broker.maxTopicLength = try int(1...65_535)
            case "max_topic_levels": broker.maxTopicLevels = try int(1...65_535)
            case "connect_timeout": broker.connectTimeout = Int(min(try seconds(), 3600))
            case "max_keepalive":
                let s = try seconds()
                guard s <= 65_535 else { throw fail("max_keepalive must be at most 65535 seconds") }
                broker.maxKeepAlive = UInt16(s)
            case "allow_zero_keepalive": broker.allowZeroKeepAlive = try bool()
            case "topic_alias_maximum": broker.topicAliasMaximum = UInt16(try int(0...65_535))
            case "max_session_expiry": broker.maxSessionExpiry = try seconds()
            case "persistent_session_expiry": broker.persistentSessionExpiry = try seconds()
            case "retain_available": broker.retainAvailable = try bool()
            case "sys_interval": broker.sysInterval = try int(0...86_400)
            case "reason_strings": broker.reasonStrings = try bool()
            case "acl":
                do {
                    aclRules.append(try ACLRule(parsing: e.value))
                } catch {
                    throw fail(error.description)
                }
            case "acl_default":
                switch e.value {
                case "allow": aclDefaultAllow = true
                case "deny": aclDefaultAllow = false
                default: throw fail("acl_default must be allow or deny")
                }
            default:
                throw fail("unknown setting '\(e.key)'")
            }
        }
        do {
            try finishTLS()
        } catch {
            throw ConfigError(file: file.path, line: tlsLine, reason: error.description)
        }
    }

    // TLS settings are gathered from several keys and checked together.
    public var tlsCertificate: String?
    public var tlsKey: String?
    public var tlsCA: String?
    public var tlsRequireClientCertificate = false
    public var tlsMinimumVersion = "1.2"
    public var tlsCiphers: String?
    private var batchMilliseconds = 10

    /// Builds `broker.tls` from the tls_* settings and checks they fit together.
    public mutating func finishTLS() throws(TLSError) {
        if tlsCertificate == nil && tlsKey == nil {
            if !broker.mqttsListeners.isEmpty {
                throw TLSError("TLS listeners need a certificate and a key (tls_cert and tls_key, or --cert and --key)")
            }
            broker.tls = nil
            return
        }
        guard let cert = tlsCertificate, let key = tlsKey else {
            throw TLSError("tls_cert and tls_key go together")
        }
        var settings = TLSSettings(certificateChain: cert, privateKey: key)
        settings.clientCA = tlsCA
        settings.requireClientCertificate = tlsRequireClientCertificate || broker.useIdentityAsUsername
        settings.minimumVersion = tlsMinimumVersion
        if let tlsCiphers { settings.ciphers = tlsCiphers }
        if settings.requireClientCertificate && tlsCA == nil {
            throw TLSError("client certificates (tls_require_client_certificate or tls_use_identity_as_username) need tls_ca")
        }
        broker.tls = settings
    }
}
