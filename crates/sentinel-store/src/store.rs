//! Opening the database and the housekeeping calls: health check, event count and retention.
//!
//! A store runs on SQLite (a file: [`Store::open`]) or PostgreSQL (a `postgres://` URL:
//! [`Store::open_url`], which also takes a file path or `sqlite:` URL); callers see the same `Store`
//! either way. [`Store::open_with`] and [`Store::open_url_with`] are the only places connection
//! settings live (for SQLite: WAL journal, `synchronous` as [`SyncMode`] says, foreign keys, busy
//! timeout; for both: a bounded pool) and the only places migrations run. This module must not know
//! record layouts beyond the `events` table it prunes.

use crate::backend::{on_backend, Backend, Engine, Tx};
use crate::error::StoreError;
use crate::listen::CommitListener;
use crate::writer::{StoreWriter, WriterOptions, WriterTask};
use sentinel_core::Timestamp;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a PostgreSQL store, or taking a connection from its pool, may wait.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in the pool (one writer at a time; the rest serve reads).
const MAX_CONNECTIONS: u32 = 8;

/// How hard a commit is pushed to disk before the writer reports it stored (SQLite; a PostgreSQL
/// commit is as durable as the server's `synchronous_commit` makes it, by default flushed to its WAL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncMode {
    /// WAL with `synchronous = NORMAL`: a committed transaction survives the process being killed
    /// (it is in the WAL file); the last ones may be lost if the machine loses power.
    #[default]
    Normal,
    /// WAL with `synchronous = FULL`: every commit is synced to the device, so it also survives
    /// power loss; each commit costs an fsync.
    Full,
}

/// How the store is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Durability of each commit.
    pub sync: SyncMode,
}

