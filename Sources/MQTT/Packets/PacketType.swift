/// The control packet types of the fixed header (MQTT 5.0 section 2.1.2).
public enum PacketType: UInt8, Sendable, CaseIterable {
    case connect = 1
    case connack = 2
    case publish = 3
    case puback = 4
    case pubrec = 5
    case pubrel = 6
    case pubcomp = 7
    case subscribe = 8
    case suback = 9
    case unsubscribe = 10
    case unsuback = 11
    case pingreq = 12
    case pingresp = 13
    case disconnect = 14
    /// MQTT 5.0 only; reserved in 3.x.
    case auth = 15

    /// The fixed flags (low nibble) every packet but PUBLISH must carry.
    var requiredFlags: UInt8 {
        switch self {
        case .pubrel, .subscribe, .unsubscribe: return 0b0010
        default: return 0
        }
    }

    /// Which side may send this packet.
    var sentBy: Sender {
        switch self {
        case .connect, .subscribe, .unsubscribe, .pingreq: return .client
        case .connack, .suback, .unsuback, .pingresp: return .server
        default: return .either
        }
    }
}
