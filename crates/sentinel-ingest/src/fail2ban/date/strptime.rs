//! fail2ban's strptime dialect: the `%` directives a date pattern may use (Python's, plus fail2ban's `%k`, `%l`
//! and the stricter `%Ex…` forms) turned into regex groups, and the matched groups turned back into a time.
//!
//! The regex bodies follow fail2ban 1.0.2 (`server/strptime.py`) so that the same text matches; an unknown
//! directive is a load error, as it is for fail2ban. Nothing here runs a regex or knows about templates.

use super::zones::zone_offset_secs;
use sentinel_core::Timestamp;
use time::{Date, Duration, Month, PrimitiveDateTime, Time};

/// What a named group of a date regex holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    /// `%Y`: four-digit year.
    Year,
    /// `%y`: two-digit year (20xx).
    Year2,
    /// `%m`: month number.
    Month,
    /// `%b`/`%h`: abbreviated month name.
    MonthAbbr,
    /// `%B`: full month name.
    MonthName,
    /// `%d`: day of month.
    Day,
    /// `%H`: hour 0-23.
    Hour,
    /// `%I`: hour 1-12.
    Hour12,
    /// `%M`: minute.
    Minute,
    /// `%S`: second.
    Second,
    /// `%f`: fraction of a second.
    Fraction,
    /// `%p`: AM/PM.
    AmPm,
    /// `%z`: numeric offset (or `Z`, `UTC`, `GMT`, an abbreviation with an offset).
    Offset,
    /// `%Z`: zone abbreviation.
    ZoneName,
    /// `%j`: day of the year.
    YearDay,
    /// `%a`/`%A`: weekday name (used with a week number only).
    WeekdayName,
    /// `%w`: weekday number, 0 = Sunday.
    WeekdayNum,
    /// `%U`: week of the year, weeks starting on Sunday.
    WeekSun,
    /// `%W`: week of the year, weeks starting on Monday.
    WeekMon,
    /// ISO week directives: matched, not used for the date (as in fail2ban).
    Ignored,
    /// Seconds since the epoch, optionally with a fraction (`EPOCH`).
    Epoch,
    /// Seconds, milliseconds or microseconds since the epoch (`LEPOCH`).
    LongEpoch,
    /// A TAI64N label (`@4000…`).
    Tai64n,
}

impl Field {
    /// The field a group name stands for: fail2ban's names (`Y`, `m`, …, as a user may write them) or the
    /// names this module generates (`Y__3`).
    pub(super) fn from_group_name(name: &str) -> Option<Field> {
        let key = name.split_once("__").map_or(name, |(k, _)| k);
        Some(match key {
            "Y" => Field::Year,
            "y" => Field::Year2,
            "m" => Field::Month,
            "b" => Field::MonthAbbr,
            "B" => Field::MonthName,
            "d" => Field::Day,
            "H" => Field::Hour,
            "I" => Field::Hour12,
            "M" => Field::Minute,
            "S" => Field::Second,
            "f" => Field::Fraction,
            "p" => Field::AmPm,
            "z" => Field::Offset,
            "Z" => Field::ZoneName,
            "j" => Field::YearDay,
            "a" | "A" => Field::WeekdayName,
            "w" => Field::WeekdayNum,
            "U" => Field::WeekSun,
            "W" => Field::WeekMon,
            "u" | "V" | "G" => Field::Ignored,
            "epoch" => Field::Epoch,
            "lepoch" => Field::LongEpoch,
            "tai" => Field::Tai64n,
            _ => return None,
        })
    }
}

const TZ_ABBR: &str = r"[A-Z](?:[A-Z]{2,4})?";

/// Turns the `%` directives of a date pattern into named groups; everything else is copied as is.
#[derive(Debug)]
pub(super) struct Expander {
    /// The century part of `%ExY`, e.g. `20[0-2]`.
    century: String,
    next_group: usize,
}

