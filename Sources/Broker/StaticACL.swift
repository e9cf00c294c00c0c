import MQTT
import Synchronization

/// One access rule: `allow|deny publish|subscribe|readwrite USER|* FILTER`.
/// `%u` and `%c` in the filter stand for the user name and the client id.
public struct ACLRule: Sendable, Equatable {
    public enum Access: String, Sendable { case publish, subscribe, readwrite }
    public let allow: Bool
    public let access: Access
    /// nil matches everyone (`*`); `anonymous` matches clients without a user name.
    public let user: String?
    public let filter: String

    public init(allow: Bool, access: Access, user: String?, filter: String) {
        self.allow = allow
        self.access = access
        self.user = user
        self.filter = filter
    }

    public init(parsing text: String) throws(ACLRuleError) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard parts.count == 4 else {
            throw ACLRuleError("acl rule must be 'allow|deny publish|subscribe|readwrite USER|* FILTER'")
        }
        guard parts[0] == "allow" || parts[0] == "deny" else { throw ACLRuleError("acl rule must start with allow or deny") }
        guard let access = Access(rawValue: parts[1]) else {
            throw ACLRuleError("acl access must be publish, subscribe or readwrite, not '\(parts[1])'")
        }
        let probe = parts[3].replacingOccurrences(of: "%u", with: "u").replacingOccurrences(of: "%c", with: "c")
        do {
            _ = try TopicRules.parseFilter(Array(probe.utf8)[...], version: .v5)
        } catch {
            throw ACLRuleError("acl filter '\(parts[3])' is not a valid topic filter: \(error.message)")
        }
        self.init(allow: parts[0] == "allow", access: access, user: parts[2] == "*" ? nil : parts[2], filter: parts[3])
    }

    func applies(to client: ClientInfo) -> Bool {
        guard let user else { return true }
        if user == "anonymous" { return client.username == nil }
        return client.username == user
    }

    /// The filter with `%u` and `%c` replaced, or nil when the rule cannot apply:
    /// a user name or client id holding `/`, `+` or `#` would otherwise widen the
    /// filter into other clients' topics (an id of `#` matching everything).
    func expandedFilter(for client: ClientInfo) -> ByteString? {
        if !filter.contains("%") { return ByteString(filter) }
        var text = filter
        if text.contains("%u") {
            guard let user = client.username, Self.isPlainLevel(user) else { return nil }
            text = text.replacingOccurrences(of: "%u", with: user)
        }
        if text.contains("%c") {
            guard Self.isPlainLevel(client.clientID) else { return nil }
            text = text.replacingOccurrences(of: "%c", with: client.clientID)
        }
        return ByteString(text)
    }

    static func isPlainLevel(_ value: String) -> Bool {
        !value.isEmpty && !value.utf8.contains { $0 == 0x2F || $0 == 0x2B || $0 == 0x23 }
    }
}

public struct ACLRuleError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ text: String) { description = text }
}

/// The built-in plugin: access rules from the configuration file, first match
/// wins, `acl_default` when none matches. SIGHUP replaces the rules in place.
public final class StaticACLPlugin: BrokerPlugin, @unchecked Sendable {
    public let name = "static-acl"
    public let hooks: PluginHooks = [.authorizePublish, .authorizeSubscribe]
    private let state: Mutex<(rules: [ACLRule], defaultAllow: Bool)>
    /// True when there are no rules and everything is allowed: the checks return at once.
    private let allowsEverything: Atomic<Bool>

    public init(rules: [ACLRule], defaultAllow: Bool) {
        state = Mutex((rules, defaultAllow))
        allowsEverything = Atomic(rules.isEmpty && defaultAllow)
    }

    public func replace(rules: [ACLRule], defaultAllow: Bool) {
        state.withLock { $0 = (rules, defaultAllow) }
        allowsEverything.store(rules.isEmpty && defaultAllow, ordering: .releasing)
    }

    public var allowsEveryPublish: Bool { allowsEverything.load(ordering: .acquiring) }

    public func authorizePublish(_ client: ClientInfo, topic: ByteString, qos: QoS, retain: Bool) -> ReasonCode {
        if allowsEverything.load(ordering: .acquiring) { return .success }
        let (rules, defaultAllow) = state.withLock { $0 }
        for rule in rules where rule.access != .subscribe && rule.applies(to: client) {
            if let ruleFilter = rule.expandedFilter(for: client), TopicRules.matches(name: topic.bytes, filter: ruleFilter.bytes) {
                return rule.allow ? .success : .notAuthorized
            }
        }
        return defaultAllow ? .success : .notAuthorized
    }

    public func authorizeSubscribe(_ client: ClientInfo, filter: TopicFilter, requested: QoS) -> ReasonCode {
        if allowsEverything.load(ordering: .acquiring) { return ReasonCode(requested.rawValue) }
        let (rules, defaultAllow) = state.withLock { $0 }
        for rule in rules where rule.access != .publish && rule.applies(to: client) {
            if let ruleFilter = rule.expandedFilter(for: client), Self.covers(ruleFilter.bytes, filter.filter.bytes) {
                return rule.allow ? ReasonCode(requested.rawValue) : .notAuthorized
            }
        }
        return defaultAllow ? ReasonCode(requested.rawValue) : .notAuthorized
    }

    /// True when every topic `inner` can match is also matched by `outer`.
    static func covers(_ outer: ArraySlice<UInt8>, _ inner: ArraySlice<UInt8>) -> Bool {
        let o = TopicIndex.levels(ByteString(outer)).map { $0 }
        let i = TopicIndex.levels(ByteString(inner)).map { $0 }
        var k = 0
        while k < o.count {
            let level = o[k]
            if level.elementsEqual([0x23]) { return true }
            guard k < i.count else { return false }
            if level.elementsEqual([0x2B]) {
                if i[k].elementsEqual([0x23]) { return false }
            } else if !level.elementsEqual(i[k]) {
                return false
            }
            k += 1
        }
        return k == i.count
    }
}
