import Broker
import MQTT

/// The chat plugin: users, login, rooms as topics, history, presence (SPEC sections 2-3).
public final class ChatPlugin: BrokerPlugin, @unchecked Sendable {
    public let name = "chat"
    public var hooks: PluginHooks { [] }
    public init() {}
}
