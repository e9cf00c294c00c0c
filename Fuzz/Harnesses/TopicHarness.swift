// Harness (c): topic names, topic filters and UTF-8 validation, each checked
// against a plain reference written from the specification (MQTT 5.0 sections
// 1.5.4, 4.7 and 4.8.2):
//   - UTF8Validation agrees with the standard library's UTF-8 validation plus "no U+0000";
//   - TopicRules.validateName accepts exactly the non-empty valid strings without + or #;
//   - TopicRules.parseFilter accepts exactly the well-placed wildcards (and, in 5.0,
//     well-formed $share/<group>/<filter>), and re-parsing what it returns is stable;
//   - TopicRules.matches never crashes on any bytes, and on a valid name and a valid
//     filter agrees with level-by-level matching.
//
// Input layout:
//   byte 0  protocol level (byte % 3: 3.1, 3.1.1, 5.0)
//   byte 1  where the rest splits into a name and a filter (rest.count * byte / 256)
//   rest    name bytes, then filter bytes
import MQTT

fileprivate let versions: [ProtocolVersion] = [.v3_1, .v3_1_1, .v5]
fileprivate let slash: UInt8 = 0x2F
fileprivate let plus: UInt8 = 0x2B
fileprivate let hash: UInt8 = 0x23

/// The harness: one input, returns 0; a finding traps.
public func fuzzTopic(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size >= 2 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let version = versions[Int(input[0]) % 3]
    let rest = input[2...]
    let split = rest.startIndex + rest.count * Int(input[1]) / 256
    let name = rest[..<split]
    let filter = rest[split...]

    checkUTF8(rest)
    checkUTF8(name)
    checkUTF8(filter)

    let nameValid = checkName(name, version: version)
    let parsed = checkFilter(filter, version: version)
    // The filter text too as a name, and the name text as a filter.
    _ = checkName(filter, version: version)
    _ = checkFilter(name, version: version)

    // matches() must not crash on anything, whatever it answers.
    _ = TopicRules.matches(name: name, filter: filter)
    _ = TopicRules.matches(name: filter, filter: name)
    _ = TopicRules.matches(name: rest, filter: rest)

    if nameValid {
        // A topic name is a filter that matches itself (and nothing shorter).
        guard TopicRules.matches(name: name, filter: name) else {
            fatalError("valid topic name \(show(name)) does not match itself as a filter")
        }
        if let parsed {
            let f = parsed.filter.bytes
            let got = TopicRules.matches(name: name, filter: f)
            let want = referenceMatches(name: name, filter: f)
            guard got == want else {
                fatalError("matches(name: \(show(name)), filter: \(show(f))) = \(got); the specification says \(want)")
            }
        }
    }
    return 0
}

// MARK: - UTF-8

fileprivate func checkUTF8(_ bytes: ArraySlice<UInt8>) {
    let outcome = UTF8Validation.check(bytes)
    let wellFormed = String(validating: bytes, as: UTF8.self) != nil
    let hasNull = bytes.contains(0)
    switch outcome {
    case .valid:
        guard wellFormed && !hasNull else {
            fatalError("UTF8Validation accepts \(show(bytes)) (well-formed: \(wellFormed), NUL: \(hasNull))")
        }
    case .nullCharacter:
        guard hasNull else { fatalError("UTF8Validation reports U+0000 in \(show(bytes)), which has none") }
    case .illFormed:
        guard !wellFormed else { fatalError("UTF8Validation rejects well-formed \(show(bytes))") }
    }
    guard UTF8Validation.isValid(bytes) == (outcome == .valid), UTF8Validation.isValid(Array(bytes)) == (outcome == .valid)
    else {
        fatalError("UTF8Validation.isValid disagrees with check() on \(show(bytes))")
    }
}

fileprivate func referenceValidText(_ bytes: ArraySlice<UInt8>) -> Bool {
    String(validating: bytes, as: UTF8.self) != nil && !bytes.contains(0)
}

// MARK: - Names

/// Checks validateName against the reference; returns whether the name is valid.
fileprivate func checkName(_ name: ArraySlice<UInt8>, version: ProtocolVersion) -> Bool {
    let want = !name.isEmpty && referenceValidText(name) && !name.contains(plus) && !name.contains(hash)
    var error: CodecError? = nil
    do {
        try TopicRules.validateName(name, version: version)
    } catch let e {
        error = e
    }
    guard (error == nil) == want else {
        fatalError("validateName(\(show(name)), \(version)): \(error.map { "\($0)" } ?? "accepted"); expected \(want ? "accepted" : "refused")")
    }
    return want
}

// MARK: - Filters

