//! Which engine a [`Store`] runs on (SQLite or PostgreSQL), and the few pieces that let one piece of
//! store code run on either.
//!
//! A store holds one [`Backend`]: the pool of its engine. Store code writes its SQL once, with SQLite's
//! `?` placeholders, and either
//! - runs it in a [`Tx`] (the writer's batches, pruning): values are bound as [`Val`]s and the
//!   placeholders rewritten for PostgreSQL (`$1`, `$2`, …) by [`Engine::sql`]; or
//! - wraps its body in [`on_backend!`], which expands the body once per engine with the pool of that
//!   engine, so sqlx's typed queries, `QueryBuilder`s (which number their own placeholders) and row
//!   decoding are checked for each engine by the compiler.
//!
//! A store method that has no PostgreSQL form (today only SQLite's own query plan,
//! [`Store::scenario_window_plan`]) reaches its pool through [`Store::sqlite`], which answers
//! [`StoreError::Unsupported`] on PostgreSQL: it fails clearly, never returns an empty answer.
//! This module must not know record layouts.

use crate::error::StoreError;
use crate::store::Store;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{Postgres, Sqlite, Transaction};
use std::borrow::Cow;

/// The advisory lock every PostgreSQL transaction that adds events or audit rows holds until it
/// commits. It serialises those transactions across every process sharing the database, so the
/// identities they draw (`audit.seq`, `events.rowid`) grow in commit order, which the feed relies on
/// (SQLite's single write lock gives the same for free). The value is arbitrary ("SNTLFEED").
pub(crate) const FEED_LOCK: i64 = 0x534E_544C_4645_4544;

/// The pool of the engine a store runs on.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// An SQLite file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// The engine alone, without its pool: what SQL text depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// SQLite: `?` placeholders.
    Sqlite,
    /// PostgreSQL: numbered `$n` placeholders.
    Postgres,
}

