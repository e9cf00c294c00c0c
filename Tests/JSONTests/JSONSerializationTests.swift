import JSON
import Testing

@Suite("JSON serialization")
struct JSONSerializationTests {
    func text(_ value: JSONValue) -> String { value.serializedString }

    @Test("compact, members in stored order")
    func compact() throws {
        let v = try parsed(#" { "b" : [ 1 , 2 ] , "a" : { } , "c" : [ ] } "#)
        #expect(text(v) == #"{"b":[1,2],"a":{},"c":[]}"#)
        #expect(v.serialized() == Array(v.serializedString.utf8))
    }

    @Test("scalars")
    func scalars() {
        #expect(text(nil) == "null")
        #expect(text(true) == "true")
        #expect(text(false) == "false")
        #expect(text("") == #""""#)
    }

    @Test("strings escape quote, backslash and control characters, nothing else")
    func escapes() {
        #expect(text("a\"b\\c") == #""a\"b\\c""#)
        #expect(text("\u{08}\u{0C}\n\r\t") == #""\b\f\n\r\t""#)
        #expect(text("\u{00}\u{01}\u{1F}") == #""\u0000\u0001\u001f""#)
        #expect(text("a/b") == #""a/b""#)
        #expect(text("\u{7F}") == "\"\u{7F}\"")
        #expect(text(["k\n": "v"]) == #"{"k\n":"v"}"#)
    }

    @Test("non-ASCII is written as UTF-8, not \\u")
    func utf8() {
        let v: JSONValue = "é € 😀 \u{2028}"
        #expect(v.serialized() == Array("\"é € 😀 \u{2028}\"".utf8))
    }

    @Test("integers without a decimal point, exactly")
    func integers() {
        #expect(text(0) == "0")
        #expect(text(-17) == "-17")
        #expect(text(.integer(9_007_199_254_740_993)) == "9007199254740993")
        #expect(text(.integer(.max)) == "9223372036854775807")
        #expect(text(.integer(.min)) == "-9223372036854775808")
    }

    @Test("doubles in the shortest form that reads back the same")
    func doubles() {
        #expect(text(0.1) == "0.1")
        #expect(text(2.0) == "2.0")
        #expect(text(-0.0) == "-0.0")
        #expect(text(1.5e300) == "1.5e+300")
        #expect(text(1e-7) == "1e-07")
        #expect(text(.number(.greatestFiniteMagnitude)) == "1.7976931348623157e+308")
        #expect(text(.number(.leastNonzeroMagnitude)) == "5e-324")
        #expect(text(.number(1.2345678901234568e29)) == "1.2345678901234568e+29")
    }

    @Test("infinity and NaN, which JSON cannot hold, are written as null")
    func nonFinite() {
        #expect(text(.number(.infinity)) == "null")
        #expect(text(.number(-.infinity)) == "null")
        #expect(text([.number(.nan)]) == "[null]")
    }

    @Test("documents round-trip: parse, write, parse gives an equal value and the same bytes")
    func roundTrips() throws {
        let documents = [
            #"{"id":17,"room":"general","from":"alice","ts":"2026-12-01T20:15:00.123Z","body":"hi","ckey":"c-1"}"#,
            #"{"messages":[{"id":1,"body":"a\nb"},{"id":2,"body":"\"q\""}],"has_more":false}"#,
            #"[1,-1,1.5,-0.0,1e300,5e-324,9007199254740993,-9223372036854775808,18446744073709551616]"#,
            #"["\u0000\u001f\\\/","\ud834\udd1e","é€😀",""]"#,
            #"{"":{"":[[],{}]},"a":null,"b":true,"c":false}"#,
            "1E5", "0.1", "-0", "123456789e-30", #""x""#,
        ]
        for document in documents {
            let first = try parsed(document)
            let bytes = first.serialized()
            let second = try JSONValue.parse(bytes)
            #expect(second == first, "\(document)")
            #expect(second.serialized() == bytes, "\(document)")
        }
    }

    @Test("round trips keep exact integers and distinguish them from doubles")
    func roundTripKinds() throws {
        let v = try JSONValue.parse(JSONValue.array([.integer(9_007_199_254_740_993), .number(2), .integer(2)]).serialized())
        #expect(v[0]?.int64 == 9_007_199_254_740_993)
        #expect(v[1]?.int64 == nil)
        #expect(v[2]?.int64 == 2)
    }
}
