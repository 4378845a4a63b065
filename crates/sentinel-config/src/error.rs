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

/// Drops repeated problems (same path and message), keeping first-seen order.
pub(crate) fn dedup(errors: Vec<ConfigError>) -> Vec<ConfigError> {
    let mut out: Vec<ConfigError> = Vec::with_capacity(errors.len());
    for e in errors {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}
