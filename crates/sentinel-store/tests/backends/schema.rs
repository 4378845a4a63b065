//! The two migration sets make the same schema: the same tables, the same columns in the same order
//! with the same types and nullability, and the same indexes (name, table, columns, uniqueness), read
//! back from each engine's own catalog after a store opened it.

use crate::case::*;
use sqlx::Connection;
use std::collections::BTreeMap;

/// Table -> its columns as `(name, type, not null)`, in order.
type Columns = BTreeMap<String, Vec<(String, String, bool)>>;
/// `(index, table, columns, unique)`, sorted.
type Indexes = Vec<(String, String, Vec<String>, bool)>;

async fn sqlite_schema(url: &str) -> (Columns, Indexes) {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let (mut columns, mut indexes) = (Columns::new(), Indexes::new());
    for t in tables {
        let cols: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind(&t)
        .fetch_all(&mut c)
        .await
        .unwrap();
        let cols = cols
            .into_iter()
            .map(|(name, ty, not_null, pk)| {
                let ty = match ty.as_str() {
                    "INTEGER" => "bigint".to_owned(),
                    "TEXT" => "text".to_owned(),
                    other => other.to_owned(),
                };
                // A primary key is never NULL, declared so or not (`seq INTEGER PRIMARY KEY`).
                (name, ty, not_null == 1 || pk > 0)
            })
            .collect();
        columns.insert(t.clone(), cols);
        let list: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT name, \"unique\", origin FROM pragma_index_list(?)")
                .bind(&t)
                .fetch_all(&mut c)
                .await
                .unwrap();
        // Indexes made by CREATE INDEX only: those of PRIMARY KEY and UNIQUE constraints differ in
        // name between the engines.
        for (name, unique, _) in list.into_iter().filter(|l| l.2 == "c") {
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            indexes.push((name, t.clone(), cols, unique == 1));
        }
    }
    indexes.sort();
    (columns, indexes)
}

async fn postgres_schema(url: &str) -> (Columns, Indexes) {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name NOT LIKE '\\_sqlx%' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut columns = Columns::new();
    for (table, name, ty, nullable) in rows {
        // SQLite's implicit rowid is a column on PostgreSQL (the feed's and the outbox's order).
        if name == "rowid" && (table == "events" || table == "outbox") {
            continue;
        }
        columns
            .entry(table)
            .or_default()
            .push((name, ty, nullable == "NO"));
    }
    let mut indexes: Indexes = sqlx::query_as(
        "SELECT i.relname::text, t.relname::text, \
                array_agg(a.attname::text ORDER BY k.ord), ix.indisunique \
         FROM pg_index ix \
         JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = 'public' AND t.relname NOT LIKE '\\_sqlx%' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = ix.indexrelid) \
         GROUP BY i.relname, t.relname, ix.indisunique",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    indexes.sort();
    (columns, indexes)
}

#[tokio::test]
async fn both_migration_sets_make_the_same_schema() {
    let (lite, pg) = (Case::sqlite().await, Case::postgres().await);
    let (lite_cols, lite_idx) = sqlite_schema(&lite.url()).await;
    let (pg_cols, pg_idx) = postgres_schema(&pg.url()).await;
    let tables: Vec<&String> = lite_cols.keys().collect();
    assert_eq!(
        tables,
        [
            "actions",
            "alerts",
            "api_keys",
            "audit",
            "events",
            "investigations",
            "outbox",
            "plans",
            "rollups"
        ]
    );
    assert_eq!(pg_cols.keys().collect::<Vec<_>>(), tables);
    for (table, cols) in &lite_cols {
        assert_eq!(Some(cols), pg_cols.get(table), "columns of {table}");
    }
    assert!(lite_idx.len() >= 30, "{lite_idx:?}");
    assert_eq!(pg_idx, lite_idx);
}
