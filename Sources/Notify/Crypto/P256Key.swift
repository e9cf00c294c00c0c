import Chat
import COpenSSL

/// A P-256 (secp256r1) key held by OpenSSL: a key pair (the VAPID key, an
/// ephemeral Web Push key) or a public key alone (a subscription's `p256dh`).
///
/// Immutable once made; OpenSSL allows concurrent use of one `EVP_PKEY` for
/// signing and key agreement as long as each operation has its own context,
/// which every method here makes, so a key may be shared between threads.
public final class P256Key: @unchecked Sendable {
    /// Bytes in an uncompressed point: 0x04, x (32), y (32).
    public static let publicKeyLength = 65
    /// Bytes in a private scalar.
    public static let privateKeyLength = 32

    let pkey: OpaquePointer
    /// Whether this key can sign and agree keys, not only verify and be agreed with.
    public let hasPrivateKey: Bool
    /// The public key as an uncompressed point (65 bytes).
    public let publicKey: [UInt8]

    private init(taking pkey: OpaquePointer, hasPrivateKey: Bool) throws(WebPushError) {
        self.pkey = pkey
        self.hasPrivateKey = hasPrivateKey
        guard EVP_PKEY_is_a(pkey, "EC") == 1, Self.groupName(of: pkey) == "prime256v1" else {
            EVP_PKEY_free(pkey)
            throw .invalidKey("not a P-256 key")
        }
        var point = [UInt8](repeating: 0, count: Self.publicKeyLength)
        var length = 0
        guard EVP_PKEY_get_octet_string_param(pkey, "encoded-pub-key", &point, point.count, &length) == 1,
            length == Self.publicKeyLength, point[0] == 0x04
        else {
            let reason = openSSLFailure("EVP_PKEY_get_octet_string_param(encoded-pub-key)")
            EVP_PKEY_free(pkey)
            throw .invalidKey(reason)
        }
        publicKey = point
    }

    deinit { EVP_PKEY_free(pkey) }

    // MARK: Making and loading

