import Foundation
import MQTT
import Reactor

/// Everything `parley serve` is configured with: the broker core's settings and
/// the process's own (data directory, log level, access rules).
public struct ServerConfig: Sendable {
    public var broker = BrokerConfig()
    public var dataDirectory = "./data"
    public var logLevel = Log.Level.info
    public var aclRules: [ACLRule] = []
    public var aclDefaultAllow = true
    /// Where the settings came from, for messages.
    public var source = "built-in defaults"

    public init() {}

    /// Applies a file's settings over the defaults; the first bad value stops it.
    public mutating func apply(_ file: ConfigFile) throws(ConfigError) {
        source = file.path
        var listenersSet = false
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
            case "loops": broker.loops = try int(0...256)
            case "data_dir":
                if e.value.isEmpty { throw fail("data_dir must not be empty") }
                dataDirectory = e.value
            case "log_level":
                guard let level = Log.Level(name: e.value) else { throw fail("log_level must be debug, info, warn or error") }
                logLevel = level
            case "allow_anonymous": broker.allowAnonymous = try bool()
            case "max_packet_size": broker.maxPacketSize = try size(64...maximumVariableInt + 5)
            case "max_inflight": broker.maxInflight = try int(1...65_535)
            case "max_queued_messages": broker.maxQueuedMessages = try int(0...100_000_000)
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
    }
}
