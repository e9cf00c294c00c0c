// swift-tools-version:6.0
// libFuzzer harnesses for the MQTT codec, the config file, JSON, the HTTP gateway and the
// notification bridge's SMTP and HTTP client parsers. A separate
// package so that the root package never builds with the fuzzer runtime. The seed
// generator is the package in SeedGen/ (it has a main, which the fuzzer runtime
// also defines).
// See README.md.
import PackageDescription

let package = Package(
    name: "ParleyFuzz",
    dependencies: [
        .package(name: "parley", path: ".."),
    ],
    targets: [
        // (a) FrameDecoder over a chunked byte stream, every frame through Packet.decode.
        .executableTarget(
            name: "fuzz-frame", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzFrame"),
        // (b) decode -> encode -> decode must give an equal packet and stable bytes.
        .executableTarget(
            name: "fuzz-roundtrip", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzRoundTrip"),
        // (d) the configuration file: any text must give a config or a ConfigError.
        .executableTarget(
            name: "fuzz-config", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzConfig"),
        // (f) the chat plugin's payload readers: posts, history queries, receipts.
        .executableTarget(
            name: "fuzz-chat", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzChatPayload"),
        // (c) topic names, topic filters, matching and UTF-8 validation.
        .executableTarget(
            name: "fuzz-topic", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzTopic"),
        // (e) the JSON reader and writer: parse, round trip, limits, against Foundation.
        .executableTarget(
            name: "fuzz-json", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzJSON"),
        // (g) the gateway's HTTP/1.1 request parser over a chunked stream.
        .executableTarget(
            name: "fuzz-http", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzHTTP"),
        // (h) the gateway's WebSocket frame decoder: any stream, and a client's frames round trip.
        .executableTarget(
            name: "fuzz-websocket", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzWebSocket"),
        // (i) the gateway's REST body readers and the history query string.
        .executableTarget(
            name: "fuzz-rest", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzREST"),
        // (j) the notification bridge's SMTP reply parser over a chunked stream.
        .executableTarget(
            name: "fuzz-smtp-reply", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzSMTPReply"),
        // (k) the notification client's HTTP/1.1 response parser over a chunked stream.
        .executableTarget(
            name: "fuzz-http-response", dependencies: [.product(name: "FuzzHarnesses", package: "parley")],
            path: "Sources/FuzzHTTPResponse"),
    ]
)
