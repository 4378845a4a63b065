//! The one way records reach the store: each record and the audit entry that notes it are built here
//! (the [`Entry`] conversions), masked by the redactor here, and written here, the record through the
//! store writer (with the caller's commit token, when it waits) and the audit entry through the
//! [`AuditLog`]: the Merkle log, indexed in the store ([`LogAudit`]; [`catch_up_index`] at start-up).
//!
//! The audit entry about a stored record carries that record's content hash
//! ([`sentinel_store::content_hash`]: SHA-256 of its JSON exactly as stored), computed after masking,
//! so the stored row can be checked against the audit trail. Records of Sentinel itself (keys made or
//! revoked, the configuration loaded, start and stop) are written with [`Recorder::note`] and its
//! helpers, each answering once committed.
//!
//! The stages and the ledger's tasks (manual decisions, expiry, reconcile) hold a [`Recorder`]; none of
//! them builds an audit record or a store record by hand.

use crate::metrics::Metrics;
use async_trait::async_trait;
use sentinel_audit::{Log, LogError, PendingAppend};
use sentinel_core::{
    ActionRecord, Alert, AuditError, AuditKind, AuditLog, AuditRecord, Event, Investigation,
    Notice, Plan, Receipt, Redactor, Timestamp, TraceId,
};
use sentinel_store::{AckGroup, AckToken, AuditRow, Record, Store, StoreWriter};
use std::borrow::Cow;
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// A record for the store and the audit entry that notes it (no entry for an event, no record for a
/// notice, which only the audit trail keeps).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What is stored.
    pub record: Option<Record>,
    /// What the audit trail says about it.
    pub audit: Option<AuditRecord>,
}

fn note(kind: AuditKind, subject_id: String, trace: &TraceId, summary: String) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::now(),
        kind,
        subject_id,
        trace_id: trace.clone(),
        summary,
        content_hash: None,
    }
}

impl From<Event> for Entry {
    /// An event is stored; the audit trail notes what is made of it, not its arrival.
    fn from(e: Event) -> Self {
        Entry {
            record: Some(Record::Event(e)),
            audit: None,
        }
    }
}

impl From<&Alert> for Entry {
    fn from(a: &Alert) -> Self {
        Entry {
            audit: Some(note(
                AuditKind::AlertRaised,
                a.id.to_string(),
                &a.trace_id,
                format!(
                    "{} {} score {} on {}",
                    a.scenario, a.severity, a.score, a.subject
                ),
            )),
            record: Some(Record::Alert(a.clone())),
        }
    }
}

impl From<&Investigation> for Entry {
    fn from(i: &Investigation) -> Self {
        Entry {
            audit: Some(note(
                AuditKind::InvestigationConcluded,
                i.id.to_string(),
                &i.trace_id,
                format!("risk {} confidence {:.2}", i.risk_score, i.confidence),
            )),
            record: Some(Record::Investigation(i.clone())),
        }
    }
}

impl From<&Plan> for Entry {
    fn from(p: &Plan) -> Self {
        let kinds: Vec<&str> = p.actions.iter().map(|a| a.kind.as_str()).collect();
        Entry {
            audit: Some(note(
                AuditKind::PlanDecided,
                p.id.to_string(),
                &p.trace_id,
                format!("{} [{}]: {}", p.mode.as_str(), kinds.join(", "), p.reason),
            )),
            record: Some(Record::Plan(p.clone())),
        }
    }
}

