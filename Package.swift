// swift-tools-version:6.0
// Parley: a chat-native MQTT broker. No package dependencies by design: the
// Swift toolchain plus OpenSSL 3 and SQLite 3 through system-library targets.
import PackageDescription

let swift5: [SwiftSetting] = [.swiftLanguageMode(.v5)]
// The per-message path (codec, reactor, broker core): release builds leave out the
// run-time exclusivity checks, which cost a fifth of its user-space instructions
// (callgrind, Tests/bench/floor-notes.md). Debug builds, which the tests run, keep
// them, so an overlapping access is still caught there.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "parley",
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .library(name: "MQTT", targets: ["MQTT"]),
        // For the fuzz package (config file parser) and embedding.
        .library(name: "Broker", targets: ["Broker"]),
        // The fuzz harnesses: the Fuzz package wraps each in a libFuzzer entry point,
        // and `swift test` replays the committed corpora through them.
        .library(name: "FuzzHarnesses", targets: ["FuzzHarnesses"]),
    ],
    targets: [
        // System shims: Linux syscalls that Glibc does not expose, OpenSSL, SQLite.
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
        .systemLibrary(
            name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),

        // The MQTT wire codec: pure functions over bytes, no I/O, no clocks.
        .target(name: "MQTT", swiftSettings: hotPath),

        // epoll event loops, sockets, timers, logging.
        // Loop-confined classes and cross-thread hand-offs are checked by design
        // (one owning loop per object), which Swift 6's Sendable model cannot
        // express without @unchecked everywhere: these targets use Swift 5 mode.
        .target(name: "Reactor", dependencies: ["CLinux", "COpenSSL"], swiftSettings: swift5 + hotPath),

        // Sessions, topic index, routing, QoS, retained messages, wills, limits,
        // $SYS, and the plugin protocol.
        // SQLite persistence: schema, migrations, the group-commit writer thread.
        .target(name: "Store", dependencies: ["CSQLite", "Reactor"], swiftSettings: swift5),

        .target(name: "Broker", dependencies: ["MQTT", "Reactor", "Store"], swiftSettings: swift5 + hotPath),

        // JSON reader and writer (RFC 8259): strict, bounded, for request bodies and envelopes.
        .target(name: "JSON"),

        // The chat plugin: users, tokens, rooms, membership, history, receipts, presence.
        .target(name: "Chat", dependencies: ["MQTT", "Reactor", "Broker", "Store", "JSON", "COpenSSL"], swiftSettings: swift5),

        // The HTTP gateway plugin: HTTP/1.1, REST, WebSocket (MQTT on /mqtt), metrics,
        // and the web client (Web/, built into the binary).
        .target(name: "Gateway", dependencies: ["Reactor", "Broker", "Chat", "Notify", "JSON", "COpenSSL"],
                resources: [.embedInCode("Web")], swiftSettings: swift5),

        // The notification bridge plugin: outbox, SMTP, webhooks, ntfy, Web Push.
        .target(name: "Notify", dependencies: ["Reactor", "Broker", "Chat", "JSON", "COpenSSL"], swiftSettings: swift5),

        .executableTarget(name: "parley", dependencies: ["MQTT", "Reactor", "Broker", "Chat", "Gateway", "Notify"], swiftSettings: swift5),

        .target(name: "FuzzHarnesses", dependencies: ["MQTT", "Broker", "JSON", "Chat", "Gateway", "Notify"], path: "Fuzz/Harnesses", swiftSettings: swift5),

        .testTarget(name: "MQTTTests", dependencies: ["MQTT"]),
        .testTarget(name: "FuzzCorpusTests", dependencies: ["FuzzHarnesses"]),
        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "ChatTests", dependencies: ["Chat", "Broker", "MQTT", "JSON"]),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway"]),
        .testTarget(name: "NotifyTests", dependencies: ["Notify"]),
        .testTarget(name: "SystemTests", dependencies: ["CLinux", "COpenSSL", "CSQLite"]),
        .testTarget(name: "IntegrationTests", dependencies: ["MQTT", "Broker", "Reactor", "Store", "CLinux", "parley"]),
    ]
)
