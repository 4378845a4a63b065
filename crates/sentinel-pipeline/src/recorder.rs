//! The one way records reach the store: each record and the audit entry that notes it are built here
//! (the [`Entry`] conversions), masked by the redactor here, and written here, the record through the
//! store writer (with the caller's commit token, when it waits) and the audit entry through the
//! [`AuditLog`].
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
use sentinel_core::{
    ActionRecord, Alert, AuditError, AuditKind, AuditLog, AuditRecord, Event, Investigation,
    Notice, Plan, Receipt, Redactor, Timestamp, TraceId,
};
use sentinel_store::{AckGroup, AckToken, AuditRow, Record, StoreWriter};
use std::borrow::Cow;
use std::sync::Arc;

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

/// The audit trail kept in the store, written through the store writer in order with the records.
///
/// [`AuditLog::append`] answers once the entry is committed; [`AuditLog::append_queued`] once it is
/// queued (a batch that fails later is counted by the writer, `failed_batches`, and logged there).
#[derive(Clone)]
pub struct StoreAudit {
    writer: StoreWriter,
}

impl StoreAudit {
    /// The trail behind `writer`.
    pub fn new(writer: StoreWriter) -> Self {
        StoreAudit { writer }
    }
}

#[async_trait]
impl AuditLog for StoreAudit {
    async fn append(&self, r: AuditRecord) -> Result<Receipt, AuditError> {
        let group = AckGroup::new();
        self.writer
            .write_acked(Record::from(r), group.token(0))
            .await
            .map_err(|e| AuditError::Storage(e.to_string()))?;
        let summary = group.settled().await;
        if summary.failed > 0 {
            let why = group
                .failures()
                .first()
                .map(|f| f.error.clone())
                .unwrap_or_default();
            return Err(AuditError::Storage(why));
        }
        Ok(Receipt {
            committed_at: Timestamp::now(),
        })
    }

    async fn append_queued(&self, r: AuditRecord) -> Result<(), AuditError> {
        self.writer
            .write(Record::from(r))
            .await
            .map_err(|e| AuditError::Storage(e.to_string()))
    }
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
    /// A recorder writing through `writer`, its audit trail in the same store.
    pub fn new(writer: StoreWriter, redactor: Arc<Redactor>, metrics: Arc<Metrics>) -> Self {
        let audit = Arc::new(StoreAudit::new(writer.clone()));
        Self::with_audit(writer, audit, redactor, metrics)
    }

    /// A recorder whose audit entries go to `audit` (the Merkle log, later).
    pub fn with_audit(
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_core::{ActionKind, ActionSpec, AuditLog, Subject};
    use sentinel_store::{Store, WriterOptions};
    use sqlx::Connection;
    use std::time::Duration;

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

    /// The store-backed trail answers `append` only once the entry is committed: with a writer that
    /// would otherwise wait 30 s to flush, the entry is readable as soon as the receipt comes.
    #[tokio::test]
    async fn append_answers_after_the_commit_and_fails_when_the_store_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions {
            flush_interval: Duration::from_secs(30),
            ..WriterOptions::default()
        });
        let log = StoreAudit::new(writer.clone());
        let trace = TraceId::new();
        let rec = note(AuditKind::Operator, "x".into(), &trace, "hello".into());
        log.append(rec.clone()).await.unwrap();
        assert_eq!(
            store.audit_for_trace(&trace).await.unwrap(),
            vec![AuditRow::unlogged(rec)]
        );

        store.close().await;
        let r = note(AuditKind::Operator, "y".into(), &trace, "lost".into());
        assert!(matches!(log.append(r).await, Err(AuditError::Storage(_))));
        drop((log, writer));
        task.finish().await.unwrap();
    }

    /// Every record goes through the redactor with its audit entry: an action's error and an operator's
    /// note quoting a secret are masked in both.
    #[tokio::test]
    async fn the_recorder_masks_secrets_in_records_and_audit_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions::default());
        let rec = Recorder::new(
            writer.clone(),
            Arc::new(Redactor::new(["password"])),
            Arc::new(Metrics::default()),
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
        let rec = Recorder::new(
            writer.clone(),
            Arc::new(Redactor::new(["password"])),
            Arc::new(Metrics::default()),
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
        let rec = Recorder::new(
            writer.clone(),
            Arc::new(Redactor::new(["password"])),
            Arc::new(Metrics::default()),
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
        drop((rec, writer));
        task.finish().await.unwrap();
    }
}