/// A pattern with its directives expanded.
#[derive(Debug)]
pub(super) struct Expanded {
    /// Python-syntax regex text.
    pub text: String,
    /// Whether the pattern names months, days or AM/PM (fail2ban then matches case-insensitively).
    pub alpha: bool,
}

impl Expander {
    /// `%ExY` accepts the decades from 2000 to three years after `current_year`, as fail2ban does.
    pub(super) fn new(current_year: i32) -> Self {
        let last = (current_year.clamp(2000, 9996) + 3) / 10;
        let decades: Vec<i32> = (200..=last).collect();
        // ASCII digits throughout: Unicode `\d` would multiply the automaton's states for nothing.
        let century = match decades.as_slice() {
            [only] => only.to_string(),
            _ if last < 210 => format!("20[0-{}]", last - 200),
            _ => format!(
                "(?:{})",
                decades
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join("|")
            ),
        };
        Self {
            century,
            next_group: 0,
        }
    }

    fn group(&mut self, field: &str, body: &str, out: &mut String) {
        out.push_str(&format!("(?P<{field}__{}>{body})", self.next_group));
        self.next_group += 1;
    }

    /// Expands every directive of `pattern`; an unknown one (or a lone `%`) is an error naming it.
    pub(super) fn expand(&mut self, pattern: &str) -> Result<Expanded, String> {
        let mut out = String::with_capacity(pattern.len() * 4);
        let mut alpha = false;
        let mut rest = pattern;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (key, len) = if let Some(ex) = after.strip_prefix("Ex") {
                match ex.chars().next() {
                    Some(c @ ('Z' | 'z' | 'd' | 'm' | 'H' | 'k' | 'l' | 'M' | 'S' | 'Y' | 'y')) => {
                        (Some(('E', c)), 3)
                    }
                    _ => (None, 0),
                }
            } else {
                match after.chars().next() {
                    Some(c) => (Some((' ', c)), c.len_utf8()),
                    None => (None, 0),
                }
            };
            let Some((ex, c)) = key else {
                return Err(format!(
                    "unsupported directive {:?} in datepattern (or an unescaped %)",
                    rest[at..].chars().take(4).collect::<String>()
                ));
            };
            if ex == ' ' && matches!(c, 'a' | 'A' | 'b' | 'B' | 'p' | 'c') {
                alpha = true;
            }
            self.directive(ex == 'E', c, &mut out).map_err(|()| {
                format!(
                    "unsupported directive %{}{c} in datepattern",
                    if ex == 'E' { "Ex" } else { "" }
                )
            })?;
            rest = &after[len..];
        }
        out.push_str(rest);
        Ok(Expanded { text: out, alpha })
    }

    fn directive(&mut self, ex: bool, c: char, out: &mut String) -> Result<(), ()> {
        const MONTHS: &str = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec";
        const MONTH_NAMES: &str =
            "september|february|november|december|january|october|august|march|april|june|july|may";
        const DAYS: &str = "mon|tue|wed|thu|fri|sat|sun";
        const DAY_NAMES: &str = "wednesday|thursday|saturday|tuesday|monday|friday|sunday";
        if ex {
            match c {
                'Z' => self.group("Z", TZ_ABBR, out),
                'z' => self.group(
                    "z",
                    &format!(r"(?:{TZ_ABBR})?[+-][01][0-9](?::?[0-9]{{2}})?|{TZ_ABBR}"),
                    out,
                ),
                'd' => self.group("d", r"[1-2][0-9]|0[1-9]|3[0-1]", out),
                'm' => self.group("m", r"0[1-9]|1[0-2]", out),
                'H' => self.group("H", r"[0-1][0-9]|2[0-3]", out),
                'k' => {
                    out.push_str(" ?");
                    self.group("H", r"[0-1]?[0-9]|2[0-3]", out);
                }
                'l' => {
                    out.push_str(" ?");
                    self.group("I", r"1[0-2]|[0-9]", out);
                }
                'M' => self.group("M", r"[0-5][0-9]", out),
                'S' => self.group("S", r"[0-5][0-9]|6[0-1]", out),
                'Y' => {
                    let body = format!(r"{}[0-9]", self.century);
                    self.group("Y", &body, out);
                }
                'y' => self.group("y", r"[0-9]{2}", out),
                _ => return Err(()),
            }
            return Ok(());
        }
        match c {
            '%' => out.push('%'),
            'd' => self.group("d", r"[1-2][0-9]|[0 ]?[1-9]|3[0-1]", out),
            'm' => self.group("m", r"0?[1-9]|1[0-2]", out),
            'Y' => self.group("Y", r"[0-9]{4}", out),
            'y' => self.group("y", r"[0-9][0-9]", out),
            'H' => self.group("H", r"[0-1]?[0-9]|2[0-3]", out),
            'M' => self.group("M", r"[0-5]?[0-9]", out),
            'S' => self.group("S", r"[0-5]?[0-9]|6[0-1]", out),
            'k' => {
                out.push_str(" ?");
                self.group("H", r"[0-2]?[0-9]", out);
            }
            'l' => {
                out.push_str(" ?");
                self.group("I", r"1?[0-9]", out);
            }
            'I' => self.group("I", r"1[0-2]|0[1-9]|[1-9]", out),
            'f' => self.group("f", r"[0-9]{1,6}", out),
            'p' => self.group("p", "am|pm", out),
            'b' => self.group("b", MONTHS, out),
            'B' => self.group("B", MONTH_NAMES, out),
            'a' => self.group("a", DAYS, out),
            'A' => self.group("A", DAY_NAMES, out),
            'j' => self.group(
                "j",
                r"36[0-6]|3[0-5][0-9]|[1-2][0-9][0-9]|0[1-9][0-9]|00[1-9]|[1-9][0-9]|0[1-9]|[1-9]",
                out,
            ),
            'U' | 'W' => self.group(&c.to_string(), r"5[0-3]|[0-4][0-9]|[0-9]", out),
            'V' => self.group("V", r"5[0-3]|0[1-9]|[1-4][0-9]|[0-9]", out),
            'G' => self.group("G", r"[0-9][0-9][0-9][0-9]", out),
            'u' => self.group("u", "[1-7]", out),
            'w' => self.group("w", "[0-6]", out),
            'z' => self.group("z", r"Z|UTC|GMT|[+-][01][0-9](?::?[0-9]{2})?", out),
            'Z' => self.group("Z", r"Z|[A-Z]{3,5}", out),
            // Python's C-locale composites.
            'c' => {
                for (i, d) in ['a', 'b', 'd'].into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(r"\s+");
                    }
                    self.directive(false, d, out)?;
                }
                out.push_str(r"\s+");
                self.directive(false, 'X', out)?;
                out.push_str(r"\s+");
                self.directive(false, 'Y', out)?;
            }
            'x' => {
                self.directive(false, 'm', out)?;
                out.push('/');
                self.directive(false, 'd', out)?;
                out.push('/');
                self.directive(false, 'y', out)?;
            }
            'X' => {
                self.directive(false, 'H', out)?;
                out.push(':');
                self.directive(false, 'M', out)?;
                out.push(':');
                self.directive(false, 'S', out)?;
            }
            _ => return Err(()),
        }
        Ok(())
    }
}

