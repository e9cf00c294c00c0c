import Glibc

/// One address of a host, ready for `connect`.
struct ResolvedAddress {
    var storage = sockaddr_storage()
    var length: socklen_t = 0
    var family: Int32 = AF_INET

    /// 127.0.0.0/8 or ::1.
    var isLoopback: Bool {
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                let address = raw.load(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: in_addr.self)
                return UInt32(bigEndian: address.s_addr) >> 24 == 127
            }
            let address = raw.load(fromByteOffset: MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!, as: in6_addr.self)
            return withUnsafeBytes(of: address) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
    }
}

/// The TCP addresses of `host` (a name, or an IPv4 or IPv6 literal), in the
/// resolver's order. Blocks: for worker threads only.
func resolveHost(_ host: String, port: UInt16) -> Result<[ResolvedAddress], TransportError> {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_protocol = Int32(IPPROTO_TCP)
    hints.ai_flags = AI_NUMERICSERV
    var list: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(host, String(port), &hints, &list)
    guard rc == 0 else {
        let reason = rc == EAI_SYSTEM ? systemError(errno) : String(cString: gai_strerror(rc))
        return .failure(.resolve(host: host, reason: reason))
    }
    defer { freeaddrinfo(list) }
    var addresses: [ResolvedAddress] = []
    var next = list
    while let info = next {
        let family = info.pointee.ai_family
        if (family == AF_INET || family == AF_INET6), let source = info.pointee.ai_addr,
           Int(info.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size {
            var address = ResolvedAddress(length: info.pointee.ai_addrlen, family: family)
            withUnsafeMutableBytes(of: &address.storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: source, count: Int(info.pointee.ai_addrlen))) }
            addresses.append(address)
        }
        next = info.pointee.ai_next
    }
    guard !addresses.isEmpty else { return .failure(.resolve(host: host, reason: "no IPv4 or IPv6 address")) }
    return .success(addresses)
}
