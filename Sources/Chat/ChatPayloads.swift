/// The chat payload readers, for the fuzz harness: each takes any bytes and
/// either reads them or refuses them; none may crash.
public enum ChatPayloads {
    /// A post body (plain text or `{"body","ckey"}`): the body's length, or nil when refused.
    public static func post(_ bytes: [UInt8], maxBody: Int = 16 * 1024) -> Int? {
        PostContent.parse(bytes[...], maxBody: maxBody).map { $0.body.utf8.count }
    }

    /// A history query: (before, after, limit), or nil when refused.
    public static func history(_ bytes: [UInt8]) -> (Int64?, Int64?, Int)? {
        HistoryQuery(bytes[...]).map { ($0.before, $0.after, $0.limit) }
    }

    /// A read receipt: the `up_to` id, or nil when refused.
    public static func receipt(_ bytes: [UInt8]) -> Int64? { ReceiptContent.parse(bytes[...]) }
}