/// What a line's date fields resolve against: the reference "now" (for a missing year or day) and the offset of
/// dates without a zone.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resolve {
    /// "Now" in milliseconds since the epoch.
    pub now_ms: i64,
    /// Seconds east of UTC for dates without a zone.
    pub default_offset: i32,
}

/// The values a match gave, before they make a time.
#[derive(Debug, Default)]
pub(super) struct Fields<'a> {
    year: Option<&'a str>,
    year2: Option<&'a str>,
    month: Option<&'a str>,
    month_abbr: Option<&'a str>,
    month_name: Option<&'a str>,
    day: Option<&'a str>,
    hour: Option<&'a str>,
    hour12: Option<&'a str>,
    minute: Option<&'a str>,
    second: Option<&'a str>,
    fraction: Option<&'a str>,
    ampm: Option<&'a str>,
    offset: Option<&'a str>,
    zone: Option<&'a str>,
    year_day: Option<&'a str>,
    weekday_name: Option<&'a str>,
    weekday_num: Option<&'a str>,
    week_sun: Option<&'a str>,
    week_mon: Option<&'a str>,
    epoch: Option<&'a str>,
    long_epoch: Option<&'a str>,
    tai: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// Records a group's value; the first participating group of a kind wins.
    pub(super) fn set(&mut self, field: Field, value: &'a str) {
        let slot = match field {
            Field::Year => &mut self.year,
            Field::Year2 => &mut self.year2,
            Field::Month => &mut self.month,
            Field::MonthAbbr => &mut self.month_abbr,
            Field::MonthName => &mut self.month_name,
            Field::Day => &mut self.day,
            Field::Hour => &mut self.hour,
            Field::Hour12 => &mut self.hour12,
            Field::Minute => &mut self.minute,
            Field::Second => &mut self.second,
            Field::Fraction => &mut self.fraction,
            Field::AmPm => &mut self.ampm,
            Field::Offset => &mut self.offset,
            Field::ZoneName => &mut self.zone,
            Field::YearDay => &mut self.year_day,
            Field::WeekdayName => &mut self.weekday_name,
            Field::WeekdayNum => &mut self.weekday_num,
            Field::WeekSun => &mut self.week_sun,
            Field::WeekMon => &mut self.week_mon,
            Field::Epoch => &mut self.epoch,
            Field::LongEpoch => &mut self.long_epoch,
            Field::Tai64n => &mut self.tai,
            Field::Ignored => return,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }

    /// The time the fields give, or `None` when they do not make a valid date (fail2ban then logs the line
    /// as having an unparsable time).
    pub(super) fn resolve(&self, r: Resolve) -> Option<Timestamp> {
        if let Some(e) = self.epoch {
            return epoch_millis(e, false).map(Timestamp::from_millis);
        }
        if let Some(e) = self.long_epoch {
            return epoch_millis(e, true).map(Timestamp::from_millis);
        }
        if let Some(t) = self.tai {
            let secs = i64::from_str_radix(t.get(2..17)?, 16).ok()?;
            return Some(Timestamp::from_millis(secs.checked_mul(1000)?));
        }
        let num = |v: Option<&str>| v.and_then(|v| v.trim().parse::<i64>().ok());
        let zone = match (self.offset, self.zone) {
            (Some(z), _) | (None, Some(z)) => Some(zone_offset_secs(z)?),
            (None, None) => None,
        };
        let offset = i64::from(zone.unwrap_or(r.default_offset));
        // "now" as a local wall-clock time in the same offset, for the parts the line lacks.
        let now_local = PrimitiveDateTime::new(
            Date::from_calendar_date(1970, Month::January, 1).ok()?,
            Time::MIDNIGHT,
        )
        .checked_add(Duration::milliseconds(r.now_ms.checked_add(offset * 1000)?))?;
        let mut year = match (num(self.year), num(self.year2)) {
            (Some(y), _) => Some(y),
            (None, Some(y)) => Some(if y <= 2000 { y + 2000 } else { y }),
            (None, None) => None,
        };
        let assume_year = year.is_none();
        let y = year.get_or_insert(i64::from(now_local.year()));
        let mut month = match (num(self.month), self.month_abbr, self.month_name) {
            (Some(m), _, _) => Some(u8::try_from(m).ok()?),
            (None, Some(b), _) => Some(month_index(b)?),
            (None, None, Some(b)) => Some(month_index(b)?),
            (None, None, None) => None,
        };
        let mut day = num(self.day).map(u8::try_from).transpose().ok()?;
        if month.is_none() || day.is_none() {
            let julian =
                num(self.year_day).or_else(|| self.julian_from_week(i32::try_from(*y).ok()?));
            if let Some(j) = julian {
                let date = Date::from_ordinal_date(i32::try_from(*y).ok()?, u16::try_from(j).ok()?)
                    .ok()?;
                month = Some(u8::from(date.month()));
                day = Some(date.day());
            }
        }
        let assume_today = month.is_none() && day.is_none();
        let (month, day) = match (month, day) {
            (Some(m), Some(d)) => (m, d),
            (None, None) => (u8::from(now_local.month()), now_local.day()),
            // A month without a day (or the reverse) is not a date.
            _ => return None,
        };
        let mut hour = num(self.hour).unwrap_or(0);
        if let Some(h) = num(self.hour12) {
            let pm = self.ampm.is_some_and(|p| p.eq_ignore_ascii_case("pm"));
            hour = match (h, pm) {
                (12, false) => 0,
                (12, true) => 12,
                (h, true) => h + 12,
                (h, false) => h,
            };
        }
        let millis = self.fraction.map_or(Some(0), |f| {
            let digits: String = f.chars().chain("000".chars()).take(3).collect();
            digits.parse::<u16>().ok()
        })?;
        let time = Time::from_hms_milli(
            u8::try_from(hour).ok()?,
            u8::try_from(num(self.minute).unwrap_or(0)).ok()?,
            u8::try_from(num(self.second).unwrap_or(0)).ok()?,
            millis,
        )
        .ok()?;
        let instant = |year: i64| -> Option<i64> {
            // Python's datetime: years 1 to 9999.
            if !(1..=9999).contains(&year) {
                return None;
            }
            let date = Date::from_calendar_date(
                i32::try_from(year).ok()?,
                Month::try_from(month).ok()?,
                day,
            )
            .ok()?;
            let local = PrimitiveDateTime::new(date, time)
                .assume_utc()
                .unix_timestamp();
            Some(local.checked_sub(offset)?.checked_mul(1000)? + i64::from(millis))
        };
        let mut ms = instant(*y)?;
        let day_ms = 86_400_000;
        if assume_today && ms > r.now_ms {
            ms -= day_ms;
        }
        if assume_year && ms > r.now_ms.saturating_add(day_ms) {
            // fail2ban: a year-less date more than a day ahead of "now" is last year's.
            ms = instant(*y - 1)?;
        }
        Some(Timestamp::from_millis(ms))
    }
}

