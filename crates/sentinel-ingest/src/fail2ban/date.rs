//! fail2ban's `datepattern`: finding the line's time, turning it into a [`Timestamp`], and telling the caller
//! which span to cut out of the line before the failregexes run (fail2ban matches the line without its date).
//!
//! Supported: strftime-style patterns (`%b %d %H:%M:%S`, `%Y-%m-%d`, `%ExY`, `%f`, `%z`, …) mixed with regex
//! text, `{^LN-BEG}` (anchored at line start, after at most two non-word characters), `{UNB}`, `{DATE}` (the
//! default formats inside a pattern), `Epoch`, `ISO8601`. Default: syslog, ISO 8601, Apache/CLF, `Y/m/d` and
//! epoch at line start. Lines without a year get the one that puts them closest before `ParseCtx.reference`.

use super::pyregex::{self, Compiled};
use crate::ParseCtx;
use sentinel_core::Timestamp;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

const LN_BEG: &str = r"^\W{0,2}";
const DEFAULTS: [&str; 4] = [
    r"%Y-%m-%d(?:T| +)%H:%M:%S(?:[.,]%f)?(?: ?%z)?",
    r"(?:%a )?%b +%d %H:%M:%S(?:\.%f)?(?: %Y)?",
    r"%d/%b/%Y:%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%Y/%m/%d %H:%M:%S",
];
const EPOCH: &str = r"(?P<s>\d{10,11})(?:\.(?P<f>\d{1,6}))?\b";

/// The compiled `datepattern` lines, tried in order.
#[derive(Debug)]
pub(crate) struct DateMatcher {
    templates: Vec<Compiled>,
}

/// A found date: the span to remove and the time, if the fields make one.
#[derive(Debug, PartialEq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub ts: Option<Timestamp>,
}

