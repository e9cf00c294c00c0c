import JSON

// The REST request bodies and the history query (SPEC section 4), read by pure
// functions so that they can be fuzzed: bytes in, the fields or the refusal the
// handler answers with.

/// A request body (or query string) the handler refuses: the status and error code
/// of its answer, and the message.
public struct BodyError: Error, Equatable, Sendable {
    public let status: Int
    public let code: String
    public let message: String

    public init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    static func badJSON(_ message: String) -> BodyError { BodyError(400, "bad_json", message) }
    static func badRequest(_ message: String) -> BodyError { BodyError(400, "bad_request", message) }
}

/// The readers' common steps: the body as an object, string fields.
enum RESTBody {
    /// The body as a JSON object (at most 16 levels deep); bad_json otherwise.
    static func object(_ body: [UInt8]) throws(BodyError) -> JSONValue {
        guard let value = try? JSONValue.parse(body, maxBytes: body.count + 1, maxDepth: 16), value.object != nil
        else { throw .badJSON("the body must be a JSON object") }
        return value
    }

    /// A string field: absent or null is nil, any other type is bad_json.
    static func string(_ object: JSONValue, _ key: String) throws(BodyError) -> String? {
        guard let v = object[key], !v.isNull else { return nil }
        guard let s = v.string else { throw .badJSON("\(key) must be a string") }
        return s
    }

    static func result<T>(_ read: () throws(BodyError) -> T) -> Result<T, BodyError> {
        do {
            return .success(try read())
        } catch {
            return .failure(error)
        }
    }
}

/// `POST /v1/users` `{"username","password","email"?}`.
public struct SignUpBody: Equatable, Sendable {
    public var username: String
    public var password: String
    public var email: String?

    public init(username: String, password: String, email: String?) {
        self.username = username
        self.password = password
        self.email = email
    }

    public static func parse(_ body: [UInt8]) -> Result<SignUpBody, BodyError> {
        RESTBody.result { () throws(BodyError) in
            let o = try RESTBody.object(body)
            let username = try RESTBody.string(o, "username")
            let password = try RESTBody.string(o, "password")
            let email = try RESTBody.string(o, "email")
            guard let username else { throw BodyError(400, "invalid_username", "username is required") }
            guard let password else { throw BodyError(400, "invalid_password", "password is required") }
            return SignUpBody(username: username, password: password, email: email)
        }
    }
}

/// `POST /v1/tokens` `{"username","password"}`: missing ones are 401, as a wrong password is.
public struct TokenBody: Equatable, Sendable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    public static func parse(_ body: [UInt8]) -> Result<TokenBody, BodyError> {
        RESTBody.result { () throws(BodyError) in
            let o = try RESTBody.object(body)
            let username = try RESTBody.string(o, "username")
            let password = try RESTBody.string(o, "password")
            guard let username, let password else {
                throw BodyError(401, "invalid_credentials", "username and password are required")
            }
            return TokenBody(username: username, password: password)
        }
    }
}

/// `PATCH /v1/me` `{"email"?,"password"?,"notify"?}`: each field absent is left as it is.
public struct ProfilePatchBody: Equatable, Sendable {
    public var password: String?
    /// nil: unchanged; `.some(nil)`: removed (`"email": null`).
    public var email: String??
    /// The notification preferences (an object), checked by the chat plugin.
    public var notify: JSONValue?

    public init(password: String?, email: String??, notify: JSONValue?) {
        self.password = password
        self.email = email
        self.notify = notify
    }

    public static func parse(_ body: [UInt8]) -> Result<ProfilePatchBody, BodyError> {
        RESTBody.result { () throws(BodyError) in
            let o = try RESTBody.object(body)
            let password = try RESTBody.string(o, "password")
            var email: String?? = nil
            if let e = o["email"] {
                if e.isNull {
                    email = .some(nil)
                } else if let s = e.string {
                    email = .some(s)
                } else {
                    throw .badJSON("email must be a string or null")
                }
            }
            let notify = o["notify"]
            if let notify, notify.object == nil { throw .badJSON("notify must be an object") }
            return ProfilePatchBody(password: password, email: email, notify: notify)
        }
    }
}

