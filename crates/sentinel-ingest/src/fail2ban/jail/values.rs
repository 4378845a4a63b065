//! The small value syntaxes of jail files, as fail2ban reads them: times (`10m`, `1h 30m`, `-1`), booleans,
//! `name[key=value, …]` options and `ignoreip` entries.

/// An `ignoreip` entry in a form Sentinel's whitelist reads: fail2ban's `address/netmask`
/// (`10.0.0.0/255.0.0.0`, `2001:db8::/ffff:ffff::`) becomes `address/prefix`; anything else is kept.
/// `None` for a netmask whose bits are not contiguous.
pub(super) fn normalize_ignoreip(e: &str) -> Option<String> {
    let Some((ip, mask)) = e.split_once('/') else {
        return Some(e.to_owned());
    };
    let (Ok(addr), Ok(mask)) = (
        ip.parse::<std::net::IpAddr>(),
        mask.parse::<std::net::IpAddr>(),
    ) else {
        return Some(e.to_owned());
    };
    let (bits, width) = match (addr, mask) {
        (std::net::IpAddr::V4(_), std::net::IpAddr::V4(m)) => (u128::from(u32::from(m)) << 96, 32),
        (std::net::IpAddr::V6(_), std::net::IpAddr::V6(m)) => (u128::from(m), 128),
        _ => return None,
    };
    let prefix = bits.leading_ones();
    // Contiguous: every bit after the leading ones is zero.
    (bits.checked_shl(prefix).unwrap_or(0) == 0 && prefix <= width)
        .then(|| format!("{ip}/{prefix}"))
}

/// An `ignoreip` entry Sentinel can use: an address, a CIDR or a host name (resolved when Sentinel starts).
pub(super) fn is_address_or_host(e: &str) -> bool {
    if e.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if let Some((ip, len)) = e.split_once('/') {
        let max = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => 32,
            Ok(std::net::IpAddr::V6(_)) => 128,
            Err(_) => return false,
        };
        return len.parse::<u8>().is_ok_and(|l| l <= max);
    }
    e.len() <= 253
        && e.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Python `ConfigParser` booleans.
pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Splits `name[key=value, key="value, with comma", …]` as fail2ban's `extractOptions` does.
pub fn split_options(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let s = s.trim();
    let Some(open) = s.find('[') else {
        return Ok((s.to_string(), Vec::new()));
    };
    let name = s[..open].trim().to_string();
    let Some(body) = s[open + 1..].strip_suffix(']') else {
        return Err(format!("unbalanced `[` in {s:?}"));
    };
    let mut opts = Vec::new();
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            return Err(format!("option without `=` in {s:?}"));
        };
        let key = rest[..eq].trim().to_lowercase();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            return Err(format!("bad option name {key:?} in {s:?}"));
        }
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &after[1..];
                let Some(end) = inner.find(q) else {
                    return Err(format!("unterminated quote in {s:?}"));
                };
                (inner[..end].to_string(), &inner[end + 1..])
            }
            _ => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        opts.push((key, value));
        let tail = tail.trim_start();
        rest = match tail.strip_prefix(',') {
            Some(t) => t.trim_start(),
            None if tail.is_empty() => tail,
            None => return Err(format!("unexpected {tail:?} after option in {s:?}")),
        };
    }
    Ok((name, opts))
}

/// fail2ban's `MyTime.str2seconds`: `600`, `10m`, `1h 30m`, `1d-2h`, `2w`, `1mo`, `1y`, `-1`.
/// Terms are numbers with an optional unit, joined by `+`, `-` or spaces (a space means `+`).
pub fn str2seconds(v: &str) -> Option<f64> {
    const DAY: f64 = 86_400.0;
    let year = (365.0 * 3.0 + 366.0) * DAY / 4.0;
    let s = v.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total = 0.0;
    let mut sign = 1.0;
    let mut any = false;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'+' => {
                i += 1;
                continue;
            }
            b'-' => {
                sign = -sign;
                i += 1;
                continue;
            }
            _ => {}
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = s[start..i].parse().ok()?;
        while i < b.len() && b[i] == b' ' && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
        }
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[ustart..i] {
            "" | "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1.0,
            "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3600.0,
            "d" | "dd" | "da" | "day" | "days" => DAY,
            "w" | "ww" | "we" | "wee" | "week" | "weeks" => 7.0 * DAY,
            "mo" | "mon" | "month" | "months" => year / 12.0,
            "y" | "yy" | "ye" | "yea" | "year" | "years" => year,
            _ => return None,
        };
        total += sign * num * unit;
        sign = 1.0;
        any = true;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_fail2ban_reads_them() {
        assert_eq!(str2seconds("600"), Some(600.0));
        assert_eq!(str2seconds("10m"), Some(600.0));
        assert_eq!(str2seconds("1h 30m"), Some(5400.0));
        assert_eq!(str2seconds("1hour+30min"), Some(5400.0));
        assert_eq!(str2seconds("48h"), Some(172_800.0));
        assert_eq!(str2seconds("1w"), Some(604_800.0));
        assert_eq!(str2seconds("-1"), Some(-1.0));
        assert_eq!(str2seconds("1d-2h"), Some(79_200.0));
        assert_eq!(str2seconds("ten"), None);
        assert_eq!(str2seconds(""), None);
    }

    #[test]
    fn filter_options() {
        let (n, o) = split_options("sshd[mode=aggressive, port=\"22, 2222\"]").unwrap();
        assert_eq!(n, "sshd");
        assert_eq!(
            o,
            vec![
                ("mode".into(), "aggressive".into()),
                ("port".into(), "22, 2222".into())
            ]
        );
        assert_eq!(
            split_options("postfix").unwrap(),
            ("postfix".into(), vec![])
        );
        assert!(split_options("sshd[mode=normal").is_err());
        assert!(split_options("sshd[mode]").is_err());
    }
}
