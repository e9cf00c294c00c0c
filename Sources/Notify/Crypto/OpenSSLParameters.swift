import COpenSSL

/// An `OSSL_PARAM` array for OpenSSL 3's by-name interfaces (key import, KDFs).
///
/// OpenSSL reads names and values through the pointers in each `OSSL_PARAM` and
/// copies nothing, so a Swift string bridged for one call would dangle. This
/// owns a C copy of every name and value until it goes away, and wipes the
/// values first (they are key material).
final class OpenSSLParameters {
    private var parameters: [OSSL_PARAM] = []
    private var copies: [UnsafeMutableRawBufferPointer] = []

    deinit {
        for copy in copies {
            OPENSSL_cleanse(copy.baseAddress, copy.count)
            copy.deallocate()
        }
    }

    /// A UTF-8 string value, e.g. `digest = SHA256`.
    func add(_ name: String, utf8 value: String) {
        let buffer = copy(Array(value.utf8), terminated: true)
        parameters.append(OSSL_PARAM_construct_utf8_string(
            cName(name), buffer.baseAddress!.assumingMemoryBound(to: CChar.self), buffer.count - 1))
    }

    /// An octet string value, e.g. a key or a salt.
    func add(_ name: String, octets value: [UInt8]) {
        let buffer = copy(value, terminated: false)
        parameters.append(OSSL_PARAM_construct_octet_string(cName(name), buffer.baseAddress, value.count))
    }

    /// An unsigned integer given big-endian (as keys are written), e.g. an EC
    /// private scalar. OpenSSL wants native byte order here.
    func add(_ name: String, unsignedBigEndian value: [UInt8]) {
        let native = 1.littleEndian == 1 ? Array(value.reversed()) : value
        let buffer = copy(native, terminated: false)
        parameters.append(OSSL_PARAM_construct_BN(
            cName(name), buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), native.count))
    }

    /// Calls `body` with the array, ended by the terminating element.
    func withArray<R>(_ body: (UnsafeMutablePointer<OSSL_PARAM>) throws -> R) rethrows -> R {
        var array = parameters
        array.append(OSSL_PARAM_construct_end())
        return try array.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    private func cName(_ name: String) -> UnsafePointer<CChar> {
        UnsafePointer(copy(Array(name.utf8), terminated: true).baseAddress!.assumingMemoryBound(to: CChar.self))
    }

    /// A heap copy of `bytes` (with a NUL after them if `terminated`), kept
    /// until deinit. Never empty, so the base address is never nil.
    private func copy(_ bytes: [UInt8], terminated: Bool) -> UnsafeMutableRawBufferPointer {
        let count = max(bytes.count + (terminated ? 1 : 0), 1)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        buffer.copyBytes(from: bytes)
        copies.append(buffer)
        return buffer
    }
}
