// TEMPORARY until the transports land.
extension NotifyPlugin {
    static func mailTransport(_ s: NotifySettings) -> (any MailSending)? { nil }
    static func webTransport(_ s: NotifySettings) -> any WebSending { NoWeb() }
}
struct NoWeb: WebSending {
    func send(_ request: HTTPClientRequest, to url: String) -> Result<HTTPClientResponse, any Error> { .failure(StoreErrorish()) }
}
struct StoreErrorish: Error {}
