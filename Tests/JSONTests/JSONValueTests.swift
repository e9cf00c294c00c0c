import JSON
import Testing

@Suite("JSON values")
struct JSONValueTests {
    @Test("objects compare by their members in order")
    func objectEquality() {
        #expect(JSONValue.object([("a", .number(1))]) == .object([("a", .number(1))]))
        #expect(JSONValue.object([("a", .number(1))]) != .object([("a", .number(2))]))
    }
}
