import JSON
import Testing

@Suite("JSON values")
struct JSONValueTests {
    @Test("objects compare by their members in order")
    func objectEquality() {
        #expect(JSONValue.object([("a", .number(1))]) == .object([("a", .number(1))]))
        #expect(JSONValue.object([("a", .number(1))]) != .object([("a", .number(2))]))
        #expect(JSONValue.object([("a", 1), ("b", 2)]) != .object([("b", 2), ("a", 1)]))
        #expect(JSONValue.object([("a", 1)]) != .object([("a", 1), ("b", 2)]))
    }

    @Test("an integer equals a double only when the double is that very integer")
    func integerAgainstDouble() {
        #expect(JSONValue.integer(1) == .number(1.0))
        #expect(JSONValue.number(1.0) == .integer(1))
        #expect(JSONValue.integer(0) == .number(-0.0))
        #expect(JSONValue.integer(1) != .number(1.5))
        // 2^53 + 1 has no double; the nearest double is 2^53, a different integer.
        #expect(JSONValue.integer(9_007_199_254_740_993) != .number(9_007_199_254_740_992))
        #expect(JSONValue.integer(9_007_199_254_740_992) == .number(9_007_199_254_740_992))
        #expect(JSONValue.integer(.max) != .number(9.223372036854775807e18))  // that double is 2^63
        #expect(JSONValue.integer(.min) == .number(-9.223372036854775808e18))
        #expect(JSONValue.integer(1) != .string("1"))
        #expect(JSONValue.number(.nan) != .number(.nan))
    }

    @Test("values of different kinds differ")
    func kinds() {
        let all: [JSONValue] = [.null, .bool(false), .integer(0), .string(""), .array([]), .object([])]
        for (i, a) in all.enumerated() {
            for (j, b) in all.enumerated() {
                #expect((a == b) == (i == j), "\(a) and \(b)")
            }
        }
    }

    @Test("accessors answer for their own kind and nil for others")
    func accessors() throws {
        let v = try parsed(#"{"s":"x","b":true,"i":17,"d":1.5,"a":[1,2],"o":{"k":null},"n":null}"#)
        #expect(v["s"]?.string == "x")
        #expect(v["b"]?.bool == true)
        #expect(v["i"]?.int64 == 17)
        #expect(v["i"]?.double == 17)
        #expect(v["d"]?.double == 1.5)
        #expect(v["d"]?.int64 == nil)
        #expect(v["a"]?.array == [1, 2])
        #expect(v["a"]?[1] == 2)
        #expect(v["a"]?[2] == nil)
        #expect(v["a"]?[-1] == nil)
        #expect(v["o"]?["k"]?.isNull == true)
        #expect(v["o"]?.object?.count == 1)
        #expect(v["n"]?.isNull == true)
        #expect(v["missing"] == nil)
        #expect(v["s"]?.int64 == nil)
        #expect(v["s"]?.bool == nil)
        #expect(v["i"]?.string == nil)
        #expect(v["s"]?["k"] == nil)
        #expect(v[0] == nil)
        #expect(v.isNull == false)
        #expect(v.object?.map(\.0) == ["s", "b", "i", "d", "a", "o", "n"])
    }

    @Test("int64 is non-nil only for integer literals that fit")
    func int64Accessor() throws {
        #expect(try parsed("9007199254740993").int64 == 9_007_199_254_740_993)
        #expect(try parsed("-9223372036854775808").int64 == .min)
        #expect(try parsed("9223372036854775807").int64 == .max)
        #expect(try parsed("9223372036854775808").int64 == nil)
        #expect(try parsed("-9223372036854775809").int64 == nil)
        #expect(try parsed("1.0").int64 == nil)
        #expect(try parsed("1e2").int64 == nil)
        #expect(try parsed("-0").int64 == 0)
    }

    @Test("literals build the cases they spell")
    func literals() {
        let v: JSONValue = ["id": 17, "t": 0.5, "ok": true, "none": nil, "tags": ["a", 1]]
        #expect(
            v
                == .object([
                    ("id", .integer(17)), ("t", .number(0.5)), ("ok", .bool(true)), ("none", .null),
                    ("tags", .array([.string("a"), .integer(1)])),
                ]))
        #expect(v.description == #"{"id":17,"t":0.5,"ok":true,"none":null,"tags":["a",1]}"#)
    }
}
