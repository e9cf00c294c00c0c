/// Topic names and topic filters (MQTT 5.0 section 4.7, 3.1.1 section 4.7) and
/// shared subscriptions (5.0 section 4.8.2).
public enum TopicRules {
    /// Checks a topic name (as in PUBLISH): at least one byte, valid UTF-8, no wildcards.
    public static func validateName(_ topic: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError) {
        try validateName(topic, version: version, what: "topic name")
    }

    static func validateName(_ topic: ArraySlice<UInt8>, version: ProtocolVersion, what: StaticString)
        throws(CodecError)
    {
        if topic.isEmpty {
            throw CodecError(.topicNameInvalid, "\(what) is empty", rule: "MQTT-4.7.3-1")
        }
        var wildcards = false
        switch UTF8Validation.check(topic, wildcards: &wildcards) {
        case .valid: break
        case .illFormed:
            throw CodecError.malformed(
                "\(what) is not well-formed UTF-8", rule: version == .v5 ? "MQTT-1.5.4-1" : "MQTT-1.5.3-1")
        case .nullCharacter:
            throw CodecError.malformed("\(what) contains U+0000", rule: "MQTT-4.7.3-2")
        }
        if wildcards {
            throw CodecError(.topicNameInvalid, "\(what) contains a wildcard character", rule: "MQTT-3.3.2-2")
        }
    }

    /// Checks a topic filter's UTF-8 and wildcard placement and splits off a
    /// `$share/<group>/` prefix.
    public static func parseFilter(_ filter: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError)
        -> TopicFilter
    {
        if filter.isEmpty {
            throw CodecError(.malformedPacket, "topic filter is empty", rule: "MQTT-4.7.3-1")
        }
        switch UTF8Validation.check(filter) {
        case .valid: break
        case .illFormed:
            throw CodecError.malformed(
                "topic filter is not well-formed UTF-8", rule: version == .v5 ? "MQTT-1.5.4-1" : "MQTT-1.5.3-1")
        case .nullCharacter:
            throw CodecError.malformed("topic filter contains U+0000", rule: "MQTT-4.7.3-2")
        }
        var group: ArraySlice<UInt8>? = nil
        var rest = filter
        // Shared subscriptions are a 5.0 feature; for older clients `$share/...` is an
        // ordinary filter that no PUBLISH can match ($-topics are reserved).
        if version == .v5, ByteString(filter).hasPrefix("$share/") {
            let afterPrefix = filter.index(filter.startIndex, offsetBy: 7)
            guard let slash = filter[afterPrefix...].firstIndex(of: 0x2F) else {
                throw CodecError(
                    .malformedPacket, "shared subscription has no '/' and topic filter after its share name",
                    rule: "MQTT-4.8.2-2")
            }
            let name = filter[afterPrefix..<slash]
            if name.isEmpty {
                throw CodecError(.malformedPacket, "share name is empty", rule: "MQTT-4.8.2-1")
            }
            if name.contains(0x2B) || name.contains(0x23) {
                throw CodecError(
                    .malformedPacket, "share name must not contain / + or #", rule: "MQTT-4.8.2-2")
            }
            rest = filter[(slash + 1)...]
            if rest.isEmpty {
                throw CodecError(
                    .malformedPacket, "shared subscription has no topic filter after its share name",
                    rule: "MQTT-4.8.2-2")
            }
            group = name
        }
        let hasWildcards = try checkWildcards(rest, version: version)
        return TopicFilter(filter: ByteString(rest), shareGroup: group.map(ByteString.init), hasWildcards: hasWildcards)
    }

    /// Wildcard placement: `#` alone and last, `+` a whole level. Returns whether any appear.
    static func checkWildcards(_ filter: ArraySlice<UInt8>, version: ProtocolVersion) throws(CodecError) -> Bool {
        var any = false
        var i = filter.startIndex
        let end = filter.endIndex
        while i < end {
            let b = filter[i]
            if b == 0x23 {  // '#'
                let startsLevel = i == filter.startIndex || filter[i - 1] == 0x2F
                if !startsLevel || i + 1 != end {
                    throw CodecError(
                        .malformedPacket, "'#' must be the whole last level of a topic filter",
                        rule: version == .v5 ? "MQTT-4.7.1-1" : "MQTT-4.7.1-2")
                }
                any = true
            } else if b == 0x2B {  // '+'
                let startsLevel = i == filter.startIndex || filter[i - 1] == 0x2F
                let endsLevel = i + 1 == end || filter[i + 1] == 0x2F
                if !startsLevel || !endsLevel {
                    throw CodecError(
                        .malformedPacket, "'+' must be a whole level of a topic filter",
                        rule: version == .v5 ? "MQTT-4.7.1-2" : "MQTT-4.7.1-3")
                }
                any = true
            }
            i += 1
        }
        return any
    }

    /// True when a topic name matches a (non-shared) topic filter. `$`-topics are
    /// not matched by a wildcard in the first level.
    public static func matches(name: ArraySlice<UInt8>, filter: ArraySlice<UInt8>) -> Bool {
        var n = name.startIndex
        var f = filter.startIndex
        if n < name.endIndex && name[n] == 0x24 && f < filter.endIndex && (filter[f] == 0x2B || filter[f] == 0x23) {
            return false
        }
        while f < filter.endIndex {
            let fb = filter[f]
            if fb == 0x23 { return true }  // matches the parent level and everything below
            if fb == 0x2B {
                while n < name.endIndex && name[n] != 0x2F { n += 1 }
                f += 1
            } else {
                if n >= name.endIndex || name[n] != fb {
                    // "a/#" matches "a": the filter has "/#" left where the name ended.
                    if n == name.endIndex && fb == 0x2F && f + 1 < filter.endIndex && filter[f + 1] == 0x23
                        && f + 2 == filter.endIndex
                    {
                        return true
                    }
                    return false
                }
                n += 1
                f += 1
            }
            if n == name.endIndex && f < filter.endIndex && filter[f] == 0x2F && f + 2 == filter.endIndex
                && filter[f + 1] == 0x23
            {
                return true
            }
        }
        return n == name.endIndex
    }
}

/// A validated topic filter, with its share group when it was `$share/<group>/<filter>`.
public struct TopicFilter: Hashable, Sendable {
    /// The filter to match against topic names (without any `$share/<group>/`).
    public var filter: ByteString
    /// The share group of a shared subscription.
    public var shareGroup: ByteString?
    /// Whether the filter holds `+` or `#`.
    public var hasWildcards: Bool
}
