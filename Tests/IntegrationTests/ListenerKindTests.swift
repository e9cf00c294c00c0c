// The names a client's listener kind gives plugins (`ClientInfo.listener`,
// `.transport`) and the metrics: ACL rules and the chat plugin match on them.
@testable import Broker
import Testing

@Suite("listener kinds")
struct ListenerKindTests {
    @Test("each kind's listener, transport and metrics names")
    func names() {
        let expected: [ListenerKind: (String, String, String)] = [
            .mqtt: ("mqtt", "tcp", "mqtt"), .mqtts: ("mqtts", "tls", "mqtts"),
            .ws: ("http", "ws", "ws"), .wss: ("https", "wss", "wss"),
        ]
        #expect(expected.count == ListenerKind.allCases.count)
        for kind in ListenerKind.allCases {
            let (listener, transport, metrics) = expected[kind]!
            #expect(kind.listener == listener)
            #expect(kind.transport == transport)
            #expect(kind.metricsName == metrics)
        }
    }
}
