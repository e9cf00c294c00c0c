import Chat

/// Writing header fields within RFC 5322's line lengths (78 characters should,
/// 998 must) and ASCII: RFC 2047 encoded-words for text that is not ASCII.
enum MailHeaderEncoding {
    /// UTF-8 bytes per encoded-word: 39 bytes are 52 base64 characters, a 64-character
    /// word, which fits after `Subject: ` or `From: ` on a 78-character line.
    static let encodedWordBytes = 39

    /// `=?utf-8?B?...?=` words (RFC 2047 section 4.1), each holding whole
    /// characters, as section 5 requires.
    static func encodedWords(_ text: String) -> [String] {
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > encodedWordBytes {
                words.append("=?utf-8?B?" + Base64.encodePadded(chunk, alphabet: .standard) + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?utf-8?B?" + Base64.encodePadded(chunk, alphabet: .standard) + "?=") }
        return words
    }

    /// Controls (CR and LF above all, which would start a new header) become spaces.
    static func sanitized(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
    }

    /// Unstructured text (`Subject`): as is when it is printable ASCII (folded at
    /// spaces), else encoded-words. Text holding `=?` is encoded too, or a reader
    /// would decode what only looks like an encoded-word.
    static func unstructuredUnits(_ text: String) -> [String] {
        let clean = sanitized(text)
        let plain = clean.utf8.allSatisfy { (0x20...0x7E).contains($0) } && !clean.contains("=?")
        let words = clean.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        if plain && words.allSatisfy({ $0.utf8.count <= 66 }) { return words }
        return encodedWords(clean)
    }

    /// A display name (RFC 5322 phrase): atoms as they are, other ASCII as a
    /// quoted-string, anything else as encoded-words.
    static func phraseUnits(_ name: String) -> [String] {
        let clean = sanitized(name)
        if clean.utf8.allSatisfy({ isAtext($0) || $0 == 0x20 }) && !clean.contains("=?") {
            let words = clean.split(separator: " ").map(String.init)
            if !words.isEmpty && words.allSatisfy({ $0.utf8.count <= 66 }) { return words }
        }
        if clean.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) && !clean.contains("=?") && clean.utf8.count <= 64 {
            var quoted = "\""
            for c in clean { quoted += c == "\"" || c == "\\" ? "\\\(c)" : "\(c)" }
            return [quoted + "\""]
        }
        return encodedWords(clean)
    }

    static func isAtext(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
            || Array("!#$%&'*+-/=?^_`{|}~".utf8).contains(b)
    }
}

/// One header field built from units that may go onto a new line between them
/// (folding: CR LF and a space, RFC 5322 2.2.3). A unit that fits stays on the line.
struct FoldedHeader {
    private(set) var text: String
    private var column: Int
    private var empty = true

    init(name: String) {
        text = name + ":"
        column = text.utf8.count
    }

    /// `separator` goes before `unit` (a space, or `, ` between addresses); when the
    /// line would pass 78 characters, its trailing space becomes the fold.
    mutating func add(_ unit: String, separator: String = " ") {
        let width = separator.utf8.count + unit.utf8.count
        if !empty && column + width > 78 {
            var kept = separator
            while kept.hasSuffix(" ") { kept.removeLast() }
            text += kept + "\r\n " + unit
            column = 1 + unit.utf8.count
        } else {
            text += separator + unit
            column += width
        }
        empty = false
    }
}
