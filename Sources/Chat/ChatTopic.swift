import MQTT

/// A topic name of the chat namespaces (SPEC section 2's table), parsed.
enum ChatTopic: Equatable {
    case roomMessages(String)
    case roomTyping(String)
    case roomReceipts(String)
    case roomEvents(String)
    case roomHistory(String)
    /// `rooms/...` that is none of the above: nobody may use it.
    case roomOther
    case inbox(String)
    /// `users/<user>/...` other than the inbox: the broker writes, the user reads.
    case userOther(String)
    case presence(String)
    /// `presence/...` deeper than one level.
    case presenceOther
    /// Not a chat topic: plain MQTT.
    case plain

    init(_ topic: ByteString) {
        // Most traffic is plain MQTT: known without splitting or making strings.
        guard Self.mayBeChat(topic.bytes) else {
            self = .plain
            return
        }
        let levels = topic.bytes.split(separator: 0x2F, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        self.init(levels: levels)
    }

    init(levels: [String]) {
        guard let first = levels.first else {
            self = .plain
            return
        }
        switch first {
        case "rooms":
            guard levels.count == 3, RoomName.isValid(levels[1]) else {
                self = .roomOther
                return
            }
            let room = levels[1]
            switch levels[2] {
            case "messages": self = .roomMessages(room)
            case "typing": self = .roomTyping(room)
            case "receipts": self = .roomReceipts(room)
            case "events": self = .roomEvents(room)
            case "history": self = .roomHistory(room)
            default: self = .roomOther
            }
        case "users":
            guard levels.count >= 3, !levels[1].isEmpty else {
                self = levels.count >= 2 && !levels[1].isEmpty ? .userOther(levels[1]) : .roomOther
                return
            }
            self = levels.count == 3 && levels[2] == "inbox" ? .inbox(levels[1]) : .userOther(levels[1])
        case "presence":
            self = levels.count == 2 && !levels[1].isEmpty ? .presence(levels[1]) : .presenceOther
        default:
            self = .plain
        }
    }

    private static let prefixes: [[UInt8]] = [Array("rooms".utf8), Array("users".utf8), Array("presence".utf8)]

    /// Whether the first level is one of the chat namespaces.
    static func mayBeChat(_ bytes: ArraySlice<UInt8>) -> Bool {
        let end = bytes.firstIndex(of: 0x2F) ?? bytes.endIndex
        let first = bytes[bytes.startIndex..<end]
        return prefixes.contains { $0.count == first.count && first.elementsEqual($0) }
    }

    static func messages(_ room: String) -> String { "rooms/\(room)/messages" }
    static func typing(_ room: String) -> String { "rooms/\(room)/typing" }
    static func receipts(_ room: String) -> String { "rooms/\(room)/receipts" }
    static func events(_ room: String) -> String { "rooms/\(room)/events" }
    static func presence(_ user: String) -> String { "presence/\(user)" }
    static func unread(_ user: String) -> String { "users/\(user)/unread" }
    static func inbox(_ user: String) -> String { "users/\(user)/inbox" }
}

/// Room names: 1-64 characters `[a-z0-9_-]`, starting with a letter or digit.
enum RoomName {
    static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count), let first = bytes.first, isLetterOrDigit(first) else { return false }
        return bytes.allSatisfy { isLetterOrDigit($0) || $0 == 0x5F || $0 == 0x2D }
    }

    private static func isLetterOrDigit(_ b: UInt8) -> Bool { (0x61...0x7A).contains(b) || (0x30...0x39).contains(b) }
}
