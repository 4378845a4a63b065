//! The ledger in the daemon: building it from the configuration, reconciling at start-up, the expiry
//! loop, and manual decisions for the API. Every record the ledger changes goes through the
//! [`Recorder`] with its audit entry, so the store stays the history and the ledger the live truth.
//! A manual decision's action has the origin `operator` and names no plan, alert or investigation.

use crate::decisions::{DecisionError, DecisionRequest, DecisionSelector, Decisions};
use crate::recorder::{Change, Entry, Recorder};
use sentinel_config::ValidatedConfig;
use sentinel_core::{
    ActionKind, ActionLimits, ActionRecord, ActionSpec, ActionState, Mode, SpecError, SpecField,
    Timestamp, TraceId,
};
use sentinel_respond::{Escalation, Ledger, LedgerConfig, Responder};
use sentinel_store::{ActionFilter, Store};
use std::sync::Arc;
use std::time::Duration;

/// The ledger's settings from `respond` (per-kind modes and caps, escalation).
pub fn ledger_config(cfg: &ValidatedConfig) -> LedgerConfig {
    let mut lc = LedgerConfig::default();
    for kind in ActionKind::ALL {
        if let Some(a) = cfg.respond.actuator(kind) {
            if let Some(m) = a.mode {
                lc.modes.insert(kind, m);
            }
            lc.max_live.insert(kind, a.max_live);
        }
    }
    lc.max_ttl = Some(cfg.policy.max_ttl);
    if cfg.respond.escalation_factor > 1 {
        lc.escalation = Some(Escalation {
            factor: cfg.respond.escalation_factor,
            window: cfg.respond.escalation_window,
            max_ttl: cfg.respond.escalation_max_ttl,
        });
    }
    lc
}

/// The kinds that run in enforce mode (so need a real actuator).
pub fn enforced_kinds(cfg: &ValidatedConfig) -> Vec<ActionKind> {
    ActionKind::ALL
        .into_iter()
        .filter(|k| {
            cfg.respond
                .actuator(*k)
                .and_then(|a| a.mode)
                .unwrap_or(cfg.policy.mode)
                == Mode::Enforce
        })
        .collect()
}