/// Why an action's record is written (again).
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// The act stage carried out a plan's action.
    Acted,
    /// An operator decided it; the note is the decision's reason.
    Decided(&'a str),
    /// An operator deleted it, in this request's trace.
    Deleted(&'a TraceId),
    /// A longer action replaced it.
    Superseded,
    /// Its time was up.
    Expired,
    /// Reconcile at start-up corrected it; the note says how.
    Reconciled(&'a str),
}

impl From<(&ActionRecord, Change<'_>)> for Entry {
    fn from((r, change): (&ActionRecord, Change<'_>)) -> Self {
        let head = format!("{} {} {}", r.spec.kind, r.spec.subject, r.state.as_str());
        let (kind, trace, summary) = match change {
            Change::Acted => (AuditKind::ActionChanged, &r.trace_id, head),
            Change::Decided(why) => (AuditKind::Operator, &r.trace_id, format!("{head}: {why}")),
            Change::Deleted(trace) => (
                AuditKind::Operator,
                trace,
                format!("{head}: deleted by an operator"),
            ),
            Change::Superseded => (
                AuditKind::ActionChanged,
                &r.trace_id,
                format!("{head}: superseded by a longer action"),
            ),
            Change::Expired => (
                AuditKind::ActionChanged,
                &r.trace_id,
                format!("{head}: time is up"),
            ),
            Change::Reconciled(how) => (
                AuditKind::ActionChanged,
                &r.trace_id,
                format!("{head}: {how}"),
            ),
        };
        Entry {
            audit: Some(note(kind, r.id.to_string(), trace, summary)),
            record: Some(Record::Action(r.clone())),
        }
    }
}

impl From<&Notice> for Entry {
    /// A notice is not stored; only the audit trail notes that it went out.
    fn from(n: &Notice) -> Self {
        Entry {
            record: None,
            audit: Some(note(
                AuditKind::NoticeSent,
                "log".into(),
                &n.trace_id,
                n.title.clone(),
            )),
        }
    }
}

fn mask(r: &Redactor, text: &mut String) {
    if let Cow::Owned(m) = r.redact_text(text) {
        *text = m;
    }
}

impl Entry {
    /// Masks what could quote a secret: reasons, summaries, operators' notes, errors. Events and
    /// alert evidence are redacted when they are made (the event as posted is never stored).
    fn redact(&mut self, r: &Redactor) {
        match &mut self.record {
            None | Some(Record::Event(_)) => {}
            Some(Record::Alert(a)) => a.reasons.iter_mut().for_each(|x| mask(r, &mut x.detail)),
            // Stored without its alert (the alert is its own record).
            Some(Record::Investigation(i)) => i.uncertainty.iter_mut().for_each(|u| mask(r, u)),
            Some(Record::Plan(p)) => mask(r, &mut p.reason),
            Some(Record::Action(a)) => {
                if let Some(e) = &mut a.error {
                    mask(r, e);
                }
            }
            Some(Record::Audit(AuditRow { record: a, .. })) => mask(r, &mut a.summary),
        }
        if let Some(a) = &mut self.audit {
            mask(r, &mut a.summary);
        }
    }

    /// Masks (see `redact`), then gives the audit entry the content hash of the record as it will be
    /// stored. A record that cannot be encoded gets no hash; the writer fails it and says so.
    fn seal(&mut self, r: &Redactor) {
        self.redact(r);
        if let (Some(record), Some(audit)) = (&self.record, &mut self.audit) {
            match sentinel_store::content_hash(record) {
                Ok(hash) => audit.content_hash = hash,
                Err(error) => {
                    tracing::error!(evt = "content_hash_failed", table = record.table(), %error);
                }
            }
        }
    }
}

/// Index rows waiting for their log appends to complete (the index task's queue).
const INDEX_QUEUE: usize = 8192;

/// Records read from the log per index batch when catching up.
const CATCH_UP_BATCH: usize = 1024;

/// Index seqs examined per query when looking for gaps (bounds the memory of one query).
const GAP_WINDOW: u64 = 65_536;

/// An append queued in the log and the record its index row will hold.
type Queued = (PendingAppend, AuditRecord);

/// The audit trail: the Merkle log ([`sentinel_audit::Log`]), with the store keeping an index of it
/// (`AuditRow { log_seq, record }`, what `/v1/audit?trace_id=` answers from).
///
/// [`AuditLog::append`] answers once the record is durable in the log *and* its index row is committed;
/// [`AuditLog::append_queued`] once the record is queued in the log: the [`IndexTask`] awaits each queued
/// append in order and writes its index row through the store writer. A failed append or index row is
/// counted (`store_write_errors`: by the [`Recorder`] for a caller that waits, by the index task
/// otherwise; and `audit_index_failures` for an index row) and logged; a record the log holds but the
/// index lacks is added again by [`catch_up_index`] at the next start.
#[derive(Clone)]
pub struct LogAudit {
    log: Log,
    writer: StoreWriter,
    index: mpsc::Sender<Queued>,
    metrics: Arc<Metrics>,
}

/// The task writing the index rows of queued appends, in log order.
#[derive(Debug)]
pub struct IndexTask {
    handle: tokio::task::JoinHandle<u64>,
    close: Arc<Notify>,
}

impl IndexTask {
    /// Stops taking queued appends (a [`LogAudit`] clone still held somewhere then gets an error,
    /// counted and logged), writes the index rows of those already queued, and answers how many index
    /// rows of queued appends it wrote in all. Call it before the log and the store writer are
    /// finished.
    pub async fn close(self) -> u64 {
        self.close.notify_one();
        match self.handle.await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(evt = "audit_index_task_failed", error = %e);
                0
            }
        }
    }
}

impl LogAudit {
    /// The trail of `log`, indexed through `writer`; the index task runs until [`IndexTask::close`]
    /// (or until every clone of the trail is dropped).
    pub fn start(log: Log, writer: StoreWriter, metrics: Arc<Metrics>) -> (LogAudit, IndexTask) {
        let (tx, rx) = mpsc::channel(INDEX_QUEUE);
        let close = Arc::new(Notify::new());
        let handle = tokio::spawn(index_rows(
            rx,
            writer.clone(),
            metrics.clone(),
            close.clone(),
        ));
        (
            LogAudit {
                log,
                writer,
                index: tx,
                metrics,
            },
            IndexTask { handle, close },
        )
    }

    /// The log behind the trail.
    pub fn log(&self) -> &Log {
        &self.log
    }
}

/// Counts (`audit_index_failures`) and logs an index row that could not be written.
fn index_failed(metrics: &Metrics, seq: u64, r: &AuditRecord, why: &dyn std::fmt::Display) {
    metrics.audit_index_failures.inc();
    tracing::error!(
        evt = "audit_index_failed",
        seq,
        kind = r.kind.as_str(),
        trace = r.trace_id.as_str(),
        error = %why,
        "the audit log holds the record but the store's index row was not written; it is added again from the log at the next start"
    );
}

/// The index task: awaits each queued append in order and writes its index row.
async fn index_rows(
    mut rx: mpsc::Receiver<Queued>,
    writer: StoreWriter,
    metrics: Arc<Metrics>,
    close: Arc<Notify>,
) -> u64 {
    let mut written = 0u64;
    let mut closing = false;
    loop {
        let item = if closing {
            rx.recv().await
        } else {
            tokio::select! {
                biased;
                () = close.notified() => {
                    rx.close();
                    closing = true;
                    continue;
                }
                item = rx.recv() => item,
            }
        };
        let Some((pending, record)) = item else {
            return written;
        };
        match pending.await {
            Ok(a) => match writer
                .write(AuditRow::logged(a.seq, record.clone()).into())
                .await
            {
                Ok(()) => written += 1,
                Err(e) => {
                    // No caller waits to count it: counted here as a failed store write too.
                    metrics.store_write_errors.inc();
                    index_failed(&metrics, a.seq, &record, &e);
                }
            },
            Err(e) => {
                metrics.store_write_errors.inc();
                tracing::error!(
                    evt = "audit_append_failed",
                    kind = record.kind.as_str(),
                    subject_id = %record.subject_id,
                    trace = record.trace_id.as_str(),
                    error = %e,
                    "an audit record could not be made durable in the audit log"
                );
            }
        }
    }
}

#[async_trait]
impl AuditLog for LogAudit {
    async fn append(&self, r: AuditRecord) -> Result<Receipt, AuditError> {
        let a = self.log.append(r.clone()).await?;
        let group = AckGroup::new();
        let row = AuditRow::logged(a.seq, r.clone());
        if let Err(e) = self.writer.write_acked(row.into(), group.token(0)).await {
            index_failed(&self.metrics, a.seq, &r, &e);
            return Err(AuditError::Storage(format!(
                "audit record {} is in the log but its index row was not stored: {e}",
                a.seq
            )));
        }
        if group.settled().await.failed > 0 {
            let why = group
                .failures()
                .first()
                .map(|f| f.error.clone())
                .unwrap_or_default();
            index_failed(&self.metrics, a.seq, &r, &why);
            return Err(AuditError::Storage(format!(
                "audit record {} is in the log but its index row was not stored: {why}",
                a.seq
            )));
        }
        Ok(Receipt {
            committed_at: Timestamp::now(),
        })
    }

    async fn append_queued(&self, r: AuditRecord) -> Result<(), AuditError> {
        let pending = self.log.submit(r.clone()).await?;
        // A full index queue makes the caller wait (bounded, never dropped).
        self.index.send((pending, r)).await.map_err(|_| {
            AuditError::Storage(
                "the audit index task has stopped: the record is queued in the log without its index row (added again at the next start)"
                    .into(),
            )
        })
    }
}

/// What [`catch_up_index`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCatchUp {
    /// Records in the log.
    pub log_size: u64,
    /// Index rows added from the log.
    pub added: u64,
    /// Records the index lacked that could not be read back (in archived segments).
    pub archived: u64,
    /// Index rows whose log seq is past the log's size (a store newer than the log).
    pub ahead: u64,
}

