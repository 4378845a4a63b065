//! The notification outbox: one row per notice per channel, kept until it is delivered (then pruned
//! after a while) or becomes a dead letter.
//!
//! This module only keeps rows and moves them between states (`pending` → `delivered` | `dead`, and a
//! dead delivery back to `pending`); routing, folding rows into messages, backoff and sending are the
//! notify crate's job. Rows folded into one message share a delivery id, assigned before the first
//! send and kept across retries and restarts. Every call that changes rows runs in one transaction
//! that is committed before it returns. Every call runs on SQLite and PostgreSQL alike (rows of one
//! key keep their insertion order by `rowid`: SQLite's implicit one, an identity column on PostgreSQL).

use crate::backend::{on_backend, Engine};
use crate::error::StoreError;
use crate::store::Store;
use sentinel_core::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;

/// The most rows one group holds; a larger burst of one key becomes several messages.
pub const MAX_GROUP_ROWS: usize = 10_000;
/// Assigned deliveries whose retry is due: along the partial index of assigned rows (few: those in
/// flight or retrying), not along `outbox_due`, which would visit every pending row of a flood of
/// unassigned rows on each scan.
const DUE_DELIVERIES_SQL: &str =
    "SELECT delivery, MIN(key) FROM outbox INDEXED BY outbox_delivery \
     WHERE channel = ? AND state = 'pending' AND delivery IS NOT NULL AND due <= ? \
     GROUP BY delivery ORDER BY MIN(due) LIMIT ?";

/// [`DUE_DELIVERIES_SQL`] for PostgreSQL, which has no `INDEXED BY` (its planner picks the partial
/// index by itself).
const DUE_DELIVERIES_SQL_PG: &str = "SELECT delivery, MIN(key) FROM outbox \
                                     WHERE channel = ? AND state = 'pending' AND delivery IS NOT NULL AND due <= ? \
                                     GROUP BY delivery ORDER BY MIN(due) LIMIT ?";

fn due_deliveries_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => DUE_DELIVERIES_SQL,
        Engine::Postgres => DUE_DELIVERIES_SQL_PG,
    }
}

/// The keys of due unassigned rows with no delivery in flight, one per row in `due` order (read
/// along `outbox_due`, stopping at the limit; no aggregation over every pending row).
const DUE_KEY_ROWS_SQL: &str = "SELECT o.key FROM outbox o WHERE o.channel = ? \
                                AND o.state = 'pending' AND o.delivery IS NULL AND o.due <= ? AND NOT EXISTS \
                                (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.key = o.key \
                                AND p.state = 'pending' AND p.delivery IS NOT NULL) ORDER BY o.due LIMIT ?";

/// Due rows read per group wanted when looking for the next keys (a key with many due rows takes
/// several; a scan that finds fewer keys than wanted returns fewer groups, the rest come next scan).
const KEY_SCAN_ROWS: usize = 64;
/// Ids per statement when updating rows by id (SQLite limits bound variables).
const ID_CHUNK: usize = 500;

/// Where an outbox row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent (or to be retried).
    Pending,
    /// Sent; kept for de-duplication windows until pruned.
    Delivered,
    /// Given up on: a permanent error or the last attempt failed.
    Dead,
}

impl OutboxState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Result<OutboxState, StoreError> {
        match s {
            "pending" => Ok(OutboxState::Pending),
            "delivered" => Ok(OutboxState::Delivered),
            "dead" => Ok(OutboxState::Dead),
            other => Err(StoreError::Corrupt(format!("outbox state {other:?}"))),
        }
    }
}

/// A row to add to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxRow {
    /// Unique id (a ULID, or a fixed id such as `digest:<date>:<channel>` to make the insert
    /// happen at most once).
    pub id: String,
    /// The channel it goes to.
    pub channel: String,
    /// The de-duplication key; rows with the same key on a channel fold into one message.
    pub key: String,
    /// The notice, as JSON.
    pub body: String,
    /// When it was accepted.
    pub created: Timestamp,
    /// When it may be sent at the earliest.
    pub due: Timestamp,
}

