/// MQTT 5.0 reason codes (section 2.4). The 3.x CONNACK return codes are mapped
/// from these where the packet is encoded for an older client.
public struct ReasonCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public static let success = ReasonCode(0x00)
    public static let normalDisconnection = ReasonCode(0x00)
    public static let grantedQoS0 = ReasonCode(0x00)
    public static let grantedQoS1 = ReasonCode(0x01)
    public static let grantedQoS2 = ReasonCode(0x02)
    public static let disconnectWithWillMessage = ReasonCode(0x04)
    public static let noMatchingSubscribers = ReasonCode(0x10)
    public static let noSubscriptionExisted = ReasonCode(0x11)
    public static let continueAuthentication = ReasonCode(0x18)
    public static let reAuthenticate = ReasonCode(0x19)
    public static let unspecifiedError = ReasonCode(0x80)
    public static let malformedPacket = ReasonCode(0x81)
    public static let protocolError = ReasonCode(0x82)
    public static let implementationSpecificError = ReasonCode(0x83)
    public static let unsupportedProtocolVersion = ReasonCode(0x84)
    public static let clientIdentifierNotValid = ReasonCode(0x85)
    public static let badUserNameOrPassword = ReasonCode(0x86)
    public static let notAuthorized = ReasonCode(0x87)
    public static let serverUnavailable = ReasonCode(0x88)
    public static let serverBusy = ReasonCode(0x89)
    public static let banned = ReasonCode(0x8A)
    public static let serverShuttingDown = ReasonCode(0x8B)
    public static let badAuthenticationMethod = ReasonCode(0x8C)
    public static let keepAliveTimeout = ReasonCode(0x8D)
    public static let sessionTakenOver = ReasonCode(0x8E)
    public static let topicFilterInvalid = ReasonCode(0x8F)
    public static let topicNameInvalid = ReasonCode(0x90)
    public static let packetIdentifierInUse = ReasonCode(0x91)
    public static let packetIdentifierNotFound = ReasonCode(0x92)
    public static let receiveMaximumExceeded = ReasonCode(0x93)
    public static let topicAliasInvalid = ReasonCode(0x94)
    public static let packetTooLarge = ReasonCode(0x95)
    public static let messageRateTooHigh = ReasonCode(0x96)
    public static let quotaExceeded = ReasonCode(0x97)
    public static let administrativeAction = ReasonCode(0x98)
    public static let payloadFormatInvalid = ReasonCode(0x99)
    public static let retainNotSupported = ReasonCode(0x9A)
    public static let qosNotSupported = ReasonCode(0x9B)
    public static let useAnotherServer = ReasonCode(0x9C)
    public static let serverMoved = ReasonCode(0x9D)
    public static let sharedSubscriptionsNotSupported = ReasonCode(0x9E)
    public static let connectionRateExceeded = ReasonCode(0x9F)
    public static let maximumConnectTime = ReasonCode(0xA0)
    public static let subscriptionIdentifiersNotSupported = ReasonCode(0xA1)
    public static let wildcardSubscriptionsNotSupported = ReasonCode(0xA2)

    /// True for the codes of 0x80 and above, which signal failure.
    public var isFailure: Bool { rawValue >= 0x80 }

    public var description: String {
        let hex = "0x" + String(rawValue, radix: 16, uppercase: true)
        switch rawValue {
        case 0x00: return "\(hex) success"
        case 0x01: return "\(hex) granted QoS 1"
        case 0x02: return "\(hex) granted QoS 2"
        case 0x04: return "\(hex) disconnect with will message"
        case 0x10: return "\(hex) no matching subscribers"
        case 0x11: return "\(hex) no subscription existed"
        case 0x18: return "\(hex) continue authentication"
        case 0x19: return "\(hex) re-authenticate"
        case 0x80: return "\(hex) unspecified error"
        case 0x81: return "\(hex) malformed packet"
        case 0x82: return "\(hex) protocol error"
        case 0x83: return "\(hex) implementation specific error"
        case 0x84: return "\(hex) unsupported protocol version"
        case 0x85: return "\(hex) client identifier not valid"
        case 0x86: return "\(hex) bad user name or password"
        case 0x87: return "\(hex) not authorized"
        case 0x88: return "\(hex) server unavailable"
        case 0x89: return "\(hex) server busy"
        case 0x8A: return "\(hex) banned"
        case 0x8B: return "\(hex) server shutting down"
        case 0x8C: return "\(hex) bad authentication method"
        case 0x8D: return "\(hex) keep alive timeout"
        case 0x8E: return "\(hex) session taken over"
        case 0x8F: return "\(hex) topic filter invalid"
        case 0x90: return "\(hex) topic name invalid"
        case 0x91: return "\(hex) packet identifier in use"
        case 0x92: return "\(hex) packet identifier not found"
        case 0x93: return "\(hex) receive maximum exceeded"
        case 0x94: return "\(hex) topic alias invalid"
        case 0x95: return "\(hex) packet too large"
        case 0x96: return "\(hex) message rate too high"
        case 0x97: return "\(hex) quota exceeded"
        case 0x98: return "\(hex) administrative action"
        case 0x99: return "\(hex) payload format invalid"
        case 0x9A: return "\(hex) retain not supported"
        case 0x9B: return "\(hex) QoS not supported"
        case 0x9C: return "\(hex) use another server"
        case 0x9D: return "\(hex) server moved"
        case 0x9E: return "\(hex) shared subscriptions not supported"
        case 0x9F: return "\(hex) connection rate exceeded"
        case 0xA0: return "\(hex) maximum connect time"
        case 0xA1: return "\(hex) subscription identifiers not supported"
        case 0xA2: return "\(hex) wildcard subscriptions not supported"
        default: return "\(hex) unknown"
        }
    }

    // MARK: Which codes each packet may carry (MQTT 5.0 section 2.4 and each packet's table).

    /// Whether a PUBACK or PUBREC may carry this code (MQTT 5.0 section 3.4.2.1).
    public var isValidForPuback: Bool { Self.pubackPubrec.contains(rawValue) }

    static let connack: ByteSet = [
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
        0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    ]
    static let pubackPubrec: ByteSet = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
    static let pubrelPubcomp: ByteSet = [0x00, 0x92]
    static let suback: ByteSet = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2]
    static let unsuback: ByteSet = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]
    static let disconnect: ByteSet = [
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
        0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ]
    static let auth: ByteSet = [0x00, 0x18, 0x19]
}

