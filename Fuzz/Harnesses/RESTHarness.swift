// Harness (i): the gateway's REST body readers (sign-up, tokens, PATCH /v1/me,
// rooms, members, posts) and the history query string, on any bytes. Each reads
// or refuses, never traps; each is compared with a reference written from SPEC
// section 4 over JSONValue.parse: a success's fields are the JSON's strings; a
// refusal is exactly the one the reference expects, with status 400 (401
// invalid_credentials for a token request) and a code from the documented set.
//
// Input layout: the bytes are the body, and (their printable ASCII) the query string.
import Gateway
import JSON

/// The harness: one input, returns 0; a finding traps.
public func fuzzREST(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    let object: JSONValue? = {
        guard let v = try? JSONValue.parse(bytes, maxBytes: bytes.count + 1, maxDepth: 16), v.object != nil else { return nil }
        return v
    }()

    expect("sign-up", SignUpBody.parse(bytes), object) { (o) throws(BodyError) in
        let (u, p, e) = (try field(o, "username"), try field(o, "password"), try field(o, "email"))
        guard let u else { throw BodyError(400, "invalid_username", "username is required") }
        guard let p else { throw BodyError(400, "invalid_password", "password is required") }
        return SignUpBody(username: u, password: p, email: e)
    }
    expect("token", TokenBody.parse(bytes), object) { (o) throws(BodyError) in
        let (u, p) = (try field(o, "username"), try field(o, "password"))
        guard let u, let p else { throw BodyError(401, "invalid_credentials", "username and password are required") }
        return TokenBody(username: u, password: p)
    }
    expect("PATCH /v1/me", ProfilePatchBody.parse(bytes), object) { (o) throws(BodyError) in
        let p = try field(o, "password")
        var e: String?? = nil
        switch o["email"] {
        case nil: break
        case .null?: e = .some(nil)
        case .string(let s)?: e = .some(s)
        default: throw BodyError(400, "bad_json", "email must be a string or null")
        }
        let n = o["notify"]
        if let n, case .object = n {} else if n != nil { throw BodyError(400, "bad_json", "notify must be an object") }
        return ProfilePatchBody(password: p, email: e, notify: n)
    }
    expect("room", NewRoomBody.parse(bytes), object) { (o) throws(BodyError) in
        let (n, t) = (try field(o, "name"), try field(o, "title"))
        guard let n else { throw BodyError(400, "invalid_room", "name is required") }
        if let t, t.utf8.count > 200 { throw BodyError(400, "invalid_room", "title is at most 200 bytes") }
        return NewRoomBody(name: n, title: t)
    }
    expect("member", NewMemberBody.parse(bytes), object) { (o) throws(BodyError) in
        guard let u = try field(o, "username") else { throw BodyError(400, "invalid_username", "username is required") }
        return NewMemberBody(username: u)
    }
    expect("post", NewPostBody.parse(bytes), object) { (o) throws(BodyError) in
        let (b, k) = (try field(o, "body"), try field(o, "ckey"))
        guard let b else { throw BodyError(400, "invalid_body", "body is required") }
        if let k, k.isEmpty || k.unicodeScalars.count > 64 { throw BodyError(400, "invalid_body", "ckey is 1 to 64 characters") }
        return NewPostBody(body: b, ckey: k)
    }
    // A query as the request parser passes it on: printable ASCII (0x21-0x7E).
    checkHistory(String(decoding: bytes.filter { (0x21...0x7E).contains($0) }, as: UTF8.self))
    return 0
}

fileprivate let documentedCodes: Set<String> = [
    "bad_json", "bad_request", "invalid_username", "invalid_password", "invalid_email", "invalid_room", "invalid_body",
    "invalid_credentials",
]

fileprivate func checkRefusal(_ what: String, _ error: BodyError) {
    let statusOK = error.status == 400 || (error.status == 401 && error.code == "invalid_credentials")
    guard statusOK, documentedCodes.contains(error.code), !error.message.isEmpty else {
        fatalError("\(what): refused with \(error.status) \(error.code) \(error.message.debugDescription)")
    }
}

/// The reference's string field: absent or null is nil, a string is itself, else bad_json.
fileprivate func field(_ o: JSONValue, _ key: String) throws(BodyError) -> String? {
    switch o[key] {
    case nil, .null?: return nil
    case .string(let s)?: return s
    default: throw BodyError(400, "bad_json", "\(key) must be a string")
    }
}

