//! `sentinel audit verify --store`: the store checked against the audit log (after the log itself
//! verified), since whoever can write the data directory can edit the SQLite file without touching
//! the log.
//!
//! 1. **The index**: every `audit` row the log holds (`log_seq` set) must be the log's record at that
//!    seq, field by field (time, kind, subject, trace, summary, content hash); a row pointing past
//!    the log fails. Rows for records archived out of the directory cannot be compared (counted).
//!    Records the index lacks are counted (the daemon adds them again when it starts).
//! 2. **The rows noted**: for every log record carrying a content hash about a stored record, the
//!    row's content hash is recomputed from the store ([`sentinel_store::Store::stored_content_hash`]).
//!    An alert, investigation or plan never changes once stored: its row must hash to what the log
//!    says. An action's row is overwritten on each state change, so it must hash to one of the
//!    states the log recorded for it (normally the latest; an older one when the daemon stopped
//!    between the log and the store). A row the log notes but the store lacks is counted, not
//!    failed: a crash between the two writes leaves that too (the log still holds the record).
//!
//! Rows the log never noted (an inserted alert) are not looked for.

use super::audit::{bad, usage, Fail};
use sentinel_audit::reader::LogDir;
use sentinel_core::AuditKind;
use sentinel_store::{audited_table, AuditRow, Store};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

/// The store's file in a data directory.
const DB_FILE: &str = "sentinel.db";
/// Index rows read at a time.
const PAGE: u32 = 10_000;

/// What the store check found.
#[derive(Debug, Default)]
pub(crate) struct StoreReport {
    /// Index rows compared with their log record.
    pub(crate) index_rows: u64,
    /// Index rows of records archived out of the directory (not compared).
    pub(crate) index_archived: u64,
    /// Log records the index lacks (the first one).
    pub(crate) index_missing: (u64, Option<u64>),
    /// Immutable rows (alerts, investigations, plans) whose content hash was recomputed.
    pub(crate) rows_checked: u64,
    /// Actions whose row matched a state the log recorded.
    pub(crate) actions_checked: u64,
    /// Records noting a row the store lacks (the first one).
    pub(crate) rows_missing: (u64, Option<u64>),
}

fn immutable(kind: AuditKind) -> bool {
    matches!(
        kind,
        AuditKind::AlertRaised | AuditKind::InvestigationConcluded | AuditKind::PlanDecided
    )
}

fn count_first(c: &mut (u64, Option<u64>), seq: u64) {
    c.0 += 1;
    c.1.get_or_insert(seq);
}

fn db_path(audit_dir: &Path) -> Result<std::path::PathBuf, Fail> {
    let data = audit_dir
        .parent()
        .ok_or_else(|| usage(format!("{}: no data directory", audit_dir.display())))?;
    let db = data.join(DB_FILE);
    if !db.is_file() {
        return Err(usage(format!("--store: no store at {}", db.display())));
    }
    Ok(db)
}

fn with_store<T>(
    audit_dir: &Path,
    f: impl AsyncFnOnce(&Store) -> Result<T, Fail>,
) -> Result<T, Fail> {
    let db = db_path(audit_dir)?;
    let rt = super::small_runtime().map_err(|e| usage(format!("cannot start: {e}")))?;
    rt.block_on(async {
        let store = Store::open(&db)
            .await
            .map_err(|e| usage(format!("{}: {e}", db.display())))?;
        let done = f(&store).await;
        store.close().await;
        done
    })
}

/// The highest log seq the store's index holds, read BEFORE the log: the daemon makes a record
/// durable in the log before it indexes it, so every row up to here must be in the log read after;
/// rows a running daemon adds later are not looked at.
pub(crate) fn index_bound(audit_dir: &Path) -> Result<Option<u64>, Fail> {
    with_store(audit_dir, async |store: &Store| {
        store
            .max_audit_log_seq()
            .await
            .map_err(|e| usage(format!("store: {e}")))
    })
}

/// Checks the store of the data directory holding `audit_dir` against the log, which holds
/// `records` records and has verified; index rows above `bound` ([`index_bound`]) are not looked
/// at. Exit 1 naming the first mismatch.
pub(crate) fn check(
    audit_dir: &Path,
    records: u64,
    bound: Option<u64>,
) -> Result<StoreReport, Fail> {
    let log = LogDir::open(audit_dir).map_err(|e| usage(e.to_string()))?;
    with_store(audit_dir, async |store: &Store| {
        walk(&log, audit_dir, store, records, bound).await
    })
}

/// The content hashes of records about action `id` appended from `from` on (a running daemon's
/// newer states), read from the log as it is now.
fn later_action_hashes(audit_dir: &Path, from: u64, id: &str) -> Result<Vec<String>, Fail> {
    let log = LogDir::open(audit_dir).map_err(|e| usage(e.to_string()))?;
    let mut out = Vec::new();
    for r in log.records(from) {
        let r = r.map_err(|e| usage(e.to_string()))?;
        if r.entry.subject_id == id && audited_table(r.entry.kind) == Some("actions") {
            out.extend(r.entry.content_hash);
        }
    }
    Ok(out)
}