/// The specification's rule for wildcards: each level is `+`, `#` (last level only),
/// or holds neither character.
fileprivate func referenceWildcardsOK(_ filter: ArraySlice<UInt8>) -> Bool {
    let levels = filter.split(separator: slash, omittingEmptySubsequences: false)
    for (i, level) in levels.enumerated() {
        if level.elementsEqual([hash]) {
            if i != levels.count - 1 { return false }
        } else if level.elementsEqual([plus]) {
            continue
        } else if level.contains(plus) || level.contains(hash) {
            return false
        }
    }
    return true
}

fileprivate let sharePrefix = Array("$share/".utf8)

/// (share group, filter) per the specification, or nil when the filter is invalid.
fileprivate func referenceParse(_ filter: ArraySlice<UInt8>, version: ProtocolVersion) -> (ArraySlice<UInt8>?, ArraySlice<UInt8>)? {
    guard !filter.isEmpty, referenceValidText(filter) else { return nil }
    var group: ArraySlice<UInt8>? = nil
    var rest = filter
    if version == .v5 && filter.starts(with: sharePrefix) {
        let after = filter.dropFirst(sharePrefix.count)
        guard let cut = after.firstIndex(of: slash) else { return nil }
        let g = after[..<cut]
        guard !g.isEmpty, !g.contains(plus), !g.contains(hash) else { return nil }
        rest = after[(cut + 1)...]
        guard !rest.isEmpty else { return nil }
        group = g
    }
    guard referenceWildcardsOK(rest) else { return nil }
    return (group, rest)
}

/// Checks parseFilter against the reference and for stability; returns the parsed filter.
fileprivate func checkFilter(_ filter: ArraySlice<UInt8>, version: ProtocolVersion) -> TopicFilter? {
    let want = referenceParse(filter, version: version)
    let got: TopicFilter
    do {
        got = try TopicRules.parseFilter(filter, version: version)
    } catch {
        guard want == nil else {
            fatalError("parseFilter(\(show(filter)), \(version)) refused a valid filter: \(error)")
        }
        return nil
    }
    guard let (group, rest) = want else {
        fatalError("parseFilter(\(show(filter)), \(version)) accepted an invalid filter as \(got)")
    }
    guard got.filter.bytes.elementsEqual(rest),
        got.shareGroup?.bytes.elementsEqual(group ?? []) ?? (group == nil),
        (got.shareGroup == nil) == (group == nil),
        got.hasWildcards == (rest.contains(plus) || rest.contains(hash))
    else {
        fatalError("parseFilter(\(show(filter)), \(version)) = \(got); expected group \(group.map(show) ?? "none"), filter \(show(rest))")
    }
    // Stable: rebuilding the text from the parts and parsing it again gives the same.
    var text: [UInt8] = []
    if let g = got.shareGroup {
        text = sharePrefix + Array(g.bytes) + [slash]
    }
    text += got.filter.bytes
    guard text.elementsEqual(filter) else { fatalError("parseFilter parts of \(show(filter)) do not rebuild it") }
    let again: TopicFilter
    do {
        again = try TopicRules.parseFilter(text[...], version: version)
    } catch {
        fatalError("parseFilter(\(show(filter))) is not stable: the rebuilt text is refused: \(error)")
    }
    guard again == got else { fatalError("parseFilter(\(show(filter))) is not stable: \(got) then \(again)") }
    return got
}

// MARK: - Matching

/// Level-by-level matching of MQTT 5.0 section 4.7: `+` matches one whole level
/// (possibly empty), `#` the parent level and any number below, and wildcards in
/// the first level do not match names that begin with `$`.
fileprivate func referenceMatches(name: ArraySlice<UInt8>, filter: ArraySlice<UInt8>) -> Bool {
    let n = name.split(separator: slash, omittingEmptySubsequences: false)
    let f = filter.split(separator: slash, omittingEmptySubsequences: false)
    if name.first == 0x24, let first = f.first, first.elementsEqual([plus]) || first.elementsEqual([hash]) {
        return false
    }
    for (i, level) in f.enumerated() {
        if level.elementsEqual([hash]) { return true }
        if i >= n.count { return false }
        if level.elementsEqual([plus]) { continue }
        if !level.elementsEqual(n[i]) { return false }
    }
    return f.count == n.count
}

fileprivate func show(_ bytes: ArraySlice<UInt8>) -> String {
    let text = bytes.prefix(128).map { b -> String in
        (0x20..<0x7F).contains(b) && b != 0x5C ? String(UnicodeScalar(b)) : "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
    }.joined()
    return "\"" + text + (bytes.count > 128 ? "..." : "") + "\""
}
