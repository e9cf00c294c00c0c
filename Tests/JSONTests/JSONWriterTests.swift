import JSON
import Testing

@Suite("JSONWriter")
struct JSONWriterTests {
    @Test("the room message envelope of SPEC section 3")
    func envelope() throws {
        var writer = JSONWriter()
        let ckey: String? = "c-1"
        writer.object { o in
            o.field("id", 17)
            o.field("room", "general")
            o.field("from", "alice")
            o.field("ts", "2026-12-01T20:15:00.123Z")
            o.field("body", "hi")
            if let ckey { o.field("ckey", ckey) }
        }
        let text = String(decoding: writer.bytes, as: UTF8.self)
        #expect(text == #"{"id":17,"room":"general","from":"alice","ts":"2026-12-01T20:15:00.123Z","body":"hi","ckey":"c-1"}"#)
        #expect(try JSONValue.parse(writer.bytes)["id"]?.int64 == 17)
    }

    @Test("a history answer with nested objects, arrays and raw stored envelopes")
    func nested() throws {
        let stored = [Array(#"{"id":1,"body":"a"}"#.utf8), Array(#"{"id":2,"body":"b"}"#.utf8)]
        var writer = JSONWriter()
        writer.object { o in
            o.array("messages") { a in
                for envelope in stored { a.rawElement(json: envelope) }
            }
            o.field("has_more", false)
            o.object("page") { p in
                p.field("limit", Int64(50))
                p.nullField("before")
            }
            o.array("empty") { _ in }
            o.object("none") { _ in }
        }
        #expect(
            String(decoding: writer.bytes, as: UTF8.self)
                == #"{"messages":[{"id":1,"body":"a"},{"id":2,"body":"b"}],"has_more":false,"page":{"limit":50,"before":null},"empty":[],"none":{}}"#
        )
        #expect(try JSONValue.parse(writer.bytes)["messages"]?[1]?["body"] == "b")
    }

    @Test("every element kind in an array")
    func arrayElements() {
        var writer = JSONWriter()
        writer.array { a in
            a.element("s\"")
            a.element(1)
            a.element(Int64.min)
            a.element(0.5)
            a.element(Double.nan)
            a.element(true)
            a.nullElement()
            a.element(["k": [1]] as JSONValue)
            a.object { $0.field("x", 1) }
            a.array { $0.element(2) }
        }
        #expect(
            String(decoding: writer.bytes, as: UTF8.self)
                == #"["s\"",1,-9223372036854775808,0.5,null,true,null,{"k":[1]},{"x":1},[2]]"#)
    }

    @Test("keys are escaped like strings; infinity is written as null")
    func fields() {
        var writer = JSONWriter()
        writer.object { o in
            o.field("a\"b", "\u{01}")
            o.field("inf", Double.infinity)
            o.field("v", JSONValue.array([]))
            o.rawField("raw", json: Array("[1]".utf8))
        }
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #"{"a\"b":"\u0001","inf":null,"v":[],"raw":[1]}"#)
    }

    @Test("writes the same bytes as JSONValue.serialized()")
    func sameAsSerialized() throws {
        let v = try parsed(#"{"a":[1,2.5,"x\n",null,{"b":true}],"c":-0.0,"d":"é"}"#)
        var writer = JSONWriter()
        writer.value(v)
        #expect(writer.bytes == v.serialized())
    }

    @Test("appends to a buffer it is given")
    func appends() {
        var writer = JSONWriter(appendingTo: Array("prefix:".utf8))
        writer.object { $0.field("up_to", 17) }
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #"prefix:{"up_to":17}"#)
    }
}
