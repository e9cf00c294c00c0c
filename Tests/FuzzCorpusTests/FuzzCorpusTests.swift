// Every committed fuzz corpus input (Fuzz/corpus/<harness>/) through its harness,
// without the fuzzer build: a parser regression shows up in `swift test`. A
// harness traps on a finding, so a failing input ends the test run loudly with
// the harness's description of what went wrong.
import Foundation
import FuzzHarnesses
import Testing

@Suite("Fuzz corpora replayed through their harnesses")
struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Fuzz/corpus").standardized

    static func replay(_ harness: String, _ run: (UnsafePointer<UInt8>?, Int) -> Int32) throws -> Int {
        let dir = corpus.appendingPathComponent(harness)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        for name in names {
            let bytes = try [UInt8](Data(contentsOf: dir.appendingPathComponent(name)))
            let result = bytes.withUnsafeBufferPointer { run($0.baseAddress, $0.count) }
            #expect(result == 0, "\(harness)/\(name)")
        }
        return names.count
    }

    @Test("frame: FrameDecoder and Packet.decode agree with the reference framer on every corpus input")
    func frame() throws { #expect(try Self.replay("frame", fuzzFrame) > 0) }

    @Test("roundtrip: decode, encode, decode gives an equal packet and stable bytes on every corpus input")
    func roundTrip() throws { #expect(try Self.replay("roundtrip", fuzzRoundTrip) > 0) }

    @Test("topic: names, filters and matching agree with the reference on every corpus input")
    func topic() throws { #expect(try Self.replay("topic", fuzzTopic) > 0) }

    @Test("chat: post, history and receipt readers read or refuse every corpus input")
    func chatPayload() throws { #expect(try Self.replay("chat", fuzzChatPayload) > 0) }

    @Test("config: every corpus input gives a configuration or an error naming a line of the file")
    func config() throws { #expect(try Self.replay("config", fuzzConfig) > 0) }

    @Test("json: every corpus input parses or is refused, round-trips, and agrees with JSONSerialization")
    func json() throws { #expect(try Self.replay("json", fuzzJSON) > 0) }

    @Test("http: the HTTP parser gives the same requests and error whatever the chunking, on every corpus input")
    func http() throws { #expect(try Self.replay("http", fuzzHTTP) > 0) }

    @Test("websocket: the frame decoder is chunking-independent and a client's frames round-trip, on every corpus input")
    func webSocket() throws { #expect(try Self.replay("websocket", fuzzWebSocket) > 0) }

    @Test("rest: the REST body readers and the history query agree with the reference on every corpus input")
    func rest() throws { #expect(try Self.replay("rest", fuzzREST) > 0) }

    @Test("smtp-reply: the SMTP reply parser is chunking-independent and gives the lines as sent, on every corpus input")
    func smtpReply() throws { #expect(try Self.replay("smtp-reply", fuzzSMTPReply) > 0) }

    @Test("http-response: the HTTP response parser is chunking-independent and keeps its body lengths, on every corpus input")
    func httpResponse() throws { #expect(try Self.replay("http-response", fuzzHTTPResponse) > 0) }
}
