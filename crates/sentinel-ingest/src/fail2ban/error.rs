//! The one error type of fail2ban filter loading: every variant names the file, the section, the key and what
//! is wrong, so a user can fix their `filter.d/*.conf` without reading Sentinel's source.

use std::path::PathBuf;

/// Why a fail2ban filter could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A file (the filter, an include or a `.local`) could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An `[INCLUDES]` entry names a file that does not exist.
    #[error("{file}: [INCLUDES] {key}: included file {path} does not exist")]
    MissingInclude {
        /// The including file.
        file: String,
        /// `before` or `after`.
        key: String,
        /// The resolved path of the missing file.
        path: PathBuf,
    },
    /// The INI syntax is wrong (line outside a section, a line that is neither `key = value` nor a header, …).
    #[error("{file}:{line}: {what}")]
    Syntax {
        /// The file.
        file: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A `%(name)s` interpolation or a `<name>` substitution failed (cycle, unknown name, bad `%`).
    #[error("{file}: [{section}] {key}: {what}")]
    Interpolation {
        /// The filter file.
        file: String,
        /// The section of the key.
        section: String,
        /// The key whose value was being expanded.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// A value is present but not usable (`maxlines` not a number, a `prefregex` without `<F-CONTENT>`, …).
    #[error("{file}: [{section}] {key}: {what}")]
    Invalid {
        /// The filter file.
        file: String,
        /// The section of the key.
        section: String,
        /// The key.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// The filter uses a fail2ban feature Sentinel does not implement.
    #[error("{file}: [{section}] {key}: unsupported: {what}")]
    Unsupported {
        /// The filter file.
        file: String,
        /// The section of the key.
        section: String,
        /// The key.
        key: String,
        /// The construct, e.g. `<SKIPLINES> (multi-line filters)`.
        what: String,
    },
    /// A regex could not be translated from Python syntax or compiled.
    #[error("{file}: [{section}] {key}: {what} in regex {regex:?}")]
    Regex {
        /// The filter file.
        file: String,
        /// The section of the key.
        section: String,
        /// The key (`failregex`, `ignoreregex`, `prefregex`, `datepattern`).
        key: String,
        /// The regex as written (after interpolation and substitution).
        regex: String,
        /// What is wrong: the unsupported construct or the compiler's message.
        what: String,
    },
}
