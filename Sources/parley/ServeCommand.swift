import Broker
import Chat
import Gateway
import Notify
import Dispatch
import Foundation
import Reactor

/// Options shared by `serve` and `check-config`: a config file and overrides.
struct ServeOptions {
    var configPath: String?
    var mqtt: [String] = []
    var mqtts: [String] = []
    var http: [String] = []
    var https: [String] = []
    var cert: String?
    var key: String?
    var data: String?
    var loops: Int?
    var plugins: String?

    static func parse(_ args: [String], command: String) -> Result<ServeOptions, UsageError> {
        var o = ServeOptions()
        var i = 0
        while i < args.count {
            let a = args[i]
            func value() -> String? { i + 1 < args.count ? args[i + 1] : nil }
            switch a {
            case "--config", "-c":
                guard let v = value() else { return .failure(UsageError("\(a) needs a file")) }
                o.configPath = v
                i += 2
            case "--mqtt":
                guard let v = value() else { return .failure(UsageError("--mqtt needs HOST:PORT")) }
                o.mqtt.append(v)
                i += 2
            case "--mqtts":
                guard let v = value() else { return .failure(UsageError("--mqtts needs HOST:PORT")) }
                o.mqtts.append(v)
                i += 2
            case "--http":
                guard let v = value() else { return .failure(UsageError("--http needs HOST:PORT")) }
                o.http.append(v)
                i += 2
            case "--https":
                guard let v = value() else { return .failure(UsageError("--https needs HOST:PORT")) }
                o.https.append(v)
                i += 2
            case "--cert":
                guard let v = value() else { return .failure(UsageError("--cert needs a PEM file")) }
                o.cert = v
                i += 2
            case "--key":
                guard let v = value() else { return .failure(UsageError("--key needs a PEM file")) }
                o.key = v
                i += 2
            case "--data":
                guard let v = value() else { return .failure(UsageError("--data needs a directory")) }
                o.data = v
                i += 2
            case "--plugins":
                guard let v = value() else { return .failure(UsageError("--plugins needs a list such as chat (or \"\" for none)")) }
                o.plugins = v
                i += 2
            case "--loops":
                guard let v = value(), let n = Int(v), n >= 0, n <= 256 else {
                    return .failure(UsageError("--loops needs a number from 0 (one per core but one) to 256"))
                }
                o.loops = n
                i += 2
            default:
                return .failure(UsageError("\(command): unknown option '\(a)'"))
            }
        }
        return .success(o)
    }