/// Loads what the store says is applied and makes the kernel and engine agree with it.
pub async fn reconcile(ledger: &Ledger, store: &Store, rec: &Recorder) -> anyhow::Result<usize> {
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_actions(&ActionFilter {
                state: Some(ActionState::Applied),
                cursor,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        records.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let n = records.len();
    let fixes = ledger
        .reconcile(records)
        .await
        .map_err(|e| anyhow::anyhow!("reconcile: {e}"))?;
    for f in &fixes {
        tracing::warn!(
            evt = "reconcile_correction",
            trace = %f.record.trace_id,
            action = %f.record.id,
            kind = %f.record.spec.kind,
            subject = %f.record.spec.subject,
            note = %f.note,
        );
        rec.record((&f.record, Change::Reconciled(&f.note)), None)
            .await;
    }
    // Observe-mode decisions are tracked in memory only: take them back from the store, so a restart
    // neither drops them from `GET /v1/decisions` nor leaves them "planned" past their expiry. None
    // can be older than the longest TTL.
    let since = Timestamp::now().as_millis() - max_ttl_millis(ledger);
    let mut planned = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_actions(&ActionFilter {
                state: Some(ActionState::Planned),
                since: Some(Timestamp::from_millis(since)),
                cursor,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        planned.extend(page.items);
        match page.next_cursor {
            Some(c) if planned.len() < 200_000 => cursor = Some(c),
            _ => break,
        }
    }
    let tracked = ledger.track_planned(planned);
    tracing::info!(
        evt = "reconciled",
        applied_records = n,
        planned_tracked = tracked,
        corrections = fixes.len()
    );
    Ok(fixes.len())
}

fn max_ttl_millis(ledger: &Ledger) -> i64 {
    ledger.max_ttl().map_or(i64::MAX / 2, |d| {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
    })
}

/// Reverts actions when their time is up, until aborted.
///
/// Stopping is cooperative: `stop` is only looked at between passes, so a revert and the record of it
/// are never separated (which would make the next start re-apply an action already undone).
pub fn spawn_expiry(
    ledger: Arc<Ledger>,
    rec: Recorder,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    spawn_expiry_notifying(ledger, rec, stop, None)
}

/// [`spawn_expiry`], telling `notifier` about each revert: kind `action_reverted` (info), or
/// `action_failed` (high) when the revert failed. A notice that cannot be queued is logged.
pub fn spawn_expiry_notifying(
    ledger: Arc<Ledger>,
    rec: Recorder,
    stop: tokio::sync::watch::Receiver<bool>,
    notifier: Option<Arc<dyn sentinel_core::Notifier>>,
) -> tokio::task::JoinHandle<()> {
    spawn_fleet_expiry(ledger, rec, stop, notifier, None, None)
}

/// How long a fleet's expiry lease on one plan's action is held: every responder reverts the same
/// global action within moments of the others, so an hour covers them all (and clock skew).
pub const EXPIRY_LEASE: Duration = Duration::from_secs(3600);

/// The lease key of the expiry of `r`: its plan, kind and subject (the same on every responder
/// that applied the plan), or `None` for an action outside any plan (an operator's, on this host).
pub fn expiry_lease_key(r: &sentinel_core::ActionRecord) -> Option<String> {
    match &r.origin {
        sentinel_core::Origin::Plan { plan_id, .. } => Some(format!(
            "expire:{plan_id}:{}:{}",
            r.spec.kind, r.spec.subject
        )),
        _ => None,
    }
}

/// [`spawn_expiry_notifying`] for a responder of a fleet: every responder reverts its own copy of a
/// global action (each host holds its own rule), but the `action_reverted` notice is sent once,
/// by whichever responder takes `lease` for it first (leader-free: a `SET NX` in Redis). A failed
/// revert is always notified (it is that host's own failure); a lease that cannot be asked (Redis
/// away) sends the notice anyway: twice is better than never. With `reporter`, each expired
/// action of a plan is reported on `decisions`, so the API nodes' copies follow.
pub fn spawn_fleet_expiry(
    ledger: Arc<Ledger>,
    rec: Recorder,
    mut stop: tokio::sync::watch::Receiver<bool>,
    notifier: Option<Arc<dyn sentinel_core::Notifier>>,
    lease: Option<sentinel_bus::Lease>,
    reporter: Option<crate::links::Reporter>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = ledger
                .next_expiry()
                .map(|t| (t.as_millis() - Timestamp::now().as_millis()).clamp(0, 1000) as u64)
                .unwrap_or(1000);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
            for r in ledger.expire_due(Timestamp::now()).await {
                let _span = tracing::info_span!("expiry", trace = %r.trace_id).entered();
                tracing::info!(evt = "action_expired", action = %r.id, kind = %r.spec.kind, subject = %r.spec.subject, state = r.state.as_str());
                drop(_span);
                rec.record((&r, Change::Expired), None).await;
                if let Some(reporter) = &reporter {
                    reporter.report(&r).await;
                }
                let failed = r.state == sentinel_core::ActionState::Failed || r.error.is_some();
                let first = match (&lease, expiry_lease_key(&r), failed) {
                    (Some(lease), Some(key), false) => {
                        match lease.acquire(&key, EXPIRY_LEASE).await {
                            Ok(won) => won,
                            Err(e) => {
                                tracing::warn!(evt = "expiry_lease_failed", trace = %r.trace_id, key = %key, error = %e);
                                true
                            }
                        }
                    }
                    _ => true,
                };
                if !first {
                    tracing::info!(evt = "expiry_notice_skipped", trace = %r.trace_id, action = %r.id, reason = "another responder took the lease");
                    continue;
                }
                if let Some(n) = &notifier {
                    let notice = expiry_notice(&r);
                    if let Err(e) = n.notify(&notice).await {
                        tracing::error!(evt = "notice_failed", trace = %r.trace_id, kind = %notice.kind, error = %e);
                    }
                }
            }
        }
    })
}

/// The notice about an action reverted on expiry (or a revert that failed), keyed by its kind so a
/// wave of expiries folds into one message.
pub fn expiry_notice(r: &sentinel_core::ActionRecord) -> sentinel_core::Notice {
    use sentinel_core::{ActionState, Notice, NoticeKind, Severity};
    let failed = r.state == ActionState::Failed || r.error.is_some();
    let (kind, severity, verb) = match failed {
        true => (NoticeKind::ActionFailed, Severity::High, "revert failed"),
        false => (
            NoticeKind::ActionReverted,
            Severity::Info,
            "reverted on expiry",
        ),
    };
    Notice::new(
        kind,
        severity,
        format!("{} {} {verb}", r.spec.kind, r.spec.subject),
        format!(
            "action {} ({} {}): {}{}",
            r.id,
            r.spec.kind,
            r.spec.subject,
            r.state.as_str(),
            r.error
                .as_deref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        ),
        r.trace_id.clone(),
    )
    .with_key(format!("expiry:{}", r.spec.kind))
}

