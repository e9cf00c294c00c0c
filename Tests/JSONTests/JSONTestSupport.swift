import JSON
import Testing

/// The error `JSONValue.parse` throws for `bytes`, or nil if it parses.
func refusal(_ bytes: [UInt8], maxBytes: Int = JSONValue.defaultMaxBytes, maxDepth: Int = JSONValue.defaultMaxDepth)
    -> JSONError?
{
    do {
        _ = try JSONValue.parse(bytes, maxBytes: maxBytes, maxDepth: maxDepth)
        return nil
    } catch {
        return error
    }
}

/// Checks that `text` is refused for `reason` at byte `offset`.
func expectRefused(
    _ text: String, at offset: Int, _ reason: JSONError.Reason, sourceLocation: SourceLocation = #_sourceLocation
) {
    expectRefused(Array(text.utf8), at: offset, reason, sourceLocation: sourceLocation)
}

/// Checks that `bytes` are refused for `reason` at byte `offset`.
func expectRefused(
    _ bytes: [UInt8], at offset: Int, _ reason: JSONError.Reason, sourceLocation: SourceLocation = #_sourceLocation
) {
    let got = refusal(bytes)
    #expect(
        got == JSONError(offset: offset, reason: reason),
        "\(String(decoding: bytes, as: UTF8.self).debugDescription)", sourceLocation: sourceLocation)
}

/// Parses text that must be valid.
func parsed(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
    try JSONValue.parse(Array(text.utf8))
}