async fn walk(
    log: &LogDir,
    audit_dir: &Path,
    store: &Store,
    records: u64,
    bound: Option<u64>,
) -> Result<StoreReport, Fail> {
    let mut rep = StoreReport::default();
    let mut index = IndexRows::new(store, bound);
    // Every state the log recorded for each action: (seq of the latest, hashes).
    let mut actions: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for r in log.records(0) {
        let r = r.map_err(|e| usage(e.to_string()))?;
        let e = &r.entry;
        // Index rows before this record: records archived out of the directory.
        while let Some(row) = index.next_below(r.seq).await? {
            let seq = row.log_seq.unwrap_or_default();
            if seq >= records {
                return Err(past_end(seq, records));
            }
            rep.index_archived += 1;
        }
        match index.take(r.seq).await? {
            Some(row) => {
                let rec = &row.record;
                let differs = [
                    ("time", rec.ts.as_millis() != e.ts.as_millis()),
                    ("kind", rec.kind != e.kind),
                    ("subject_id", rec.subject_id != e.subject_id),
                    ("trace_id", rec.trace_id != e.trace_id),
                    ("summary", rec.summary != e.summary),
                    ("content_hash", rec.content_hash != e.content_hash),
                ];
                if let Some((field, _)) = differs.iter().find(|(_, d)| *d) {
                    return Err(bad(format!(
                        "store: the audit index row for record {} differs from the log in its \
                         {field} (the log's record is in {} at byte {}): the store was edited, or the \
                         log was rolled back or rewritten under it",
                        r.seq, r.segment, r.offset
                    )));
                }
                rep.index_rows += 1;
            }
            // Records after the bound were appended while this ran: not indexed yet.
            None if bound.is_some_and(|b| r.seq <= b) => count_first(&mut rep.index_missing, r.seq),
            None => {}
        }
        let (Some(hash), Some(_)) = (&e.content_hash, audited_table(e.kind)) else {
            continue;
        };
        if immutable(e.kind) {
            match stored_hash(store, e.kind, &e.subject_id).await? {
                Some(h) if &h == hash => rep.rows_checked += 1,
                Some(h) => {
                    return Err(bad(format!(
                        "store: the {} row {} hashes to {h}, but log record {} ({} at byte {}) \
                         says {hash}: the row was edited",
                        table(e.kind),
                        e.subject_id,
                        r.seq,
                        r.segment,
                        r.offset
                    )))
                }
                None => count_first(&mut rep.rows_missing, r.seq),
            }
        } else {
            let a = actions
                .entry(e.subject_id.clone())
                .or_insert_with(|| (r.seq, Vec::new()));
            a.0 = r.seq;
            a.1.push(hash.clone());
        }
    }
    while let Some(row) = index.next_below(u64::MAX).await? {
        let seq = row.log_seq.unwrap_or_default();
        if seq >= records {
            return Err(past_end(seq, records));
        }
        rep.index_archived += 1;
    }
    for (id, (latest, hashes)) in &actions {
        match stored_hash(store, AuditKind::ActionChanged, id).await? {
            Some(h) if hashes.contains(&h) => rep.actions_checked += 1,
            // A running daemon changed the action since the log was read.
            Some(h) if later_action_hashes(audit_dir, records, id)?.contains(&h) => {
                rep.actions_checked += 1
            }
            Some(h) => {
                return Err(bad(format!(
                    "store: the actions row {id} hashes to {h}, which is none of the {} states the \
                     log recorded for it (the latest in record {latest}): the row was edited",
                    hashes.len()
                )))
            }
            None => count_first(&mut rep.rows_missing, *latest),
        }
    }
    Ok(rep)
}

fn table(kind: AuditKind) -> &'static str {
    audited_table(kind).unwrap_or("?")
}

fn past_end(seq: u64, records: u64) -> Fail {
    bad(format!(
        "store: the audit index has a row for record {seq}, but the log holds {records} records: \
         the log was rolled back or truncated, or the store edited"
    ))
}

async fn stored_hash(store: &Store, kind: AuditKind, id: &str) -> Result<Option<String>, Fail> {
    store
        .stored_content_hash(kind, id)
        .await
        .map_err(|e| usage(format!("store: {e}")))
}

/// The index rows in log seq order, a page at a time.
struct IndexRows<'a> {
    store: &'a Store,
    /// The highest seq looked at (`None`: no row is).
    bound: Option<u64>,
    page: VecDeque<AuditRow>,
    next_from: u64,
    done: bool,
}

impl<'a> IndexRows<'a> {
    fn new(store: &'a Store, bound: Option<u64>) -> Self {
        IndexRows {
            store,
            bound,
            page: VecDeque::new(),
            next_from: 0,
            done: false,
        }
    }

    async fn peek_seq(&mut self) -> Result<Option<u64>, Fail> {
        if self.page.is_empty() && !self.done {
            let rows = self
                .store
                .audit_index_from(self.next_from, PAGE)
                .await
                .map_err(|e| usage(format!("store: {e}")))?;
            self.done = rows.len() < PAGE as usize;
            if let Some(last) = rows.last().and_then(|r| r.log_seq) {
                self.next_from = last.saturating_add(1);
            }
            self.page.extend(rows);
        }
        Ok(self
            .page
            .front()
            .and_then(|r| r.log_seq)
            .filter(|&s| self.bound.is_some_and(|b| s <= b)))
    }

    /// The next row if its seq is below `seq`.
    async fn next_below(&mut self, seq: u64) -> Result<Option<AuditRow>, Fail> {
        Ok(match self.peek_seq().await? {
            Some(s) if s < seq => self.page.pop_front(),
            _ => None,
        })
    }

    /// The row at `seq`, if the next one is it.
    async fn take(&mut self, seq: u64) -> Result<Option<AuditRow>, Fail> {
        Ok(match self.peek_seq().await? {
            Some(s) if s == seq => self.page.pop_front(),
            _ => None,
        })
    }
}