/// One stored outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id.
    pub id: String,
    /// Channel name.
    pub channel: String,
    /// De-duplication key.
    pub key: String,
    /// The notice, as JSON.
    pub body: String,
    /// When it was accepted.
    pub created: Timestamp,
    /// When it may be sent (next attempt) at the earliest.
    pub due: Timestamp,
    /// The delivery (message) it belongs to, once assigned.
    pub delivery: Option<String>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Its state.
    pub state: OutboxState,
    /// When it was delivered or died.
    pub done_at: Option<Timestamp>,
}

/// Rows of one channel that go out as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxGroup {
    /// The channel.
    pub channel: String,
    /// The shared de-duplication key.
    pub key: String,
    /// The delivery id when already assigned (a retry, or a message in flight at the last stop);
    /// `None` for a new group, which needs one assigned before it is sent.
    pub delivery: Option<String>,
    /// Its rows, oldest first (by creation time, then insertion order).
    pub rows: Vec<OutboxRow>,
}

/// One dead delivery, with its rows (so the message can be shown as it was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadDelivery {
    /// The delivery id.
    pub delivery: String,
    /// The channel.
    pub channel: String,
    /// The de-duplication key.
    pub key: String,
    /// Attempts made.
    pub attempts: u32,
    /// The error it died of.
    pub last_error: Option<String>,
    /// When its first row was accepted.
    pub created: Timestamp,
    /// When it died.
    pub died_at: Timestamp,
    /// Its rows, oldest first.
    pub rows: Vec<OutboxRow>,
}

/// How many rows a channel has in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxCount {
    /// The channel.
    pub channel: String,
    /// The state.
    pub state: OutboxState,
    /// Rows in it.
    pub rows: u64,
}

pub(crate) type RowTuple = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    i64,
    Option<String>,
    String,
    Option<i64>,
);

pub(crate) const ROW_COLUMNS: &str =
    "id, channel, key, body, created, due, delivery, attempts, last_error, state, done_at";

pub(crate) fn to_row(t: RowTuple) -> Result<OutboxRow, StoreError> {
    let (id, channel, key, body, created, due, delivery, attempts, last_error, state, done_at) = t;
    Ok(OutboxRow {
        id,
        channel,
        key,
        body,
        created: Timestamp::from_millis(created),
        due: Timestamp::from_millis(due),
        delivery,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error,
        state: OutboxState::parse(&state)?,
        done_at: done_at.map(Timestamp::from_millis),
    })
}

pub(crate) fn to_rows(ts: Vec<RowTuple>) -> Result<Vec<OutboxRow>, StoreError> {
    ts.into_iter().map(to_row).collect()
}

pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Adds rows in one transaction, committed before returning. A row whose id is already stored
    /// is left as it is (so a fixed id makes an insert happen at most once). Returns how many rows
    /// were added.
    pub async fn insert_outbox(&self, rows: &[NewOutboxRow]) -> Result<u64, StoreError> {
        on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut added = 0;
            for chunk in rows.chunks(ID_CHUNK / 6) {
                let mut q =
                    QueryBuilder::new("INSERT INTO outbox (id, channel, key, body, created, due) ");
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.id)
                        .push_bind(&r.channel)
                        .push_bind(&r.key)
                        .push_bind(&r.body)
                        .push_bind(r.created.as_millis())
                        .push_bind(r.due.as_millis());
                });
                q.push(" ON CONFLICT(id) DO NOTHING");
                added += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(added)
        })
    }

    /// The groups of `channel` ready at `now`, at most `max_groups`: first the deliveries already
    /// assigned whose retry is due (all their rows), then keys with a due row and no delivery in
    /// flight (every pending unassigned row of the key, due or not, up to [`MAX_GROUP_ROWS`]).
    pub async fn outbox_due_groups(
        &self,
        channel: &str,
        now: Timestamp,
        max_groups: usize,
    ) -> Result<Vec<OutboxGroup>, StoreError> {
        let mut groups = Vec::new();
        let deliveries: Vec<(String, String)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(due_deliveries_sql(self.engine())))
                .bind(channel)
                .bind(now.as_millis())
                .bind(limit(max_groups))
                .fetch_all(pool)
                .await?
        });
        for (delivery, key) in deliveries {
            let rows = on_backend!(self, |pool| {
                sqlx::query_as::<_, RowTuple>(&self.sql(&format!(
                    "SELECT {ROW_COLUMNS} FROM outbox WHERE delivery = ? AND state = 'pending' \
                     ORDER BY created, rowid"
                )))
                .bind(&delivery)
                .fetch_all(pool)
                .await?
            });
            groups.push(OutboxGroup {
                channel: channel.to_owned(),
                key,
                delivery: Some(delivery),
                rows: to_rows(rows)?,
            });
        }
        let room = max_groups.saturating_sub(groups.len());
        if room == 0 {
            return Ok(groups);
        }
        // The keys in the order of their earliest due row: the first distinct keys of the due rows
        // read in `due` order along the `outbox_due` index. A `GROUP BY key` would aggregate every
        // pending row on each scan, which made draining a flood of distinct keys quadratic.
        let candidates: Vec<(String,)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(DUE_KEY_ROWS_SQL))
                .bind(channel)
                .bind(now.as_millis())
                .bind(limit(room.saturating_mul(KEY_SCAN_ROWS)))
                .fetch_all(pool)
                .await?
        });
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        for (key,) in candidates {
            if keys.len() == room {
                break;
            }
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
        for key in keys {
            let rows = on_backend!(self, |pool| {
                sqlx::query_as::<_, RowTuple>(&self.sql(&format!(
                    "SELECT {ROW_COLUMNS} FROM outbox WHERE channel = ? AND key = ? \
                     AND state = 'pending' AND delivery IS NULL ORDER BY created, rowid LIMIT ?"
                )))
                .bind(channel)
                .bind(&key)
                .bind(limit(MAX_GROUP_ROWS))
                .fetch_all(pool)
                .await?
            });
            groups.push(OutboxGroup {
                channel: channel.to_owned(),
                key,
                delivery: None,
                rows: to_rows(rows)?,
            });
        }
        Ok(groups)
    }

    /// When the next group of `channel` is due: the earliest retry of an assigned delivery, or the
    /// earliest due row of a key with no delivery in flight. `None` when nothing is pending.
    pub async fn outbox_next_due(&self, channel: &str) -> Result<Option<Timestamp>, StoreError> {
        let due: Option<i64> = on_backend!(self, |pool| {
            sqlx::query_scalar(&self.sql(
                "SELECT MIN(o.due) FROM outbox o WHERE o.channel = ? AND o.state = 'pending' \
                 AND (o.delivery IS NOT NULL OR NOT EXISTS (SELECT 1 FROM outbox p \
                 WHERE p.channel = o.channel AND p.key = o.key AND p.state = 'pending' \
                 AND p.delivery IS NOT NULL))",
            ))
            .bind(channel)
            .fetch_one(pool)
            .await?
        });
        Ok(due.map(Timestamp::from_millis))
    }

    /// Writes `delivery` to the given pending, unassigned rows (one transaction, committed before
    /// returning). Returns how many rows took it.
    pub async fn outbox_assign(&self, delivery: &str, ids: &[String]) -> Result<u64, StoreError> {
        on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut n = 0;
            for chunk in ids.chunks(ID_CHUNK) {
                let mut q = QueryBuilder::new("UPDATE outbox SET delivery = ");
                q.push_bind(delivery);
                q.push(" WHERE state = 'pending' AND delivery IS NULL AND id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id);
                }
                q.push(")");
                n += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Moves the unassigned pending rows of `key` on `channel` due before `due` to `due` (a
    /// de-duplication window not over yet). Returns how many rows moved.
    pub async fn outbox_defer(
        &self,
        channel: &str,
        key: &str,
        due: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = on_backend!(self, |pool| {
            sqlx::query(&self.sql(
                "UPDATE outbox SET due = ? WHERE channel = ? AND key = ? AND state = 'pending' \
                 AND delivery IS NULL AND due < ?",
            ))
            .bind(due.as_millis())
            .bind(channel)
            .bind(key)
            .bind(due.as_millis())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done)
    }

    /// Marks the pending rows of `delivery` delivered at `at` (counting the attempt). Returns how
    /// many rows changed.
    pub async fn outbox_delivered(&self, delivery: &str, at: Timestamp) -> Result<u64, StoreError> {
        let done = on_backend!(self, |pool| {
            sqlx::query(&self.sql(
                "UPDATE outbox SET state = 'delivered', done_at = ?, attempts = attempts + 1, \
                 last_error = NULL WHERE delivery = ? AND state = 'pending'",
            ))
            .bind(at.as_millis())
            .bind(delivery)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done)
    }

    /// Counts a failed attempt of `delivery` and sets its next try to `due`. Returns how many rows
    /// changed.
    pub async fn outbox_retry(
        &self,
        delivery: &str,
        due: Timestamp,
        error: &str,
    ) -> Result<u64, StoreError> {
        let done = on_backend!(self, |pool| {
            sqlx::query(&self.sql(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, due = ? \
                 WHERE delivery = ? AND state = 'pending'",
            ))
            .bind(error)
            .bind(due.as_millis())
            .bind(delivery)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done)
    }

    /// When a message with `key` was last delivered on `channel`, if one was (and not yet pruned).
    pub async fn outbox_last_delivered(
        &self,
        channel: &str,
        key: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> = on_backend!(self, |pool| {
            sqlx::query_scalar(&self.sql("SELECT MAX(done_at) FROM outbox WHERE channel = ? AND key = ? AND state = 'delivered'",))
        .bind(channel)
        .bind(key)
        .fetch_one(pool).await?
        });
        Ok(at.map(Timestamp::from_millis))
    }

    /// Row counts by channel and state.
    pub async fn outbox_counts(&self) -> Result<Vec<OutboxCount>, StoreError> {
        let rows: Vec<(String, String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(
                "SELECT channel, state, COUNT(*) FROM outbox GROUP BY channel, state \
                 ORDER BY channel, state",
            ))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(channel, state, n)| {
                Ok(OutboxCount {
                    channel,
                    state: OutboxState::parse(&state)?,
                    rows: u64::try_from(n).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The row with `id`, in any state.
    pub async fn outbox_row(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        let row = on_backend!(self, |pool| {
            sqlx::query_as::<_, RowTuple>(
                &self.sql(&format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?")),
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(to_row).transpose()
    }

    /// Every row of `delivery`, oldest first.
    pub async fn outbox_delivery_rows(&self, delivery: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = on_backend!(self, |pool| {
            sqlx::query_as::<_, RowTuple>(&self.sql(&format!(
                "SELECT {ROW_COLUMNS} FROM outbox WHERE delivery = ? ORDER BY created, rowid"
            )))
            .bind(delivery)
            .fetch_all(pool)
            .await?
        });
        to_rows(rows)
    }

    /// Deletes delivered rows done before `older_than`. Returns how many were deleted.
    pub async fn outbox_prune_delivered(&self, older_than: Timestamp) -> Result<u64, StoreError> {
        let done = on_backend!(self, |pool| {
            sqlx::query(&self.sql("DELETE FROM outbox WHERE state = 'delivered' AND done_at < ?"))
                .bind(older_than.as_millis())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The scan for due work must not aggregate or sort every pending row: with a flood of
    /// distinct keys that made each scan (16 groups) cost O(pending), and draining quadratic.
    #[tokio::test]
    async fn due_scans_walk_indexes_without_aggregating_every_pending_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        for (sql, index, forbidden) in [
            (DUE_DELIVERIES_SQL, "outbox_delivery", "outbox_due"),
            (DUE_KEY_ROWS_SQL, "outbox_due", "TEMP B-TREE"),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind("c")
                    .bind(0i64)
                    .bind(16i64)
                    .fetch_all(store.sqlite("test").unwrap())
                    .await
                    .unwrap();
            let text: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
            let first = text.first().copied().unwrap_or_default();
            assert!(first.contains(index), "{sql}: {text:?}");
            assert!(!first.contains(forbidden), "{sql}: {text:?}");
            if forbidden == "TEMP B-TREE" {
                assert!(
                    !text.iter().any(|t| t.contains(forbidden)),
                    "{sql}: {text:?}"
                );
            }
        }
    }
}
