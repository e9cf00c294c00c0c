import Chat
import Testing

@Suite("Chat plugin")
struct ChatPluginTests {
    @Test("the plugin names itself")
    func name() { #expect(ChatPlugin().name == "chat") }
}