/// Creates the database file 0600 (or restricts an existing one and its `-wal`/`-shm`) before SQLite
/// opens it: SQLite gives the `-wal` and `-shm` files it creates the database file's mode, so the
/// whole database stays readable by its owner only, whatever the umask.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::fs::{OpenOptions, Permissions};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                tracing::warn!(path = %p.display(), was = format!("{:04o}", m.permissions().mode() & 0o7777), "database file readable by others; restricted to 0600");
                std::fs::set_permissions(&p, Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A handle on the database (SQLite or PostgreSQL); cheap to clone, all clones share one pool.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Bumped by the writer after each committed transaction ([`Store::commits`]).
    commits: Arc<tokio::sync::watch::Sender<u64>>,
    /// On PostgreSQL: the task ticking `commits` for other processes' commits; it stops with the
    /// last clone.
    listener: Option<Arc<CommitListener>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` with the default options.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default()).await
    }

    /// Opens (creating if needed) the database at `path`, with its parent directory, and brings the
    /// schema up to date.
    pub async fn open_with(path: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        create_private(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match opts.sync {
                SyncMode::Normal => SqliteSynchronous::Normal,
                SyncMode::Full => SqliteSynchronous::Full,
            })
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        crate::migrations::migrator().await?.run(&pool).await?;
        tracing::debug!(path = %path.display(), sync = ?opts.sync, "store opened");
        Ok(Store::with_backend(Backend::Sqlite(pool)))
    }

    /// Opens the store `url` names, with the default options: see [`Store::open_url_with`].
    pub async fn open_url(url: &str) -> Result<Store, StoreError> {
        Store::open_url_with(url, StoreOptions::default()).await
    }

    /// Opens the store `url` names and brings its schema up to date: a `postgres://` or
    /// `postgresql://` URL opens that PostgreSQL database (which must exist); `sqlite:<path>`,
    /// `sqlite://<path>` or a plain path opens (creating if needed) that SQLite file, as
    /// [`Store::open_with`] does; any other `scheme://` is [`StoreError::UnsupportedUrl`].
    /// `opts.sync` applies to SQLite only.
    pub async fn open_url_with(url: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                // One more: the commit listener holds one for as long as the store is open.
                .max_connections(MAX_CONNECTIONS + 1)
                .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                .connect(url)
                .await?;
            crate::migrations::migrator_pg().await?.run(&pool).await?;
            let commits = Arc::new(tokio::sync::watch::Sender::new(0));
            let listener = CommitListener::start(&pool, Arc::downgrade(&commits)).await?;
            // The URL may hold a password: it is not logged.
            tracing::debug!(engine = "postgres", "store opened");
            return Ok(Store {
                backend: Backend::Postgres(pool),
                commits,
                listener: Some(Arc::new(listener)),
            });
        }
        let path = match url.strip_prefix("sqlite:") {
            Some(rest) => rest.strip_prefix("//").unwrap_or(rest),
            None => match url.split_once("://") {
                // Any other scheme is a mistake, not a file name.
                Some((scheme, _)) => return Err(StoreError::UnsupportedUrl(scheme.to_owned())),
                None => url,
            },
        };
        Store::open_with(Path::new(path), opts).await
    }

    fn with_backend(backend: Backend) -> Store {
        Store {
            backend,
            commits: Arc::new(tokio::sync::watch::Sender::new(0)),
            listener: None,
        }
    }

    /// On PostgreSQL, the id this handle's commit notifications carry (see `listen`).
    pub(crate) fn commit_signal_id(&self) -> Option<&str> {
        self.listener.as_deref().map(CommitListener::id)
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn engine(&self) -> Engine {
        match self.backend {
            Backend::Sqlite(_) => Engine::Sqlite,
            Backend::Postgres(_) => Engine::Postgres,
        }
    }

    /// `sql`, written with SQLite's `?` placeholders, in the form of the store's engine.
    pub(crate) fn sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        self.engine().sql(sql)
    }

    /// Whether the store runs on PostgreSQL (else on SQLite).
    pub fn is_postgres(&self) -> bool {
        self.engine() == Engine::Postgres
    }

    /// The SQLite pool, for a call (`what`) that has no PostgreSQL form yet: on PostgreSQL it fails
    /// with [`StoreError::Unsupported`] naming the call.
    pub(crate) fn sqlite(&self, what: &'static str) -> Result<&SqlitePool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => Ok(p),
            Backend::Postgres(_) => Err(StoreError::Unsupported(what)),
        }
    }

    /// A receiver told of every transaction the batched writer commits (the value counts them): a
    /// reader following the store (the live stream) wakes on it instead of polling. Cheap; any number
    /// of receivers. On PostgreSQL it is also told of the commits of every other store handle on the
    /// same database, in this process or another (they notify; see `listen`).
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Tells every [`Store::commits`] receiver that a transaction was committed.
    pub(crate) fn committed(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Checks the database answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection, waiting for ones in use; later calls on any clone fail.
    pub async fn close(&self) {
        if let Some(l) = &self.listener {
            l.stop();
        }
        on_backend!(self, |pool| { pool.close().await })
    }

    /// Starts a batched writer on this store. Call [`WriterTask::finish`] after dropping every
    /// [`StoreWriter`] clone to commit what is queued.
    pub fn writer(&self, opts: WriterOptions) -> (StoreWriter, WriterTask) {
        crate::writer::spawn(self.clone(), opts)
    }

    /// How many events are stored.
    pub async fn count_events(&self) -> Result<u64, StoreError> {
        let n: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM events")
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Bounded retention: deletes events (and the rollup buckets) older than `older_than`, then the oldest (by time, then id)
    /// beyond `max_events`, in one transaction. Returns how many were deleted.
    ///
    /// The newest stored event (the highest row id) is always kept, on both engines: SQLite gives a new
    /// row the highest row id plus one, so deleting it would hand its row id to the next event, and a stream cursor
    /// (`st_<audit_seq>_<event_rowid>`) past it would silently skip the events that reuse those ids.
    pub async fn prune_events(
        &self,
        older_than: Timestamp,
        max_events: u64,
    ) -> Result<u64, StoreError> {
        // In feed order: on PostgreSQL, a writer's batch drawing `rowid`s meanwhile waits, so the
        // newest event read here is the newest there is.
        let mut tx = Tx::begin_in_feed_order(self).await?;
        let by_age = tx
            .execute(
                "DELETE FROM events WHERE ts < ? AND rowid < (SELECT max(rowid) FROM events)",
                vec![older_than.as_millis().into()],
            )
            .await?;
        // The rollups counting those events go with them.
        crate::rollup::prune_before(&mut tx, older_than).await?;
        let left = tx.fetch_i64("SELECT COUNT(*) FROM events", vec![]).await?;
        let keep = i64::try_from(max_events).unwrap_or(i64::MAX);
        let excess = left.saturating_sub(keep);
        let by_count = if excess > 0 {
            tx.execute(
                "DELETE FROM events WHERE id IN \
                 (SELECT id FROM events WHERE rowid < (SELECT max(rowid) FROM events) \
                  ORDER BY ts ASC, id ASC LIMIT ?)",
                vec![excess.into()],
            )
            .await?
        } else {
            0
        };
        tx.commit().await?;
        let deleted = by_age + by_count;
        if deleted > 0 {
            tracing::info!(by_age, by_count, "pruned events");
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn synchronous(sync: SyncMode) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("s.db"), StoreOptions { sync })
            .await
            .unwrap();
        let v: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(store.sqlite("test").unwrap())
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.sqlite("test").unwrap())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        store.close().await;
        v
    }

    #[tokio::test]
    async fn urls_choose_the_engine_and_other_schemes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for url in [
            format!("sqlite:{}", dir.path().join("a.db").display()),
            format!("sqlite://{}", dir.path().join("b.db").display()),
            dir.path().join("c.db").display().to_string(),
        ] {
            let store = Store::open_url(&url).await.unwrap();
            assert!(!store.is_postgres(), "{url}");
            store.close().await;
        }
        for name in ["a.db", "b.db", "c.db"] {
            assert!(dir.path().join(name).is_file(), "{name}");
        }
        let err = Store::open_url("mysql://db.example/sentinel")
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedUrl(ref s) if s == "mysql"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sync_modes_set_the_pragma() {
        assert_eq!(synchronous(SyncMode::Normal).await, 1);
        assert_eq!(synchronous(SyncMode::Full).await, 2);
    }
}
