//! Configuration errors: one `ConfigError` per problem, named by its dotted path, and
//! `ConfigErrors`, the list `load` and `validate` return so an operator sees every problem at once.
//! This module only describes problems; it never decides what is valid.

use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending key (`api.listen`, `policy.rules[2].actions[0].kind`), or the name
    /// of the file or variable when the problem is not tied to one key.
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Whether `path` is named by one of the problems.
    pub fn mentions(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no problems.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Drops repeated problems (same path and message), keeping first-seen order. A bare
/// "unknown key" (from the schema walk) is also dropped when the section's own reader reported the
/// same key with the keys it knows: one mistake, one line, the more helpful one.
pub(crate) fn dedup(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    const UNKNOWN: &str = "unknown key";
    let mut out: Vec<ConfigError> = Vec::with_capacity(errors.len());
    for e in &errors {
        let shadowed = e.message == UNKNOWN
            && errors.iter().any(|o| {
                o.path == e.path
                    && o.message.len() > UNKNOWN.len()
                    && o.message.starts_with(UNKNOWN)
            });
        if !shadowed && !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

#[cfg(test)]
mod dedup_tests {
    #[test]
    fn an_unknown_key_is_reported_once_with_the_known_keys() {
        for yaml in [
            "api: { rate_limit: { foo: 1 } }",
            "api: { webhooks: { gitlab: { secret: abcdefghijklmnopqrstuvwxyz } } }",
        ] {
            let e = crate::load_str(yaml, None, &[]).unwrap_err();
            assert_eq!(e.0.len(), 1, "{yaml}: {e}");
            assert!(
                e.0[0].message.starts_with("unknown key (known here:"),
                "{e}"
            );
        }
        // A bare "unknown key" with nothing better stays.
        let e = crate::load_str("api: { nope: 1 }", None, &[]).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].path, "api.nope");
    }
}