/// Manual decisions for the API, backed by the ledger and the store.
pub struct Desk {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Where records and their audit entries go.
    pub recorder: Recorder,
    /// The mode manual decisions start from (each actuator's own mode still wins).
    pub mode: Mode,
    /// What a manual decision may ask for at most (`policy.max_ttl`, the quarantine roots).
    pub limits: ActionLimits,
}

/// The limits every action is held to, from the configuration.
pub fn action_limits(cfg: &ValidatedConfig) -> ActionLimits {
    ActionLimits {
        max_ttl: Some(cfg.policy.max_ttl),
        quarantine_roots: cfg.respond.quarantine_roots.clone(),
    }
}

/// A limit a manual decision breaks, named as the request names the field.
fn over_limit(limits: &ActionLimits, spec: &ActionSpec) -> Result<(), String> {
    let subject_key = match spec.subject {
        sentinel_core::Subject::File(_) => "file",
        sentinel_core::Subject::Container(_) => "container",
        _ => "ip",
    };
    let named = |e: SpecError| match e.field {
        SpecField::Ttl => format!("`duration`: {}", e.reason),
        SpecField::Subject => format!("`{subject_key}`: {}", e.reason),
        other => format!("`{other}`: {}", e.reason),
    };
    limits.check_ttl(spec.ttl_secs).map_err(named)?;
    if spec.kind == ActionKind::QuarantineFile {
        limits.check_subject(&spec.subject).map_err(named)?;
    }
    spec.check().map_err(named)
}

