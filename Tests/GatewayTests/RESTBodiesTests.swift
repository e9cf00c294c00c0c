@testable import Gateway
import Testing

func body(_ text: String) -> [UInt8] { Array(text.utf8) }

let notAnObject = BodyError(400, "bad_json", "the body must be a JSON object")

@Suite("REST bodies: what the handlers read and refuse")
struct RESTBodiesTests {
    @Test("anything but a JSON object is bad_json", arguments: ["", "[]", "\"s\"", "null", "1", "{", "{\"a\":1} x", "{\"a\":1,\"a\":2}", "\u{FEFF}{}"])
    func notObjects(text: String) {
        #expect(SignUpBody.parse(body(text)) == .failure(notAnObject))
        #expect(TokenBody.parse(body(text)) == .failure(notAnObject))
        #expect(ProfilePatchBody.parse(body(text)) == .failure(notAnObject))
        #expect(NewRoomBody.parse(body(text)) == .failure(notAnObject))
        #expect(NewMemberBody.parse(body(text)) == .failure(notAnObject))
        #expect(NewPostBody.parse(body(text)) == .failure(notAnObject))
    }

    @Test("16 levels of nesting pass, 17 do not")
    func depth() {
        let inner16 = String(repeating: "[", count: 15) + String(repeating: "]", count: 15)
        #expect(NewMemberBody.parse(body(#"{"username":"u","x":\#(inner16)}"#)) == .success(NewMemberBody(username: "u")))
        let inner17 = String(repeating: "[", count: 16) + String(repeating: "]", count: 16)
        #expect(NewMemberBody.parse(body(#"{"username":"u","x":\#(inner17)}"#)) == .failure(notAnObject))
    }

