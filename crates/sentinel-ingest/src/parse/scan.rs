//! Small text scanners shared by the parsers: words, addresses, ports, quoted strings and the pam_unix
//! failure message. Everything borrows from the line and slices only at boundaries found by searching for
//! ASCII, so nothing here can panic on arbitrary UTF-8.

use std::borrow::Cow;
use std::net::IpAddr;

/// The first space-separated word and the text after that space (empty if none).
pub(crate) fn word(s: &str) -> (&str, &str) {
    match memchr::memchr(b' ', s.as_bytes()) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// An IP address in its textual form; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) becomes the IPv4 address.
pub(crate) fn ip(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    if b.len() < 2 || b.len() > 45 || !(b[0].is_ascii_hexdigit() || b[0] == b':') {
        return None;
    }
    s.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// An address that may carry a port: `1.2.3.4:80`, `[2001:db8::1]:80`, `2001:db8::1:80` (Apache's
/// ambiguous form: the last group is taken as the port when the rest is an address), or a bare address.
pub(crate) fn ip_with_port(s: &str) -> Option<(IpAddr, Option<&str>)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (addr, rest) = inner.split_once(']')?;
        let port = rest.strip_prefix(':').filter(|p| is_port(p));
        return ip(addr).map(|a| (a, port));
    }
    if let Some((addr, port)) = s.rsplit_once(':') {
        if is_port(port) {
            if let Some(a) = ip(addr) {
                return Some((a, Some(port)));
            }
        }
    }
    ip(s).map(|a| (a, None))
}

/// 1..=5 ASCII digits.
pub(crate) fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|c| c.is_ascii_digit())
}

/// `" port N"` at the start of `s`: the port and the text after it.
pub(crate) fn port_prefix(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix(" port ")?;
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    let port = &rest[..n];
    is_port(port).then(|| (port, &rest[n..]))
}

/// The text after the first occurrence of `pat`.
pub(crate) fn after<'a>(s: &'a str, pat: &str) -> Option<&'a str> {
    s.find(pat).map(|i| &s[i + pat.len()..])
}

/// The value of `key` (`rhost=`, `rip=`, …) up to the next space or comma; `None` if absent or empty.
pub(crate) fn kv<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = s[from..].find(key) {
        let start = from + i;
        // The key must begin a word, so `ruser=` is not read as `user=`.
        if start == 0 || matches!(s.as_bytes()[start - 1], b' ' | b',' | b';') {
            let v = &s[start + key.len()..];
            let end = memchr::memchr2(b' ', b',', v.as_bytes()).unwrap_or(v.len());
            return Some(&v[..end]).filter(|v| !v.is_empty());
        }
        from = start + key.len();
    }
    None
}

/// A double-quoted string at the start of `s` (backslash escapes honoured): its raw inside and the text
/// after the closing quote.
pub(crate) fn quoted(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[1..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Removes `\"` and `\\` escapes (others, like nginx's `\x22`, are kept as written).
pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A pam_unix `authentication failure;` message (`pam_unix(sshd:auth): authentication failure; logname=
/// uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root`): the service in parentheses, `rhost` and `user`.
pub(crate) fn pam_failure(msg: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let rest = msg.strip_prefix("pam_unix(")?;
    let (service, rest) = rest.split_once("): ")?;
    let rest = rest.strip_prefix("authentication failure;")?;
    Some((service, kv(rest, "rhost="), kv(rest, "user=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(ip("::ffff:1.2.3.4"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(
            ip_with_port("::1:58510"),
            Some(("::1".parse().unwrap(), Some("58510")))
        );
        assert_eq!(
            ip_with_port("[2001:db8::1]:80"),
            Some(("2001:db8::1".parse().unwrap(), Some("80")))
        );
        assert_eq!(
            ip_with_port("10.0.0.1"),
            Some(("10.0.0.1".parse().unwrap(), None))
        );
        assert_eq!(ip("host"), None);
    }

    #[test]
    fn key_values_and_quotes() {
        let m = "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root";
        assert_eq!(
            pam_failure(m),
            Some(("sshd:auth", Some("1.2.3.4"), Some("root")))
        );
        assert_eq!(quoted(r#""a \" b" rest"#), Some((r#"a \" b"#, " rest")));
        assert_eq!(unescape(r#"a \" b \x22"#), r#"a " b \x22"#);
        assert_eq!(quoted("\"abc\\"), None);
    }
}