impl Fields<'_> {
    /// Day of the year from a week number and a weekday (`%U`/`%W` with `%a`/`%A`/`%w`), as Python computes it.
    fn julian_from_week(&self, year: i32) -> Option<i64> {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let (week, monday_first) = match (self.week_sun, self.week_mon) {
            (_, Some(w)) => (w, true),
            (Some(w), None) => (w, false),
            (None, None) => return None,
        };
        let week: i64 = week.parse().ok()?;
        // Monday = 0 … Sunday = 6.
        let mut weekday: i64 = match (self.weekday_name, self.weekday_num) {
            (Some(n), _) => i64::try_from(
                DAYS.iter()
                    .position(|d| n.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(d)))?,
            )
            .ok()?,
            (None, Some(w)) => (w.parse::<i64>().ok()? + 6) % 7,
            (None, None) => return None,
        };
        let mut first = i64::from(
            Date::from_calendar_date(year, Month::January, 1)
                .ok()?
                .weekday()
                .number_days_from_monday(),
        );
        if !monday_first {
            first = (first + 1) % 7;
            weekday = (weekday + 1) % 7;
        }
        let week0 = (7 - first) % 7;
        Some(if week == 0 {
            1 + weekday - first
        } else {
            1 + week0 + 7 * (week - 1) + weekday
        })
    }
}

