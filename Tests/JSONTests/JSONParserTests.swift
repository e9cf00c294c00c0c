import Foundation
import JSON
import Testing

@Suite("JSON parser: what RFC 8259 allows")
struct JSONParserAcceptTests {
    @Test("RFC 8259 section 13: the image object")
    func rfcImage() throws {
        let text = """
            {
              "Image": {
                  "Width":  800,
                  "Height": 600,
                  "Title":  "View from 15th Floor",
                  "Thumbnail": {
                      "Url":    "http://www.example.com/image/481989943",
                      "Height": 125,
                      "Width":  100
                  },
                  "Animated" : false,
                  "IDs": [116, 943, 234, 38793]
                }
            }
            """
        let v = try parsed(text)
        let image = try #require(v["Image"])
        #expect(image["Width"]?.int64 == 800)
        #expect(image["Title"]?.string == "View from 15th Floor")
        #expect(image["Thumbnail"]?["Url"]?.string == "http://www.example.com/image/481989943")
        #expect(image["Animated"]?.bool == false)
        #expect(image["IDs"] == [116, 943, 234, 38793])
        #expect(image.object?.map(\.0) == ["Width", "Height", "Title", "Thumbnail", "Animated", "IDs"])
    }

    @Test("RFC 8259 section 13: the array of two locations")
    func rfcLocations() throws {
        let text = """
            [
              {
                 "precision": "zip",
                 "Latitude":  37.7668,
                 "Longitude": -122.3959,
                 "Address":   "",
                 "City":      "SAN FRANCISCO",
                 "State":     "CA",
                 "Zip":       "94107",
                 "Country":   "US"
              },
              {
                 "precision": "zip",
                 "Latitude":  37.371991,
                 "Longitude": -122.026020,
                 "Address":   "",
                 "City":      "SUNNYVALE",
                 "State":     "CA",
                 "Zip":       "94085",
                 "Country":   "US"
              }
            ]
            """
        let v = try parsed(text)
        #expect(v.array?.count == 2)
        #expect(v[0]?["Latitude"]?.double == 37.7668)
        #expect(v[1]?["Longitude"]?.double == -122.02602)
        #expect(v[1]?["Address"]?.string == "")
        #expect(v[1]?["Zip"]?.string == "94085")
    }

    @Test("RFC 8259 section 13: scalars are documents too")
    func rfcScalars() throws {
        #expect(try parsed(#""Hello world!""#) == "Hello world!")
        #expect(try parsed("42") == 42)
        #expect(try parsed("true") == true)
        #expect(try parsed("false") == false)
        #expect(try parsed("null") == nil)
    }

