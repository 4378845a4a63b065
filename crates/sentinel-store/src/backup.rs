//! A consistent copy of the database while it is in use: `VACUUM INTO` on a connection of its own.
//!
//! `VACUUM INTO` reads one snapshot of the database (a read transaction: everything committed before
//! it started, WAL included, nothing after) and writes it as a new, compact database file. Writers
//! carry on meanwhile. The copy is created 0600 before SQLite writes it and synced before this returns.
//! The copy is then read once, immutable (no `-wal` or `-shm` made beside it), for the highest audit
//! log sequence number its index refers to; beyond that this module must not know record layouts.

use crate::error::StoreError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// How long the copy waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

fn io(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// What [`backup_to`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreBackup {
    /// The copy's size in bytes.
    pub bytes: u64,
    /// The highest audit log sequence number the copy's audit index refers to (`None`: none).
    pub max_audit_log_seq: Option<u64>,
}

/// Writes a consistent copy of the database at `db` to `dest` and says what it holds.
///
/// `db` must exist (it is never created) and `dest` must not (it is created 0600 and synced). The copy
/// is taken on a read-only connection of its own, so it runs beside a live [`crate::Store`] and its
/// writer. On failure `dest` is removed.
pub async fn backup_to(db: &Path, dest: &Path) -> Result<StoreBackup, StoreError> {
    // The source must be there: a wrong path is an error, not a new empty database.
    std::fs::metadata(db).map_err(|e| io(db, &e))?;
    // Created empty and private before SQLite fills it (it accepts an empty file).
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| io(dest, &e))?;
    match copy(db, dest).await {
        Ok(done) => Ok(done),
        Err(e) => {
            let _ = std::fs::remove_file(dest);
            Err(e)
        }
    }
}

async fn copy(db: &Path, dest: &Path) -> Result<StoreBackup, StoreError> {
    let dest_text = dest.to_str().ok_or_else(|| {
        StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a UTF-8 path", dest.display()),
        ))
    })?;
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await?;
    let done = sqlx::query("VACUUM INTO ?")
        .bind(dest_text)
        .execute(&mut conn)
        .await;
    conn.close().await?;
    done?;
    let f = File::open(dest).map_err(|e| io(dest, &e))?;
    f.sync_all().map_err(|e| io(dest, &e))?;
    let bytes = f.metadata().map_err(|e| io(dest, &e))?.len();
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, &e))?;
    }
    // Read back from the copy itself, immutable: nothing is written beside it.
    let mut conn = SqliteConnectOptions::new()
        .filename(dest)
        .read_only(true)
        .immutable(true)
        .create_if_missing(false)
        .connect()
        .await?;
    let max: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT MAX(log_seq) FROM audit WHERE log_seq IS NOT NULL")
            .fetch_one(&mut conn)
            .await;
    conn.close().await?;
    let max_audit_log_seq = max?
        .map(|m| u64::try_from(m).map_err(|_| StoreError::Corrupt(format!("audit log_seq {m}"))))
        .transpose()?;
    tracing::info!(
        evt = "store_backup",
        from = %db.display(),
        to = %dest.display(),
        bytes,
        "store copied"
    );
    Ok(StoreBackup {
        bytes,
        max_audit_log_seq,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{AuditRow, Record, Store, WriterOptions};
    use sentinel_core::{AuditKind, AuditRecord, Timestamp, TraceId};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn row(seq: u64) -> Record {
        Record::Audit(AuditRow::logged(
            seq,
            AuditRecord {
                ts: Timestamp::from_millis(1_764_476_400_000 + seq as i64),
                kind: AuditKind::AlertRaised,
                subject_id: format!("alert-{seq}"),
                trace_id: TraceId::new(),
                summary: format!("record {seq}"),
                content_hash: None,
            },
        ))
    }

    async fn count(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit")
            .fetch_one(store.sqlite("test").unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_copy_taken_while_the_writer_runs_is_a_whole_private_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sentinel.db");
        let store = Store::open(&db).await.unwrap();
        let (writer, task) = store.writer(WriterOptions {
            queue_capacity: 1024,
            batch_size: 16,
            flush_interval: Duration::from_millis(1),
        });
        for seq in 0..200 {
            writer.write(row(seq)).await.unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = {
            let (writer, stop) = (writer.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seq = 200;
                while !stop.load(Ordering::Relaxed) {
                    writer.write(row(seq)).await.unwrap();
                    seq += 1;
                    tokio::task::yield_now().await;
                }
                seq
            })
        };
        // Let some of the concurrent writes commit first.
        while count(&store).await < 300 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let dest = dir.path().join("copy/sentinel.db");
        std::fs::create_dir(dir.path().join("copy")).unwrap();
        let done = backup_to(&db, &dest).await.unwrap();
        let bytes = done.bytes;
        stop.store(true, Ordering::Relaxed);
        let written = feeder.await.unwrap();
        drop(writer);
        task.finish().await.unwrap();

        assert_eq!(bytes, std::fs::metadata(&dest).unwrap().len());
        // Nothing but the copy was written beside it.
        assert_eq!(
            std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
            1
        );
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let copy = Store::open(&dest).await.unwrap();
        let copied = count(&copy).await;
        assert!(copied >= 300, "the copy holds what was committed: {copied}");
        // A snapshot: seqs 0..copied, no gap (each row was committed in order).
        let max = copy.max_audit_log_seq().await.unwrap().unwrap();
        assert_eq!(max + 1, copied as u64);
        assert_eq!(done.max_audit_log_seq, Some(max));
        assert!((copied as u64) <= written);
        copy.close().await;
        store.close().await;
    }

    #[tokio::test]
    async fn an_existing_destination_or_a_missing_source_is_refused_and_a_closed_store_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sentinel.db");
        let dest = dir.path().join("copy.db");
        let e = backup_to(&db, &dest).await.unwrap_err();
        assert!(e.to_string().contains("sentinel.db"), "{e}");
        assert!(!db.exists(), "a missing source is not created");
        assert!(!dest.exists());

        let store = Store::open(&db).await.unwrap();
        std::fs::write(&dest, b"keep me").unwrap();
        let e = backup_to(&db, &dest).await.unwrap_err();
        assert!(e.to_string().contains("copy.db"), "{e}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"keep me");
        store.close().await;

        // A database nobody has open (no -wal or -shm left) is copied too.
        std::fs::remove_file(&dest).unwrap();
        let done = backup_to(&db, &dest).await.unwrap();
        assert!(done.bytes > 0);
        assert_eq!(done.max_audit_log_seq, None);
        let copy = Store::open(&dest).await.unwrap();
        assert_eq!(count(&copy).await, 0);
        copy.close().await;
    }
}
