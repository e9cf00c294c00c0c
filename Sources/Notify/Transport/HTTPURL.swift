import Glibc

/// An absolute `https://host[:port]/path?query` (or `http://`) URL split into what
/// a request needs: no user information, no percent-decoding, the fragment dropped.
/// IPv6 literals come in brackets (`https://[::1]:8443/`).
public struct HTTPURL: Equatable, Sendable {
    /// `https` (else `http`).
    public let secure: Bool
    /// A name (lower-cased) or an address literal, without brackets.
    public let host: String
    public let port: UInt16
    /// origin-form: the path and query, `/` when the URL has no path.
    public let target: String

    public init(parsing text: String) throws(TransportError) {
        func invalid(_ reason: String) -> TransportError { .invalidURL(text, reason: reason) }
        guard let schemeEnd = text.range(of: "://") else { throw invalid("not an absolute URL (https://host/path)") }
        switch text[..<schemeEnd.lowerBound].lowercased() {
        case "https": secure = true
        case "http": secure = false
        default: throw invalid("the scheme must be https")
        }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.contains("@") else { throw invalid("user information (user@) is not allowed") }
        (host, port) = try Self.split(authority, defaultPort: secure ? 443 : 80, invalid)
        var target = String(rest[authorityEnd...].prefix { $0 != "#" })
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        guard target.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw invalid("the path and query must be visible ASCII (percent-encode the rest)")
        }
        self.target = target
    }

    /// The Host header: the host (an IPv6 literal in brackets), with the port when
    /// it is not the scheme's default.
    public var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (secure ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// `localhost`, 127.0.0.0/8 or ::1: the only hosts plain http may reach.
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        return withUnsafeBytes(of: v6) { $0.prefix(15).allSatisfy { $0 == 0 } && $0[15] == 1 }
    }

    private static func split(_ authority: Substring, defaultPort: UInt16, _ invalid: (String) -> TransportError)
        throws(TransportError) -> (String, UInt16)
    {
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw invalid("missing ']' after the IPv6 address") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, String(host), &v6) == 1 else { throw invalid("'\(host)' is not an IPv6 address") }
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected text after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw invalid("an IPv6 address must be in brackets") }
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
            let allowed = host.utf8.allSatisfy { isAlphanumericASCII($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") }
            guard !host.isEmpty, allowed else { throw invalid("the host must be a name or an IP address") }
        }
        var port = defaultPort
        if let portText, !portText.isEmpty {
            guard portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = UInt16(portText), value > 0 else {
                throw invalid("the port must be a number 1-65535")
            }
            port = value
        }
        return (host.lowercased(), port)
    }
}

private func isAlphanumericASCII(_ b: UInt8) -> Bool {
    (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
}
