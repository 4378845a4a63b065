//! The `audit` table as the index of the audit log: log seqs and content hashes are stored and read
//! back, a log seq is indexed once, the index can be caught up (gaps found, rows added again
//! harmlessly), rows stored before schema 3 still read, and a record's content hash is recomputed from
//! its row exactly as stored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_core::{AuditKind, AuditRecord, Severity};
use sentinel_store::{content_hash, sha256_hex, stored_body, AuditRow, Record, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

fn hashed(mut a: AuditRecord, hash: &str) -> AuditRecord {
    a.content_hash = Some(hash.into());
    a
}

async fn write_all(store: &Store, records: Vec<Record>) -> sentinel_store::WriterStats {
    let (writer, task) = store.writer(fast_writer());
    for r in records {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    task.finish().await.unwrap()
}

#[tokio::test]
async fn log_seqs_and_content_hashes_are_indexed_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let t = "trace-idx-1";
    assert_eq!(store.max_audit_log_seq().await.unwrap(), None);

    let a0 = hashed(
        audit(1_000, AuditKind::AlertRaised, "a-1", t),
        &"ab".repeat(32),
    );
    let a1 = audit(1_100, AuditKind::NoticeSent, "log", t);
    let a2 = audit(1_200, AuditKind::Operator, "x-1", t); // stored without the log
    let a3 = audit(1_300, AuditKind::Operator, "x-2", t); // and another: NULL seqs do not clash
    let stats = write_all(
        &store,
        vec![
            AuditRow::logged(7, a0.clone()).into(),
            AuditRow::logged(8, a1.clone()).into(),
            a2.clone().into(),
            Record::from(AuditRow::unlogged(a3.clone())),
        ],
    )
    .await;
    assert_eq!(
        (stats.records, stats.failed_batches, stats.dropped),
        (4, 0, 0)
    );

    let rows = store.audit_for_trace(&trace(t)).await.unwrap();
    assert_eq!(
        rows,
        vec![
            AuditRow::logged(7, a0.clone()),
            AuditRow::logged(8, a1.clone()),
            AuditRow::unlogged(a2),
            AuditRow::unlogged(a3),
        ]
    );
    assert_eq!(
        rows[0].record.content_hash.as_deref(),
        Some(&*"ab".repeat(32))
    );
    assert_eq!(store.max_audit_log_seq().await.unwrap(), Some(8));

    // The API's form: the record's fields plus `seq` (null when the log does not hold it).
    let v = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(v["seq"], 7);
    assert_eq!(v["kind"], "alert_raised");
    assert_eq!(v["content_hash"], "ab".repeat(32));
    let v = serde_json::to_value(&rows[2]).unwrap();
    assert!(v["seq"].is_null() && v["content_hash"].is_null(), "{v}");

    // A seq already indexed is kept as it was: the writer neither fails the batch nor overwrites it.
    let mut other = a1.clone();
    other.summary = "a different record under seq 8".into();
    let stats = write_all(&store, vec![AuditRow::logged(8, other).into()]).await;
    assert_eq!((stats.failed_batches, stats.dropped), (0, 0));
    let rows = store.audit_for_trace(&trace(t)).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1], AuditRow::logged(8, a1));
    store.close().await;
}

#[tokio::test]
async fn the_index_is_caught_up_from_gaps_and_adding_again_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let t = "trace-idx-2";
    let row = |seq: u64| {
        AuditRow::logged(
            seq,
            audit(
                1_000 + seq as i64,
                AuditKind::ActionChanged,
                &format!("s{seq}"),
                t,
            ),
        )
    };
    // As after a crash: seqs 0, 1, 4 and 6 reached the index, 2, 3 and 5 did not.
    let added = store
        .insert_audit_index_batch(&[row(0), row(1), row(4), row(6)])
        .await
        .unwrap();
    assert_eq!(added, 4);
    assert_eq!(store.max_audit_log_seq().await.unwrap(), Some(6));
    assert_eq!(
        store.audit_log_seq_gaps(0, 9).await.unwrap(),
        vec![2..4, 5..6, 7..9]
    );
    assert_eq!(store.audit_log_seq_gaps(4, 5).await.unwrap(), vec![]);
    assert_eq!(store.audit_log_seq_gaps(5, 5).await.unwrap(), vec![]);
    assert_eq!(
        store.audit_log_seq_gaps(3, 6).await.unwrap(),
        vec![3..4, 5..6]
    );

    // Catching up re-sends a whole range; only the missing rows are added.
    let range: Vec<AuditRow> = (0..7).map(row).collect();
    assert_eq!(store.insert_audit_index_batch(&range).await.unwrap(), 3);
    assert_eq!(store.insert_audit_index_batch(&range).await.unwrap(), 0);
    assert_eq!(store.audit_log_seq_gaps(0, 7).await.unwrap(), vec![]);
    let seqs: Vec<Option<u64>> = store
        .audit_for_trace(&trace(t))
        .await
        .unwrap()
        .iter()
        .map(|r| r.log_seq)
        .collect();
    // In log order, though the catch-up rows were stored after the ones indexed first.
    assert_eq!(
        seqs,
        (0..7).map(Some).collect::<Vec<_>>(),
        "every seq exactly once, in log order"
    );
    // A row the log does not hold comes after the logged ones, even when stored before them.
    let t2 = "trace-idx-2b";
    let unlogged = audit(900, AuditKind::Operator, "u", t2);
    let stats = write_all(
        &store,
        vec![
            AuditRow::unlogged(unlogged.clone()).into(),
            AuditRow::logged(12, audit(1_012, AuditKind::ActionChanged, "s12", t2)).into(),
        ],
    )
    .await;
    assert_eq!((stats.failed_batches, stats.dropped), (0, 0));
    store
        .insert_audit_index_batch(&[AuditRow::logged(
            11,
            audit(1_011, AuditKind::ActionChanged, "s11", t2),
        )])
        .await
        .unwrap();
    let rows = store.audit_for_trace(&trace(t2)).await.unwrap();
    let seqs: Vec<Option<u64>> = rows.iter().map(|r| r.log_seq).collect();
    assert_eq!(seqs, vec![Some(11), Some(12), None]);
    assert_eq!(rows[2], AuditRow::unlogged(unlogged));
    store.close().await;
}

