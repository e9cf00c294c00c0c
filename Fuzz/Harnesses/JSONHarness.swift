// Harness (e): the JSON reader and writer. Any bytes must parse or throw a
// JSONError whose offset lies in the input; never a crash, a trap or a hang.
// When they parse:
//   - every entry point (buffer, array, non-contiguous collection) agrees;
//   - serialized() parses again to an equal value that serializes to the same
//     bytes, and JSONWriter writes those bytes too;
//   - the limits bite exactly: one byte less of maxBytes, or one level less of
//     maxDepth than the document has, is refused with that reason;
//   - Foundation's JSONSerialization (.fragmentsAllowed), the reference, accepts
//     the input too, and reads the same structure, strings (compared scalar by
//     scalar), booleans, nulls and numbers. Only this direction: Foundation is
//     laxer (it takes duplicate keys, a byte order mark, nesting to 512). It also
//     drops an unescaped U+FEFF from the start of a string (taking it for a byte
//     order mark), so it is given those escaped.
//
// Input layout: the bytes are the document.
import Foundation
import JSON

/// The harness: one input, returns 0; a finding traps.
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    // Parse from libFuzzer's own buffer, so AddressSanitizer sees any read past its end.
    let input = UnsafeBufferPointer(start: size > 0 ? data : nil, count: size)
    let value: JSONValue
    do {
        value = try JSONValue.parse(input)
    } catch {
        checkRefusal(error, input)
        return 0
    }
    checkEntryPoints(value, input)
    checkRoundTrip(value)
    checkLimits(value, input)
    checkAgainstFoundation(value, input)
    return 0
}

// MARK: - Our own invariants

fileprivate func checkRefusal(_ error: JSONError, _ input: UnsafeBufferPointer<UInt8>) {
    guard (0...input.count).contains(error.offset) else {
        fatalError("\(error) points outside the \(input.count)-byte input \(show(input))")
    }
    let again = refusal(Array(input))
    guard again == error else {
        fatalError("the array path says \(again.map { "\($0)" } ?? "accepted"), the buffer path \(error), for \(show(input))")
    }
}

