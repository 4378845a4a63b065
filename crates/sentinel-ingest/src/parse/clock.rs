//! Civil-time arithmetic for log timestamps: fixed-layout dates to epoch milliseconds, year inference for
//! RFC 3164 lines, and a hand-written RFC 3339 reader. It must not allocate or panic, whatever the input.

use crate::ParseCtx;
use sentinel_core::Timestamp;

const DAY_MS: i64 = 86_400_000;

/// A broken-down local time, as read from a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Civil {
    /// The instant this local time names at `offset_secs` east of UTC, if it is a real date and time.
    pub fn to_timestamp(self, offset_secs: i32) -> Option<Timestamp> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
            || self.millis > 999
            || !(0..=9999).contains(&self.year)
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(offset_secs);
        Some(Timestamp::from_millis(secs * 1000 + i64::from(self.millis)))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (proleptic Gregorian) year of a day count since 1970-01-01.
fn year_of_days(z: i64) -> i64 {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month_from_march = mp;
    yoe + era * 400 + i64::from(month_from_march >= 10)
}

/// Places a year-less local time (RFC 3164) in the latest year that puts it at most about a day after
/// `ctx.reference`: a December line read in January belongs to the previous year.
pub(crate) fn infer_year(mut c: Civil, ctx: &ParseCtx) -> Option<Timestamp> {
    let reference = ctx.reference.as_millis();
    let local_ms = reference.saturating_add(i64::from(ctx.utc_offset_secs) * 1000);
    let ref_year = year_of_days(local_ms.div_euclid(DAY_MS));
    let limit = reference.saturating_add(DAY_MS);
    // Eight years back reaches the previous 29 February whatever the reference.
    for year in (ref_year - 8..=ref_year + 1).rev() {
        c.year = year;
        if let Some(t) = c.to_timestamp(ctx.utc_offset_secs) {
            if t.as_millis() <= limit {
                return Some(t);
            }
        }
    }
    None
}

/// The month number of an English three-letter abbreviation (`Jan` … `Dec`).
pub(crate) fn month_abbr(b: &[u8]) -> Option<u32> {
    Some(match b {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// A run of 1..=9 ASCII digits as a number.
pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

/// `hh:mm:ss` at the start of `b`.
pub(crate) fn hms(b: &[u8]) -> Option<(u32, u32, u32)> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((digits(&b[0..2])?, digits(&b[3..5])?, digits(&b[6..8])?))
}

/// Milliseconds from a fraction's digits (`123456` → 123); `None` if it holds a non-digit.
pub(crate) fn fraction_millis(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut ms = 0u32;
    for i in 0..3 {
        ms = ms * 10 + b.get(i).map_or(0, |c| u32::from(c - b'0'));
    }
    Some(ms)
}

/// A `±hh:mm`, `±hhmm`, `±hh`, `Z` zone designator, as seconds east of UTC.
pub(crate) fn zone(b: &[u8]) -> Option<i32> {
    let (sign, rest) = match b.first()? {
        b'Z' | b'z' if b.len() == 1 => return Some(0),
        b'+' => (1, &b[1..]),
        b'-' => (-1, &b[1..]),
        _ => return None,
    };
    let (h, m) = match rest.len() {
        2 => (digits(rest)?, 0),
        4 => (digits(&rest[..2])?, digits(&rest[2..])?),
        5 if rest[2] == b':' => (digits(&rest[..2])?, digits(&rest[3..])?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h as i32 * 3600 + m as i32 * 60))
}

/// RFC 3339 / ISO 8601 (`2026-11-27T19:56:49.123+01:00`; `T` or a space; zone optional, then
/// `default_offset` applies).
pub(crate) fn iso(s: &str, default_offset: i32) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, minute, second) = hms(&b[11..19])?;
    let mut rest = &b[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        millis = fraction_millis(&frac[..n])?;
        rest = &frac[n..];
    }
    let offset = if rest.is_empty() {
        default_offset
    } else {
        zone(rest)?
    };
    Civil {
        year: i64::from(digits(&b[0..4])?),
        month: digits(&b[5..7])?,
        day: digits(&b[8..10])?,
        hour,
        minute,
        second,
        millis,
    }
    .to_timestamp(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(reference: &str) -> ParseCtx {
        ParseCtx {
            reference: Timestamp::parse_rfc3339(reference).unwrap(),
            utc_offset_secs: 0,
        }
    }

    #[test]
    fn civil_matches_the_time_crate() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:34:56.789Z",
            "2026-11-27T19:56:49+01:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(iso(s, 0), Some(Timestamp::parse_rfc3339(s).unwrap()), "{s}");
        }
        assert_eq!(iso("2026-02-30T00:00:00Z", 0), None);
        assert_eq!(
            iso("2026-11-27 19:56:49", 3600),
            Timestamp::parse_rfc3339("2026-11-27T18:56:49Z").ok()
        );
    }

    #[test]
    fn year_of_days_round_trips() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2026, 12, 31),
            (2027, 1, 1),
            (2024, 2, 29),
            (1969, 12, 31),
            (2000, 3, 1),
        ] {
            assert_eq!(year_of_days(days_from_civil(y, m, d)), y);
        }
    }

    #[test]
    fn december_line_in_january_is_last_year() {
        let c = Civil {
            year: 0,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            millis: 0,
        };
        let t = infer_year(c, &ctx("2027-01-01T00:10:00Z")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-31T23:59:59.000Z");
        let t = infer_year(c, &ctx("2026-12-31T23:59:59.500Z")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-31T23:59:59.000Z");
        // A January line read on 31 December belongs to the next year.
        let jan = Civil {
            month: 1,
            day: 1,
            hour: 0,
            minute: 5,
            second: 0,
            ..c
        };
        assert_eq!(
            infer_year(jan, &ctx("2026-12-31T23:50:00Z"))
                .unwrap()
                .to_rfc3339(),
            "2027-01-01T00:05:00.000Z"
        );
        let feb29 = Civil {
            month: 2,
            day: 29,
            hour: 0,
            minute: 0,
            second: 0,
            ..c
        };
        assert_eq!(
            infer_year(feb29, &ctx("2026-06-01T00:00:00Z"))
                .unwrap()
                .to_rfc3339(),
            "2024-02-29T00:00:00.000Z"
        );
    }
}
