import Broker
import MQTT

// Who may publish and subscribe where (SPEC section 2's table). Exact chat topics
// are decided at PUBLISH and SUBSCRIBE time; a wildcard filter that can reach
// chat topics is granted but flagged, and each delivery through it is checked,
// so `rooms/+/messages` or `#` never delivers a room its user is not in.
extension ChatPlugin {
    public func authorizePublish(_ client: ClientInfo, topic: ByteString, qos: QoS, retain: Bool) -> ReasonCode {
        let user = client.username
        switch ChatTopic(topic) {
        case .roomMessages(let room), .roomTyping(let room), .roomReceipts(let room), .roomHistory(let room):
            return directory.isMember(user, of: room) && !retain ? .success : .notAuthorized
        case .inbox:
            return user != nil && !client.isAnonymous ? .success : .notAuthorized
        case .roomEvents, .roomOther, .userOther, .presence, .presenceOther:
            return .notAuthorized
        case .plain:
            return .success
        }
    }

    public func authorizeSubscribe(_ client: ClientInfo, filter: TopicFilter, requested: QoS) -> ReasonCode {
        let levels = Self.levels(filter.filter)
        let granted = ReasonCode(requested.rawValue)
        guard let first = levels.first, first != "+", first != "#" else { return granted }  // checked per delivery
        let user = client.username
        switch first {
        case "rooms":
            guard levels.count >= 2 else { return .notAuthorized }
            let room = levels[1]
            if room == "+" || room == "#" { return user == nil ? .notAuthorized : granted }
            guard directory.isMember(user, of: room) else { return .notAuthorized }
            if levels.count == 3 && levels[2] == "history" { return .notAuthorized }  // requests, not for reading
            return granted
        case "users":
            guard levels.count >= 2, user != nil else { return .notAuthorized }
            let owner = levels[1]
            if owner == "+" || owner == "#" { return granted }
            return Credentials.canonicalName(owner) == Credentials.canonicalName(user!) ? granted : .notAuthorized
        case "presence":
            guard levels.count >= 2, user != nil else { return .notAuthorized }
            let other = levels[1]
            if other == "+" || other == "#" { return granted }
            return directory.shareRoom(user, other) ? granted : .notAuthorized
        default:
            return granted
        }
    }

    /// Flags the filters that can reach a chat topic its user may not read.
    public func checksDeliveries(of filter: TopicFilter, for client: ClientInfo) -> Bool {
        let levels = Self.levels(filter.filter)
        guard let first = levels.first else { return false }
        switch first {
        case "+", "#": return true
        case "rooms": return levels.count < 3 || levels[1] == "+" || levels[2] == "+" || levels[2] == "#"
        case "users", "presence": return levels.count < 2 || levels[1] == "+" || levels[1] == "#"
        default: return false
        }
    }

    public func authorizeDelivery(topic: ByteString, username: String?, clientID: String) -> Bool {
        switch ChatTopic(topic) {
        case .roomMessages(let room), .roomTyping(let room), .roomReceipts(let room), .roomEvents(let room):
            return directory.isMember(username, of: room)
        case .roomHistory, .roomOther, .presenceOther:
            return false
        case .inbox(let owner), .userOther(let owner):
            guard let username else { return false }
            return Credentials.canonicalName(owner) == Credentials.canonicalName(username)
        case .presence(let other):
            return directory.shareRoom(username, other)
        case .plain:
            return true
        }
    }

    static func levels(_ filter: ByteString) -> [String] {
        filter.bytes.split(separator: 0x2F, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension ClientInfo {
    /// Connected without a user name.
    var isAnonymous: Bool { username == nil }
}
