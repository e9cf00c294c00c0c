// swift-tools-version:6.0
// Writes the fuzzers' seed corpora (../corpus/<harness>/) from packets built and
// encoded with the MQTT codec. Its own package: an executable with a main cannot
// be linked into the fuzz package, whose build links libFuzzer's main.
//   cd Fuzz && swift run --package-path SeedGen seedgen corpus
import PackageDescription

let package = Package(
    name: "SeedGen",
    dependencies: [
        .package(name: "parley", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "seedgen", dependencies: [.product(name: "MQTT", package: "parley")]),
    ]
)
