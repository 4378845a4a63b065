//! One daemon per PostgreSQL database: the daemon holds a session advisory lock for as long as it
//! runs, and a second daemon on the same database refuses to start, naming the holder.
//!
//! Each daemon keeps its own audit log, whose index rows are keyed by the log's sequence numbers:
//! two daemons on one database would take each other's index rows for their own (and a responder
//! would reconcile another host's actions as its own). Tools that only read or add records through
//! the daemon's API, and `sentinel` commands that open the store directly, take no hold. On SQLite
//! the database is a file in the daemon's own data directory, and nothing is held here.

use crate::backend::Backend;
use crate::error::StoreError;
use crate::store::Store;
use sqlx::{ConnectOptions, Connection};

/// The advisory lock key of the daemon's hold (`SENTINEL` in ASCII).
const HOLD_KEY: i64 = 0x5345_4e54_494e_454c;

/// The hold; released when dropped (its connection closes) or when the connection is lost.
pub struct StoreHold {
    _conn: Option<sqlx::PgConnection>,
}

impl std::fmt::Debug for StoreHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHold")
            .field("held", &self._conn.is_some())
            .finish()
    }
}

impl Store {
    /// Claims this database for one daemon, `holder` naming it (its node) for whoever is refused:
    /// [`StoreError::Held`] when another daemon holds it. A no-op on SQLite.
    pub async fn hold_exclusive(&self, holder: &str) -> Result<StoreHold, StoreError> {
        let pool = match self.backend() {
            Backend::Postgres(pool) => pool,
            Backend::Sqlite(_) => return Ok(StoreHold { _conn: None }),
        };
        let name: String = format!("sentinel daemon {holder}")
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(63)
            .collect();
        let opts = (*pool.connect_options()).clone().application_name(&name);
        let mut conn = opts.connect().await?;
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(HOLD_KEY)
            .fetch_one(&mut conn)
            .await?;
        if won {
            return Ok(StoreHold { _conn: Some(conn) });
        }
        let who: Option<(Option<String>, Option<String>, i32)> = sqlx::query_as(
            "SELECT a.application_name, host(a.client_addr), a.pid FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
             AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 LIMIT 1",
        )
        .bind(HOLD_KEY)
        .fetch_optional(&mut conn)
        .await
        .unwrap_or(None);
        let _ = conn.close().await;
        let who = match who {
            Some((app, addr, pid)) => format!(
                "`{}` (backend pid {pid}, from {})",
                app.unwrap_or_default(),
                addr.unwrap_or_else(|| "a local socket".into())
            ),
            None => "another daemon".into(),
        };
        Err(StoreError::Held(who))
    }
}
