import Foundation
import JSON
import Reactor

/// A request on its way to an answer: its path parameters, the signed-in user,
/// and `respond` (callable once, from any thread).
final class RequestContext: @unchecked Sendable {
    let request: HTTPRequest
    let params: [String: String]
    let peer: SocketAddress?
    /// The user of the bearer token (authenticated routes).
    var user = ""
    var token = ""
    private let connection: HTTPConnection
    private let route: String
    private let started: UInt64

    init(_ request: HTTPRequest, params: [String: String], route: String, connection: HTTPConnection) {
        self.request = request
        self.params = params
        self.route = route
        self.connection = connection
        peer = connection.peer
        started = EventLoop.monotonicNanoseconds()
    }

    func respond(_ response: HTTPResponse) {
        connection.gateway.count(route: route, method: request.method, status: response.status,
                                 seconds: Double(EventLoop.monotonicNanoseconds() - started) / 1e9)
        if connection.loop.inLoop {
            connection.respond(response, to: request)
        } else {
            connection.respondLater(response, to: request)
        }
    }

    func fail(_ status: Int, _ code: String, _ message: String, headers: [(String, String)] = []) {
        respond(.error(status, code, message, headers: headers))
    }

    /// What a body (or query) reader read; answers its refusal and returns nil otherwise.
    func read<T>(_ result: Result<T, BodyError>) -> T? {
        switch result {
        case .success(let value):
            return value
        case .failure(let error):
            fail(error.status, error.code, error.message)
            return nil
        }
    }

    func upgradeToMQTT(_ greeting: [UInt8]) { connection.upgradeToMQTT(greeting) }
    func upgradeToEcho(_ greeting: [UInt8]) { connection.upgradeToEcho(greeting) }
}

/// The route table: path templates (`/v1/rooms/{room}`) and methods to handlers.
/// An unknown path is 404; a known path with another method is 405 with `Allow`.
final class Router: @unchecked Sendable {
    struct Route {
        let method: String
        let template: String
        let segments: [Substring]
        /// Needs a bearer token.
        let authenticated: Bool
        let handler: (RequestContext) -> Void
    }

    private var routes: [Route] = []
    /// Looks a bearer token up: the user's name, or nil.
    var authenticate: (String) -> String? = { _ in nil }

    func add(_ method: String, _ template: String, authenticated: Bool = false, _ handler: @escaping (RequestContext) -> Void) {
        routes.append(Route(method: method, template: template, segments: template.split(separator: "/"),
                            authenticated: authenticated, handler: handler))
    }

    func handle(_ request: HTTPRequest, on connection: HTTPConnection) {
        guard let segments = Self.decodedSegments(request.path) else {
            let ctx = RequestContext(request, params: [:], route: "-", connection: connection)
            return ctx.fail(400, "bad_request", "the path is not valid percent-encoded UTF-8")
        }
        var allowed: [String] = []
        for route in routes {
            guard let params = Self.match(route.segments, segments) else { continue }
            allowed.append(route.method)
            let method = request.method == "HEAD" ? "GET" : request.method
            guard route.method == method else { continue }
            let ctx = RequestContext(request, params: params, route: route.template, connection: connection)
            if route.authenticated && !authorize(ctx) { return }
            return route.handler(ctx)
        }
        let template = allowed.isEmpty ? "-" : (routes.first { Self.match($0.segments, segments) != nil }?.template ?? "-")
        let ctx = RequestContext(request, params: [:], route: template, connection: connection)
        if allowed.isEmpty {
            return ctx.fail(404, "not_found", "no such route: \(request.path)")
        }
        var methods = allowed
        if methods.contains("GET") { methods.append("HEAD") }
        methods.append("OPTIONS")
        let allow = methods.joined(separator: ", ")
        if request.method == "OPTIONS" {
            return ctx.respond(HTTPResponse(status: 204, headers: [("Allow", allow)] + connection.gateway.preflightHeaders(request)))
        }
        ctx.fail(405, "method_not_allowed", "\(request.method) is not allowed here", headers: [("Allow", allow)])
    }

    private func authorize(_ ctx: RequestContext) -> Bool {
        guard let header = ctx.request.header("authorization") else {
            ctx.fail(401, "unauthorized", "this route needs Authorization: Bearer <token>",
                     headers: [("WWW-Authenticate", "Bearer")])
            return false
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer",
              let user = authenticate(String(parts[1]).trimmingCharacters(in: .whitespaces))
        else {
            ctx.fail(401, "unauthorized", "the token is not valid (expired or revoked?)",
                     headers: [("WWW-Authenticate", #"Bearer error="invalid_token""#)])
            return false
        }
        ctx.user = user
        ctx.token = String(parts[1]).trimmingCharacters(in: .whitespaces)
        return true
    }

    static func match(_ template: [Substring], _ path: [String]) -> [String: String]? {
        guard template.count == path.count else { return nil }
        var params: [String: String] = [:]
        for (t, p) in zip(template, path) {
            if t.first == "{" && t.last == "}" {
                if p.isEmpty { return nil }
                params[String(t.dropFirst().dropLast())] = p
            } else if t != p {
                return nil
            }
        }
        return params
    }

    /// Path segments, percent-decoded; nil when the encoding is broken.
    static func decodedSegments(_ path: String) -> [String]? {
        var out: [String] = []
        for raw in path.split(separator: "/", omittingEmptySubsequences: true) {
            guard let s = percentDecoded(raw) else { return nil }
            out.append(s)
        }
        return out
    }

    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var it = Array(text.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard let h = it.popFirst(), let l = it.popFirst(),
                      let hi = HTTPParser.hexDigit(h), let lo = HTTPParser.hexDigit(l)
                else { return nil }
                bytes.append(UInt8(hi * 16 + lo))
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// `a=1&b=2` into a dictionary (the last value wins); nil when malformed.
    static func queryItems(_ query: String?) -> [String: String]? {
        var out: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let k = percentDecoded(kv[0].replacingOccurrences(of: "+", with: " ")[...]),
                  let v = percentDecoded((kv.count > 1 ? String(kv[1]) : "").replacingOccurrences(of: "+", with: " ")[...])
            else { return nil }
            out[k] = v
        }
        return out
    }
}
