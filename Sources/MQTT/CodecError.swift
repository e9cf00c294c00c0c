/// A packet the codec refused. It carries the reason code that the receiver must
/// report (v5 DISCONNECT or CONNACK) and, where one applies, the normative rule of
/// the OASIS specification that the bytes broke.
public struct CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The v5 reason code to send before closing (0x81, 0x82, 0x95, 0x99, ...).
    public let reason: ReasonCode
    /// The rule's identifier in the OASIS text, e.g. `MQTT-3.1.2-3`, when there is one.
    public let rule: String?
    /// What was wrong, for logs.
    public let message: String

    public init(_ reason: ReasonCode, _ message: String, rule: String? = nil) {
        self.reason = reason
        self.message = message
        self.rule = rule
    }

    static func malformed(_ message: String, rule: String? = nil) -> CodecError {
        CodecError(.malformedPacket, message, rule: rule)
    }

    static func protocolError(_ message: String, rule: String? = nil) -> CodecError {
        CodecError(.protocolError, message, rule: rule)
    }

    public var description: String {
        var text = "\(reason): \(message)"
        if let rule { text += " [\(rule)]" }
        return text
    }
}
