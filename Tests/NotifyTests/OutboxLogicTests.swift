import Broker
import MQTT
import Chat
import Testing
@testable import Notify

@Suite struct BackoffTests {
    @Test func doublesFromTheBaseUpToAnHour() {
        #expect(Backoff.seconds(attempt: 1, base: 10, retryAfter: nil, random: 1) == 10)
        #expect(Backoff.seconds(attempt: 2, base: 10, retryAfter: nil, random: 1) == 20)
        #expect(Backoff.seconds(attempt: 5, base: 10, retryAfter: nil, random: 1) == 160)
        #expect(Backoff.seconds(attempt: 30, base: 10, retryAfter: nil, random: 1) == 3600)
    }

    @Test func jitterTakesUpToHalfAway() {
        #expect(Backoff.seconds(attempt: 3, base: 10, retryAfter: nil, random: 0.5) == 20)
        #expect(Backoff.seconds(attempt: 3, base: 10, retryAfter: nil, random: 0.75) == 30)
        // Out-of-range factors are clamped; never below one second.
        #expect(Backoff.seconds(attempt: 3, base: 10, retryAfter: nil, random: 0) == 20)
        #expect(Backoff.seconds(attempt: 1, base: 1, retryAfter: nil, random: 0.5) == 1)
    }

    @Test func retryAfterIsAFloorUnderTheCap() {
        #expect(Backoff.seconds(attempt: 1, base: 10, retryAfter: 120, random: 1) == 120)
        #expect(Backoff.seconds(attempt: 1, base: 10, retryAfter: 5, random: 1) == 10)
        #expect(Backoff.seconds(attempt: 1, base: 10, retryAfter: 999_999, random: 1) == 3600)
    }
}

@Suite struct MentionTests {
    @Test func wholeNamesCaseInsensitive() {
        #expect(ChatPlugin.mentions("hi @Bob, lunch?", user: "bob"))
        #expect(ChatPlugin.mentions("@bob", user: "bob"))
        #expect(!ChatPlugin.mentions("hi @bobby", user: "bob"))
        #expect(!ChatPlugin.mentions("hi bob", user: "bob"))
        #expect(ChatPlugin.mentions("(@bob.)", user: "bob") == false)  // '.' may be part of a name
        #expect(ChatPlugin.mentions("(@bob)", user: "bob"))
        #expect(ChatPlugin.mentions("naïve @bob", user: "bob"))
    }

    @Test func preferencesFromStoredJSON() {
        #expect(NotificationPreferences(stored: nil) == .standard)
        let p = NotificationPreferences(stored: #"{"email": "all", "push": "off", "digest_minutes": 0}"#)
        #expect(p == NotificationPreferences(email: .all, push: .off, digestMinutes: 0))
        #expect(p.wantsEmail(mentioned: false) && !p.wantsPush(mentioned: true))
        #expect(NotificationPreferences.standard.wantsEmail(mentioned: true))
        #expect(!NotificationPreferences.standard.wantsEmail(mentioned: false))
        #expect(NotificationPreferences(stored: #"{"email": "loud"}"#) == .standard)
    }
}

@Suite struct PostNoticeTests {
    let post = PostedMessage(room: "general", id: 7, from: "Alice", ts: "2026-12-02T10:00:00.000Z", body: "hi @carol")

    func recipient(_ key: String, email: String? = "x@example.com", _ prefs: NotificationPreferences = .standard)
        -> NotificationRecipient
    {
        NotificationRecipient(key: key, name: key, email: email, preferences: prefs)
    }

    @Test func senderNeverOnlineLaterOfflineAtOnce() {
        let notice = PostNotice(post: post, now: 1000, graceMilliseconds: 30_000, emailConfigured: true)
        let all = NotificationPreferences(email: .all, push: .all, digestMinutes: 0)
        let rows = notice.rows(members: ["alice", "bob", "carol"], recipient: { recipient($0, all) },
                               hasDevices: { _ in false }, isOnline: { $0 == "bob" })
        #expect(rows.map(\.user) == ["bob", "carol"])
        #expect(rows.map(\.dueAt) == [31_000, 1000])
        #expect(rows.map(\.mention) == [false, true])
    }

