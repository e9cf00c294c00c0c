/// The e-mail of one digest (SPEC section 5): the user's pending notifications,
/// grouped by room in the order of each room's first one, under a Message-ID
/// made from the digest's first row, so every retry is the same mail.
enum DigestMail {
    static func message(to address: String, entries: [OutboxEntry], from sender: String, webURL: String, now: Int64)
        throws -> MailMessage
    {
        let sorted = entries.sorted { $0.id < $1.id }
        var order: [String] = []
        var byRoom: [String: [(sender: String, text: String)]] = [:]
        for e in sorted {
            if byRoom[e.content.room] == nil { order.append(e.content.room) }
            byRoom[e.content.room, default: []].append((e.content.from, e.content.body))
        }
        let rooms = order.map { DigestRoom(title: $0, link: link(webURL, room: $0), messages: byRoom[$0] ?? []) }
        let key = sorted.first?.digest ?? sorted.first?.id ?? 0
        return try MailMessage(from: MailAddress(sender, displayName: "Parley"), to: [MailAddress(address)],
                               subject: NotificationDigest.subject(rooms), secondsSince1970: now,
                               messageID: messageID(digest: key, sender: sender), body: NotificationDigest.body(rooms))
    }

    /// `<parley-notify-42@example.com>`, the domain taken from the sender address.
    static func messageID(digest: Int64, sender: String) -> String {
        let domain = sender.split(separator: "@").last.map(String.init) ?? "localhost"
        return "<parley-notify-\(digest)@\(domain)>"
    }

    private static func link(_ base: String, room: String) -> String {
        base.isEmpty ? "Open Parley to read them." : base + (base.hasSuffix("/") ? "" : "/") + "#" + room
    }
}
