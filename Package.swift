// swift-tools-version:6.0
// Parley: a chat-native MQTT broker. No package dependencies by design: the
// Swift toolchain plus OpenSSL 3 and SQLite 3 through system-library targets.
import PackageDescription

let package = Package(
    name: "parley",
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .library(name: "MQTT", targets: ["MQTT"]),
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
        .target(name: "MQTT"),

        .executableTarget(name: "parley", dependencies: ["MQTT"]),

        .testTarget(name: "MQTTTests", dependencies: ["MQTT"]),
        .testTarget(name: "SystemTests", dependencies: ["CLinux", "COpenSSL", "CSQLite"]),
    ]
)
