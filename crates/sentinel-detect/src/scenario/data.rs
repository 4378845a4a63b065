//! Built-in data lists that scenarios name as `@list` in their conditions: Sentinel's own compilations
//! (each file says what it covers and where its coverage comes from), embedded in the binary so the
//! detect stage never fetches anything.
//!
//! One entry per line; lines starting with `#` and empty lines are skipped; nothing else is trimmed
//! (some entries begin or end with a space on purpose). In a scenario, `@@…` is a literal beginning
//! with one `@`.

const LISTS: &[(&str, &str)] = &[
    (
        "admin_interfaces",
        include_str!("data/admin_interfaces.txt"),
    ),
    ("backdoors", include_str!("data/backdoors.txt")),
    ("bad_user_agents", include_str!("data/bad_user_agents.txt")),
    ("log4j_jndi", include_str!("data/log4j_jndi.txt")),
    ("path_traversal", include_str!("data/path_traversal.txt")),
    ("sensitive_files", include_str!("data/sensitive_files.txt")),
    ("sqli_probe", include_str!("data/sqli_probe.txt")),
    (
        "static_extensions",
        include_str!("data/static_extensions.txt"),
    ),
    ("thinkphp_rce", include_str!("data/thinkphp_rce.txt")),
    ("xss_probe", include_str!("data/xss_probe.txt")),
];

/// The names of the built-in lists.
pub const NAMES: &[&str] = &[
    "admin_interfaces",
    "backdoors",
    "bad_user_agents",
    "log4j_jndi",
    "path_traversal",
    "sensitive_files",
    "sqli_probe",
    "static_extensions",
    "thinkphp_rce",
    "xss_probe",
];

/// The entries of the built-in list `name`, if there is one.
pub fn list(name: &str) -> Option<Vec<&'static str>> {
    let text = LISTS.iter().find(|(n, _)| *n == name)?.1;
    Some(
        text.lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect(),
    )
}

/// The list an entry names (`@name`), if it names one (`@@…` is a literal `@…`).
pub(crate) fn list_name(entry: &str) -> Option<&str> {
    entry.strip_prefix('@').filter(|n| !n.starts_with('@'))
}

/// `entries` with every `@name` replaced by the lines of that list and `@@…` by `@…` (unknown names
/// are kept as written; validation reports them).
pub(crate) fn expand(entries: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if let Some(lit) = e.strip_prefix("@@") {
            out.push(format!("@{lit}"));
            continue;
        }
        match list_name(e).and_then(list) {
            Some(lines) => out.extend(lines.into_iter().map(str::to_owned)),
            None => out.push(e.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_list_exists_and_is_not_empty() {
        assert_eq!(NAMES.len(), LISTS.len());
        for n in NAMES {
            let l = list(n).unwrap_or_default();
            assert!(l.len() >= 3, "{n}");
            assert!(
                l.iter().all(|e| !e.starts_with('#') && !e.is_empty()),
                "{n}"
            );
        }
        assert!(list("sqli_probe")
            .unwrap_or_default()
            .contains(&" union select "));
    }
}