    @Test func preferencesDevicesAndMailSetUpDecide() {
        let notice = PostNotice(post: post, now: 0, graceMilliseconds: 0, emailConfigured: true)
        // Standard: e-mail for mentions only, push for all (but bob has no device).
        let rows = notice.rows(members: ["bob", "carol"], recipient: { recipient($0) }, hasDevices: { _ in false },
                               isOnline: { _ in false })
        #expect(rows.map(\.user) == ["carol"])
        let withDevice = notice.rows(members: ["bob"], recipient: { recipient($0) }, hasDevices: { _ in true },
                                     isOnline: { _ in false })
        #expect(withDevice.map(\.user) == ["bob"])
        let noMail = PostNotice(post: post, now: 0, graceMilliseconds: 0, emailConfigured: false)
        #expect(noMail.rows(members: ["carol"], recipient: { recipient($0) }, hasDevices: { _ in false },
                            isOnline: { _ in false }).isEmpty)
        #expect(notice.rows(members: ["carol"], recipient: { recipient($0, email: nil) }, hasDevices: { _ in false },
                            isOnline: { _ in false }).isEmpty)
        #expect(notice.rows(members: ["ghost"], recipient: { _ in nil }, hasDevices: { _ in true },
                            isOnline: { _ in false }).isEmpty)
    }

    @Test func envelopesAndTopics() {
        let envelope = Array(#"{"id":7,"room":"general","from":"Alice","ts":"2026-12-02T10:00:00.000Z","body":"hi @carol"}"#.utf8)
        #expect(PostedMessage(envelope: envelope) == post)
        #expect(PostedMessage(envelope: Array("hi".utf8)) == nil)
        #expect(PostedMessage(envelope: Array(#"{"id":"7"}"#.utf8)) == nil)
        #expect(WatchedTopic(Array("rooms/general/messages".utf8)) == .messages("general"))
        #expect(WatchedTopic(Array("rooms/general/receipts".utf8)) == .receipts("general"))
        #expect(WatchedTopic(Array("rooms/general/typing".utf8)) == nil)
        #expect(WatchedTopic(Array("rooms//messages".utf8)) == nil)
        #expect(WatchedTopic(Array("rooms/a/b/messages".utf8)) == nil)
        let receipt = ReceiptNotice(room: "general", envelope: Array(#"{"from":"Bob","up_to":9,"ts":"x"}"#.utf8))
        #expect(receipt?.user == "bob" && receipt?.upTo == 9)
    }
}

@Suite struct UnseenWatchTests {
    func message() -> Message {
        Message(topic: ByteString("rooms/general/messages"), payload: Array("x".utf8), qos: .atLeastOnce, retain: false,
                origin: nil, receivedAt: 0)
    }

    @Test func aDeliveryWithinTheGraceIsSeenOnce() {
        let watch = UnseenWatch()
        let m = message(), other = message()
        watch.watch(m, room: "general", id: 3, users: ["bob", "carol"], due: 100)
        watch.delivered(other, to: "bob")
        watch.delivered(m, to: "bob")
        watch.delivered(m, to: "bob")  // a second session of bob
        watch.delivered(m, to: "dave")  // not watched for dave
        #expect(watch.harvest(now: 50) == [SeenPost(user: "bob", room: "general", id: 3)])
        #expect(watch.harvest(now: 60).isEmpty)
        #expect(watch.watchedPosts == 1)
        // After the grace a delivery no longer counts.
        #expect(watch.harvest(now: 100).isEmpty)
        watch.delivered(m, to: "carol")
        #expect(watch.harvest(now: 200).isEmpty)
        #expect(watch.watchedPosts == 0)
    }

    @Test func onlineCountsPerUser() {
        let watch = UnseenWatch()
        watch.sessionChanged("bob", by: 1)
        watch.sessionChanged("bob", by: 1)
        watch.sessionChanged("bob", by: -1)
        #expect(watch.isOnline("bob"))
        watch.sessionChanged("bob", by: -1)
        #expect(!watch.isOnline("bob"))
        watch.sessionChanged("bob", by: -1)  // never negative
        watch.sessionChanged("bob", by: 1)
        #expect(watch.isOnline("bob"))
    }
}

@Suite struct DeliveryVerdictTests {
    func response(_ status: Int, _ headers: [HTTPHeaderField] = []) -> HTTPClientResponse {
        HTTPClientResponse(minorVersion: 1, status: status, reason: "", headers: headers, body: [], closeDelimited: false)
    }

    @Test func httpStatuses() {
        #expect(DeliveryVerdict.http(response(200), now: 0) == .delivered)
        #expect(DeliveryVerdict.http(response(204), now: 0) == .delivered)
        #expect({ if case .gone = DeliveryVerdict.http(response(410), now: 0) { true } else { false } }())
        #expect({ if case .gone = DeliveryVerdict.http(response(404), now: 0) { true } else { false } }())
        #expect(DeliveryVerdict.http(response(503, [HTTPHeaderField("retry-after", "7")]), now: 0) == .retry("HTTP 503", after: 7))
        #expect(DeliveryVerdict.http(response(429), now: 0) == .retry("HTTP 429", after: nil))
        #expect({ if case .dead = DeliveryVerdict.http(response(400), now: 0) { true } else { false } }())
        #expect({ if case .dead = DeliveryVerdict.http(response(302), now: 0) { true } else { false } }())
    }

    @Test func smtpOutcomes() {
        let ok = SMTPReply(code: 250, lines: ["ok"])
        #expect(DeliveryVerdict.smtp(.delivered(ok, refused: [])) == .delivered)
        #expect(DeliveryVerdict.smtp(.temporaryFailure(.rcptTo, SMTPReply(code: 451, lines: ["later"])))
            == .retry("SMTP rcptTo: 451 later", after: nil))
        #expect(DeliveryVerdict.smtp(.permanentFailure(.rcptTo, SMTPReply(code: 550, lines: ["no such user"])))
            == .dead("SMTP rcptTo: 550 no such user"))
    }
}