/// `POST /v1/rooms` `{"name","title"?}`.
public struct NewRoomBody: Equatable, Sendable {
    public var name: String
    public var title: String?

    public init(name: String, title: String?) {
        self.name = name
        self.title = title
    }

    public static let maxTitleBytes = 200

    public static func parse(_ body: [UInt8]) -> Result<NewRoomBody, BodyError> {
        RESTBody.result { () throws(BodyError) in
            let o = try RESTBody.object(body)
            let name = try RESTBody.string(o, "name")
            let title = try RESTBody.string(o, "title")
            guard let name else { throw BodyError(400, "invalid_room", "name is required") }
            if let title, title.utf8.count > maxTitleBytes {
                throw BodyError(400, "invalid_room", "title is at most 200 bytes")
            }
            return NewRoomBody(name: name, title: title)
        }
    }
}

/// `POST /v1/rooms/<room>/members` `{"username"}`.
public struct NewMemberBody: Equatable, Sendable {
    public var username: String

    public init(username: String) {
        self.username = username
    }

    public static func parse(_ body: [UInt8]) -> Result<NewMemberBody, BodyError> {
        RESTBody.result { () throws(BodyError) in
            let o = try RESTBody.object(body)
            guard let username = try RESTBody.string(o, "username") else {
                throw BodyError(400, "invalid_username", "username is required")
            }
            return NewMemberBody(username: username)
        }
    }
}

/// `POST /v1/rooms/<room>/messages` `{"body","ckey"?}`.
public struct NewPostBody: Equatable, Sendable {
    public var body: String
    public var ckey: String?

    public init(body: String, ckey: String?) {
        self.body = body
        self.ckey = ckey
    }

    /// The length of a client key, in characters.
    public static let ckeyLength = 1...64

    public static func parse(_ body: [UInt8]) -> Result<NewPostBody, BodyError> {
        RESTBody.result { () throws(BodyError) in
            let o = try RESTBody.object(body)
            let text = try RESTBody.string(o, "body")
            let ckey = try RESTBody.string(o, "ckey")
            guard let text else { throw BodyError(400, "invalid_body", "body is required") }
            if let ckey, !ckeyLength.contains(ckey.unicodeScalars.count) {
                throw BodyError(400, "invalid_body", "ckey is 1 to 64 characters")
            }
            return NewPostBody(body: text, ckey: ckey)
        }
    }
}

/// `GET /v1/rooms/<room>/messages?before&after&limit`.
public struct HistoryParams: Equatable, Sendable {
    public var before: Int64?
    public var after: Int64?
    public var limit: Int

    public init(before: Int64?, after: Int64?, limit: Int) {
        self.before = before
        self.after = after
        self.limit = limit
    }

    public static let defaultLimit = 50
    public static let limits = 1...500

    /// `query`: what followed `?` in the target (nil: no query).
    public static func parse(query: String?) -> Result<HistoryParams, BodyError> {
        RESTBody.result { () throws(BodyError) in
            guard let items = Router.queryItems(query) else { throw .badRequest("the query string is malformed") }
            func id(_ key: String) -> Int64?? {
                guard let text = items[key] else { return .some(nil) }
                guard let n = Int64(text), n >= 0 else { return nil }
                return .some(n)
            }
            guard let before = id("before"), let after = id("after") else {
                throw .badRequest("before and after are message ids (integers, 0 or more)")
            }
            var limit = defaultLimit
            if let text = items["limit"] {
                guard let n = Int(text), limits.contains(n) else {
                    throw .badRequest("limit is an integer from 1 to 500")
                }
                limit = n
            }
            return HistoryParams(before: before, after: after, limit: limit)
        }
    }
}
