import Chat

/// A Standard Webhooks signing secret: `whsec_` and the key in base64, as a
/// device registration gives it or as Parley makes one (SPEC section 5).
public struct WebhookSecret: Equatable, Sendable {
    /// What the text form starts with.
    public static let prefix = "whsec_"
    /// Bytes in a key Parley makes.
    public static let generatedKeyLength = 32
    /// Key lengths accepted from users: Standard Webhooks makes 24-byte keys and
    /// allows up to 64; below 16 an HMAC key is too easy to guess.
    public static let acceptedKeyLengths = 16...64

    /// The HMAC key.
    public let key: [UInt8]

    /// A fresh random secret.
    public static func make() -> WebhookSecret {
        WebhookSecret(validKey: RandomBytes.make(generatedKeyLength))
    }

    /// The secret spelled `whsec_<base64 key>` (standard base64, `=` optional).
    public init(_ text: String) throws(WebhookSecretError) {
        guard text.hasPrefix(Self.prefix) else { throw .missingPrefix }
        let encoded = text.dropFirst(Self.prefix.count)
        guard let key = Base64.decodeAllowingPadding(encoded, alphabet: .standard) else { throw .notBase64 }
        guard Self.acceptedKeyLengths.contains(key.count) else { throw .badKeyLength(key.count) }
        self.key = key
    }

    private init(validKey: [UInt8]) { key = validKey }

    /// `whsec_` and the key in padded standard base64: what the 201 answer returns.
    public var text: String { Self.prefix + Base64.encodePadded(key, alphabet: .standard) }
}

/// Why a webhook secret was refused; each case says how to spell it right.
public enum WebhookSecretError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingPrefix
    case notBase64
    case badKeyLength(Int)

    public var description: String {
        switch self {
        case .missingPrefix: return "a webhook secret starts with \"whsec_\""
        case .notBase64: return "a webhook secret is \"whsec_\" and the key in standard base64"
        case .badKeyLength(let count):
            return "a webhook secret's key must be \(WebhookSecret.acceptedKeyLengths.lowerBound) to \(WebhookSecret.acceptedKeyLengths.upperBound) bytes, not \(count)"
        }
    }
}