impl DateMatcher {
    /// Builds from a `datepattern` value (one pattern per line), or the defaults when `None`/empty.
    pub(crate) fn new(datepattern: Option<&str>) -> Result<Self, String> {
        let mut templates = Vec::new();
        let lines: Vec<&str> = datepattern
            .map(|d| d.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
            .unwrap_or_default();
        if lines.is_empty() {
            defaults(LN_BEG, "", "", &mut templates)?;
        }
        for line in lines {
            match line {
                "Epoch" | "EPOCH" => templates.push(compile(&format!(
                    r"(?:^\W{{0,2}}|audit\()(?P<date>{EPOCH})"
                ))?),
                "ISO8601" => templates.push(compile(&format!(
                    r"\b(?P<date>{})",
                    strftime(DEFAULTS[0])?
                ))?),
                "TAI64N" => return Err("unsupported datepattern TAI64N".into()),
                _ => {
                    let (anchor, body) = if let Some(b) = line.strip_prefix("{^LN-BEG}") {
                        (LN_BEG, b)
                    } else if let Some(b) = line.strip_prefix("{UNB}") {
                        ("", b)
                    } else {
                        ("", line)
                    };
                    let body = body.replace("{*WD-BEG}", r"\b").replace("{*WD-END}", r"\b");
                    if let Some((pre, post)) = body.split_once("{DATE}") {
                        defaults(anchor, pre, post, &mut templates)?;
                    } else if body.is_empty() {
                        defaults(anchor, "", "", &mut templates)?;
                    } else {
                        templates
                            .push(compile(&format!("{anchor}(?P<date>{})", strftime(&body)?))?);
                    }
                }
            }
        }
        Ok(Self { templates })
    }

    /// The first template that finds a date in `line`.
    pub(crate) fn find(&self, line: &str, ctx: &ParseCtx) -> Option<Found> {
        for t in &self.templates {
            let Ok(Some(hit)) = t.find(line) else {
                continue;
            };
            let field = |name: &str| {
                let i = t.groups.iter().position(|(n, _)| n == name)?;
                let (s, e) = hit.spans.get(i).copied().flatten()?;
                line.get(s..e)
            };
            let (start, end) = field("date")
                .and_then(|_| t.groups.iter().position(|(n, _)| n == "date"))
                .and_then(|i| hit.spans.get(i).copied().flatten())
                .unwrap_or((hit.start, hit.end));
            return Some(Found {
                start,
                end,
                ts: compose(&field, ctx),
            });
        }
        None
    }
}

fn compile(py: &str) -> Result<Compiled, String> {
    pyregex::compile(py).map_err(|e| format!("datepattern {py:?}: {e}"))
}

fn defaults(anchor: &str, pre: &str, post: &str, out: &mut Vec<Compiled>) -> Result<(), String> {
    for d in DEFAULTS {
        out.push(compile(&format!(
            "{anchor}{pre}(?P<date>{}){post}",
            strftime(d)?
        ))?);
    }
    out.push(compile(&format!("{anchor}{pre}(?P<date>{EPOCH}){post}"))?);
    Ok(())
}

/// Replaces strftime directives by regex groups; the rest of the text is regex already.
fn strftime(pattern: &str) -> Result<String, String> {
    const MONTHS: &str = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec";
    const FULL_MONTHS: &str =
        "january|february|march|april|may|june|july|august|september|october|november|december";
    let mut out = String::with_capacity(pattern.len() * 4);
    let mut used: Vec<&str> = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut d = it.next().ok_or("datepattern ends with a lone %")?;
        if d == 'E' && it.peek() == Some(&'x') {
            it.next();
            d = it.next().ok_or("datepattern ends with %Ex")?;
        }
        let (name, body) = match d {
            '%' => {
                out.push('%');
                continue;
            }
            'Y' => ("Y", r"\d{4}"),
            'y' => ("y", r"\d{2}"),
            'm' => ("m", r"1[0-2]|0[1-9]|[1-9]"),
            'd' | 'e' => ("d", r"3[01]|[12]\d|0[1-9]| ?[1-9]"),
            'H' | 'k' => ("H", r"2[0-3]|[01]\d| ?\d"),
            'I' | 'l' => ("I", r"1[0-2]|0[1-9]| ?[1-9]"),
            'M' => ("M", r"[0-5]\d"),
            'S' => ("S", r"6[01]|[0-5]\d"),
            'f' => ("f", r"\d{1,9}"),
            'b' | 'h' => ("b", MONTHS),
            'B' => ("b", FULL_MONTHS),
            'a' => ("", "mon|tue|wed|thu|fri|sat|sun"),
            'A' => (
                "",
                "monday|tuesday|wednesday|thursday|friday|saturday|sunday",
            ),
            'p' => ("p", "am|pm"),
            'z' => ("z", r"Z|[+-]\d{2}(?::?\d{2})?"),
            'Z' => ("Z", r"[A-Z]{2,5}"),
            's' => ("s", r"\d{1,11}"),
            other => {
                return Err(format!(
                    "unsupported strftime directive %{other} in datepattern"
                ))
            }
        };
        let ci = if matches!(d, 'b' | 'h' | 'B' | 'a' | 'A' | 'p') {
            "(?i)"
        } else {
            ""
        };
        if name.is_empty() || used.contains(&name) {
            out.push_str(&format!("(?:{ci}{body})"));
        } else {
            used.push(name);
            out.push_str(&format!("(?P<{name}>{ci}{body})"));
        }
    }
    Ok(out)
}

