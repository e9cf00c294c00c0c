/// `Retry-After` (RFC 9110 10.2.3): delay-seconds, or an HTTP-date in any of the
/// three forms a recipient must read (5.6.7): IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and
/// asctime `Sun Nov  6 08:49:37 1994`.
public enum HTTPRetryAfter {
    /// Seconds to wait from `now`: 0 for a date already past, nil for a value that is neither form.
    public static func seconds(_ value: String, now: Int64) -> Int64? {
        let text = value.trimmingHTTPWhitespace()
        if !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) { return Int64(text) }
        guard let date = httpDate(text, now: now) else { return nil }
        return max(0, date - now)
    }

    /// An HTTP-date as seconds since 1970, or nil.
    public static func httpDate(_ text: String, now: Int64) -> Int64? {
        let words = text.split(separator: " ").map(String.init)
        let longDays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        switch words.count {
        case 6:  // IMF-fixdate
            guard CivilCalendar.dayNames.contains(where: { $0 + "," == words[0] }), words[1].count == 2, words[5] == "GMT" else { return nil }
            return compose(day: words[1], month: words[2], year: words[3], yearDigits: 4, time: words[4])
        case 4:  // RFC 850
            guard longDays.contains(where: { $0 + "," == words[0] }), words[3] == "GMT" else { return nil }
            let parts = words[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, parts[0].count == 2, parts[2].count == 2, let yy = Int64(parts[2]) else { return nil }
            // A two-digit year more than 50 years ahead means the century before (5.6.7).
            let thisYear = CivilCalendar.date(fromDays: now / 86_400).year
            var year = thisYear - thisYear % 100 + yy
            if year > thisYear + 50 { year -= 100 }
            return compose(day: parts[0], month: parts[1], year: String(year), yearDigits: 4, time: words[2])
        case 5:  // asctime: the day of month is padded with a space, which split dropped
            guard CivilCalendar.dayNames.contains(words[0]), (1...2).contains(words[2].count) else { return nil }
            guard text.utf8.count == 24 else { return nil }
            return compose(day: words[2], month: words[1], year: words[4], yearDigits: 4, time: words[3])
        default:
            return nil
        }
    }

    private static func compose(day: String, month: String, year: String, yearDigits: Int, time: String) -> Int64? {
        guard year.count == yearDigits, let y = digits(year), let d = digits(day),
              let m = CivilCalendar.monthNames.firstIndex(of: month).map({ $0 + 1 }),
              (1...CivilCalendar.daysInMonth(year: y, month: m)).contains(Int(d))
        else { return nil }
        let hms = time.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard hms.count == 3, hms.allSatisfy({ $0.count == 2 }), let h = digits(hms[0]), let mi = digits(hms[1]), let s = digits(hms[2]),
              h < 24, mi < 60, s <= 60
        else { return nil }
        return CivilCalendar.days(year: y, month: m, day: Int(d)) * 86_400 + h * 3600 + mi * 60 + s
    }

    private static func digits(_ s: String) -> Int64? {
        guard !s.isEmpty, s.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int64(s)
    }
}
