/// RFC 5322 3.3 date-time, as the `Date` header wants it:
/// `Wed, 02 Dec 2026 00:56:19 +0000`.
public enum MailDate {
    /// `utcOffsetMinutes` is the sender's zone (east positive); the default writes UTC.
    public static func format(secondsSince1970 seconds: Int64, utcOffsetMinutes: Int = 0) -> String {
        let local = seconds + Int64(utcOffsetMinutes) * 60
        let days = (local >= 0 ? local : local - 86_399) / 86_400
        let second = Int(local - days * 86_400)
        let (year, month, day) = CivilCalendar.date(fromDays: days)
        let two = CivilCalendar.twoDigits
        let offset = abs(utcOffsetMinutes)
        return "\(CivilCalendar.dayNames[CivilCalendar.weekday(days: days)]), \(two(day)) \(CivilCalendar.monthNames[month - 1]) \(year) "
            + "\(two(second / 3600)):\(two(second / 60 % 60)):\(two(second % 60)) "
            + "\(utcOffsetMinutes < 0 ? "-" : "+")\(two(offset / 60))\(two(offset % 60))"
    }
}
