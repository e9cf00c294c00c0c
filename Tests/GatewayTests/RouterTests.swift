@testable import Gateway
import Testing

@Suite("Router: templates, percent-decoding, query strings")
struct RouterTests {
    func template(_ t: String) -> [Substring] { t.split(separator: "/") }

    @Test("a template with parameters")
    func match() {
        #expect(Router.match(template("/v1/rooms/{room}"), ["v1", "rooms", "general"]) == ["room": "general"])
        #expect(Router.match(template("/v1/rooms/{room}/members/{user}"), ["v1", "rooms", "r", "members", "bob"]) == ["room": "r", "user": "bob"])
        #expect(Router.match(template("/v1/me"), ["v1", "me"]) == [:])
        #expect(Router.match(template("/"), []) == [:])
    }

    @Test("no match: other literals, another segment count, an empty parameter")
    func noMatch() {
        #expect(Router.match(template("/v1/rooms/{room}"), ["v1", "rooms"]) == nil)
        #expect(Router.match(template("/v1/rooms/{room}"), ["v1", "rooms", "a", "b"]) == nil)
        #expect(Router.match(template("/v1/rooms/{room}"), ["v1", "room", "a"]) == nil)
        #expect(Router.match(template("/v1/rooms/{room}"), ["v1", "rooms", ""]) == nil)
        #expect(Router.match(template("/v1/me"), ["V1", "me"]) == nil)
    }

    @Test("segments: decoded, empty ones dropped, %2F inside a segment")
    func segments() {
        #expect(Router.decodedSegments("/v1/rooms/caf%C3%A9") == ["v1", "rooms", "caf\u{E9}"])
        #expect(Router.decodedSegments("//a//b/") == ["a", "b"])
        #expect(Router.decodedSegments("/v1/rooms/a%2Fb") == ["v1", "rooms", "a/b"])
        #expect(Router.decodedSegments("/") == [])
        #expect(Router.decodedSegments("/a/%zz") == nil)
    }

    @Test("percentDecoded", arguments: [
        ("a%20b", "a b"), ("%41%62", "Ab"), ("%c3%a9", "\u{E9}"), ("a+b", "a+b"), ("", ""), ("100%25", "100%"),
    ])
    func percent(input: String, expected: String) {
        #expect(Router.percentDecoded(input[...]) == expected)
    }

    @Test("percentDecoded refuses broken escapes and bytes that are not UTF-8", arguments: ["%", "%4", "%G0", "%0g", "%C3", "%FF", "%C3%28", "%ED%A0%80"])
    func percentRefused(input: String) {
        #expect(Router.percentDecoded(input[...]) == nil)
    }

    @Test("queryItems")
    func query() {
        #expect(Router.queryItems(nil) == [:])
        #expect(Router.queryItems("") == [:])
        #expect(Router.queryItems("a=1&b=2") == ["a": "1", "b": "2"])
        #expect(Router.queryItems("a=1&a=2") == ["a": "2"])
        #expect(Router.queryItems("flag") == ["flag": ""])
        #expect(Router.queryItems("a+b=c+d") == ["a b": "c d"])
        #expect(Router.queryItems("x=%2B1") == ["x": "+1"])
        #expect(Router.queryItems("&&a=1&") == ["a": "1"])
        #expect(Router.queryItems("=v") == ["": "v"])
        #expect(Router.queryItems("a=b=c") == ["a": "b=c"])
        #expect(Router.queryItems("x=%zz") == nil)
        #expect(Router.queryItems("%FF=1") == nil)
    }
}

@Suite("Prometheus text format 0.0.4")
struct PrometheusTextTests {
    @Test("label values escape backslash, double quote and line feed")
    func escaping() {
        #expect(PrometheusText.escaped(#"a\b"c"# + "\nd") == #"a\\b\"c\nd"#)
        #expect(PrometheusText.escaped("plain /v1/rooms/{room}") == "plain /v1/rooms/{room}")
        var p = PrometheusText()
        p.sample("x_total", [("route", "/a\"b"), ("m", "GET")], 5)
        #expect(p.text == #"x_total{route="/a\"b",m="GET"} 5"# + "\n")
    }

    @Test("families, samples without labels, numbers")
    func lines() {
        var p = PrometheusText()
        p.family("up", "gauge", "Whether it is up.")
        p.sample("up", [], 1)
        p.counter("n_total", "A count.", 42)
        #expect(p.text == "# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n# HELP n_total A count.\n# TYPE n_total counter\nn_total 42\n")
        #expect(PrometheusText.number(0.25) == "0.25")
        #expect(PrometheusText.number(-3) == "-3")
        #expect(PrometheusText.number(1e15) == "1000000000000000.0")
        #expect(PrometheusText.number(999_999_999_999_999) == "999999999999999")
    }

    @Test("a histogram: cumulative buckets, +Inf, sum and count")
    func histogram() {
        var p = PrometheusText()
        p.histogramSamples("h_seconds", [("route", "r")], bounds: [0.005, 0.5], cumulative: [1, 3, 4], sum: 1.5)
        #expect(p.text == """
            h_seconds_bucket{route="r",le="0.005"} 1
            h_seconds_bucket{route="r",le="0.5"} 3
            h_seconds_bucket{route="r",le="+Inf"} 4
            h_seconds_sum{route="r"} 1.5
            h_seconds_count{route="r"} 4

            """)
    }
}
