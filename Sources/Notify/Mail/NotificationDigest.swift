/// One room's part of a digest: its title, the messages the member missed, and
/// where to read them.
public struct DigestRoom: Equatable, Sendable {
    public var title: String
    public var link: String
    public var messages: [(sender: String, text: String)]

    public init(title: String, link: String, messages: [(sender: String, text: String)]) {
        self.title = title
        self.link = link
        self.messages = messages
    }

    public static func == (a: DigestRoom, b: DigestRoom) -> Bool {
        a.title == b.title && a.link == b.link && a.messages.map(\.sender) == b.messages.map(\.sender)
            && a.messages.map(\.text) == b.messages.map(\.text)
    }
}

/// The text of a digest e-mail (SPEC section 5): the notifications of one user,
/// grouped by room, in the order given.
public enum NotificationDigest {
    /// `3 new messages in general` or `5 new messages in 2 rooms`.
    public static func subject(_ rooms: [DigestRoom]) -> String {
        let count = rooms.reduce(0) { $0 + $1.messages.count }
        let what = count == 1 ? "1 new message" : "\(count) new messages"
        return rooms.count == 1 ? "\(what) in \(rooms[0].title)" : "\(what) in \(rooms.count) rooms"
    }

    /// Per room: the title, each message as `sender: text` (its further lines
    /// indented), then the link; rooms apart by an empty line.
    public static func body(_ rooms: [DigestRoom]) -> String {
        rooms.map { room in
            var lines = [room.title]
            for message in room.messages {
                let textLines = message.text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
                lines.append("  \(message.sender): \(textLines.first ?? "")")
                lines += textLines.dropFirst().map { "    \($0)" }
            }
            lines.append("  \(room.link)")
            return lines.joined(separator: "\n")
        }.joined(separator: "\n\n") + "\n"
    }
}
