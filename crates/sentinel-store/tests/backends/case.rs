//! The harness of the shared store suite: a fresh store on one engine ([`Case`]), a connection that
//! holds its write lock ([`Blocker`]), and helpers every case uses.

use crate::common::*;
use sentinel_core::{AuditKind, Severity};
use sentinel_store::{
    content_hash, AckGroup, AuditRow, FeedFilter, FeedKind, Record, Store, WriterOptions,
};
use sentinel_testkit::postgres::PostgresServer;
use sqlx::Connection;

/// 2025-12-01T08:00:00Z, in ms.
pub const T0: i64 = 1_764_576_000_000;

/// A fresh, empty store on one engine, and what keeps that engine alive.
pub struct Case {
    pub store: Store,
    place: Place,
}

pub enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(PostgresServer),
}

/// A connection beside the store holding its write lock until released.
pub enum Blocker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Case {
    pub async fn sqlite() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let store = Store::open_url(&url).await.unwrap();
        assert!(!store.is_postgres());
        Case {
            store,
            place: Place::Sqlite(dir),
        }
    }

    pub async fn postgres() -> Case {
        let server = PostgresServer::start();
        let store = Store::open_url(&server.url()).await.unwrap();
        assert!(store.is_postgres());
        Case {
            store,
            place: Place::Postgres(server),
        }
    }

    pub fn url(&self) -> String {
        match &self.place {
            Place::Sqlite(dir) => format!("sqlite://{}", dir.path().join("s.db").display()),
            Place::Postgres(server) => server.url(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres(_))
    }

    /// Runs `sqlite` or `postgres` (statements, no rows) on a connection of its own.
    pub async fn exec(&self, sqlite: &str, postgres: &str) {
        match &self.place {
            Place::Sqlite(_) => {
                let mut c = sqlx::SqliteConnection::connect(&self.url()).await.unwrap();
                sqlx::raw_sql(sqlite).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Place::Postgres(_) => {
                let mut c = sqlx::PgConnection::connect(&self.url()).await.unwrap();
                sqlx::raw_sql(postgres).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// Takes the lock a writer needs to add events, on a connection of its own.
    pub async fn hold_event_writes(&self) -> Blocker {
        match &self.place {
            Place::Sqlite(_) => {
                let mut c = sqlx::SqliteConnection::connect(&self.url()).await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                Blocker::Sqlite(c)
            }
            Place::Postgres(_) => {
                let mut c = sqlx::PgConnection::connect(&self.url()).await.unwrap();
                sqlx::raw_sql("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                Blocker::Postgres(c)
            }
        }
    }
}

impl Blocker {
    pub async fn release(self) {
        match self {
            Blocker::Sqlite(mut c) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
            }
            Blocker::Postgres(mut c) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
            }
        }
    }
}

/// Writes `records` through a writer, each with an ack, and waits until all are settled committed,
/// every batch whole.
pub async fn store_all(store: &Store, records: Vec<Record>) {
    let (writer, task) = store.writer(WriterOptions::default());
    let group = AckGroup::new();
    let n = records.len() as u64;
    for (i, r) in records.into_iter().enumerate() {
        writer.write_acked(r, group.token(i as u64)).await.unwrap();
    }
    let summary = group.settled().await;
    assert_eq!(
        (summary.committed, summary.failed),
        (n, 0),
        "{:?}",
        group.failures()
    );
    drop(writer);
    let stats = task.finish().await.unwrap();
    // Every batch committed whole: none failed and was retried record by record.
    assert_eq!((stats.failed_batches, stats.dropped), (0, 0), "{stats:?}");
}

pub fn noted(seq: Option<u64>, kind: AuditKind, id: &str, trace: &str, r: &Record) -> Record {
    let mut rec = audit(T0 + 50, kind, id, trace);
    rec.content_hash = content_hash(r).unwrap();
    Record::Audit(AuditRow {
        log_seq: seq,
        record: rec,
    })
}

pub fn rank(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

/// Every item of a listing, page by page (`$f.limit` per page), checking each page's cursor.
macro_rules! all_pages {
    ($store:expr, $method:ident, $f:expr) => {{
        let mut f = $f.clone();
        let mut out = Vec::new();
        for _ in 0..1000 {
            let page = $store.$method(&f).await.unwrap();
            let last = page.items.last().map(|x| x.id.to_string());
            out.extend(page.items);
            match page.next_cursor {
                Some(cursor) => {
                    assert_eq!(
                        Some(cursor.clone()),
                        last,
                        "the cursor is the last item's id"
                    );
                    f.cursor = Some(cursor);
                }
                None => break,
            }
        }
        out.into_iter()
            .map(|x| x.id.to_string())
            .collect::<Vec<String>>()
    }};
}

/// The ids of `items` that `keep` selects, newest (highest id) first: what a listing must answer.
pub fn expected<T>(
    items: &[T],
    id: impl Fn(&T) -> String,
    keep: impl Fn(&T) -> bool,
) -> Vec<String> {
    let mut ids: Vec<String> = items.iter().filter(|x| keep(x)).map(id).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

pub fn all_kinds() -> FeedFilter {
    FeedFilter {
        kinds: FeedKind::ALL.to_vec(),
        ..Default::default()
    }
}
