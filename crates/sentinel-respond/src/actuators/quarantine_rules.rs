//! The rules that decide whether a path may be quarantined at all.
//!
//! Pure checks plus `lstat`/`canonicalize`: no file is opened, moved or changed here. Every refusal names
//! the rule it broke, so an operator reading the action record knows why nothing happened.

use sentinel_core::ActError;
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level system directories that are never quarantined themselves.
const SYSTEM_DIRS: [&str; 13] = [
    "bin", "boot", "dev", "etc", "lib", "lib64", "proc", "root", "run", "sbin", "sys", "usr", "var",
];

/// Trees nothing inside of which is ever quarantined.
const CRITICAL_TREES: [&str; 4] = ["/proc", "/sys", "/dev", "/boot"];

/// The rule a path breaks by its name alone, if any.
pub(crate) fn named_rule(p: &Path) -> Option<String> {
    let shown = p.display();
    if p == Path::new("/") {
        return Some("`/` is the root directory (rule: never the root directory)".into());
    }
    if p.parent() == Some(Path::new("/")) {
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            if SYSTEM_DIRS.contains(&name) {
                return Some(format!(
                    "`{shown}` is a top-level system directory (rule: never a top-level system directory)"
                ));
            }
        }
    }
    for tree in CRITICAL_TREES {
        if p.starts_with(tree) {
            return Some(format!(
                "`{shown}` is inside `{tree}` (rule: never anything in /proc, /sys, /dev or /boot)"
            ));
        }
    }
    if p == Path::new("/home") {
        return Some("`/home` is the home root (rule: never a home root)".into());
    }
    if p.parent() == Some(Path::new("/home")) {
        return Some(format!(
            "`{shown}` is a user's home directory (rule: never a home root)"
        ));
    }
    None
}

fn refused(msg: String) -> ActError {
    ActError::Refused(msg)
}

/// Checks `path` against every rule and returns its canonical form.
///
/// `roots` and `quarantine_dir` must already be canonical.
pub(crate) fn screen(
    path: &Path,
    roots: &[PathBuf],
    quarantine_dir: &Path,
) -> Result<PathBuf, ActError> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(refused(format!(
            "`{shown}` is not an absolute path (rule: absolute paths only)"
        )));
    }
    if let Some(rule) = named_rule(path) {
        return Err(refused(rule));
    }
    let meta = fs::symlink_metadata(path)
        .map_err(|e| refused(format!("cannot examine `{shown}`: {e}")))?;
    if meta.file_type().is_symlink() {
        return Err(refused(format!(
            "`{shown}` is a symbolic link (rule: no symbolic links; name the file itself)"
        )));
    }
    let canonical =
        fs::canonicalize(path).map_err(|e| refused(format!("cannot resolve `{shown}`: {e}")))?;
    if let Some(rule) = named_rule(&canonical) {
        return Err(refused(rule));
    }
    if meta.is_dir() {
        return Err(refused(format!(
            "`{shown}` is a directory (rule: regular files only)"
        )));
    }
    if !meta.is_file() {
        return Err(refused(format!(
            "`{shown}` is not a regular file (rule: regular files only)"
        )));
    }
    if canonical.starts_with(quarantine_dir) {
        return Err(refused(format!(
            "`{shown}` is already inside the quarantine directory (rule: not the quarantine itself)"
        )));
    }
    let inside = roots
        .iter()
        .any(|r| canonical.starts_with(r) && canonical != *r);
    if !inside {
        let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(refused(format!(
            "`{}` is outside every quarantine root [{}] (rule: only files under a configured root)",
            canonical.display(),
            list.join(", ")
        )));
    }
    Ok(canonical)
}

/// Checks the place a file is restored to: an absolute path whose parent resolves inside a root and which
/// breaks no named rule. Guards against a tampered revert token writing somewhere it never came from.
pub(crate) fn screen_restore_target(path: &Path, roots: &[PathBuf]) -> Result<(), ActError> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(refused(format!(
            "restore target `{shown}` is not an absolute path"
        )));
    }
    if let Some(rule) = named_rule(path) {
        return Err(refused(format!("restore target: {rule}")));
    }
    let (Some(parent), Some(_)) = (path.parent(), path.file_name()) else {
        return Err(refused(format!(
            "restore target `{shown}` has no file name"
        )));
    };
    let parent = fs::canonicalize(parent).map_err(|e| {
        ActError::Backend(format!(
            "cannot restore `{shown}`: its directory is not available: {e}"
        ))
    })?;
    if !roots.iter().any(|r| parent.starts_with(r)) {
        return Err(refused(format!(
            "restore target `{shown}` is outside every quarantine root"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_rules_cover_the_dangerous_places() {
        for p in [
            "/",
            "/etc",
            "/usr",
            "/var",
            "/home",
            "/home/alice",
            "/proc/1/environ",
        ] {
            assert!(named_rule(Path::new(p)).is_some(), "{p}");
        }
        for p in [
            "/etc/passwd",
            "/home/alice/x",
            "/srv/www/shell.php",
            "/var/tmp/x",
        ] {
            assert!(named_rule(Path::new(p)).is_none(), "{p}");
        }
    }
}