/// A refusal of a manual decision, naming the field as the request names it: the range for a range
/// that overlaps the allowlist, else the subject (allowlisted, refused by its actuator, already in
/// force). A message that already names its field is kept.
fn refusal_named(spec: &ActionSpec, why: String) -> String {
    if why.starts_with('`') {
        return why;
    }
    // An actuator's refusal that names a parameter (`… params.honeypot: required …`) is about it.
    if let Some(at) = why.find("params.") {
        let name: String = why[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        if name.len() > "params.".len() {
            return format!("`{name}`: {why}");
        }
    }
    let field = match spec.subject {
        _ if why.starts_with("range ") && spec.params.cidr().is_some() => "params.cidr",
        sentinel_core::Subject::File(_) => "file",
        sentinel_core::Subject::Container(_) => "container",
        _ => "ip",
    };
    format!("`{field}`: {why}")
}

#[async_trait::async_trait]
impl Decisions for Desk {
    async fn add(&self, req: DecisionRequest) -> Result<ActionRecord, DecisionError> {
        let spec = req.spec;
        over_limit(&self.limits, &spec)?;
        let why = format!(
            "manual decision: {}",
            if req.reason.is_empty() {
                "(no reason given)"
            } else {
                &req.reason
            }
        );
        let (rec, superseded) = self
            .ledger
            .decide(self.mode, &req.trace_id, spec, req.dry_run)
            .await;
        // The answer promises these records: it is sent only once they are committed.
        let mut entries: Vec<Entry> = Vec::new();
        if let Some(old) = &superseded {
            entries.push((old, Change::Superseded).into());
        }
        if !req.dry_run {
            entries.push((&rec, Change::Decided(&why)).into());
        }
        if !entries.is_empty() {
            self.recorder.record_committed(entries).await.map_err(|e| {
                DecisionError::NotStored(format!(
                    "the decision was taken ({} {}) but not recorded: {e}; it will not survive a restart",
                    rec.spec.kind,
                    rec.state.as_str()
                ))
            })?;
        }
        match rec.state {
            ActionState::Refused | ActionState::Failed => {
                let why = rec.error.clone().unwrap_or_else(|| "refused".into());
                Err(DecisionError::Invalid(refusal_named(&rec.spec, why)))
            }
            _ => Ok(rec),
        }
    }

    async fn list(&self) -> Vec<ActionRecord> {
        self.ledger.live()
    }

    fn kinds(&self) -> Vec<ActionKind> {
        ActionKind::ALL
            .into_iter()
            .filter(|k| self.ledger.responder().actuator(*k).is_some())
            .collect()
    }

    async fn list_page(
        &self,
        before: Option<sentinel_core::ActionId>,
        limit: usize,
    ) -> (Vec<ActionRecord>, bool) {
        self.ledger.live_page(before, limit)
    }

    async fn delete(
        &self,
        sel: DecisionSelector,
        trace: TraceId,
    ) -> Result<Vec<ActionRecord>, DecisionError> {
        let ids: Vec<_> = self
            .ledger
            .live()
            .into_iter()
            .filter(|r| match &sel {
                DecisionSelector::All => true,
                DecisionSelector::Id(id) => r.id == *id,
                DecisionSelector::Ip(ip) => r.spec.subject.ip() == Some(*ip),
            })
            .map(|r| r.id)
            .collect();
        let mut out = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        for id in ids {
            if let Some(r) = self.ledger.revert(id, ActionState::Reverted).await {
                entries.push((&r, Change::Deleted(&trace)).into());
                out.push(r);
            }
        }
        if !entries.is_empty() {
            // The answer promises the reverted states: it is sent only once they are committed.
            self.recorder.record_committed(entries).await.map_err(|e| {
                DecisionError::NotStored(format!(
                    "{} decision(s) were reverted but not recorded: {e}",
                    out.len()
                ))
            })?;
        }
        Ok(out)
    }
}

/// The responder for this configuration: every kind has its real actuator; the kinds that do not
/// enforce get it behind `PlanOnly` (it plans, and refuses to apply).
pub async fn responder(
    cfg: &ValidatedConfig,
    allowlist: sentinel_respond::Allowlist,
) -> anyhow::Result<Responder> {
    let r = Responder::new(allowlist);
    let enforced = enforced_kinds(cfg);
    if !enforced.is_empty() {
        tracing::info!(evt = "enforcing", kinds = ?enforced.iter().map(|k| k.as_str()).collect::<Vec<_>>());
    }
    crate::actuators::install(r, cfg, &enforced).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_core::{ActionKind, Subject};
    use sentinel_store::{StoreWriter, WriterOptions};

    fn desk(writer: StoreWriter, audit: &crate::recorder::LogAudit) -> Desk {
        let recorder = Recorder::new(
            writer,
            Arc::new(audit.clone()),
            Arc::new(sentinel_core::Redactor::new(Vec::<String>::new())),
            Arc::new(crate::metrics::Metrics::default()),
        );
        Desk {
            ledger: Arc::new(Ledger::new(
                Responder::new(sentinel_respond::Allowlist::new([])).with_actuator(Box::new(
                    sentinel_respond::PlanOnly::new(Box::new(
                        sentinel_respond::actuators::nft::NftBlockIp::new(
                            sentinel_respond::actuators::nft::NftTable::default(),
                        ),
                    )),
                )),
                LedgerConfig::default(),
            )),
            recorder,
            mode: Mode::Observe,
            limits: ActionLimits::default(),
        }
    }

    fn request(ip: &str) -> DecisionRequest {
        DecisionRequest {
            spec: ActionSpec {
                kind: ActionKind::BlockIp,
                subject: Subject::Ip(ip.parse().unwrap()),
                ttl_secs: 600,
                params: sentinel_core::ActionParams::none(ActionKind::BlockIp),
            },
            reason: "test".into(),
            dry_run: false,
            trace_id: TraceId::new(),
        }
    }

    /// A decision is answered with its record only once the record is committed; a store that cannot
    /// write it makes the answer an error saying so, never the record.
    #[tokio::test]
    async fn a_decision_waits_for_its_commit_and_a_failed_store_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        // A long flush interval: a record nobody waited for would still be in the queue.
        let (writer, task) = store.writer(WriterOptions {
            flush_interval: Duration::from_secs(30),
            ..WriterOptions::default()
        });
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let t = crate::recorder::tests::trail(dir.path(), &writer, &metrics).await;
        let d = desk(writer.clone(), &t.audit);
        let rec = d.add(request("203.0.113.5")).await.unwrap();
        let stored = store.get_action(rec.id).await.unwrap();
        assert_eq!(stored.map(|r| r.state), Some(ActionState::Planned));
        let deleted = d
            .delete(DecisionSelector::Id(rec.id), TraceId::new())
            .await
            .unwrap();
        assert_eq!(deleted.len(), 1);
        let stored = store.get_action(rec.id).await.unwrap();
        assert_eq!(stored.map(|r| r.state), Some(ActionState::Reverted));

        // The store fails under the writer: the answer says the decision was not recorded.
        store.close().await;
        match d.add(request("203.0.113.6")).await {
            Err(DecisionError::NotStored(m)) => assert!(m.contains("not recorded"), "{m}"),
            other => panic!("a decision the store did not write was answered: {other:?}"),
        }
        drop((d, writer));
        t.finish().await;
        task.finish().await.unwrap();
    }
}