/// The CONNACK return codes of MQTT 3.1 and 3.1.1 (section 3.2.2.3).
public enum ConnectReturnCode: UInt8, Sendable {
    case accepted = 0
    case unacceptableProtocolVersion = 1
    case identifierRejected = 2
    case serverUnavailable = 3
    case badUserNameOrPassword = 4
    case notAuthorized = 5

    /// The nearest 3.x return code for a v5 reason code.
    public init(_ reason: ReasonCode) {
        switch reason.rawValue {
        case 0x00: self = .accepted
        case 0x84: self = .unacceptableProtocolVersion
        case 0x85: self = .identifierRejected
        case 0x86, 0x8C: self = .badUserNameOrPassword
        case 0x87, 0x8A, 0x9F: self = .notAuthorized  // a lock-out reads as "not authorised" (SPEC 2)
        default: self = .serverUnavailable
        }
    }

    /// The v5 reason code that corresponds to this return code.
    public var reasonCode: ReasonCode {
        switch self {
        case .accepted: return .success
        case .unacceptableProtocolVersion: return .unsupportedProtocolVersion
        case .identifierRejected: return .clientIdentifierNotValid
        case .serverUnavailable: return .serverUnavailable
        case .badUserNameOrPassword: return .badUserNameOrPassword
        case .notAuthorized: return .notAuthorized
        }
    }
}