/// Builds the time from the matched fields; `None` when they do not make a valid date.
fn compose<'a>(field: &dyn Fn(&str) -> Option<&'a str>, ctx: &ParseCtx) -> Option<Timestamp> {
    let num = |n: &str| field(n).and_then(|v| v.trim().parse::<i64>().ok());
    let millis = field("f").map(|f| {
        let mut digits: String = f.chars().take(3).collect();
        while digits.len() < 3 {
            digits.push('0');
        }
        digits.parse::<i64>().unwrap_or(0)
    });
    if let Some(s) = num("s") {
        return Some(Timestamp::from_millis(
            s.checked_mul(1000)?.checked_add(millis.unwrap_or(0))?,
        ));
    }
    let month = match num("m") {
        Some(m) => Month::try_from(u8::try_from(m).ok()?).ok()?,
        None => month_name(field("b")?)?,
    };
    let day = u8::try_from(num("d")?).ok()?;
    let mut hour = num("H");
    if hour.is_none() {
        let h12 = num("I")? % 12;
        let pm = field("p").is_some_and(|p| p.eq_ignore_ascii_case("pm"));
        hour = Some(h12 + if pm { 12 } else { 0 });
    }
    let time = Time::from_hms_milli(
        u8::try_from(hour?).ok()?,
        u8::try_from(num("M")?).ok()?,
        u8::try_from(num("S").unwrap_or(0).min(59)).ok()?,
        u16::try_from(millis.unwrap_or(0)).ok()?,
    )
    .ok()?;
    let offset = match (field("z"), field("Z")) {
        (Some(z), _) => parse_offset(z)?,
        (None, Some("UTC" | "GMT" | "Z")) => 0,
        _ => ctx.utc_offset_secs,
    };
    let offset = UtcOffset::from_whole_seconds(offset).ok()?;
    let at = |year: i32| -> Option<i64> {
        let date = Date::from_calendar_date(year, month, day).ok()?;
        let dt = PrimitiveDateTime::new(date, time).assume_offset(offset);
        i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
    };
    let year = num("Y").or_else(|| num("y").map(|y| 2000 + y));
    let ms = match year {
        Some(y) => at(i32::try_from(y).ok()?)?,
        None => {
            // Syslog convention: the year that puts the line closest before the reference (a day of clock skew
            // allowed), e.g. "Dec 31" read on Jan 1 is last year's.
            let reference = ctx.reference.as_millis();
            let ref_year = time::OffsetDateTime::from_unix_timestamp(reference.div_euclid(1000))
                .ok()?
                .to_offset(offset)
                .year();
            [ref_year, ref_year - 1, ref_year - 4]
                .into_iter()
                .filter_map(at)
                .find(|ms| *ms <= reference.saturating_add(86_400_000))?
        }
    };
    Some(Timestamp::from_millis(ms))
}

fn month_name(s: &str) -> Option<Month> {
    let p = s.get(..3)?.to_ascii_lowercase();
    let i = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| *m == p)?;
    Month::try_from(u8::try_from(i + 1).ok()?).ok()
}

/// `Z`, `+hh`, `+hhmm`, `+hh:mm` → seconds east of UTC.
fn parse_offset(z: &str) -> Option<i32> {
    if z == "Z" {
        return Some(0);
    }
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let digits: String = z.chars().filter(char::is_ascii_digit).collect();
    let h: i32 = digits.get(..2)?.parse().ok()?;
    let m: i32 = digits.get(2..4).map_or(Some(0), |m| m.parse().ok())?;
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseCtx {
        ParseCtx {
            reference: Timestamp::parse_rfc3339("2024-03-10T00:00:00Z").unwrap(),
            utc_offset_secs: 0,
        }
    }

    #[test]
    fn syslog_year_is_inferred_and_span_cut() {
        let d = DateMatcher::new(Some("{^LN-BEG}")).unwrap();
        let line = "Mar  9 12:00:01 host sshd[1]: x";
        let f = d.find(line, &ctx()).unwrap();
        assert_eq!(&line[f.end..], " host sshd[1]: x");
        assert_eq!(f.ts.unwrap().to_rfc3339(), "2024-03-09T12:00:01.000Z");
        let dec = d.find("Dec 31 23:59:59 h x", &ctx()).unwrap();
        assert_eq!(dec.ts.unwrap().to_rfc3339(), "2023-12-31T23:59:59.000Z");
    }

    #[test]
    fn custom_and_special_patterns() {
        let d = DateMatcher::new(Some("^\\[%d/%b/%Y %H:%M:%S\\]")).unwrap();
        let f = d.find("[05/Jan/2024 10:00:00] x", &ctx()).unwrap();
        assert_eq!(f.ts.unwrap().to_rfc3339(), "2024-01-05T10:00:00.000Z");
        let e = DateMatcher::new(Some("Epoch")).unwrap();
        assert_eq!(
            e.find("1700000000.5 x", &ctx()).unwrap().ts,
            Some(Timestamp::from_millis(1_700_000_000_500))
        );
        let iso = DateMatcher::new(None).unwrap();
        let f = iso.find("2024-03-01T10:00:00+01:00 x", &ctx()).unwrap();
        assert_eq!(f.ts.unwrap().to_rfc3339(), "2024-03-01T09:00:00.000Z");
        assert!(DateMatcher::new(Some("%j")).unwrap_err().contains("%j"));
    }
}