fileprivate func refusal(_ bytes: some Collection<UInt8>, maxBytes: Int = JSONValue.defaultMaxBytes,
                         maxDepth: Int = JSONValue.defaultMaxDepth) -> JSONError? {
    do {
        _ = try JSONValue.parse(bytes, maxBytes: maxBytes, maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

fileprivate func checkEntryPoints(_ value: JSONValue, _ input: UnsafeBufferPointer<UInt8>) {
    for (path, result) in [("array", parseResult(Array(input))), ("lazy", parseResult(input.lazy.map { $0 }))] {
        guard case .success(let other) = result, other == value, other.serialized() == value.serialized() else {
            fatalError("the \(path) path gives \(result), the buffer path \(value), for \(show(input))")
        }
    }
}

fileprivate func parseResult(_ bytes: some Collection<UInt8>) -> Result<JSONValue, JSONError> {
    do {
        return .success(try JSONValue.parse(bytes))
    } catch {
        return .failure(error)
    }
}

fileprivate func checkRoundTrip(_ value: JSONValue) {
    guard value == value else { fatalError("\(value) is not equal to itself") }
    let bytes = value.serialized()
    let again: JSONValue
    do {
        again = try JSONValue.parse(bytes, maxBytes: bytes.count)
    } catch {
        fatalError("serialized \(value) as \(show(bytes)), which does not parse: \(error)")
    }
    guard again == value else { fatalError("\(show(bytes)) reads back as \(again), not \(value)") }
    let twice = again.serialized()
    guard twice == bytes else { fatalError("serialized \(value) as \(show(bytes)), then as \(show(twice))") }
    guard value.serializedString.utf8.elementsEqual(bytes) else { fatalError("serializedString differs from serialized()") }
    var writer = JSONWriter()
    writer.value(value)
    guard writer.bytes == bytes else { fatalError("JSONWriter wrote \(show(writer.bytes)), serialized() \(show(bytes))") }
}

fileprivate func checkLimits(_ value: JSONValue, _ input: UnsafeBufferPointer<UInt8>) {
    let tooLarge = refusal(input, maxBytes: input.count - 1)
    guard tooLarge == JSONError(offset: input.count - 1, reason: .tooLarge(limit: input.count - 1)) else {
        fatalError("maxBytes \(input.count - 1) gives \(tooLarge.map { "\($0)" } ?? "acceptance") for \(show(input))")
    }
    let levels = depth(of: value)
    guard levels > 0 else { return }
    let tooDeep = refusal(input, maxDepth: levels - 1)
    guard tooDeep?.reason == .tooDeep(limit: levels - 1) else {
        fatalError("maxDepth \(levels - 1) gives \(tooDeep.map { "\($0)" } ?? "acceptance") for \(levels) levels in \(show(input))")
    }
    guard refusal(input, maxDepth: levels) == nil else { fatalError("maxDepth \(levels) refuses \(show(input))") }
}

/// How many arrays and objects nest in `value` (`[[1]]` is 2).
fileprivate func depth(of value: JSONValue) -> Int {
    switch value {
    case .array(let elements): return 1 + (elements.map(depth).max() ?? 0)
    case .object(let members): return 1 + (members.map { depth(of: $0.1) }.max() ?? 0)
    default: return 0
    }
}

// MARK: - Against Foundation

fileprivate func checkAgainstFoundation(_ value: JSONValue, _ input: UnsafeBufferPointer<UInt8>) {
    let reference: Any
    do {
        reference = try JSONSerialization.jsonObject(with: escapingByteOrderMarks(input), options: [.fragmentsAllowed])
    } catch {
        fatalError("we accept \(show(input)) as \(value); JSONSerialization refuses it: \(error)")
    }
    if let difference = compare(value, reference, at: "$") {
        fatalError("JSONSerialization reads \(show(input)) differently: \(difference)")
    }
}

/// The input with every U+FEFF written as `\ufeff`, which Foundation keeps. In an
/// accepted document the bytes EF BB BF can only be that character inside a string.
fileprivate func escapingByteOrderMarks(_ input: UnsafeBufferPointer<UInt8>) -> Data {
    var out = Data(capacity: input.count)
    var i = 0
    while i < input.count {
        if i + 2 < input.count && input[i] == 0xEF && input[i + 1] == 0xBB && input[i + 2] == 0xBF {
            out.append(contentsOf: Array(#"\ufeff"#.utf8))
            i += 3
        } else {
            out.append(input[i])
            i += 1
        }
    }
    return out
}

/// nil when `reference` (Foundation's reading) matches `value`, else where and how they differ.
fileprivate func compare(_ value: JSONValue, _ reference: Any, at path: String) -> String? {
    switch value {
    case .null:
        return reference is NSNull ? nil : "\(path): null against \(reference)"
    case .bool(let b):
        return (reference as? Bool) == b && !(reference is NSDecimalNumber) ? nil : "\(path): \(b) against \(reference)"
    case .integer, .number:
        guard let number = reference as? NSNumber else { return "\(path): \(value) against \(reference)" }
        return compareNumber(value, number, at: path)
    case .string(let s):
        guard let text = reference as? String, text.unicodeScalars.elementsEqual(s.unicodeScalars) else {
            return "\(path): \(value) against \(reference)"
        }
        return nil
    case .array(let elements):
        guard let others = reference as? [Any], others.count == elements.count else {
            return "\(path): \(elements.count) elements against \(reference)"
        }
        for (i, (element, other)) in zip(elements, others).enumerated() {
            if let difference = compare(element, other, at: "\(path)[\(i)]") { return difference }
        }
        return nil
    case .object(let members):
        guard let others = reference as? [String: Any], others.count == members.count else {
            return "\(path): \(members.count) members against \(reference)"
        }
        for (key, member) in members {
            guard let other = others[key] else { return "\(path): no member \(key.debugDescription) in \(others)" }
            if let difference = compare(member, other, at: "\(path).\(key)") { return difference }
        }
        return nil
    }
}

/// Foundation gives integers that fit 64 bits as integer NSNumbers, other
/// integer literals as NSDecimalNumber, and the rest as doubles. Integers and
/// doubles must match exactly (both sides round correctly); a decimal's
/// conversion to Double is not correctly rounded, so it only has to be close.
fileprivate func compareNumber(_ value: JSONValue, _ number: NSNumber, at path: String) -> String? {
    let mismatch = "\(path): \(value) against \(number) (\(type(of: number)), objCType \(String(cString: number.objCType)))"
    if number is NSDecimalNumber {
        guard let ours = value.double, number.doubleValue.isFinite else { return mismatch }
        let tolerance = max(abs(ours), abs(number.doubleValue)) * 1e-12
        return abs(ours - number.doubleValue) <= tolerance ? nil : mismatch
    }
    switch value {
    case .integer(let i):
        let type = String(cString: number.objCType)
        guard type != "d" && type != "f", number.int64Value == i else { return mismatch }
        return nil
    case .number(let d):
        return number.doubleValue == d ? nil : mismatch
    default:
        return mismatch
    }
}

fileprivate func show(_ bytes: some Collection<UInt8>) -> String {
    let text = bytes.prefix(160).map { b -> String in
        (0x20..<0x7F).contains(b) && b != 0x5C ? String(UnicodeScalar(b)) : "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
    }.joined()
    return "\"" + text + (bytes.count > 160 ? "..." : "") + "\""
}