    @Test("sign-up")
    func signUp() {
        #expect(SignUpBody.parse(body(#"{"username":"bob","password":"pw","email":"b@example.com"}"#))
            == .success(SignUpBody(username: "bob", password: "pw", email: "b@example.com")))
        #expect(SignUpBody.parse(body(#"{"username":"bob","password":"pw","email":null,"other":1}"#))
            == .success(SignUpBody(username: "bob", password: "pw", email: nil)))
        #expect(SignUpBody.parse(body(#"{"password":"pw"}"#)) == .failure(BodyError(400, "invalid_username", "username is required")))
        #expect(SignUpBody.parse(body(#"{"username":null,"password":"pw"}"#)) == .failure(BodyError(400, "invalid_username", "username is required")))
        #expect(SignUpBody.parse(body(#"{"username":"bob"}"#)) == .failure(BodyError(400, "invalid_password", "password is required")))
        #expect(SignUpBody.parse(body(#"{"username":5}"#)) == .failure(BodyError(400, "bad_json", "username must be a string")))
        // The first field of the wrong type is the one named.
        #expect(SignUpBody.parse(body(#"{"email":true,"password":[]}"#)) == .failure(BodyError(400, "bad_json", "password must be a string")))
        #expect(SignUpBody.parse(body(#"{"username":"u","password":"p","email":{}}"#)) == .failure(BodyError(400, "bad_json", "email must be a string")))
    }

    @Test("tokens: a missing field is 401 invalid_credentials")
    func token() {
        #expect(TokenBody.parse(body(#"{"username":"alice","password":"s3cret"}"#)) == .success(TokenBody(username: "alice", password: "s3cret")))
        #expect(TokenBody.parse(body(#"{"username":"alice"}"#)) == .failure(BodyError(401, "invalid_credentials", "username and password are required")))
        #expect(TokenBody.parse(body("{}")) == .failure(BodyError(401, "invalid_credentials", "username and password are required")))
        #expect(TokenBody.parse(body(#"{"username":"a","password":1}"#)) == .failure(BodyError(400, "bad_json", "password must be a string")))
    }

    @Test("PATCH /v1/me")
    func profile() {
        #expect(ProfilePatchBody.parse(body("{}")) == .success(ProfilePatchBody(password: nil, email: nil, notify: nil)))
        #expect(ProfilePatchBody.parse(body(#"{"email":null}"#)) == .success(ProfilePatchBody(password: nil, email: .some(nil), notify: nil)))
        #expect(ProfilePatchBody.parse(body(#"{"email":"e@x","password":"new","notify":{"push":"off"}}"#))
            == .success(ProfilePatchBody(password: "new", email: .some("e@x"), notify: .object([("push", .string("off"))]))))
        #expect(ProfilePatchBody.parse(body(#"{"email":3}"#)) == .failure(BodyError(400, "bad_json", "email must be a string or null")))
        #expect(ProfilePatchBody.parse(body(#"{"notify":"all"}"#)) == .failure(BodyError(400, "bad_json", "notify must be an object")))
        #expect(ProfilePatchBody.parse(body(#"{"notify":null}"#)) == .failure(BodyError(400, "bad_json", "notify must be an object")))
        // One answer, the first field's (the handler used to answer twice here).
        #expect(ProfilePatchBody.parse(body(#"{"password":1,"email":1}"#)) == .failure(BodyError(400, "bad_json", "password must be a string")))
        #expect(ProfilePatchBody.parse(body(#"{"password":1,"notify":1}"#)) == .failure(BodyError(400, "bad_json", "password must be a string")))
    }

    @Test("rooms: name required, title at most 200 bytes")
    func room() {
        #expect(NewRoomBody.parse(body(#"{"name":"general","title":"General"}"#)) == .success(NewRoomBody(name: "general", title: "General")))
        #expect(NewRoomBody.parse(body(#"{"name":"r"}"#)) == .success(NewRoomBody(name: "r", title: nil)))
        #expect(NewRoomBody.parse(body(#"{"title":"t"}"#)) == .failure(BodyError(400, "invalid_room", "name is required")))
        let t200 = String(repeating: "\u{E9}", count: 100)
        #expect(NewRoomBody.parse(body(#"{"name":"r","title":"\#(t200)"}"#)) == .success(NewRoomBody(name: "r", title: t200)))
        #expect(NewRoomBody.parse(body(#"{"name":"r","title":"\#(t200)a"}"#)) == .failure(BodyError(400, "invalid_room", "title is at most 200 bytes")))
        #expect(NewRoomBody.parse(body(#"{"name":1}"#)) == .failure(BodyError(400, "bad_json", "name must be a string")))
    }

    @Test("members")
    func member() {
        #expect(NewMemberBody.parse(body(#"{"username":"carol"}"#)) == .success(NewMemberBody(username: "carol")))
        #expect(NewMemberBody.parse(body("{}")) == .failure(BodyError(400, "invalid_username", "username is required")))
        #expect(NewMemberBody.parse(body(#"{"username":[1]}"#)) == .failure(BodyError(400, "bad_json", "username must be a string")))
    }

    @Test("posts: body required, ckey 1 to 64 code points (not bytes, not graphemes)")
    func post() {
        #expect(NewPostBody.parse(body(#"{"body":"hi \u00e9","ckey":"c-1"}"#)) == .success(NewPostBody(body: "hi \u{E9}", ckey: "c-1")))
        #expect(NewPostBody.parse(body(#"{"body":""}"#)) == .success(NewPostBody(body: "", ckey: nil)))
        #expect(NewPostBody.parse(body(#"{"ckey":"c"}"#)) == .failure(BodyError(400, "invalid_body", "body is required")))
        let k64 = String(repeating: "k", count: 64)
        #expect(NewPostBody.parse(body(#"{"body":"x","ckey":"\#(k64)"}"#)) == .success(NewPostBody(body: "x", ckey: k64)))
        #expect(NewPostBody.parse(body(#"{"body":"x","ckey":"\#(k64)k"}"#)) == .failure(BodyError(400, "invalid_body", "ckey is 1 to 64 characters")))
        #expect(NewPostBody.parse(body(#"{"body":"x","ckey":""}"#)) == .failure(BodyError(400, "invalid_body", "ckey is 1 to 64 characters")))
        // Code points, as JSON Schema's maxLength counts: 64 "e" + U+0301 pairs are 128.
        let combining = String(repeating: "e\u{301}", count: 64)
        #expect(NewPostBody.parse(body(#"{"body":"x","ckey":"\#(combining)"}"#)) == .failure(BodyError(400, "invalid_body", "ckey is 1 to 64 characters")))
        let scalars32 = String(repeating: "e\u{301}", count: 32)
        #expect(NewPostBody.parse(body(#"{"body":"x","ckey":"\#(scalars32)"}"#)) == .success(NewPostBody(body: "x", ckey: scalars32)))
        #expect(NewPostBody.parse(body(#"{"body":7}"#)) == .failure(BodyError(400, "bad_json", "body must be a string")))
    }

    @Test("the history query")
    func history() {
        let malformed = BodyError(400, "bad_request", "the query string is malformed")
        let ids = BodyError(400, "bad_request", "before and after are message ids (integers, 0 or more)")
        let limit = BodyError(400, "bad_request", "limit is an integer from 1 to 500")
        #expect(HistoryParams.parse(query: nil) == .success(HistoryParams(before: nil, after: nil, limit: 50)))
        #expect(HistoryParams.parse(query: "before=10&after=0&limit=500") == .success(HistoryParams(before: 10, after: 0, limit: 500)))
        #expect(HistoryParams.parse(query: "limit=1&other=x") == .success(HistoryParams(before: nil, after: nil, limit: 1)))
        #expect(HistoryParams.parse(query: "before=9223372036854775807") == .success(HistoryParams(before: .max, after: nil, limit: 50)))
        #expect(HistoryParams.parse(query: "limit=%2B5") == .success(HistoryParams(before: nil, after: nil, limit: 5)))
        #expect(HistoryParams.parse(query: "before=9223372036854775808") == .failure(ids))
        #expect(HistoryParams.parse(query: "after=-1") == .failure(ids))
        #expect(HistoryParams.parse(query: "before=") == .failure(ids))
        #expect(HistoryParams.parse(query: "before=1.5") == .failure(ids))
        #expect(HistoryParams.parse(query: "limit=0") == .failure(limit))
        #expect(HistoryParams.parse(query: "limit=501") == .failure(limit))
        #expect(HistoryParams.parse(query: "limit=ten") == .failure(limit))
        #expect(HistoryParams.parse(query: "limit=%4") == .failure(malformed))
        #expect(HistoryParams.parse(query: "x=%FF") == .failure(malformed))
    }
}
