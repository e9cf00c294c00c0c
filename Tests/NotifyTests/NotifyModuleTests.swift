import Testing
@testable import Notify

@Suite("Notify module")
struct NotifyModuleTests {
    @Test("the plugin's name is the one the configuration uses")
    func name() {
        #expect(Notify.pluginName == "notify")
    }
}
