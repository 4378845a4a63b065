//! fail2ban's own sample logs against Sentinel's date detector: for every `# failJSON` line stating a `time`, the
//! line that follows, read with the `datepattern` of the stock filter of the same name, must give that time.
//!
//! fail2ban checks these samples with "now" = 2005-08-14 12:00 CEST and local time `CET-01CEST-02,M3.5.0,M10.5.0`
//! (`tests/utils.py`); the failJSON times are local times in that zone. This test converts them with the same
//! rule, and hands the parser the offset that rule gives for the expected local time (what `mktime` does for a
//! zoneless date). Only the `datepattern` option is resolved here (from the filter, its `[INCLUDES]` and the
//! sample's `filterOptions`, following `<section/key>`, `<var>` and `%(…)s` references); the full filter loader is
//! tested elsewhere. Requires Debian's fail2ban package; fails when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_core::Timestamp;
use sentinel_ingest::fail2ban::date::DateMatcher;
use sentinel_ingest::ParseCtx;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const LOG_DIR: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";
/// fail2ban's TEST_NOW: 2005-08-14 10:00:00 UTC.
const TEST_NOW: i64 = 1_124_013_600;

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// A minimal fail2ban-style ini reader: sections, `key = value`, indented continuation lines, comments.
fn read_ini(path: &Path) -> Sections {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Sections::new();
    let mut section = String::new();
    let mut key: Option<String> = None;
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.is_empty() {
            key = None;
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if let Some(k) = &key {
                let v = out
                    .entry(section.clone())
                    .or_default()
                    .entry(k.clone())
                    .or_default();
                v.push('\n');
                v.push_str(trimmed);
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.to_string();
            key = None;
            continue;
        }
        if let Some((k, v)) = trimmed.split_once(['=', ':']) {
            let k = k.trim().to_string();
            out.entry(section.clone())
                .or_default()
                .insert(k.clone(), v.trim().to_string());
            key = Some(k);
        }
    }
    out
}

/// The filter file and its `before`/`after` includes, merged in fail2ban's reading order.
fn read_filter(name: &str) -> Sections {
    fn merge(into: &mut Sections, path: &Path, depth: usize) {
        if depth > 5 || !path.exists() {
            return;
        }
        let own = read_ini(path);
        let dir = path.parent().unwrap_or(Path::new("."));
        let includes = own.get("INCLUDES").cloned().unwrap_or_default();
        let list = |k: &str| -> Vec<PathBuf> {
            includes
                .get(k)
                .map(|v| v.split_whitespace().map(|f| dir.join(f)).collect())
                .unwrap_or_default()
        };
        for p in list("before") {
            merge(into, &p, depth + 1);
        }
        for (s, kv) in own {
            into.entry(s).or_default().extend(kv);
        }
        let local = path.with_extension("local");
        if local.exists() {
            merge(into, &local, depth + 1);
        }
        for p in list("after") {
            merge(into, &p, depth + 1);
        }
    }
    let mut out = Sections::new();
    merge(
        &mut out,
        &Path::new(FILTER_DIR).join(format!("{name}.conf")),
        0,
    );
    out
}

/// Looks `key` up as fail2ban does for a filter: caller options, then `[Init]`, `[Definition]`, `[DEFAULT]`.
fn lookup(
    s: &Sections,
    opts: &HashMap<String, String>,
    section: Option<&str>,
    key: &str,
) -> Option<String> {
    if let Some(sec) = section {
        return s
            .get(sec)
            .and_then(|kv| kv.get(key))
            .or_else(|| s.get("DEFAULT").and_then(|kv| kv.get(key)))
            .cloned();
    }
    opts.get(key)
        .or_else(|| s.get("Init").and_then(|kv| kv.get(key)))
        .or_else(|| s.get("Definition").and_then(|kv| kv.get(key)))
        .or_else(|| s.get("DEFAULT").and_then(|kv| kv.get(key)))
        .cloned()
}

