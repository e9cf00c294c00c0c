import COpenSSL

/// Text for a failed OpenSSL call: the function's name and the reasons on the
/// thread's error queue, which this also empties. A failure left on the queue
/// would be reported later by an unrelated call on the same thread (a TLS
/// stream's `SSL_get_error` reads the same queue).
func openSSLFailure(_ function: String) -> String {
    var reasons: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        reasons.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return reasons.isEmpty ? "\(function) failed" : "\(function) failed: \(reasons.joined(separator: "; "))"
}