impl Engine {
    /// `sql`, written with `?` placeholders (or numbered ones, `?1`, `?2`, …; not both in one
    /// statement), in this engine's form. Store SQL never has a `?` inside a string literal, so every
    /// `?` is a placeholder.
    pub(crate) fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Engine::Sqlite => Cow::Borrowed(sql),
            Engine::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0u32;
                let mut chars = sql.chars().peekable();
                while let Some(c) = chars.next() {
                    if c != '?' {
                        out.push(c);
                        continue;
                    }
                    out.push('$');
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        // Numbered: `?2` is `$2`.
                        while let Some(d) = chars.next_if(char::is_ascii_digit) {
                            out.push(d);
                        }
                    } else {
                        n += 1;
                        out.push_str(&n.to_string());
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

/// Runs `$body` with `$pool` bound to the store's pool, expanded once per engine: in the SQLite arm
/// `$pool` is a `&SqlitePool`, in the PostgreSQL arm a `&PgPool`, and the body is type-checked for each.
macro_rules! on_backend {
    ($store:expr, |$pool:ident| $body:block) => {
        match $store.backend() {
            $crate::backend::Backend::Sqlite($pool) => $body,
            $crate::backend::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_backend;

/// A value bound to a [`Tx`] statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// An integer (a time in ms, a rank, a count).
    Int(i64),
    /// Text.
    Text(String),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// Text or NULL.
    OptText(Option<String>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_owned())
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Val::OptInt(v)
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::OptText(v)
    }
}

/// PostgreSQL's `text` holds no NUL byte (SQLite's does): in the columns a record is indexed by, a NUL
/// is written as U+FFFD (the record's body, JSON, keeps it exactly as `\u0000`).
pub(crate) fn pg_text(vals: Vec<Val>) -> Vec<Val> {
    vals.into_iter()
        .map(|v| match v {
            Val::Text(t) if t.contains('\0') => Val::Text(t.replace('\0', "\u{FFFD}")),
            Val::OptText(Some(t)) if t.contains('\0') => {
                Val::OptText(Some(t.replace('\0', "\u{FFFD}")))
            }
            v => v,
        })
        .collect()
}

impl Store {
    /// Text bound as a filter: as [`pg_text`] writes it on PostgreSQL, as it is on SQLite.
    pub(crate) fn text_param(&self, t: &str) -> String {
        match self.backend() {
            Backend::Postgres(_) if t.contains('\0') => t.replace('\0', "\u{FFFD}"),
            _ => t.to_owned(),
        }
    }
}

/// Binds `vals` in order to a query of either engine (the same code, expanded per query type).
macro_rules! bind_vals {
    ($q:expr, $vals:expr) => {{
        let mut q = $q;
        for v in $vals {
            q = match v {
                Val::Int(v) => q.bind(v),
                Val::Text(v) => q.bind(v),
                Val::OptInt(v) => q.bind(v),
                Val::OptText(v) => q.bind(v),
            };
        }
        q
    }};
}

/// A transaction on either engine.
#[derive(Debug)]
pub(crate) enum Tx {
    /// On SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Begins a transaction on `store`.
    pub(crate) async fn begin(store: &Store) -> Result<Tx, StoreError> {
        Ok(match store.backend() {
            Backend::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Backend::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Begins a transaction that may add events or audit rows: on PostgreSQL it first takes
    /// [`FEED_LOCK`], held until it ends, so such transactions commit one at a time, in the order they
    /// drew their identities, and it notifies the other store handles of its commit (`listen`).
    pub(crate) async fn begin_in_feed_order(store: &Store) -> Result<Tx, StoreError> {
        let mut tx = Tx::begin(store).await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(FEED_LOCK)
                .execute(&mut **t)
                .await?;
            // Delivered to every listening handle at commit (dropped on rollback).
            if let Some(id) = store.commit_signal_id() {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(crate::listen::CHANNEL)
                    .bind(id)
                    .execute(&mut **t)
                    .await?;
            }
        }
        Ok(tx)
    }

    /// Makes every other transaction that writes `table` wait until this one ends (reads go on). On
    /// SQLite there is one writer at a time anyway; on PostgreSQL, whose default isolation lets two
    /// transactions each check a condition on rows the other is changing, this is what makes a
    /// check-then-write in one transaction safe. `table` is one of the store's fixed table names.
    pub(crate) async fn serialise_writes_to(
        &mut self,
        table: &'static str,
    ) -> Result<(), StoreError> {
        if let Tx::Postgres(t) = self {
            sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    /// The engine the transaction runs on.
    pub(crate) fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs `sql` (with `?` placeholders) with `vals` bound in order; returns the rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, vals: Vec<Val>) -> Result<u64, StoreError> {
        let sql = self.engine().sql(sql);
        Ok(match self {
            Tx::Sqlite(t) => bind_vals!(sqlx::query(&sql), vals)
                .execute(&mut **t)
                .await?
                .rows_affected(),
            Tx::Postgres(t) => bind_vals!(sqlx::query(&sql), pg_text(vals))
                .execute(&mut **t)
                .await?
                .rows_affected(),
        })
    }

    /// Runs `sql` (with `?` placeholders), which answers one integer, with `vals` bound in order.
    pub(crate) async fn fetch_i64(&mut self, sql: &str, vals: Vec<Val>) -> Result<i64, StoreError> {
        let sql = self.engine().sql(sql);
        Ok(match self {
            Tx::Sqlite(t) => {
                bind_vals!(sqlx::query_scalar(&sql), vals)
                    .fetch_one(&mut **t)
                    .await?
            }
            Tx::Postgres(t) => {
                bind_vals!(sqlx::query_scalar(&sql), pg_text(vals))
                    .fetch_one(&mut **t)
                    .await?
            }
        })
    }

    /// Commits; only after this returns is anything the transaction wrote stored.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// `rows` tuples of `cols` `?` placeholders each, comma-separated: the `VALUES` of a multi-row insert
/// (rewrite with [`Engine::sql`]).
pub(crate) fn tuples(rows: usize, cols: usize) -> String {
    let tuple = format!("({})", vec!["?"; cols].join(", "));
    vec![tuple; rows].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let sql = "SELECT a FROM t WHERE b = ? AND c IN (?, ?)";
        assert_eq!(Engine::Sqlite.sql(sql), sql);
        assert_eq!(
            Engine::Postgres.sql(sql),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
        assert_eq!(
            Engine::Postgres.sql("SET a = ?1 WHERE b = ?2 AND c > ?1"),
            "SET a = $1 WHERE b = $2 AND c > $1"
        );
        assert_eq!(tuples(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(Engine::Postgres.sql(&tuples(2, 2)), "($1, $2), ($3, $4)");
    }
}