/// Resolves `<var>`, `<section/key>` (nested) and `%(key)s` / `%(section/key)s`; `None` if something is left.
fn resolve(
    s: &Sections,
    opts: &HashMap<String, String>,
    value: &str,
    depth: usize,
) -> Option<String> {
    if depth > 10 {
        return None;
    }
    let mut v = value.to_string();
    // %(name)s
    while let Some(at) = v.find("%(") {
        let end = at + v[at..].find(")s")?;
        let name = &v[at + 2..end];
        let rep = match name.split_once('/') {
            Some((sec, key)) => lookup(s, opts, Some(sec), key)?,
            None => lookup(s, opts, None, name)?,
        };
        let rep = resolve(s, opts, &rep, depth + 1)?;
        v.replace_range(at..end + 2, &rep);
    }
    // Innermost <tag> first; regex text such as `<W>` stays when it names nothing.
    let mut from = 0;
    while let Some(open) = v[from..].find('<').map(|i| from + i) {
        let Some(close) = v[open + 1..].find('>').map(|i| open + 1 + i) else {
            break;
        };
        let inner = &v[open + 1..close];
        if inner.contains('<') {
            from = open + 1;
            continue;
        }
        let found = match inner.split_once('/') {
            Some((sec, key)) => lookup(s, opts, Some(sec), key),
            None => lookup(s, opts, None, inner),
        };
        match found {
            Some(rep) => {
                let rep = resolve(s, opts, &rep, depth + 1)?;
                v.replace_range(open..=close, &rep);
                from = 0;
            }
            None => from = close + 1,
        }
    }
    Some(v)
}

/// The filter's datepattern under the given options; `Err` when only full interpolation could resolve it.
fn datepattern(name: &str, opts: &HashMap<String, String>) -> Result<Option<String>, String> {
    let s = read_filter(name);
    let Some(raw) = lookup(&s, opts, None, "datepattern") else {
        return Ok(None);
    };
    let v = resolve(&s, opts, &raw, 0).ok_or_else(|| raw.clone())?;
    if v.contains("%(") || v.contains("/datepattern>") {
        return Err(raw);
    }
    Ok(Some(v.replace("%%", "%")))
}

/// `CET-01CEST-02,M3.5.0,M10.5.0`: the offset in force at a local wall-clock time (seconds east of UTC).
fn cet_offset(local_secs: i64) -> i32 {
    let dt = time::OffsetDateTime::from_unix_timestamp(local_secs).unwrap();
    let last_sunday = |month: time::Month| {
        let next = if month == time::Month::December {
            time::Month::January
        } else {
            month.next()
        };
        let mut d = time::Date::from_calendar_date(dt.year(), next, 1)
            .unwrap()
            .previous_day()
            .unwrap();
        while d.weekday() != time::Weekday::Sunday {
            d = d.previous_day().unwrap();
        }
        d.with_hms(2, 0, 0).unwrap().assume_utc().unix_timestamp()
    };
    if local_secs >= last_sunday(time::Month::March)
        && local_secs < last_sunday(time::Month::October)
    {
        7200
    } else {
        3600
    }
}

/// Reads `line` as fail2ban does in its test zone: a zoneless date is a wall-clock time there, so it is read once
/// at UTC to learn that wall-clock time, then again with the offset the zone rule gives for it (as `mktime`
/// does). A date with its own zone gives the same instant both times.
fn find_local(matcher: &DateMatcher, line: &str) -> Option<i64> {
    let ctx = |offset: i32| ParseCtx {
        reference: Timestamp::from_millis(TEST_NOW * 1000),
        utc_offset_secs: offset,
    };
    let wall = matcher
        .find(line, &ctx(0))?
        .ts?
        .as_millis()
        .div_euclid(1000);
    Some(matcher.find(line, &ctx(cet_offset(wall)))?.ts?.as_millis())
}

