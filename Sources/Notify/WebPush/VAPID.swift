import Chat
import JSON

/// Voluntary Application Server Identification (RFC 8292): the server proves
/// to a push service, with a signed JWT, that it holds the key pair whose
/// public half the browser subscribed with (`applicationServerKey`).
///
///     Authorization: vapid t=<JWT>, k=<public key, base64url>
///
/// The JWT is ES256-signed, header `{"typ":"JWT","alg":"ES256"}`, claims
/// `{"aud": <origin of the endpoint>, "exp": <now + lifetime>, "sub": <contact>}`.
/// Pure: time comes in as a parameter.
public enum VAPID {
    /// The longest lifetime a push service must accept (RFC 8292 section 2).
    public static let maxLifetime: Int64 = 24 * 3600
    /// The lifetime used unless one is given: half the maximum, so a push
    /// service whose clock is a few hours ahead still accepts the token.
    public static let defaultLifetime: Int64 = 12 * 3600

    /// The `Authorization` header value for a push to `endpoint`.
    public static func authorization(
        endpoint: String, subject: String, key: P256Key, now: Int64, lifetime: Int64 = defaultLifetime
    ) throws(WebPushError) -> String {
        let jwt = try token(endpoint: endpoint, subject: subject, key: key, now: now, lifetime: lifetime)
        return "vapid t=\(jwt), k=\(key.publicKeyBase64URL)"
    }

    /// The signed JWT for a push to `endpoint`: `aud` its origin, `exp` `now`
    /// (Unix seconds) plus `lifetime`, `sub` the operator's contact, a
    /// `mailto:` or `https:` URI (push services may write to it about abuse).
    public static func token(
        endpoint: String, subject: String, key: P256Key, now: Int64, lifetime: Int64 = defaultLifetime
    ) throws(WebPushError) -> String {
        guard (1...maxLifetime).contains(lifetime) else { throw .invalidLifetime(lifetime) }
        guard isValidSubject(subject) else { throw .invalidSubject(subject) }
        let audience = try self.audience(ofEndpoint: endpoint)
        var claims = JSONWriter()
        claims.object { o in
            o.field("aud", audience)
            o.field("exp", now + lifetime)
            o.field("sub", subject)
        }
        let signingInput = base64URL(Array(#"{"typ":"JWT","alg":"ES256"}"#.utf8)) + "." + base64URL(claims.bytes)
        let signature = try ES256Signature.sign(Array(signingInput.utf8), with: key)
        return signingInput + "." + base64URL(signature)
    }

    /// The origin of a push endpoint URL, as the `aud` claim wants it:
    /// `scheme://host[:port]`, scheme and host in lower case, the port only when
    /// it is not the scheme's default (RFC 6454 section 6.2).
    public static func audience(ofEndpoint endpoint: String) throws(WebPushError) -> String {
        guard let separator = endpoint.firstRange(of: "://") else {
            throw .invalidEndpoint("\"\(endpoint)\" is not an absolute URL")
        }
        let scheme = endpoint[..<separator.lowerBound].lowercased()
        guard scheme == "https" || scheme == "http" else {
            throw .invalidEndpoint("scheme \"\(scheme)\" is not https or http")
        }
        let rest = endpoint[separator.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else { throw .invalidEndpoint("user information in the URL") }

        let host: Substring
        let portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidEndpoint("unclosed IPv6 address") }
            host = authority[...close]
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { throw .invalidEndpoint("junk after the IPv6 address") }
            portText = after.isEmpty ? nil : after.dropFirst()
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
            portText = nil
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw .invalidEndpoint("no valid host in \"\(endpoint)\"")
        }
        var origin = scheme + "://" + host.lowercased()
        if let portText {
            guard (1...5).contains(portText.count), portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let port = Int(portText), (1...65535).contains(port)
            else { throw .invalidEndpoint("bad port \"\(portText)\"") }
            if port != (scheme == "https" ? 443 : 80) { origin += ":\(port)" }
        }
        return origin
    }

    /// `mailto:` with something after it, or an `https:` URL.
    static func isValidSubject(_ subject: String) -> Bool {
        let lower = subject.lowercased()
        return (lower.hasPrefix("mailto:") && lower.count > 7) || (lower.hasPrefix("https://") && lower.count > 8)
    }

    private static func base64URL(_ bytes: [UInt8]) -> String { Base64.encode(bytes, alphabet: .urlSafe) }
}