    /// A fresh key pair from OpenSSL's random generator.
    public static func generate() -> P256Key {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            fatalError(openSSLFailure("EVP_PKEY_CTX_new_from_name(EC)"))
        }
        defer { EVP_PKEY_CTX_free(context) }
        var pkey: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1,
            EVP_PKEY_generate(context, &pkey) == 1, let pkey
        else { fatalError(openSSLFailure("EVP_PKEY_generate(P-256)")) }
        do { return try P256Key(taking: pkey, hasPrivateKey: true) } catch { fatalError("a generated P-256 key is invalid: \(error)") }
    }

    /// The key pair in a PEM private key (PKCS #8 `PRIVATE KEY`, or SEC 1 `EC
    /// PRIVATE KEY` as `openssl ecparam -genkey` writes it).
    public convenience init(pem: String) throws(WebPushError) {
        let text = Array(pem.utf8)
        let pkey: OpaquePointer? = text.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let pkey else { throw .invalidKey(openSSLFailure("PEM_read_bio_PrivateKey")) }
        try self.init(taking: pkey, hasPrivateKey: true)
    }

    /// A public key from its uncompressed point (65 bytes, as a subscription's
    /// `p256dh` carries it). A point off the curve is refused.
    public convenience init(publicKey point: [UInt8]) throws(WebPushError) {
        guard point.count == Self.publicKeyLength, point[0] == 0x04 else {
            throw .invalidKey("a public key is a 65-byte uncompressed point starting 0x04, not \(point.count) bytes")
        }
        let parameters = OpenSSLParameters()
        parameters.add("group", utf8: "prime256v1")
        parameters.add("pub", octets: point)
        try self.init(taking: Self.importKey(parameters, selection: PARLEY_EVP_PKEY_PUBLIC_KEY), hasPrivateKey: false)
    }

    /// A key pair from its raw parts: the 32-byte private scalar and the point
    /// (as test vectors such as RFC 8291's print them). Parts that do not
    /// belong together are refused.
    public convenience init(privateKey scalar: [UInt8], publicKey point: [UInt8]) throws(WebPushError) {
        guard scalar.count == Self.privateKeyLength else {
            throw .invalidKey("a private key is 32 bytes, not \(scalar.count)")
        }
        guard point.count == Self.publicKeyLength, point[0] == 0x04 else {
            throw .invalidKey("a public key is a 65-byte uncompressed point starting 0x04, not \(point.count) bytes")
        }
        let parameters = OpenSSLParameters()
        parameters.add("group", utf8: "prime256v1")
        parameters.add("pub", octets: point)
        parameters.add("priv", unsignedBigEndian: scalar)
        let pkey = try Self.importKey(parameters, selection: PARLEY_EVP_PKEY_KEYPAIR)
        guard let check = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else {
            EVP_PKEY_free(pkey)
            throw .invalidKey(openSSLFailure("EVP_PKEY_CTX_new_from_pkey"))
        }
        defer { EVP_PKEY_CTX_free(check) }
        guard EVP_PKEY_pairwise_check(check) == 1 else {
            EVP_PKEY_free(pkey)
            _ = openSSLFailure("EVP_PKEY_pairwise_check")
            throw .invalidKey("the public key is not the private key's")
        }
        try self.init(taking: pkey, hasPrivateKey: true)
    }

    // MARK: Exporting

    /// The key pair as PEM (PKCS #8, unencrypted): what the data directory keeps.
    public func privateKeyPEM() -> String {
        precondition(hasPrivateKey, "a public key has no PEM private key")
        guard let bio = BIO_new(BIO_s_mem()) else { fatalError(openSSLFailure("BIO_new")) }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil) == 1 else {
            fatalError(openSSLFailure("PEM_write_bio_PrivateKey"))
        }
        var text = [UInt8](repeating: 0, count: parley_BIO_pending(bio))
        let read = BIO_read(bio, &text, Int32(text.count))
        guard read == Int32(text.count) else { fatalError(openSSLFailure("BIO_read")) }
        defer { OPENSSL_cleanse(&text, text.count) }
        return String(decoding: text, as: UTF8.self)
    }

    /// The public key as base64url without padding (87 characters): VAPID's
    /// `k=` parameter and the `applicationServerKey` a browser subscribes with.
    public var publicKeyBase64URL: String { Base64.encode(publicKey, alphabet: .urlSafe) }

    // MARK: Using

    /// ECDH: the x-coordinate shared with `peer` (32 bytes). The peer's point
    /// is validated again before use.
    func sharedSecret(with peer: P256Key) throws(WebPushError) -> [UInt8] {
        precondition(hasPrivateKey, "key agreement needs a private key")
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else {
            throw .openSSL(openSSLFailure("EVP_PKEY_CTX_new_from_pkey"))
        }
        defer { EVP_PKEY_CTX_free(context) }
        var secret = [UInt8](repeating: 0, count: 32)
        var length = secret.count
        guard EVP_PKEY_derive_init(context) == 1, EVP_PKEY_derive_set_peer_ex(context, peer.pkey, 1) == 1,
            EVP_PKEY_derive(context, &secret, &length) == 1, length == 32
        else { throw .openSSL(openSSLFailure("ECDH (EVP_PKEY_derive)")) }
        return secret
    }

    // MARK: Helpers

    private static func importKey(_ parameters: OpenSSLParameters, selection: Int32) throws(WebPushError) -> OpaquePointer {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            throw .openSSL(openSSLFailure("EVP_PKEY_CTX_new_from_name(EC)"))
        }
        defer { EVP_PKEY_CTX_free(context) }
        var pkey: OpaquePointer?
        let ok = parameters.withArray { EVP_PKEY_fromdata_init(context) == 1 && EVP_PKEY_fromdata(context, &pkey, selection, $0) == 1 }
        guard ok, let pkey else { throw .invalidKey(openSSLFailure("EVP_PKEY_fromdata")) }
        return pkey
    }

    private static func groupName(of pkey: OpaquePointer) -> String? {
        var name = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_utf8_string_param(pkey, "group", &name, name.count, &length) == 1 else {
            _ = openSSLFailure("EVP_PKEY_get_utf8_string_param(group)")
            return nil
        }
        return String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