/// failJSON "time" (local) → (UTC milliseconds, whether it has a fraction).
fn expected(t: &str) -> (i64, bool) {
    let (base, frac) = t.split_once('.').unwrap_or((t, ""));
    // Python's strptime also accepts one-digit fields ("2005-03-7T02:09:33").
    let (date, clock) = base.split_once('T').unwrap();
    let d: Vec<u32> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let c: Vec<u32> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    let normal = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d[0], d[1], d[2], c[0], c[1], c[2]
    );
    let local = Timestamp::parse_rfc3339(&normal).unwrap().as_millis() / 1000;
    let off = cet_offset(local);
    let frac_ms: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse().unwrap()
    };
    ((local - i64::from(off)) * 1000 + frac_ms, !frac.is_empty())
}

#[derive(Default)]
struct Tally {
    checked: usize,
    agree: usize,
    from_previous_line: usize,
    journal_skipped: usize,
    not_compared_by_fail2ban: usize,
    default_templates: usize,
    failures: Vec<String>,
}

fn check_file(
    filter: &str,
    file: &str,
    tally: &mut Tally,
    per_file: &mut Vec<(String, usize, usize)>,
) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(LOG_DIR).join(file)).unwrap();
    let mut added = Vec::new();
    let mut options: Vec<HashMap<String, String>> = vec![HashMap::new()];
    let mut common: HashMap<String, String> = HashMap::new();
    let mut matchers: HashMap<String, (DateMatcher, bool)> = HashMap::new();
    let mut last_date: HashMap<String, i64> = HashMap::new();
    let (mut file_checked, mut file_agree) = (0, 0);
    let mut pending: Option<serde_json::Value> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            let rest = line.trim_start_matches('#');
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            let Some((kind, json)) = rest.split_once(':') else {
                continue;
            };
            let kind = kind.trim();
            if !matches!(
                kind,
                "failJSON" | "filterOptions" | "fileOptions" | "addFILE"
            ) {
                continue;
            }
            let Ok(value) = serde_json::from_str::<serde_json::Value>(json.trim()) else {
                continue;
            };
            let to_opts = |v: &serde_json::Value| -> HashMap<String, String> {
                v.as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            match kind {
                "addFILE" => added.extend(value.as_str().map(str::to_string)),
                "fileOptions" => common = to_opts(&value),
                "filterOptions" => {
                    let list = match &value {
                        serde_json::Value::Array(a) => a.iter().map(to_opts).collect(),
                        other => vec![to_opts(other)],
                    };
                    options = list
                        .into_iter()
                        .map(|o| {
                            let mut m = common.clone();
                            m.extend(o);
                            m
                        })
                        .filter(|o| match o.get("test.condition") {
                            Some(c) => c.replace(' ', "") == format!("name=='{filter}'"),
                            None => true,
                        })
                        .collect();
                }
                _ => pending = Some(value),
            }
            continue;
        }
        // fail2ban runs every line through the filter (dates of unannotated lines become the "last date").
        let faildata = pending.take();
        if faildata.is_none() && line.trim().is_empty() {
            continue;
        }
        // fail2ban compares the time of lines that must match only.
        let want = faildata
            .as_ref()
            .filter(|v| v.get("match").and_then(serde_json::Value::as_bool) == Some(true))
            .and_then(|v| v.get("time").and_then(|t| t.as_str()))
            .map(|t| (t.to_string(), expected(t)));
        if faildata.as_ref().is_some_and(|v| v.get("time").is_some()) && want.is_none() {
            tally.not_compared_by_fail2ban += 1;
        }
        for opts in &options {
            if opts.get("logtype").map(String::as_str) == Some("journal") {
                // fail2ban takes the journal's time and does not parse the line's date.
                if want.is_some() {
                    tally.journal_skipped += 1;
                }
                continue;
            }
            let vars: HashMap<String, String> = opts
                .iter()
                .filter(|(k, _)| !k.starts_with("test."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut key: Vec<_> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
            key.sort();
            let key = key.join(",");
            let (matcher, defaults) =
                matchers
                    .entry(key.clone())
                    .or_insert_with(|| match datepattern(filter, &vars) {
                        Ok(p) => (
                            DateMatcher::new(p.as_deref())
                                .unwrap_or_else(|e| panic!("{filter}: {e}")),
                            false,
                        ),
                        Err(_) => (DateMatcher::new(None).unwrap(), true),
                    });
            let own = find_local(matcher, line);
            // No time of its own (optional date, none found): fail2ban uses the last date if it is newer than
            // "now" minus a minute, else "now".
            let got = match own {
                Some(ms) => {
                    last_date.insert(key.clone(), ms);
                    ms
                }
                None => match last_date.get(&key) {
                    Some(&ms) if ms > (TEST_NOW - 60) * 1000 => ms,
                    _ => TEST_NOW * 1000,
                },
            };
            let Some((time, (want_ms, has_frac))) = &want else {
                continue;
            };
            if own.is_none() {
                tally.from_previous_line += 1;
            }
            let same = if *has_frac {
                got == *want_ms
            } else {
                got.div_euclid(1000) == want_ms / 1000
            };
            tally.checked += 1;
            file_checked += 1;
            if *defaults {
                tally.default_templates += 1;
            }
            if same {
                tally.agree += 1;
                file_agree += 1;
            } else {
                tally.failures.push(format!(
                    "{file} [{key}]: want {time} ({}), got {} for {line:?}",
                    Timestamp::from_millis(*want_ms).to_rfc3339(),
                    Timestamp::from_millis(got).to_rfc3339()
                ));
            }
        }
    }
    per_file.push((format!("{filter}:{file}"), file_checked, file_agree));
    added
}