@Suite struct DigestMailTests {
    func entry(_ id: Int64, room: String, from: String, body: String) -> OutboxEntry {
        OutboxEntry(id: id, user: "bob", channel: .email, destination: "bob@example.com",
                    content: NotificationContent(post: PostedMessage(room: room, id: id, from: from, ts: "t", body: body), mention: false),
                    attempts: 0, createdAt: 0, digest: 4)
    }

    @Test func groupedByRoomUnderAStableMessageID() throws {
        let entries = [entry(6, room: "random", from: "carol", body: "b"), entry(4, room: "general", from: "alice", body: "a"),
                       entry(5, room: "general", from: "alice", body: "ü")]
        let mail = try DigestMail.message(to: "bob@example.com", entries: entries, from: "parley@example.org",
                                          webURL: "https://chat.example.org", now: 1_764_669_600)
        #expect(mail.messageID == "<parley-notify-4@example.org>")
        #expect(mail.subject == "3 new messages in 2 rooms")
        #expect(mail.body.hasPrefix("general\n  alice: a\n  alice: ü\n  https://chat.example.org/#general\n\nrandom\n"))
        let again = try DigestMail.message(to: "bob@example.com", entries: entries.reversed(), from: "parley@example.org",
                                           webURL: "https://chat.example.org", now: 1_764_669_700)
        #expect(again.messageID == mail.messageID && again.body == mail.body)
    }

    @Test func notificationContentRoundTrips() {
        let c = NotificationContent(post: PostedMessage(room: "general", id: 9, from: "alice", ts: "t", body: "line\n\"quoted\" ☃"),
                                    mention: true)
        #expect(NotificationContent(json: c.json) == c)
        #expect(NotificationContent(json: "{}") == nil)
    }
}
