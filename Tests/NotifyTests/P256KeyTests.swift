import Testing
@testable import Notify

@Suite("P-256 keys")
struct P256KeyTests {
    /// Made with `openssl ecparam -name prime256v1 -genkey -noout` (SEC 1 form);
    /// its public point from `openssl ec -pubout -conv_form uncompressed`.
    static let sec1PEM = """
        -----BEGIN EC PRIVATE KEY-----
        MHcCAQEEIDYZbO8GEzZb8sZ7z5797XVONfdhwJw0ctxEsIjwbqZGoAoGCCqGSM49
        AwEHoUQDQgAEsN08sRVf3FhO6yQkCFE4u6XCsSi2L+ol53l2n8GlYuVaUGbZX6lg
        y4/r7JuOaTSaJicT531PE5LEJoiwEu6FTA==
        -----END EC PRIVATE KEY-----
        """
    static let sec1PublicKey = "BLDdPLEVX9xYTuskJAhROLulwrEoti_qJed5dp_BpWLlWlBm2V-pYMuP6-ybjmk0miYnE-d9TxOSxCaIsBLuhUw"

    /// A P-384 key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384`).
    static let p384PEM = """
        -----BEGIN PRIVATE KEY-----
        MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDaqS9vACrjKOn1v3xQ
        B7gQTYedd1DuEXLZ1oLvbUVqsl4o+0KVBKXtfWAZBE15WqmhZANiAARYtyrjXV4u
        42gxaxZe13cVtR9O/B6CdnlEfNYHm6r1Mq2quEM3vUTATMPFYiZM24CN+KCfDiHe
        C1MyTkoCdryoCYNDnbV/Kwq19twLbxc0aAgjV/Xfq5c8ZNzcoBNSfAE=
        -----END PRIVATE KEY-----
        """

    @Test("a generated key survives PEM (PKCS #8) and keeps its public key")
    func pemRoundTrip() throws {
        let key = P256Key.generate()
        let pem = key.privateKeyPEM()
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let loaded = try P256Key(pem: pem)
        #expect(loaded.publicKey == key.publicKey)
        #expect(loaded.hasPrivateKey)
        #expect(key.publicKeyBase64URL.utf8.count == 87)
        #expect(P256Key.generate().publicKey != key.publicKey)
    }

    @Test("an OpenSSL-made SEC 1 PEM loads with the public key OpenSSL prints")
    func sec1() throws {
        #expect(try P256Key(pem: Self.sec1PEM).publicKeyBase64URL == Self.sec1PublicKey)
    }

    @Test("other curves, garbage and public-only PEM are refused")
    func refusedPEM() {
        for pem in [Self.p384PEM, "", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"] {
            #expect(throws: WebPushError.self) { try P256Key(pem: pem) }
        }
    }

    @Test("ECDH gives both sides the same secret")
    func agreement() throws {
        let a = P256Key.generate()
        let b = P256Key.generate()
        let fromA = try a.sharedSecret(with: P256Key(publicKey: b.publicKey))
        let fromB = try b.sharedSecret(with: P256Key(publicKey: a.publicKey))
        #expect(fromA == fromB)
        #expect(fromA.count == 32)
    }

    @Test("raw parts that do not belong together are refused")
    func mismatchedParts() {
        #expect(throws: WebPushError.self) {
            try P256Key(privateKey: RFC8291Example.senderPrivateKey, publicKey: base64URL(RFC8291Example.userAgentPublicKey))
        }
        #expect(throws: WebPushError.self) {
            try P256Key(privateKey: [UInt8](repeating: 0, count: 31), publicKey: RFC8291Example.senderPublicKey)
        }
    }
}