    @Test("the chat bodies of SPEC sections 3-4")
    func chatBodies() throws {
        let post = try parsed(#"{"body":"hi","ckey":"c-1"}"#)
        #expect(post["body"]?.string == "hi")
        #expect(post["ckey"]?.string == "c-1")
        #expect(try parsed(#"{"up_to": 17}"#)["up_to"]?.int64 == 17)
        let history = try parsed(#"{"before": 10, "limit": 50}"#)
        #expect(history["before"]?.int64 == 10)
        #expect(history["limit"]?.int64 == 50)
        #expect(history["after"] == nil)
    }

    @Test("whitespace is space, tab, line feed and carriage return, around any token")
    func whitespace() throws {
        #expect(try parsed(" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \"a\" \n: \r\n2 } ] \n") == [1, ["a": 2]])
        #expect(try parsed("\n\n 7 \n") == 7)
        #expect(try parsed("[]") == [])
        #expect(try parsed("[ ]") == [])
        #expect(try parsed("{ }") == .object([]))
    }

    @Test("literals nest in containers")
    func nesting() throws {
        #expect(try parsed(#"[[[]],{"a":[{}]},"x",null,true,false,-1.5]"#) == [[[]], ["a": [.object([])]], "x", nil, true, false, -1.5])
    }

    @Test("every entry point gives the same answer")
    func entryPoints() throws {
        let text = #"{"body":"h\u00e9","n":[1,2.5]}"#
        let bytes = Array(text.utf8)
        let want = try JSONValue.parse(bytes)
        #expect(try JSONValue.parse(text) == want)
        #expect(try JSONValue.parse(text.utf8) == want)
        #expect(try JSONValue.parse(([0x20] + bytes + [0x20])[1...]) == want)
        #expect(try JSONValue.parse(Data(bytes)) == want)
        #expect(try JSONValue.parse(bytes.lazy.map { $0 }) == want)  // not contiguous: copied
        #expect(want["body"]?.string == "hé")
    }
}

@Suite("JSON parser: strings")
struct JSONParserStringTests {
    @Test("the two-character escapes")
    func shortEscapes() throws {
        #expect(try parsed(#""\" \\ \/ \b \f \n \r \t""#) == .string("\" \\ / \u{08} \u{0C} \n \r \t"))
    }

    @Test("\\u escapes in either case, including U+0000")
    func unicodeEscapes() throws {
        #expect(try parsed(#""\u0041\u00e9\u00E9\u20AC\uffff""#) == .string("Aéé€\u{FFFF}"))
        let nul = try parsed(#""a\u0000b""#)
        #expect(nul.string?.unicodeScalars.map(\.value) == [0x61, 0, 0x62])
    }

    @Test("RFC 8259 section 7: a surrogate pair is one scalar (G clef U+1D11E)")
    func surrogatePairs() throws {
        let clef = try parsed(#""\uD834\uDD1E""#)
        #expect(clef.string?.unicodeScalars.map(\.value) == [0x1D11E])
        #expect(try parsed(#""\ud83d\ude00!""#) == "😀!")
        #expect(try parsed(#""\uDBFF\uDFFF""#).string?.unicodeScalars.map(\.value) == [0x10FFFF])
        #expect(try parsed(#""\uD800\uDC00""#).string?.unicodeScalars.map(\.value) == [0x10000])
    }

    @Test("UTF-8 of every length passes through, as does DEL")
    func utf8() throws {
        #expect(try parsed("\"é € 😀 \u{7F} \u{10FFFF}\"") == .string("é € 😀 \u{7F} \u{10FFFF}"))
        #expect(try parsed("{\"clé\":\"valeur ☃\"}")["clé"] == "valeur ☃")
    }

    @Test("a U+FEFF opening a string is a character, kept (not a byte order mark to drop)")
    func leadingFEFF() throws {
        // Found by fuzz-json: Foundation drops it, which is why the harness escapes it for Foundation.
        let text = try parsed("\"\u{FEFF}\u{10FFC0}\"")
        #expect(text.string?.unicodeScalars.map(\.value) == [0xFEFF, 0x10FFC0])
        #expect(try parsed("{\"\u{FEFF}k\":1,\"k\":2}").object?.count == 2)
        #expect(try parsed(#""\ufeffa""#).string?.unicodeScalars.first?.value == 0xFEFF)
    }

    @Test("escapes mixed with UTF-8 and plain runs")
    func mixed() throws {
        #expect(try parsed(#"["é\n€", "a\"b", "\u00e9é", "x"]"#) == ["é\n€", "a\"b", "éé", "x"])
    }

    @Test("a long string with an escape near its end")
    func long() throws {
        let body = String(repeating: "abcdé", count: 1000)
        #expect(try parsed("\"" + body + "\\n\"") == .string(body + "\n"))
    }
}

@Suite("JSON parser: numbers")
struct JSONParserNumberTests {
    @Test("integer literals that fit Int64 are exact")
    func integers() throws {
        #expect(try parsed("0") == .integer(0))
        #expect(try parsed("-0") == .integer(0))
        #expect(try parsed("17") == .integer(17))
        #expect(try parsed("-17") == .integer(-17))
        #expect(try parsed("9007199254740993").int64 == 9_007_199_254_740_993)
        #expect(try parsed("[9223372036854775807,-9223372036854775808]") == [.integer(.max), .integer(.min)])
    }

    @Test("integers beyond Int64 become the nearest double")
    func bigIntegers() throws {
        #expect(try parsed("9223372036854775808") == .number(9_223_372_036_854_775_808))
        #expect(try parsed("-9223372036854775809") == .number(-9.223372036854775808e18))
        #expect(try parsed("18446744073709551616") == .number(18_446_744_073_709_551_616))
        #expect(try parsed("123456789012345678901234567890") == .number(1.2345678901234568e29))
        #expect(try parsed(String(repeating: "9", count: 308)) == .number(1e308))
    }

    @Test("fractions and exponents are doubles, correctly rounded")
    func doubles() throws {
        #expect(try parsed("1.0") == .number(1))
        #expect(try parsed("-0.0").double?.sign == .minus)
        #expect(try parsed("0.1") == .number(0.1))
        #expect(try parsed("1.5e3") == .number(1500))
        #expect(try parsed("1E3") == .number(1000))
        #expect(try parsed("1e+3") == .number(1000))
        #expect(try parsed("25e-1") == .number(2.5))
        #expect(try parsed("0.000001") == .number(1e-6))
        #expect(try parsed("1.7976931348623157e308") == .number(.greatestFiniteMagnitude))
        #expect(try parsed("5e-324") == .number(.leastNonzeroMagnitude))
        #expect(try parsed("2.2250738585072014e-308") == .number(.leastNormalMagnitude))
        // Beyond the fast path: more than 19 digits, and exponents beyond 22.
        #expect(try parsed("0.30000000000000000000000000001") == .number(0.3))
        #expect(try parsed("123456789e-30") == .number(123456789e-30))
        #expect(try parsed("9007199254740993.0") == .number(9_007_199_254_740_992))
        #expect(try parsed("0.0000000000000000000000000001") == .number(1e-28))
    }

    @Test("numbers too small for a double round to zero, as strtod does")
    func underflow() throws {
        #expect(try parsed("1e-400") == .number(0))
        #expect(try parsed("-1e-400").double?.sign == .minus)
        #expect(try parsed("0e999999999999") == .number(0))
    }

    @Test("a number ends at the first byte its grammar cannot take")
    func endings() throws {
        #expect(try parsed("[1,-2.5e1,3]") == [1, -25, 3])
        #expect(try parsed(#"{"a":0}"#) == ["a": 0])
    }
}

@Suite("JSON parser: refusals")
struct JSONParserRefusalTests {
    @Test("empty input and truncated documents")
    func truncated() {
        expectRefused("", at: 0, .unexpectedEnd)
        expectRefused("   ", at: 3, .unexpectedEnd)
        expectRefused("[", at: 1, .unexpectedEnd)
        expectRefused("[1", at: 2, .unexpectedEnd)
        expectRefused("[1,", at: 3, .unexpectedEnd)
        expectRefused("{", at: 1, .unexpectedEnd)
        expectRefused(#"{"a""#, at: 4, .unexpectedEnd)
        expectRefused(#"{"a":"#, at: 5, .unexpectedEnd)
        expectRefused(#"{"a":1"#, at: 6, .unexpectedEnd)
        expectRefused(#""abc"#, at: 4, .unexpectedEnd)
        expectRefused(#""abc\"#, at: 5, .unexpectedEnd)
        expectRefused(#""\u12"#, at: 5, .unexpectedEnd)
        expectRefused("tru", at: 3, .unexpectedEnd)
        expectRefused("-", at: 1, .unexpectedEnd)
        expectRefused("1.", at: 2, .unexpectedEnd)
        expectRefused("1e", at: 2, .unexpectedEnd)
        expectRefused("1e+", at: 3, .unexpectedEnd)
    }

    @Test("trailing garbage after the value")
    func trailing() {
        expectRefused("1 2", at: 2, .trailingData)
        expectRefused("{}}", at: 2, .trailingData)
        expectRefused("[] x", at: 3, .trailingData)
        expectRefused("truex", at: 4, .trailingData)
        expectRefused("1.5.3", at: 3, .trailingData)
        expectRefused("\"a\"\"b\"", at: 3, .trailingData)
        expectRefused([0x31, 0x00], at: 1, .trailingData)
    }

    @Test("whitespace other than the RFC's four")
    func otherWhitespace() {
        expectRefused("\u{0B}1", at: 0, .expectedValue)  // vertical tab
        expectRefused("\u{0C}1", at: 0, .expectedValue)  // form feed
        expectRefused("1\u{A0}", at: 1, .trailingData)  // no-break space
        expectRefused("\u{FEFF}1", at: 0, .expectedValue)  // byte order mark
    }

    @Test("broken syntax: what a value, key, colon or separator must be")
    func syntax() {
        expectRefused("[1,]", at: 3, .expectedValue)
        expectRefused("[,1]", at: 1, .expectedValue)
        expectRefused(#"{"a":1,}"#, at: 7, .expectedKey)
        expectRefused("{a:1}", at: 1, .expectedKey)
        expectRefused("{1:1}", at: 1, .expectedKey)
        expectRefused(#"{"a" 1}"#, at: 5, .expectedColon)
        expectRefused(#"{"a"=1}"#, at: 4, .expectedColon)
        expectRefused("[1 2]", at: 3, .expectedCommaOrEnd)
        expectRefused(#"{"a":1 "b":2}"#, at: 7, .expectedCommaOrEnd)
        expectRefused("[1}", at: 2, .expectedCommaOrEnd)
        expectRefused(#"{"a":1]"#, at: 6, .expectedCommaOrEnd)
        expectRefused("'a'", at: 0, .expectedValue)
        expectRefused("]", at: 0, .expectedValue)
        expectRefused("NaN", at: 0, .expectedValue)
        expectRefused("Infinity", at: 0, .expectedValue)
        expectRefused("[1,2]/*c*/", at: 5, .trailingData)
    }

    @Test("words that are not true, false or null")
    func literals() {
        expectRefused("trUe", at: 0, .invalidLiteral)
        expectRefused("nul1", at: 0, .invalidLiteral)
        expectRefused("[fals]", at: 1, .invalidLiteral)
        expectRefused("True", at: 0, .expectedValue)
    }

    @Test("leading zeros")
    func leadingZeros() {
        expectRefused("01", at: 0, .leadingZero)
        expectRefused("-01", at: 1, .leadingZero)
        expectRefused("[007]", at: 1, .leadingZero)
        expectRefused("00.5", at: 0, .leadingZero)
    }

    @Test("numbers missing required digits, or with a plus sign")
    func malformedNumbers() {
        expectRefused("-a", at: 1, .invalidNumber)
        expectRefused("--1", at: 1, .invalidNumber)
        expectRefused("[1.]", at: 3, .invalidNumber)
        expectRefused("[1.e5]", at: 3, .invalidNumber)
        expectRefused("[1e]", at: 3, .invalidNumber)
        expectRefused("[1e+]", at: 4, .invalidNumber)
        expectRefused("[-]", at: 2, .invalidNumber)
        expectRefused("+1", at: 0, .expectedValue)
        expectRefused(".5", at: 0, .expectedValue)
        expectRefused("[-.5]", at: 2, .invalidNumber)
        expectRefused("0x10", at: 1, .trailingData)
    }

    @Test("numbers too large for a double")
    func outOfRange() {
        expectRefused("1e309", at: 0, .numberOutOfRange)
        expectRefused("[-1e400]", at: 1, .numberOutOfRange)
        expectRefused("1.8e308", at: 0, .numberOutOfRange)
        expectRefused(String(repeating: "9", count: 310), at: 0, .numberOutOfRange)
        expectRefused("1e99999999999999999999", at: 0, .numberOutOfRange)
    }

    @Test("control characters in strings must be escaped")
    func controlCharacters() {
        expectRefused("\"a\nb\"", at: 2, .controlCharacter)
        expectRefused("\"\t\"", at: 1, .controlCharacter)
        expectRefused([0x22, 0x00, 0x22], at: 1, .controlCharacter)
        expectRefused([0x22, 0x1F, 0x22], at: 1, .controlCharacter)
        expectRefused("\"é\u{01}\"", at: 3, .controlCharacter)
        expectRefused("\"\\n\r\"", at: 3, .controlCharacter)
    }

    @Test("invalid escapes")
    func escapes() {
        expectRefused(#""\a""#, at: 1, .invalidEscape)
        expectRefused(#""\x41""#, at: 1, .invalidEscape)
        expectRefused(#""\'""#, at: 1, .invalidEscape)
        expectRefused(#""ab\U0041""#, at: 3, .invalidEscape)
        expectRefused(#""\u00G1""#, at: 1, .invalidEscape)
        expectRefused(#""\u12""#, at: 1, .invalidEscape)
    }

    @Test("lone surrogates in \\u escapes")
    func loneSurrogates() {
        expectRefused(#""\uD800""#, at: 1, .loneSurrogate)
        expectRefused(#""\udbff x""#, at: 1, .loneSurrogate)
        expectRefused(#""\uDC00""#, at: 1, .loneSurrogate)
        expectRefused(#""a\uDFFF\uD800""#, at: 2, .loneSurrogate)
        expectRefused(#""\uD800\uD800""#, at: 1, .loneSurrogate)
        expectRefused(#""\uD800\u0041""#, at: 1, .loneSurrogate)
        expectRefused(#""\uD800\n""#, at: 1, .loneSurrogate)
        expectRefused(#""\uD800"#, at: 1, .loneSurrogate)
        expectRefused(#""\uD800\uDC0"#, at: 12, .unexpectedEnd)
    }

    @Test("invalid UTF-8 in strings")
    func invalidUTF8() {
        let q: UInt8 = 0x22
        expectRefused([q, 0x80, q], at: 1, .invalidUTF8)  // continuation byte alone
        expectRefused([q, 0xC0, 0xAF, q], at: 1, .invalidUTF8)  // overlong "/"
        expectRefused([q, 0xC1, 0xBF, q], at: 1, .invalidUTF8)  // overlong
        expectRefused([q, 0xE0, 0x80, 0xAF, q], at: 1, .invalidUTF8)  // overlong 3 bytes
        expectRefused([q, 0xF0, 0x80, 0x80, 0xAF, q], at: 1, .invalidUTF8)  // overlong 4 bytes
        expectRefused([q, 0xED, 0xA0, 0x80, q], at: 1, .invalidUTF8)  // U+D800 encoded
        expectRefused([q, 0xED, 0xBF, 0xBF, q], at: 1, .invalidUTF8)  // U+DFFF encoded
        expectRefused([q, 0xF4, 0x90, 0x80, 0x80, q], at: 1, .invalidUTF8)  // U+110000
        expectRefused([q, 0xF5, 0x80, 0x80, 0x80, q], at: 1, .invalidUTF8)
        expectRefused([q, 0xFF, q], at: 1, .invalidUTF8)
        expectRefused([q, 0x61, 0xC3, q], at: 2, .invalidUTF8)  // truncated before the quote
        expectRefused([q, 0xE2, 0x82, q], at: 1, .invalidUTF8)
        expectRefused([q, 0xC3], at: 1, .invalidUTF8)  // truncated at the end
        expectRefused([q, 0xE2, 0x82, 0x41, q], at: 1, .invalidUTF8)  // third byte not a continuation
        expectRefused([q, 0xF0, 0x9F, 0x98, q], at: 1, .invalidUTF8)
        // Non-ASCII bytes outside strings are not JSON at all.
        expectRefused([0xC3, 0xA9], at: 0, .expectedValue)
        expectRefused([0x5B, 0x31, 0xFF, 0x5D], at: 2, .expectedCommaOrEnd)
    }

    @Test("duplicate keys, at the repeated key")
    func duplicateKeys() throws {
        expectRefused(#"{"a":1,"a":2}"#, at: 7, .duplicateKey("a"))
        expectRefused(#"{"a":1,"b":2,"a":1}"#, at: 13, .duplicateKey("a"))
        expectRefused(#"{"x":{"a":1,"a":1}}"#, at: 12, .duplicateKey("a"))
        // The same key spelled with an escape is the same key.
        expectRefused(#"{"a":1,"\u0061":2}"#, at: 7, .duplicateKey("a"))
        // Keys that Swift's String holds equal (canonically equivalent) are one key.
        expectRefused("{\"\u{E9}\":1,\"e\u{301}\":2}", at: 8, .duplicateKey("e\u{301}"))
        // Equal keys in different objects are fine, and so is a key equal to a value.
        #expect(try parsed(#"[{"a":1},{"a":2}]"#).array?.count == 2)
        #expect(try parsed(#"{"a":"a","b":{"a":"b"}}"#)["b"]?["a"] == "b")
    }

    @Test("duplicate keys in a large object (past the linear search)")
    func duplicateKeysLarge() throws {
        let members = (0..<200).map { "\"k\($0)\":\($0)" }
        let ok = "{" + members.joined(separator: ",") + "}"
        #expect(try parsed(ok).object?.count == 200)
        #expect(try parsed(ok)["k199"] == 199)
        for repeated in [0, 15, 16, 17, 150] {
            let text = "{" + members.joined(separator: ",") + ",\"k\(repeated)\":0}"
            expectRefused(text, at: ok.utf8.count, .duplicateKey("k\(repeated)"))
        }
    }

    @Test("nesting depth: 64 levels by default, or the caller's limit")
    func depth() throws {
        func nested(_ n: Int) -> [UInt8] { Array((String(repeating: "[", count: n) + String(repeating: "]", count: n)).utf8) }
        #expect(refusal(nested(64)) == nil)
        #expect(refusal(nested(65)) == JSONError(offset: 64, reason: .tooDeep(limit: 64)))
        #expect(refusal(nested(100_000)) == JSONError(offset: 64, reason: .tooDeep(limit: 64)))
        #expect(refusal(nested(3), maxDepth: 3) == nil)
        #expect(refusal(nested(4), maxDepth: 3) == JSONError(offset: 3, reason: .tooDeep(limit: 3)))
        #expect(refusal(Array(#"{"a":{"b":[1]}}"#.utf8), maxDepth: 2) == JSONError(offset: 10, reason: .tooDeep(limit: 2)))
        #expect(refusal(Array("17".utf8), maxDepth: 0) == nil)
        #expect(refusal(Array("[]".utf8), maxDepth: 0) == JSONError(offset: 0, reason: .tooDeep(limit: 0)))
        #expect(refusal(nested(1024), maxDepth: 1024) == nil)
    }

    @Test("inputs larger than the caller's limit, before reading them")
    func size() {
        let body = Array(#"{"body":"hi"}"#.utf8)
        #expect(refusal(body, maxBytes: body.count) == nil)
        #expect(refusal(body, maxBytes: body.count - 1) == JSONError(offset: 12, reason: .tooLarge(limit: 12)))
        // Refused for size even though it is not JSON: nothing was read.
        #expect(refusal(Array("   xx".utf8), maxBytes: 4) == JSONError(offset: 4, reason: .tooLarge(limit: 4)))
        #expect(refusal([], maxBytes: 0) == JSONError(offset: 0, reason: .unexpectedEnd))
        // The generic path copies only as much as it needs to see that.
        let big = (0..<10_000).lazy.map { _ in UInt8(0x20) }
        #expect(throws: JSONError(offset: 100, reason: .tooLarge(limit: 100))) { try JSONValue.parse(big, maxBytes: 100) }
    }

    @Test("errors read as a reason and a byte offset")
    func description() {
        #expect(JSONError(offset: 7, reason: .duplicateKey("a")).description == #"duplicate key "a" at byte 7"#)
        #expect(JSONError(offset: 0, reason: .unexpectedEnd).description == "unexpected end of input at byte 0")
    }
}
