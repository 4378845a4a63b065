//! The outbox's dead letters: deliveries that failed for good, listed newest first and put back in
//! line on an operator's word.
//!
//! Like the rest of the outbox (`outbox`), this module only moves rows between states; every call runs
//! on SQLite and PostgreSQL alike and commits before it returns.

use crate::backend::on_backend;
use crate::error::StoreError;
use crate::outbox::{limit, to_rows, DeadDelivery, RowTuple, MAX_GROUP_ROWS, ROW_COLUMNS};
use crate::store::Store;
use sentinel_core::Timestamp;

impl Store {
    /// Counts the last failed attempt of `delivery` and makes it a dead letter at `at`. Returns how
    /// many rows changed.
    pub async fn outbox_dead(
        &self,
        delivery: &str,
        at: Timestamp,
        error: &str,
    ) -> Result<u64, StoreError> {
        let done = on_backend!(self, |pool| {
            sqlx::query(&self.sql(
                "UPDATE outbox SET state = 'dead', done_at = ?, attempts = attempts + 1, \
                 last_error = ? WHERE delivery = ? AND state = 'pending'",
            ))
            .bind(at.as_millis())
            .bind(error)
            .bind(delivery)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done)
    }

    /// Dead deliveries, newest first (by when they died, then delivery id), at most `limit`;
    /// `before` is the last delivery id of the previous page. An unknown or live cursor is
    /// [`StoreError::BadCursor`].
    pub async fn outbox_dead_letters(
        &self,
        limit_n: usize,
        before: Option<&str>,
    ) -> Result<Vec<DeadDelivery>, StoreError> {
        type Head = (String, String, String, i64, Option<String>, i64, i64);
        let heads: Vec<Head> = match before {
            None => {
                on_backend!(self, |pool| {
                    sqlx::query_as(&self.sql(
                        "SELECT delivery, MIN(channel), MIN(key), MAX(attempts), MAX(last_error), \
                         MIN(created), MAX(done_at) FROM outbox WHERE state = 'dead' \
                         AND delivery IS NOT NULL GROUP BY delivery \
                         ORDER BY MAX(done_at) DESC, delivery DESC LIMIT ?",
                    ))
                    .bind(limit(limit_n))
                    .fetch_all(pool)
                    .await?
                })
            }
            Some(cursor) => {
                let at: Option<i64> = on_backend!(self, |pool| {
                    sqlx::query_scalar(&self.sql(
                        "SELECT MAX(done_at) FROM outbox WHERE state = 'dead' AND delivery = ?",
                    ))
                    .bind(cursor)
                    .fetch_one(pool)
                    .await?
                });
                let at = at.ok_or(StoreError::BadCursor)?;
                on_backend!(self, |pool| {
                    sqlx::query_as(&self.sql(
                        "SELECT delivery, MIN(channel), MIN(key), MAX(attempts), MAX(last_error), \
                         MIN(created), MAX(done_at) FROM outbox WHERE state = 'dead' \
                         AND delivery IS NOT NULL GROUP BY delivery \
                         HAVING MAX(done_at) < ? OR (MAX(done_at) = ? AND delivery < ?) \
                         ORDER BY MAX(done_at) DESC, delivery DESC LIMIT ?",
                    ))
                    .bind(at)
                    .bind(at)
                    .bind(cursor)
                    .bind(limit(limit_n))
                    .fetch_all(pool)
                    .await?
                })
            }
        };
        let mut out = Vec::with_capacity(heads.len());
        for (delivery, channel, key, attempts, last_error, created, died) in heads {
            let rows = on_backend!(self, |pool| {
                sqlx::query_as::<_, RowTuple>(&self.sql(&format!(
                    "SELECT {ROW_COLUMNS} FROM outbox WHERE delivery = ? AND state = 'dead' \
                     ORDER BY created, rowid LIMIT ?"
                )))
                .bind(&delivery)
                .bind(limit(MAX_GROUP_ROWS))
                .fetch_all(pool)
                .await?
            });
            out.push(DeadDelivery {
                delivery,
                channel,
                key,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                last_error,
                created: Timestamp::from_millis(created),
                died_at: Timestamp::from_millis(died),
                rows: to_rows(rows)?,
            });
        }
        Ok(out)
    }

    /// Puts a dead delivery back in line: its rows become pending again, due at `now`, with their
    /// attempts reset and the same delivery id. `false` when no dead delivery has that id.
    pub async fn outbox_requeue(&self, delivery: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done = on_backend!(self, |pool| {
            sqlx::query(&self.sql(
                "UPDATE outbox SET state = 'pending', attempts = 0, due = ?, done_at = NULL \
                 WHERE delivery = ? AND state = 'dead'",
            ))
            .bind(now.as_millis())
            .bind(delivery)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }
}
