//! The store's error types: one enum for every fallible store call and one for a refused `try_write`.
//!
//! Errors carry enough to log; none of them is meant to be shown verbatim to an API client.

use crate::record::Record;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database (SQLite or PostgreSQL) refused or failed the statement, or could not be reached.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The embedded schema migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database file or its directory could not be created.
    #[error("cannot prepare the database file: {0}")]
    Io(#[from] std::io::Error),
    /// A stored row does not parse back into its record (a JSON body or an indexed column).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A record could not be serialised for storage.
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// A paging cursor is not an id this listing produced.
    #[error("invalid cursor")]
    BadCursor,
    /// The writer task has stopped; nothing more can be queued.
    #[error("store writer is closed")]
    Closed,
    /// The writer task panicked or was cancelled.
    #[error("store writer task failed: {0}")]
    Task(String),
    /// A store URL names an engine the store does not run on (the scheme is given).
    #[error("unsupported store URL scheme {0:?}: use postgres://, postgresql://, sqlite: or a file path")]
    UnsupportedUrl(String),
    /// Another daemon holds this PostgreSQL database (named): one daemon per database.
    #[error(
        "the database is in use by {0}: each Sentinel daemon needs a database of its own (its audit \
         index and its actions are its node's); give this node another database, or stop the other"
    )]
    Held(String),
    /// The call (named) has no PostgreSQL form yet; it works on SQLite only.
    #[error("not supported on PostgreSQL yet: {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Whether the database could not be reached rather than refusing the statement: the
    /// connection broke or could not be made (PostgreSQL restarting, the network), so the same
    /// statement may succeed a moment later.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Db(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_),
            ) => true,
            // PostgreSQL's class 08 (connection exception) and 57P (the server is shutting down
            // or starting up).
            StoreError::Db(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        }
    }
}

/// Why [`StoreWriter::try_write`](crate::StoreWriter::try_write) did not queue a record; the record is
/// handed back.
#[derive(Debug, thiserror::Error)]
pub enum TryWriteError {
    /// The queue is full; retry later, or count the record as dropped.
    #[error("store writer queue is full")]
    Full(Record),
    /// The writer task has stopped.
    #[error("store writer is closed")]
    Closed(Record),
}

impl TryWriteError {
    /// The record that was not queued.
    pub fn into_record(self) -> Record {
        match self {
            TryWriteError::Full(r) | TryWriteError::Closed(r) => r,
        }
    }
}