/// The gaps of the index in `from..to`, queried window by window.
async fn index_gaps(
    store: &Store,
    from: u64,
    to: u64,
) -> Result<Vec<std::ops::Range<u64>>, String> {
    let mut gaps: Vec<std::ops::Range<u64>> = Vec::new();
    let mut at = from;
    while at < to {
        let end = to.min(at.saturating_add(GAP_WINDOW));
        for g in store
            .audit_log_seq_gaps(at, end)
            .await
            .map_err(|e| format!("cannot read the audit index: {e}"))?
        {
            match gaps.last_mut() {
                Some(last) if last.end == g.start => last.end = g.end,
                _ => gaps.push(g),
            }
        }
        at = end;
    }
    Ok(gaps)
}

/// Start-up: adds to the store's index the records the log holds and the index lacks (a crash between
/// the log's `fsync` and the index row's commit), read back from the log; logs how many
/// (`evt=audit_index_caught_up`). Index rows whose log seq is past the log's size (a store restored
/// newer than the log) are reported at error level (`evt=audit_index_ahead_of_log`) and counted in
/// [`IndexCatchUp::ahead`]; the daemon then refuses to start (a rolled-back log). Call it
/// before anything records.
pub async fn catch_up_index(log: &Log, store: &Store) -> Result<IndexCatchUp, String> {
    let size = log.size();
    let mut out = IndexCatchUp {
        log_size: size,
        ..IndexCatchUp::default()
    };
    let max = store
        .max_audit_log_seq()
        .await
        .map_err(|e| format!("cannot read the audit index: {e}"))?;
    if let Some(max) = max.filter(|&m| m >= size) {
        let missing: u64 = index_gaps(store, size, max + 1)
            .await?
            .iter()
            .map(|g| g.end - g.start)
            .sum();
        out.ahead = max + 1 - size - missing;
        tracing::error!(
            evt = "audit_index_ahead_of_log",
            rows = out.ahead,
            index_max_seq = max,
            log_size = size,
            "the store indexes audit records the audit log does not hold: the store is newer than the log (restored from another copy?); those rows are kept but no proof can be given for them"
        );
    }
    for gap in index_gaps(store, 0, size).await? {
        let mut seq = gap.start;
        while seq < gap.end {
            let want = ((gap.end - seq) as usize).min(CATCH_UP_BATCH);
            let read = log.clone();
            let entries = tokio::task::spawn_blocking(move || read.read(seq, want))
                .await
                .map_err(|e| format!("audit log read task failed: {e}"))?;
            let entries = match entries {
                Ok(e) => e,
                Err(LogError::Archived { segment, .. }) => {
                    // Archived records cannot be read back here: skip the rest of this gap.
                    let skipped = gap.end - seq;
                    out.archived += skipped;
                    tracing::warn!(
                        evt = "audit_index_archived_gap",
                        from_seq = seq,
                        records = skipped,
                        segment = %segment,
                        "records the index lacks are in an archived audit segment; they are not indexed"
                    );
                    break;
                }
                Err(e) => {
                    return Err(format!(
                        "cannot read the audit log to catch the index up: {e}"
                    ))
                }
            };
            if entries.is_empty() {
                return Err(format!(
                    "the audit log answered no record at {seq} (size {size})"
                ));
            }
            seq += entries.len() as u64;
            let rows: Vec<AuditRow> = entries
                .iter()
                .map(|e| AuditRow::logged(e.seq, e.entry.record()))
                .collect();
            out.added += store
                .insert_audit_index_batch(&rows)
                .await
                .map_err(|e| format!("cannot add audit index rows: {e}"))?;
        }
    }
    if out.added > 0 || out.archived > 0 {
        tracing::warn!(
            evt = "audit_index_caught_up",
            added = out.added,
            archived = out.archived,
            log_size = size,
            "audit records the store's index lacked were added from the audit log"
        );
    }
    Ok(out)
}

