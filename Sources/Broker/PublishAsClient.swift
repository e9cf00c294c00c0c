import MQTT

// A PUBLISH made for a client by a plugin (the HTTP gateway posting as a user):
// the same steps as one read from a socket, but the outcome goes to a completion
// instead of an ack.
extension BrokerLoop {
    func publish(_ message: Message, as client: ClientInfo, completion: @escaping @Sendable (ReasonCode) -> Void) {
        if message.topic.bytes.first == 0x24 {
            completion(.notAuthorized)
            return
        }
        for plugin in broker.plugins(providing: .authorizePublish) {
            let verdict = plugin.authorizePublish(client, topic: message.topic, qos: message.qos, retain: message.retain)
            if verdict.isFailure {
                completion(verdict)
                return
            }
        }
        let apply = { [self] (verdict: PublishVerdict) in
            switch verdict {
            case .accept:
                let anyone = hasSubscribers(message.topic)
                // Logged and committed first when it must outlive a crash, in order
                // with this loop's other plugin publishes.
                publishInOrder(message, key: "client/" + client.clientID, writes: []) { ok in
                    completion(ok ? (anyone ? .success : .noMatchingSubscribers) : .quotaExceeded)
                }
            case .acceptWithoutRouting:
                completion(.success)
            case .refuse(let code):
                completion(code)
            }
        }
        if let verdict = decide(message, from: client, plugins: broker.plugins(providing: .decidePublish)[...],
                                later: apply)
        {
            apply(verdict)
        }
    }
}
