/// The protocol level a client announces in CONNECT.
public enum ProtocolVersion: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// MQTT 3.1, protocol name `MQIsdp`.
    case v3_1 = 3
    /// MQTT 3.1.1, protocol name `MQTT`.
    case v3_1_1 = 4
    /// MQTT 5.0, protocol name `MQTT`.
    case v5 = 5

    /// The protocol name that CONNECT carries for this level.
    public var protocolName: String { self == .v3_1 ? "MQIsdp" : "MQTT" }

    public var description: String {
        switch self {
        case .v3_1: return "3.1"
        case .v3_1_1: return "3.1.1"
        case .v5: return "5.0"
        }
    }
}

/// Which side sent the bytes being decoded. Some packets and properties may only
/// travel one way; the codec rejects the others when it knows the direction.
public enum Sender: Sendable {
    case client
    case server
    /// Direction unknown: accept what either side may send.
    case either
}