#[test]
fn sample_log_times_agree_with_fail2ban() {
    assert!(
        Path::new(FILTER_DIR).join("sshd.conf").exists() && Path::new(LOG_DIR).join("sshd").exists(),
        "Debian's fail2ban package is not installed ({FILTER_DIR}, {LOG_DIR}); scripts/test installs it"
    );
    let mut filters: Vec<String> = std::fs::read_dir(FILTER_DIR)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".conf")?;
            (stem != "common" && Path::new(LOG_DIR).join(stem).is_file()).then(|| stem.to_string())
        })
        .collect();
    filters.sort();
    let mut tally = Tally::default();
    let mut per_file = Vec::new();
    for filter in &filters {
        let mut files = vec![filter.clone()];
        let mut i = 0;
        while i < files.len() {
            let more = check_file(filter, &files[i].clone(), &mut tally, &mut per_file);
            files.extend(
                more.into_iter()
                    .filter(|f| Path::new(LOG_DIR).join(f).is_file()),
            );
            i += 1;
        }
    }
    println!("{:<40} {:>7} {:>7}", "filter:file", "checked", "agree");
    for (name, checked, agree) in &per_file {
        if *checked > 0 {
            println!(
                "{name:<40} {checked:>7} {agree:>7}{}",
                if agree < checked { "  <--" } else { "" }
            );
        }
    }
    for f in &tally.failures {
        println!("DIFFERS: {f}");
    }
    let pct = 100.0 * tally.agree as f64 / tally.checked.max(1) as f64;
    println!(
        "filters: {}; time checks: {}; agree: {} ({pct:.2}%); without an own date (previous line's or now): {}; \
         journal lines skipped (fail2ban takes the journal's time): {}; times on lines that must not match \
         (fail2ban does not compare them): {}; checks with default templates because the \
         datepattern needs full interpolation: {}",
        filters.len(),
        tally.checked,
        tally.agree,
        tally.from_previous_line,
        tally.journal_skipped,
        tally.not_compared_by_fail2ban,
        tally.default_templates
    );
    assert!(
        tally.checked > 500,
        "too few failJSON times found: {}",
        tally.checked
    );
    assert!(pct >= 99.0, "only {pct:.2}% of sample times agree");
}