/// Builds a database with migrations 1 and 2 applied, the way the release before schema 3 left it.
async fn version_two(path: &std::path::Path) -> SqliteConnection {
    let dir = tempfile::tempdir().unwrap();
    for f in ["0001_init.sql", "0002_action_origin.sql"] {
        std::fs::copy(
            format!("{}/migrations/{f}", env!("CARGO_MANIFEST_DIR")),
            dir.path().join(f),
        )
        .unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    migrator.run(&mut conn).await.unwrap();
    conn
}

#[tokio::test]
async fn audit_rows_from_schema_two_read_back_without_seq_or_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sentinel.db");
    let mut conn = version_two(&path).await;
    sqlx::query(
        "INSERT INTO audit (ts, kind, subject_id, trace_id, summary) \
         VALUES (5000, 'plan_decided', 'p-1', 'trace-old', 'observe [block_ip]: old')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = Store::open(&path).await.unwrap();
    let rows = store.audit_for_trace(&trace("trace-old")).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].log_seq, None);
    assert_eq!(rows[0].record.content_hash, None);
    assert_eq!(rows[0].record.kind, AuditKind::PlanDecided);
    assert_eq!(rows[0].record.summary, "observe [block_ip]: old");
    assert_eq!(store.max_audit_log_seq().await.unwrap(), None);
    // New records land beside it with their seqs.
    store
        .insert_audit_index_batch(&[AuditRow::logged(
            0,
            audit(6_000, AuditKind::Started, "sentinel", "trace-old"),
        )])
        .await
        .unwrap();
    assert_eq!(store.max_audit_log_seq().await.unwrap(), Some(0));
    store.close().await;
}

/// A record's content hash is the hash of its body as stored, recomputed from the row: equal for
/// every kind, and changed by editing the row. For an investigation that is the compact stored form,
/// not the form reads rebuild.
#[tokio::test]
async fn content_hashes_are_recomputed_from_the_stored_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/sentinel.db");
    let store = open(&dir).await;
    let t = "trace-hash-1";
    let al = alert(
        2_000,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        t,
    );
    let inv = investigation(&al);
    let pl = plan(&al, &inv);
    let act = action(
        &pl,
        sentinel_core::ActionKind::BlockIp,
        sentinel_core::ActionState::Applied,
        3_000,
    );
    let cases: Vec<(Record, AuditKind, String)> = vec![
        (al.clone().into(), AuditKind::AlertRaised, al.id.to_string()),
        (
            inv.clone().into(),
            AuditKind::InvestigationConcluded,
            inv.id.to_string(),
        ),
        (pl.clone().into(), AuditKind::PlanDecided, pl.id.to_string()),
        (
            act.clone().into(),
            AuditKind::ActionChanged,
            act.id.to_string(),
        ),
    ];
    write_all(&store, cases.iter().map(|(r, _, _)| r.clone()).collect()).await;

    for (record, kind, id) in &cases {
        let hash = content_hash(record).unwrap().unwrap();
        assert_eq!(hash.len(), 64);
        assert!(hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            store.stored_content_hash(*kind, id).await.unwrap(),
            Some(hash),
            "{kind:?}"
        );
    }
    // An operator's record is about an action too; a notice is about no stored record.
    assert_eq!(
        store
            .stored_content_hash(AuditKind::Operator, &act.id.to_string())
            .await
            .unwrap(),
        content_hash(&act.clone().into()).unwrap()
    );
    assert_eq!(
        store
            .stored_content_hash(AuditKind::NoticeSent, &act.id.to_string())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .stored_content_hash(AuditKind::AlertRaised, "no-such-alert")
            .await
            .unwrap(),
        None
    );
    // The investigation's hash is of its compact stored form, which holds the alert by id only.
    let inv_record: Record = inv.clone().into();
    let body = stored_body(&inv_record).unwrap().unwrap();
    assert!(body.contains("\"alert_id\""), "{body}");
    assert_ne!(
        content_hash(&inv_record).unwrap(),
        Some(sha256_hex(serde_json::to_string(&inv).unwrap().as_bytes()))
    );
    // An audit record is stored as columns: it has no body to hash.
    assert_eq!(
        content_hash(&audit(1, AuditKind::Started, "s", t).into()).unwrap(),
        None
    );
    store.close().await;

    // Someone with write access edits the alert's row: its hash no longer matches.
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    sqlx::query("UPDATE alerts SET body = replace(body, '\"high\"', '\"low\"') WHERE id = ?")
        .bind(al.id.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let store = Store::open(&path).await.unwrap();
    let now = store
        .stored_content_hash(AuditKind::AlertRaised, &al.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(Some(now), content_hash(&al.clone().into()).unwrap());
    store.close().await;
}
