import Notify
import Testing

struct TransportHTTPURLTests {
    @Test func httpsWithPathAndQuery() throws {
        let url = try HTTPURL(parsing: "https://push.example.org/v1/hooks/7?topic=a&b=c#fragment")
        #expect(url.secure)
        #expect(url.host == "push.example.org")
        #expect(url.port == 443)
        #expect(url.target == "/v1/hooks/7?topic=a&b=c")
        #expect(url.hostHeader == "push.example.org")
        #expect(!url.isLoopback)
    }

    @Test func portAndCase() throws {
        let url = try HTTPURL(parsing: "HTTPS://Ntfy.Example.ORG:8443")
        #expect(url.host == "ntfy.example.org")
        #expect(url.port == 8443)
        #expect(url.target == "/")
        #expect(url.hostHeader == "ntfy.example.org:8443")
    }

    @Test func queryWithoutPath() throws {
        #expect(try HTTPURL(parsing: "https://a.example?x=1").target == "/?x=1")
    }

    @Test func ipv6Literal() throws {
        let url = try HTTPURL(parsing: "http://[::1]:8080/hook")
        #expect(!url.secure)
        #expect(url.host == "::1")
        #expect(url.port == 8080)
        #expect(url.hostHeader == "[::1]:8080")
        #expect(url.isLoopback)
        #expect(try HTTPURL(parsing: "https://[2001:db8::1]/").hostHeader == "[2001:db8::1]")
    }

    @Test(arguments: [("http://127.0.0.1/", true), ("http://127.45.0.9:9/", true), ("http://localhost:80/", true),
                      ("http://LOCALHOST/", true), ("http://[::1]/", true), ("http://128.0.0.1/", false),
                      ("http://[::2]/", false), ("http://localhost.example.com/", false), ("http://10.0.0.1/", false)])
    func loopback(url: String, expected: Bool) throws {
        #expect(try HTTPURL(parsing: url).isLoopback == expected)
    }

    @Test func defaultPortIsLeftOutOfHost() throws {
        #expect(try HTTPURL(parsing: "http://localhost:80/").hostHeader == "localhost")
        #expect(try HTTPURL(parsing: "https://localhost:443/").hostHeader == "localhost")
        #expect(try HTTPURL(parsing: "https://localhost:80/").hostHeader == "localhost:80")
    }

    @Test(arguments: ["push.example.org/x", "ftp://example.org/", "https:///path", "https://user:pw@example.org/",
                      "https://example.org:0/", "https://example.org:65536/", "https://example.org:8a/",
                      "https://::1/", "https://[::1/", "https://[example.org]/", "https://[::1]x/",
                      "https://exa mple.org/", "https://example.org/a b", "https://example.org/é", "https://ex%41.org/"])
    func refused(url: String) {
        #expect(throws: TransportError.self) { try HTTPURL(parsing: url) }
    }
}
