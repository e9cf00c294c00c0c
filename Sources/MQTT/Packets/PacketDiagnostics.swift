extension Properties {
    /// Without the properties a sender may leave out to fit the receiver's Maximum
    /// Packet Size: the reason string and user properties [MQTT-3.1.2-25, MQTT-3.1.2-29].
    public var withoutDiagnostics: Properties {
        var p = self
        p.reasonString = nil
        p.userProperties = []
        return p
    }
}

extension Packet {
    /// The same packet without reason strings and user properties (a smaller form
    /// that still means the same); PUBLISH, CONNECT, SUBSCRIBE and UNSUBSCRIBE are
    /// returned as they are, their user properties being part of what they carry.
    public var withoutDiagnostics: Packet {
        switch self {
        case .connack(var p): p.properties = p.properties.withoutDiagnostics; return .connack(p)
        case .puback(var p): p.properties = p.properties.withoutDiagnostics; return .puback(p)
        case .pubrec(var p): p.properties = p.properties.withoutDiagnostics; return .pubrec(p)
        case .pubrel(var p): p.properties = p.properties.withoutDiagnostics; return .pubrel(p)
        case .pubcomp(var p): p.properties = p.properties.withoutDiagnostics; return .pubcomp(p)
        case .suback(var p): p.properties = p.properties.withoutDiagnostics; return .suback(p)
        case .unsuback(var p): p.properties = p.properties.withoutDiagnostics; return .unsuback(p)
        case .disconnect(var p): p.properties = p.properties.withoutDiagnostics; return .disconnect(p)
        case .auth(var p): p.properties = p.properties.withoutDiagnostics; return .auth(p)
        case .connect, .publish, .subscribe, .unsubscribe, .pingreq, .pingresp: return self
        }
    }
}
