/// The notification bridge plugin (SPEC section 5): a durable outbox of
/// notifications for members who did not see a message, delivered by e-mail
/// (SMTP), webhooks, ntfy and Web Push on worker threads. This module holds its
/// protocol pieces first: each is pure (bytes in, bytes out) and tested alone.
public enum Notify {
    public static let pluginName = "notify"
}