fileprivate func expect<T: Equatable>(_ what: String, _ got: Result<T, BodyError>, _ object: JSONValue?,
                                      _ reference: (JSONValue) throws(BodyError) -> T) {
    let want: Result<T, BodyError>
    if let object {
        do {
            want = .success(try reference(object))
        } catch {
            want = .failure(error)
        }
    } else {
        want = .failure(BodyError(400, "bad_json", "the body must be a JSON object"))
    }
    if case .failure(let e) = got { checkRefusal(what, e) }
    guard got == want else { fatalError("\(what): read as \(got); the reference says \(want)") }
}

// MARK: - The history query

fileprivate func checkHistory(_ query: String) {
    let got = HistoryParams.parse(query: query)
    if case .failure(let e) = got { checkRefusal("history", e) }
    let want = referenceHistory(query)
    guard got == want else { fatalError("history \(query.debugDescription): read as \(got); the reference says \(want)") }
    if case .success(let p) = got {
        guard (1...500).contains(p.limit), (p.before ?? 0) >= 0, (p.after ?? 0) >= 0 else {
            fatalError("history \(query.debugDescription) accepted as \(p)")
        }
    }
}

fileprivate func referenceHistory(_ query: String) -> Result<HistoryParams, BodyError> {
    var items: [String: String] = [:]
    for pair in query.utf8.split(separator: UInt8(ascii: "&")) {
        let eq = pair.firstIndex(of: UInt8(ascii: "="))
        guard let k = formDecoded(pair[..<(eq ?? pair.endIndex)]),
              let v = formDecoded(eq.map { pair[pair.index(after: $0)...] } ?? pair[pair.endIndex...])
        else { return .failure(BodyError(400, "bad_request", "the query string is malformed")) }
        items[k] = v
    }
    func id(_ key: String) -> Int64?? {
        guard let text = items[key] else { return .some(nil) }
        guard let n = decimal(text), n >= 0 else { return nil }
        return .some(n)
    }
    guard let before = id("before"), let after = id("after") else {
        return .failure(BodyError(400, "bad_request", "before and after are message ids (integers, 0 or more)"))
    }
    var limit = 50
    if let text = items["limit"] {
        guard let n = decimal(text), (1...500).contains(n) else {
            return .failure(BodyError(400, "bad_request", "limit is an integer from 1 to 500"))
        }
        limit = Int(n)
    }
    return .success(HistoryParams(before: before, after: after, limit: limit))
}

/// Optional sign, then ASCII digits; nil when not that or beyond ±2^63 (as Swift's
/// integer parsing reads it: "-0" is 0, "+5" is 5).
fileprivate func decimal(_ text: String) -> Int64? {
    var digits = Substring(text)
    var negative = false
    if let f = digits.first, f == "+" || f == "-" {
        negative = f == "-"
        digits = digits.dropFirst()
    }
    guard !digits.isEmpty, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
    var n: Int64 = 0
    for d in digits.utf8 {
        let (m, o1) = n.multipliedReportingOverflow(by: 10)
        let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(d - 0x30)) : m.addingReportingOverflow(Int64(d - 0x30))
        if o1 || o2 { return nil }
        n = s
    }
    return n
}

/// application/x-www-form-urlencoded: `+` is a space, `%XX` a byte; the result must be UTF-8.
fileprivate func formDecoded(_ bytes: Substring.UTF8View) -> String? {
    var out: [UInt8] = []
    var i = bytes.startIndex
    func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
    while i < bytes.endIndex {
        let b = bytes[i]
        if b == UInt8(ascii: "%") {
            let h = bytes.index(after: i)
            guard h < bytes.endIndex, bytes.index(after: h) < bytes.endIndex,
                  let hi = hex(bytes[h]), let lo = hex(bytes[bytes.index(after: h)])
            else { return nil }
            out.append(hi << 4 | lo)
            i = bytes.index(h, offsetBy: 2)
        } else {
            out.append(b == UInt8(ascii: "+") ? 0x20 : b)
            i = bytes.index(after: i)
        }
    }
    return String(validating: out, as: UTF8.self)
}