    /// The configuration: defaults, then the file (if any), then the overrides.
    func load() throws -> ServerConfig {
        var config = ServerConfig()
        if let configPath {
            try config.apply(try ConfigFile.load(configPath), pluginKeys: pluginSettingKeys)
        }
        if !mqtt.isEmpty {
            config.broker.mqttListeners = []
            for m in mqtt {
                do {
                    config.broker.mqttListeners.append(try SocketAddress(parsing: m))
                } catch {
                    throw ConfigError(file: "--mqtt", line: 0, reason: "\(error)")
                }
            }
        }
        if !mqtts.isEmpty {
            config.broker.mqttsListeners = []
            for m in mqtts {
                do {
                    config.broker.mqttsListeners.append(try SocketAddress(parsing: m))
                } catch {
                    throw ConfigError(file: "--mqtts", line: 0, reason: "\(error)")
                }
            }
        }
        if let cert { config.tlsCertificate = cert }
        if let key { config.tlsKey = key }
        if !mqtts.isEmpty || cert != nil || key != nil {
            do {
                try config.finishTLS()
            } catch {
                throw ConfigError(file: "--mqtts/--cert/--key", line: 0, reason: error.description)
            }
        }
        // --http / --https replace the file's listen_http / listen_https.
        for (key, list) in [("listen_http", http), ("listen_https", https)] where !list.isEmpty {
            config.pluginSettings.values[key] = PluginSettings.Value(text: list.joined(separator: ","), file: "--" + key.dropFirst(7),
                                                                     line: 0)
        }
        if !https.isEmpty && config.broker.tls == nil {
            do { try config.finishTLS() } catch {
                throw ConfigError(file: "--https/--cert/--key", line: 0, reason: error.description)
            }
        }
        if let data { config.dataDirectory = data }
        if let loops { config.broker.loops = loops }
        if let plugins {
            do {
                config.plugins = try ServerConfig.pluginList(plugins)
            } catch {
                throw ConfigError(file: "--plugins", line: 0, reason: error.reason)
            }
        }
        return config
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// The configuration keys the plugins read.
let pluginSettingKeys = ChatSettings.keys.union(GatewaySettings.keys).union(NotifySettings.keys)

/// The plugins the configuration enables, before the built-in access rules. With
/// the chat plugin, anonymous clients are refused unless allow_anonymous says so.
func makePlugins(_ config: inout ServerConfig) throws -> [BrokerPlugin] {
    var plugins: [BrokerPlugin] = []
    var chat: ChatPlugin? = nil
    if config.plugins.contains("chat") {
        let made = ChatPlugin(settings: try ChatSettings(config.pluginSettings))
        chat = made
        plugins.append(made)
        if !config.allowAnonymousSet { config.broker.allowAnonymous = false }
    }
    var notify: NotifyPlugin? = nil
    if config.plugins.contains("notify") {
        let made = NotifyPlugin(settings: try NotifySettings(config.pluginSettings), chat: chat)
        notify = made
        plugins.append(made)
    }
    if config.plugins.contains("gateway") {
        plugins.append(GatewayPlugin(settings: try GatewaySettings(config.pluginSettings), chat: chat, notify: notify))
    }
    return plugins
}

func runCheckConfig(_ args: [String]) -> Int32 {
    switch ServeOptions.parse(args, command: "check-config") {
    case .failure(let e):
        printError("parley check-config: \(e)")
        return 2
    case .success(let options):
        do {
            var config = try options.load()
            if let tls = config.broker.tls { _ = try TLSContext(tls) }
            _ = try makePlugins(&config)
            print("configuration ok (\(config.source))")
            return 0
        } catch {
            printError("parley: \(error)")
            return 1
        }
    }
}

func runServe(_ args: [String]) -> Int32 {
    let options: ServeOptions
    switch ServeOptions.parse(args, command: "serve") {
    case .failure(let e):
        printError("parley serve: \(e)")
        return 2
    case .success(let o): options = o
    }
    var config: ServerConfig
    do {
        config = try options.load()
    } catch {
        printError("parley: \(error)")
        return 1
    }
    Log.level = config.logLevel
    let acl = StaticACLPlugin(rules: config.aclRules, defaultAllow: config.aclDefaultAllow)
    let plugins: [BrokerPlugin]
    do {
        plugins = try makePlugins(&config) + [acl]
    } catch {
        printError("parley: \(error)")
        return 1
    }
    let broker = Broker(config: config.broker, plugins: plugins)
    // Signals are taken over before the listeners open, so that a SIGTERM that
    // arrives at any moment after start-up is a clean shutdown, never a kill.
    let signals = SignalHandling(options: options, acl: acl, broker: broker)
    do {
        try broker.start()
    } catch {
        Log.error("broker.start_failed", ["error": error])
        printError("parley: cannot start: \(error)")
        return 1
    }
    Log.info("broker.started", ["version": BrokerInfo.version, "config": config.source,
                                "mqtt": broker.boundAddresses.map { "\($0)" }.joined(separator: ","),
                                "mqtts": broker.boundTLSAddresses.map { "\($0)" }.joined(separator: ",")])
    signals.waitForStop()
    broker.shutdown()
    return 0
}

/// SIGTERM and SIGINT ask for a drain and exit 0; SIGHUP reloads the log level
/// and the access rules from the configuration file. The signals are blocked in
/// every thread from the start of `serve` and taken by one thread with `sigwait`,
/// so one that arrives at any moment (even while the store loads, before this
/// object exists) stays pending and is handled, never lost and never fatal.
final class SignalHandling: @unchecked Sendable {
    private static let handled = [SIGTERM, SIGINT, SIGHUP]
    private let stop = DispatchSemaphore(value: 0)
    private let options: ServeOptions
    private let acl: StaticACLPlugin
    private let broker: Broker

    static func blockSignals() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        return set
    }

    init(options: ServeOptions, acl: StaticACLPlugin, broker: Broker) {
        self.options = options
        self.acl = acl
        self.broker = broker
        let thread = Thread { [self] in waitForSignals() }
        thread.name = "parley-signals"
        thread.start()
    }

    private func waitForSignals() {
        var set = Self.signalSet()
        while true {
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { continue }
            if received == SIGHUP {
                reload()
            } else {
                Log.info("broker.stopping", ["signal": received == SIGTERM ? "TERM" : "INT"])
                stop.signal()
            }
        }
    }

    private func reload() {
        do {
            let config = try options.load()
            Log.level = config.logLevel
            acl.replace(rules: config.aclRules, defaultAllow: config.aclDefaultAllow)
            broker.reloadPlugins(config.pluginSettings)
            // New certificates apply to new connections; open ones keep theirs.
            if let holder = broker.tlsContext, let settings = config.broker.tls {
                holder.replace(try TLSContext(settings))
            }
            Log.info("config.reloaded", ["config": config.source, "acl_rules": config.aclRules.count])
        } catch {
            Log.error("config.reload_failed", ["error": error])
        }
    }

    func waitForStop() { stop.wait() }
}
