//! Payload signatures: short, case-insensitive fragments that mark well-known attack families.
//!
//! Matching runs on the lower-cased text and on its percent-decoded form, so `%27%20or%201=1` is caught too.

/// A family of attack payloads; each family adds its weight once per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureFamily {
    /// SQL injection.
    SqlInjection,
    /// Cross-site scripting.
    Xss,
    /// Directory traversal.
    PathTraversal,
    /// Shell command injection.
    CommandInjection,
    /// JNDI lookup injection (Log4Shell).
    JndiInjection,
    /// Requests for files that should never be served (`.env`, `.git/`, …).
    SensitiveFile,
    /// A user agent of a known scanner.
    ScannerAgent,
}

impl SignatureFamily {
    /// Stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            SignatureFamily::SqlInjection => "sql_injection",
            SignatureFamily::Xss => "xss",
            SignatureFamily::PathTraversal => "path_traversal",
            SignatureFamily::CommandInjection => "command_injection",
            SignatureFamily::JndiInjection => "jndi_injection",
            SignatureFamily::SensitiveFile => "sensitive_file",
            SignatureFamily::ScannerAgent => "scanner_agent",
        }
    }

    /// Points the family adds to a score.
    pub fn weight(self) -> u8 {
        match self {
            SignatureFamily::JndiInjection => 50,
            SignatureFamily::SqlInjection | SignatureFamily::CommandInjection => 40,
            SignatureFamily::PathTraversal | SignatureFamily::Xss => 35,
            SignatureFamily::SensitiveFile => 30,
            SignatureFamily::ScannerAgent => 25,
        }
    }
}

/// One signature: a fragment of a payload and its family.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// The family.
    pub family: SignatureFamily,
    /// The lower-case fragment to find.
    pub fragment: &'static str,
}

const fn sig(family: SignatureFamily, fragment: &'static str) -> Signature {
    Signature { family, fragment }
}

use SignatureFamily::*;

/// Every built-in signature.
pub static SIGNATURES: &[Signature] = &[
    sig(SqlInjection, "' or '1'='1"),
    sig(SqlInjection, "' or 1=1"),
    sig(SqlInjection, "\" or 1=1"),
    sig(SqlInjection, " or 1=1--"),
    sig(SqlInjection, "union select"),
    sig(SqlInjection, "union all select"),
    sig(SqlInjection, "'; drop table"),
    sig(SqlInjection, "information_schema"),
    sig(SqlInjection, "sleep(5)"),
    sig(SqlInjection, "benchmark("),
    sig(SqlInjection, "waitfor delay"),
    sig(Xss, "<script"),
    sig(Xss, "javascript:"),
    sig(Xss, "onerror="),
    sig(Xss, "onload="),
    sig(Xss, "<svg/onload"),
    sig(PathTraversal, "../"),
    sig(PathTraversal, "..\\"),
    sig(PathTraversal, "/etc/passwd"),
    sig(PathTraversal, "/etc/shadow"),
    sig(PathTraversal, "c:\\windows\\win.ini"),
    sig(CommandInjection, "; cat "),
    sig(CommandInjection, "| cat "),
    sig(CommandInjection, "$(curl"),
    sig(CommandInjection, "$(wget"),
    sig(CommandInjection, "`id`"),
    sig(CommandInjection, "; wget "),
    sig(CommandInjection, "; curl "),
    sig(CommandInjection, "/bin/sh"),
    sig(CommandInjection, "/bin/bash"),
    sig(CommandInjection, "nc -e"),
    sig(JndiInjection, "${jndi:"),
    sig(JndiInjection, "${${"),
    sig(SensitiveFile, "/.env"),
    sig(SensitiveFile, "/.git/"),
    sig(SensitiveFile, "/.aws/credentials"),
    sig(SensitiveFile, "/wp-login.php"),
    sig(SensitiveFile, "/wp-config.php"),
    sig(SensitiveFile, "/phpmyadmin"),
    sig(SensitiveFile, "/.ssh/"),
    sig(SensitiveFile, "/server-status"),
    sig(SensitiveFile, "/actuator/env"),
    sig(ScannerAgent, "sqlmap"),
    sig(ScannerAgent, "nikto"),
    sig(ScannerAgent, "nmap"),
    sig(ScannerAgent, "masscan"),
    sig(ScannerAgent, "zgrab"),
    sig(ScannerAgent, "gobuster"),
    sig(ScannerAgent, "dirbuster"),
    sig(ScannerAgent, "wpscan"),
    sig(ScannerAgent, "nuclei"),
    sig(ScannerAgent, "acunetix"),
    sig(ScannerAgent, "hydra"),
];

/// Lower-cases `text` and percent-decodes it (once; `+` as space), for matching.
pub(crate) fn normalise(text: &str) -> String {
    let lower = text.to_lowercase();
    let bytes = lower.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

/// The value of one hexadecimal digit.
pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The families whose fragments occur in `text` (normalised by the caller), each at most once,
/// with the first fragment that matched.
pub(crate) fn scan(
    text: &str,
    only: Option<SignatureFamily>,
) -> Vec<(SignatureFamily, &'static str)> {
    let mut found: Vec<(SignatureFamily, &'static str)> = Vec::new();
    for s in SIGNATURES {
        if only.is_some_and(|f| f != s.family) || found.iter().any(|(f, _)| *f == s.family) {
            continue;
        }
        if text.contains(s.fragment) {
            found.push((s.family, s.fragment));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_is_seen_through() {
        let t = normalise("id=1%27%20OR%201=1--+&x=%3Cscript%3E");
        assert!(t.contains("' or 1=1--"), "{t}");
        let fams: Vec<_> = scan(&t, None).into_iter().map(|(f, _)| f).collect();
        assert!(fams.contains(&SignatureFamily::SqlInjection));
        assert!(fams.contains(&SignatureFamily::Xss));
    }

    #[test]
    fn truncated_escape_is_kept() {
        assert_eq!(normalise("abc%4"), "abc%4");
        assert_eq!(normalise("%"), "%");
        assert_eq!(normalise("%zz"), "%zz");
    }

    #[test]
    fn benign_text_matches_nothing() {
        for t in [
            "GET /index.html",
            "hello world",
            "select your plan",
            "user=bob&order=42",
        ] {
            assert!(scan(&normalise(t), None).is_empty(), "{t}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text, however malformed its escapes, normalises without panicking, and a fragment
        /// found in the raw lower-cased text is still found after decoding adds nothing in front of it.
        #[test]
        fn normalise_never_panics(s in any::<String>()) {
            let n = normalise(&s);
            let _ = scan(&n, None);
        }

        #[test]
        fn encoded_signatures_are_found(i in 0usize..SIGNATURES.len(), prefix in "[a-z0-9=&?/]{0,20}") {
            let sig = SIGNATURES[i];
            let encoded: String = sig.fragment.bytes().map(|b| format!("%{b:02X}")).collect();
            let text = format!("{prefix}{encoded}");
            let found = scan(&normalise(&text), None);
            prop_assert!(found.iter().any(|(f, _)| *f == sig.family), "{} not found in {}", sig.fragment, text);
        }
    }
}