/// `EPOCH` (`1234567890`, `1234567890.123`) and `LEPOCH` (also milliseconds and microseconds) values.
fn epoch_millis(v: &str, long: bool) -> Option<i64> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let mut int: i64 = int.parse().ok()?;
    let mut frac_ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    if long && v.len() >= 13 {
        if v.len() >= 16 && frac.is_empty() {
            // Microseconds.
            frac_ms = (int % 1_000_000) / 1000;
            int /= 1_000_000;
        } else {
            // Milliseconds (a fraction, if any, is of a millisecond).
            frac_ms = int % 1000;
            int /= 1000;
        }
    }
    int.checked_mul(1000)?.checked_add(frac_ms)
}

fn month_index(name: &str) -> Option<u8> {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let p = name.get(..3)?.to_ascii_lowercase();
    let i = NAMES.iter().position(|m| *m == p)?;
    u8::try_from(i + 1).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(now: &str, offset: i32) -> Resolve {
        Resolve {
            now_ms: Timestamp::parse_rfc3339(now).unwrap().as_millis(),
            default_offset: offset,
        }
    }

    #[test]
    fn unknown_directives_are_errors() {
        let mut e = Expander::new(2026);
        assert!(e.expand("%Y-%q").unwrap_err().contains("%q"));
        assert!(e.expand("%Exb").unwrap_err().contains("%Ex"));
        assert!(e.expand("100%").is_err());
        assert_eq!(e.expand("%%").unwrap().text, "%");
        assert!(e.expand("%b").unwrap().alpha);
    }

    #[test]
    fn century_of_exy() {
        assert_eq!(Expander::new(2026).century, "20[0-2]");
        assert_eq!(Expander::new(2005).century, "200");
        assert_eq!(
            Expander::new(2107).century,
            "(?:200|201|202|203|204|205|206|207|208|209|210|211)"
        );
    }

    #[test]
    fn missing_year_and_day_follow_fail2ban() {
        let now = at("2005-08-14T10:00:00Z", 0);
        let mut f = Fields::default();
        f.set(Field::MonthAbbr, "Dec");
        f.set(Field::Day, "31");
        f.set(Field::Hour, "23");
        assert_eq!(
            f.resolve(now).unwrap().to_rfc3339(),
            "2004-12-31T23:00:00.000Z"
        );
        let mut f = Fields::default();
        f.set(Field::MonthAbbr, "Aug");
        f.set(Field::Day, "15");
        f.set(Field::Hour, "9");
        // Within a day ahead: kept in this year (clock skew).
        assert_eq!(
            f.resolve(now).unwrap().to_rfc3339(),
            "2005-08-15T09:00:00.000Z"
        );
        let mut f = Fields::default();
        f.set(Field::Hour, "11");
        assert_eq!(
            f.resolve(now).unwrap().to_rfc3339(),
            "2005-08-13T11:00:00.000Z"
        );
        let mut f = Fields::default();
        f.set(Field::Hour12, "12");
        f.set(Field::AmPm, "AM");
        f.set(Field::Year, "2020");
        f.set(Field::YearDay, "60");
        assert_eq!(
            f.resolve(now).unwrap().to_rfc3339(),
            "2020-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn epochs() {
        assert_eq!(epoch_millis("1138049999", false), Some(1_138_049_999_000));
        assert_eq!(
            epoch_millis("1138049999.123", false),
            Some(1_138_049_999_123)
        );
        assert_eq!(epoch_millis("1138049999123", true), Some(1_138_049_999_123));
        assert_eq!(
            epoch_millis("1138049999123456", true),
            Some(1_138_049_999_123)
        );
        assert_eq!(
            epoch_millis("1138049999123.456", true),
            Some(1_138_049_999_123)
        );
    }
}