/// Writes records and their audit entries: the one recorder the stages and the ledger's tasks share.
#[derive(Clone)]
pub struct Recorder {
    writer: StoreWriter,
    audit: Arc<dyn AuditLog>,
    redactor: Arc<Redactor>,
    metrics: Arc<Metrics>,
}

impl Recorder {
    /// A recorder writing records through `writer` and audit entries to `audit` (a [`LogAudit`]).
    pub fn new(
        writer: StoreWriter,
        audit: Arc<dyn AuditLog>,
        redactor: Arc<Redactor>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Recorder {
            writer,
            audit,
            redactor,
            metrics,
        }
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.metrics.store_write_errors.inc();
        tracing::error!(evt = "store_write_failed", what, error = %e);
    }

    /// Stores one entry without waiting for its commit; with `ack`, the record settles that token
    /// when committed (a failure settles it as failed). The audit entry carries no token: it is not
    /// part of any answer.
    pub async fn record(&self, entry: impl Into<Entry>, ack: Option<AckToken>) {
        let mut entry = entry.into();
        entry.seal(&self.redactor);
        let result = match (entry.record, ack) {
            (Some(r), Some(t)) => self.writer.write_acked(r, t).await,
            (Some(r), None) => self.writer.write(r).await,
            (None, t) => {
                // Nothing to store under the token: it settles as having nothing to wait for.
                if let Some(t) = t {
                    t.withdraw();
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            self.failed("record", &e);
        }
        if let Some(a) = entry.audit {
            if let Err(e) = self.audit.append_queued(a).await {
                self.failed("audit", &e);
            }
        }
    }

    /// Stores entries and waits until every record and audit entry is committed: an operator's answer
    /// promises them. On failure, says how many were not stored and why.
    pub async fn record_committed(&self, entries: Vec<Entry>) -> Result<(), String> {
        let group = AckGroup::new();
        let mut audit_failures: Vec<String> = Vec::new();
        for (i, mut entry) in entries.into_iter().enumerate() {
            entry.seal(&self.redactor);
            if let Some(r) = entry.record {
                if let Err(e) = self.writer.write_acked(r, group.token(i as u64)).await {
                    self.failed("record", &e);
                }
            }
            if let Some(a) = entry.audit {
                if let Err(e) = self.audit.append(a).await {
                    self.failed("audit", &e);
                    audit_failures.push(e.to_string());
                }
            }
        }
        let summary = group.settled().await;
        let failed = summary.failed + audit_failures.len() as u64;
        if failed == 0 {
            return Ok(());
        }
        let why = group
            .failures()
            .first()
            .map(|f| f.error.clone())
            .or_else(|| audit_failures.first().cloned())
            .unwrap_or_default();
        tracing::error!(evt = "decision_not_stored", failed, error = %why);
        Err(format!("{failed} record(s) could not be stored ({why})"))
    }

    /// Writes one audit record about Sentinel itself (no stored record goes with it) and answers once
    /// it is committed. The summary is masked; `content_hash` is the SHA-256 hex of what the record is
    /// about, when there is something to hash ([`sentinel_store::sha256_hex`]).
    pub async fn note(
        &self,
        kind: AuditKind,
        subject_id: &str,
        trace: &TraceId,
        summary: String,
        content_hash: Option<String>,
    ) -> Result<(), String> {
        let mut record = note(kind, subject_id.to_owned(), trace, summary);
        mask(&self.redactor, &mut record.summary);
        record.content_hash = content_hash;
        self.audit.append(record).await.map(drop).map_err(|e| {
            self.failed("audit", &e);
            format!("the audit record could not be stored ({e})")
        })
    }

    /// Notes that an API key was created: its id, name and role, never the key or its hash.
    pub async fn key_created(
        &self,
        trace: &TraceId,
        key_id: &str,
        name: &str,
        role: &str,
    ) -> Result<(), String> {
        let summary = format!("API key {name:?} ({role}) created");
        self.note(AuditKind::KeyCreated, key_id, trace, summary, None)
            .await
    }

    /// Notes that an API key was revoked, and why (who asked).
    pub async fn key_revoked(
        &self,
        trace: &TraceId,
        key_id: &str,
        why: &str,
    ) -> Result<(), String> {
        let summary = format!("API key revoked: {why}");
        self.note(AuditKind::KeyRevoked, key_id, trace, summary, None)
            .await
    }

    /// Notes the configuration loaded: `source` names where it came from (the file's path, or the
    /// embedded defaults), `bytes` are what was read from it (its content hash).
    pub async fn config_loaded(
        &self,
        trace: &TraceId,
        source: &str,
        bytes: &[u8],
        detail: &str,
    ) -> Result<(), String> {
        let summary = if detail.is_empty() {
            format!("configuration loaded from {source}")
        } else {
            format!("configuration loaded from {source}; {detail}")
        };
        let hash = sentinel_store::sha256_hex(bytes);
        self.note(AuditKind::ConfigLoaded, source, trace, summary, Some(hash))
            .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_core::{ActionKind, ActionSpec, AuditLog, Subject};
    use sentinel_store::{Store, WriterOptions};
    use sqlx::Connection;
    use std::path::Path;
    use std::time::Duration;

    /// A real audit log in `dir/audit`, indexed through `writer`.
    pub(crate) struct Trail {
        pub audit: LogAudit,
        pub index: IndexTask,
        pub task: sentinel_audit::LogTask,
    }

    impl Trail {
        /// Writes the queued index rows, then finishes the log; answers the index rows written.
        pub async fn finish(self) -> u64 {
            drop(self.audit);
            let n = self.index.close().await;
            self.task.finish().await.unwrap();
            n
        }
    }

    pub(crate) async fn trail(dir: &Path, writer: &StoreWriter, metrics: &Arc<Metrics>) -> Trail {
        let (log, task) = Log::open(sentinel_audit::AuditSettings::new(
            dir.join("audit"),
            "sentinel/test",
        ))
        .await
        .unwrap();
        let (audit, index) = LogAudit::start(log, writer.clone(), metrics.clone());
        Trail { audit, index, task }
    }

    async fn eventually<T, F, Fut>(mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "not within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn action() -> ActionRecord {
        let now = Timestamp::now();
        ActionRecord {
            id: sentinel_core::ActionId::new(),
            origin: sentinel_core::Origin::Operator,
            spec: ActionSpec::plain(
                ActionKind::BlockIp,
                Subject::Ip("203.0.113.9".parse().unwrap()),
                60,
            ),
            mode: sentinel_core::Mode::Observe,
            state: sentinel_core::ActionState::Planned,
            created: now,
            updated: now,
            expires_at: now,
            preview: sentinel_core::Preview {
                kind: ActionKind::BlockIp,
                operations: Vec::new(),
            },
            applied: None,
            error: Some("password=hunter22 was refused".into()),
            trace_id: TraceId::new(),
        }
    }

    /// The committed path: `append` answers once the record is durable in the log and its index row
    /// is committed (a writer that would otherwise wait 30 s to flush), the row carrying the record's
    /// seq; when the store fails under it, the record stays in the log, the answer is an error, and
    /// the failure is counted.
    #[tokio::test]
    async fn append_answers_after_the_log_and_its_index_row_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions {
            flush_interval: Duration::from_secs(30),
            ..WriterOptions::default()
        });
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        let trace = TraceId::new();
        let first = note(AuditKind::Operator, "x".into(), &trace, "hello".into());
        let second = note(AuditKind::Operator, "y".into(), &trace, "again".into());
        t.audit.append(first.clone()).await.unwrap();
        t.audit.append(second.clone()).await.unwrap();
        assert_eq!(
            store.audit_for_trace(&trace).await.unwrap(),
            vec![
                AuditRow::logged(0, first.clone()),
                AuditRow::logged(1, second)
            ]
        );
        let read = t.audit.log().read(0, 1).unwrap();
        assert_eq!(read[0].entry.record(), first);

        store.close().await;
        let r = note(AuditKind::Operator, "z".into(), &trace, "unindexed".into());
        let err = t.audit.append(r).await.unwrap_err();
        assert!(err.to_string().contains("record 2 is in the log"), "{err}");
        assert_eq!(t.audit.log().size(), 3);
        assert_eq!(metrics.audit_index_failures.get(), 1);
        t.finish().await;
        drop(writer);
        task.finish().await.unwrap();
    }

    /// The queued path: records appended without waiting all reach the index, in log order, each row
    /// with its seq; the index task answers how many it wrote once closed.
    #[tokio::test]
    async fn queued_appends_reach_the_index_in_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions::default());
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        let trace = TraceId::new();
        for i in 0..300 {
            let r = note(
                AuditKind::NoticeSent,
                format!("n{i}"),
                &trace,
                format!("notice {i}"),
            );
            t.audit.append_queued(r).await.unwrap();
        }
        let rows = eventually(|| async {
            let rows = store.audit_for_trace(&trace).await.unwrap();
            (rows.len() == 300).then_some(rows)
        })
        .await;
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.log_seq, Some(i as u64), "{row:?}");
            assert_eq!(row.record.subject_id, format!("n{i}"));
        }
        let logged = t.audit.log().read(0, 300).unwrap();
        for (row, e) in rows.iter().zip(&logged) {
            assert_eq!(row.record, e.entry.record());
        }
        assert_eq!(t.finish().await, 300);
        assert_eq!(metrics.audit_index_failures.get(), 0);
        drop(writer);
        task.finish().await.unwrap();
    }

    /// A queued append whose index row cannot be written (the store writer has stopped) is counted and
    /// logged, never silently dropped; the log still holds it.
    #[tokio::test]
    async fn a_queued_index_row_that_cannot_be_written_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions::default());
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        drop(writer);
        task.close().await.unwrap();
        let trace = TraceId::new();
        t.audit
            .append_queued(note(AuditKind::NoticeSent, "n".into(), &trace, "x".into()))
            .await
            .unwrap();
        assert_eq!(t.finish().await, 0);
        assert_eq!(metrics.audit_index_failures.get(), 1);
        assert_eq!(metrics.store_write_errors.get(), 1);
        assert!(store.audit_for_trace(&trace).await.unwrap().is_empty());
    }

    /// Catch-up at start-up: index rows deleted behind the recorder's back (what a crash between the
    /// log's fsync and the index commit leaves) are added again from the log, the rest kept as they
    /// are; a second run adds nothing; index rows past the log's size are counted, not removed.
    #[tokio::test]
    async fn catch_up_adds_what_the_index_lacks_and_counts_rows_past_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path).await.unwrap();
        let (writer, task) = store.writer(WriterOptions::default());
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        let trace = TraceId::new();
        for i in 0..40 {
            let r = note(
                AuditKind::Operator,
                format!("s{i}"),
                &trace,
                format!("op {i}"),
            );
            t.audit.append(r).await.unwrap();
        }
        let before = store.audit_for_trace(&trace).await.unwrap();
        assert_eq!(before.len(), 40);
        let mut conn = sqlx::SqliteConnection::connect(path.to_str().unwrap())
            .await
            .unwrap();
        let deleted = sqlx::query("DELETE FROM audit WHERE log_seq IN (0, 5, 6, 7, 20, 39)")
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 6);
        let log = t.audit.log().clone();
        let done = catch_up_index(&log, &store).await.unwrap();
        assert_eq!(
            done,
            IndexCatchUp {
                log_size: 40,
                added: 6,
                archived: 0,
                ahead: 0
            }
        );
        let mut after = store.audit_for_trace(&trace).await.unwrap();
        after.sort_by_key(|r| r.log_seq);
        assert_eq!(after, before);
        assert_eq!(catch_up_index(&log, &store).await.unwrap().added, 0);

        // Rows for records the log does not hold (a store newer than the log).
        let extra = |seq| {
            AuditRow::logged(
                seq,
                note(AuditKind::Operator, "e".into(), &trace, "e".into()),
            )
        };
        store
            .insert_audit_index_batch(&[extra(40), extra(41), extra(45)])
            .await
            .unwrap();
        let done = catch_up_index(&log, &store).await.unwrap();
        assert_eq!((done.added, done.ahead), (0, 3));
        conn.close().await.unwrap();
        t.finish().await;
        drop(writer);
        task.finish().await.unwrap();
    }

    /// Every record goes through the redactor with its audit entry: an action's error and an operator's
    /// note quoting a secret are masked in both.
    #[tokio::test]
    async fn the_recorder_masks_secrets_in_records_and_audit_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions::default());
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        let rec = Recorder::new(
            writer.clone(),
            Arc::new(t.audit.clone()),
            Arc::new(Redactor::new(["password"])),
            metrics,
        );
        let a = action();
        rec.record_committed(vec![(&a, Change::Decided("token=abc123secret")).into()])
            .await
            .unwrap();
        let stored = store.get_action(a.id).await.unwrap().unwrap();
        let err = stored.error.unwrap();
        assert!(!err.contains("hunter22"), "{err}");
        let audit = store.audit_for_trace(&a.trace_id).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert!(
            !audit[0].record.summary.contains("abc123secret"),
            "{audit:?}"
        );
        assert_eq!(audit[0].record.kind, AuditKind::Operator);
        drop((rec, writer));
        t.finish().await;
        task.finish().await.unwrap();
    }

    fn alert_quoting(detail: &str) -> Alert {
        Alert {
            id: sentinel_core::AlertId::new(),
            ts: Timestamp::now(),
            detector: "heuristic".into(),
            scenario: "credential_bruteforce".into(),
            severity: sentinel_core::Severity::High,
            score: 80,
            confidence: 0.9,
            subject: Subject::Ip("203.0.113.7".parse().unwrap()),
            reasons: vec![sentinel_core::Reason {
                code: "failed_logins".into(),
                detail: detail.into(),
                weight: 40,
            }],
            evidence: vec![],
            trace_id: TraceId::new(),
        }
    }

    /// The audit entry about a stored record carries the hash of the record as stored, after masking:
    /// recomputed from the store's row it is equal; it is not the hash of the record as given; and
    /// editing the row breaks it. Every kind the recorder stores gets one.
    #[tokio::test]
    async fn audit_entries_carry_the_content_hash_of_the_masked_stored_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path).await.unwrap();
        let (writer, task) = store.writer(WriterOptions::default());
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        let rec = Recorder::new(
            writer.clone(),
            Arc::new(t.audit.clone()),
            Arc::new(Redactor::new(["password"])),
            metrics,
        );
        let al = alert_quoting("login with password=hunter22 refused 40 times");
        let act = action();
        rec.record_committed(vec![(&al).into(), (&act, Change::Acted).into()])
            .await
            .unwrap();

        let audit = store.audit_for_trace(&al.trace_id).await.unwrap();
        assert_eq!(audit.len(), 1);
        let noted = audit[0]
            .record
            .content_hash
            .clone()
            .expect("a content hash");
        let stored = store
            .stored_content_hash(AuditKind::AlertRaised, &al.id.to_string())
            .await
            .unwrap();
        assert_eq!(stored.as_deref(), Some(noted.as_str()));
        let as_given = sentinel_store::content_hash(&Record::Alert(al.clone()))
            .unwrap()
            .unwrap();
        assert_ne!(noted, as_given, "hashed before masking");
        let read = store.get_alert(al.id).await.unwrap().unwrap().alert;
        assert!(!read.reasons[0].detail.contains("hunter22"));

        let act_audit = store.audit_for_trace(&act.trace_id).await.unwrap();
        assert_eq!(
            act_audit[0].record.content_hash,
            store
                .stored_content_hash(AuditKind::ActionChanged, &act.id.to_string())
                .await
                .unwrap()
        );
        assert!(act_audit[0].record.content_hash.is_some());

        // Not through the recorder: an edit of the stored alert no longer matches its audit entry.
        let mut conn = sqlx::SqliteConnection::connect(path.to_str().unwrap())
            .await
            .unwrap();
        let edited = sqlx::query(
            "UPDATE alerts SET body = replace(body, '\"score\":80', '\"score\":10') WHERE id = ?",
        )
        .bind(al.id.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(edited.rows_affected(), 1);
        conn.close().await.unwrap();
        let edited = store
            .stored_content_hash(AuditKind::AlertRaised, &al.id.to_string())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(edited, noted);
        drop((rec, writer));
        t.finish().await;
        task.finish().await.unwrap();
    }

    /// `note` answers only once its record is committed (a writer that would otherwise wait 30 s),
    /// masks its summary, keeps the content hash given, and fails when the store does.
    #[tokio::test]
    async fn notes_are_committed_before_they_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions {
            flush_interval: Duration::from_secs(30),
            ..WriterOptions::default()
        });
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        let rec = Recorder::new(
            writer.clone(),
            Arc::new(t.audit.clone()),
            Arc::new(Redactor::new(["password"])),
            metrics.clone(),
        );
        let trace = TraceId::new();
        rec.key_created(&trace, "01KEY", "admin", "admin")
            .await
            .unwrap();
        rec.config_loaded(
            &trace,
            "/etc/sentinel/sentinel.yml",
            b"policy:\n  mode: observe\n",
            "",
        )
        .await
        .unwrap();
        rec.note(
            AuditKind::Started,
            "sentinel",
            &trace,
            "started with password=hunter22".into(),
            None,
        )
        .await
        .unwrap();
        let rows = store.audit_for_trace(&trace).await.unwrap();
        let kinds: Vec<AuditKind> = rows.iter().map(|r| r.record.kind).collect();
        assert_eq!(
            kinds,
            [
                AuditKind::KeyCreated,
                AuditKind::ConfigLoaded,
                AuditKind::Started
            ]
        );
        assert_eq!(rows[0].record.subject_id, "01KEY");
        assert_eq!(rows[0].record.content_hash, None);
        assert_eq!(
            rows[1].record.content_hash.as_deref(),
            // sha256 of "policy:\n  mode: observe\n", computed with sha256sum.
            Some("fcc20322d17646cc041dca014fc4b91ac768a3f95479531e3cc82dac79017df3")
        );
        assert!(!rows[2].record.summary.contains("hunter22"), "{rows:?}");

        store.close().await;
        let err = rec
            .key_revoked(&trace, "01KEY", "revoked by an operator")
            .await
            .unwrap_err();
        assert!(err.contains("could not be stored"), "{err}");
        // In the log, not in the index: counted once as a failed write, once as an index failure.
        assert_eq!(
            (
                metrics.store_write_errors.get(),
                metrics.audit_index_failures.get()
            ),
            (1, 1)
        );
        drop((rec, writer));
        t.finish().await;
        task.finish().await.unwrap();
    }
}
