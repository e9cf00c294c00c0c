import Broker
import Testing

/// Inputs the config-file fuzz harness (`Fuzz/Sources/FuzzConfig`) found, fed
/// through the same path: each must end in a `ConfigError` on its line, never a trap.
@Suite("Config file: fuzz regressions")
struct ConfigFuzzRegressionTests {
    /// A duration whose number times its unit overflows 64 bits trapped in the
    /// multiplication (fuzz-config, 2026-12-01).
    @Test("Huge durations and sizes are refused with the line, not a crash",
          arguments: [
              "connect_timeout =11326434445538011819m",
              "connect_timeout = 18446744073709551615d",
              "connect_timeout = 4294967295s",
              "store_max_size = 9223372036854775807G",
          ])
    func hugeNumbers(_ line: String) throws {
        let file = try ConfigFile(path: "fuzz.conf", text: "# first line\n" + line + "\n")
        var config = ServerConfig()
        let error = #expect(throws: ConfigError.self) { try config.apply(file) }
        #expect(error?.line == 2)
    }

    /// 71582788 minutes = 4294967280 s, the largest whole number of minutes below
    /// UInt32.max (which is `never`).
    @Test("The largest durations that fit are still accepted, with their value")
    func largestDurations() throws {
        var config = ServerConfig()
        try config.apply(try ConfigFile(path: "ok.conf", text: """
            connect_timeout = 71582788m
            max_session_expiry = 71582788m
            persistent_session_expiry = 49710d
            """))
        #expect(config.broker.maxSessionExpiry == 4_294_967_280)
        #expect(config.broker.persistentSessionExpiry == 4_294_944_000)  // 49710 days
        #expect(config.broker.connectTimeout == 3600)  // accepted, then capped at an hour
    }
}
