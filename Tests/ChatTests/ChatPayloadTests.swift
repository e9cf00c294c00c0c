import JSON
import MQTT
import Testing

@testable import Chat

@Suite("Chat payloads, topics and envelopes (SPEC section 3)")
struct ChatPayloadTests {
    @Test("a post is plain UTF-8 text or {\"body\", \"ckey\"?}")
    func posts() {
        #expect(PostContent.parse(Array("hello".utf8)[...], maxBody: 16)?.body == "hello")
        let json = PostContent.parse(Array(#"{"body":"hi","ckey":"c-1"}"#.utf8)[...], maxBody: 16)
        #expect(json?.body == "hi" && json?.ckey == "c-1")
        // Text that merely starts with a brace is text.
        #expect(PostContent.parse(Array("{not json".utf8)[...], maxBody: 16)?.body == "{not json")
    }

    @Test("refused posts: empty, too long, not UTF-8, a JSON object without a string body, a ckey over 64")
    func refusedPosts() {
        #expect(PostContent.parse([][...], maxBody: 16) == nil)
        #expect(PostContent.parse(Array(repeating: 0x61, count: 17)[...], maxBody: 16) == nil)
        #expect(PostContent.parse([0xFF, 0xFE][...], maxBody: 16) == nil)
        #expect(PostContent.parse(Array(#"{"body":5}"#.utf8)[...], maxBody: 16) == nil)
        #expect(PostContent.parse(Array(#"{"text":"x"}"#.utf8)[...], maxBody: 16) == nil)
        #expect(PostContent.parse(Array(#"{"body":""}"#.utf8)[...], maxBody: 16) == nil)
        let longKey = String(repeating: "k", count: 65)
        #expect(PostContent.parse(Array("{\"body\":\"x\",\"ckey\":\"\(longKey)\"}".utf8)[...], maxBody: 16) == nil)
    }

    @Test("history queries: before, after, limit (1-500, default 50); anything else refused")
    func historyQueries() {
        let q = HistoryQuery(Array(#"{"before": 10, "limit": 5}"#.utf8)[...])
        #expect(q?.before == 10 && q?.after == nil && q?.limit == 5)
        #expect(HistoryQuery([][...])?.limit == 50)
        #expect(HistoryQuery(Array(#"{"limit": 0}"#.utf8)[...]) == nil)
        #expect(HistoryQuery(Array(#"{"limit": 501}"#.utf8)[...]) == nil)
        #expect(HistoryQuery(Array(#"{"after": -1}"#.utf8)[...]) == nil)
        #expect(HistoryQuery(Array(#"{"after": "3"}"#.utf8)[...]) == nil)
        #expect(HistoryQuery(Array("[1]".utf8)[...]) == nil)
    }

    @Test("chat topics parse into their rows of the ACL table")
    func topics() {
        #expect(ChatTopic(ByteString("rooms/general/messages")) == .roomMessages("general"))
        #expect(ChatTopic(ByteString("rooms/general/history")) == .roomHistory("general"))
        #expect(ChatTopic(ByteString("rooms/General/messages")) == .roomOther)  // not a room name
        #expect(ChatTopic(ByteString("rooms/general/messages/x")) == .roomOther)
        #expect(ChatTopic(ByteString("users/bob/inbox")) == .inbox("bob"))
        #expect(ChatTopic(ByteString("users/bob/unread")) == .userOther("bob"))
        #expect(ChatTopic(ByteString("presence/bob")) == .presence("bob"))
        #expect(ChatTopic(ByteString("sensors/kitchen")) == .plain)
    }

    @Test("room names: 1-64 of [a-z0-9_-], starting with a letter or digit")
    func roomNames() {
        for ok in ["general", "a", "0-day", "team_7", String(repeating: "x", count: 64)] { #expect(RoomName.isValid(ok), "\(ok)") }
        for bad in ["", "-x", "_x", "General", "a b", "a/b", "a+", String(repeating: "x", count: 65)] {
            #expect(!RoomName.isValid(bad), "\(bad)")
        }
    }

    @Test("the post envelope: id, room, from, ts, body, ckey only when given")
    func envelope() throws {
        let bytes = Envelope.post(id: 17, room: "general", from: "alice", ts: 1_796_156_100_123, body: "hi \"you\"", ckey: nil)
        let v = try JSONValue.parse(bytes)
        #expect(v["id"]?.int64 == 17)
        #expect(v["room"]?.string == "general")
        #expect(v["from"]?.string == "alice")
        #expect(v["ts"]?.string == "2026-12-01T20:15:00.123Z")
        #expect(v["body"]?.string == "hi \"you\"")
        #expect(v["ckey"] == nil)
    }

    @Test("timestamps: ISO 8601 UTC with milliseconds")
    func timestamps() {
        #expect(Timestamp.iso(0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.iso(1_796_156_100_005) == "2026-12-01T20:15:00.005Z")
    }

    @Test("the post rate limit: a burst, then the steady rate")
    func rateLimit() {
        let limit = PostRateLimit(.init(perSecond: 2, burst: 3))
        #expect((0..<3).allSatisfy { _ in limit.take("u", now: 1000) })
        #expect(!limit.take("u", now: 1000))
        #expect(limit.take("u", now: 1500))  // one token back after half a second
        #expect(!limit.take("u", now: 1500))
        #expect(limit.take("other", now: 1500))
    }
}
