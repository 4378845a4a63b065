//! The ledger in the daemon: building it from the configuration, reconciling at start-up, the expiry
//! loop, and manual decisions for the API. Every record the ledger changes is written to the store with
//! an audit entry, so the store stays the history and the ledger the live truth.

use sentinel_api::decisions::{DecisionRequest, DecisionSelector, Decisions};
use sentinel_config::ValidatedConfig;
use sentinel_core::{
    ActionKind, ActionLimits, ActionRecord, ActionSpec, ActionState, AlertId, AuditKind,
    AuditRecord, InvestigationId, Mode, Plan, PlanId, Severity, SpecError, SpecField, Timestamp,
    TraceId,
};
use sentinel_respond::{Escalation, Ledger, LedgerConfig, Responder};
use sentinel_store::{ActionFilter, Record, Store, StoreWriter};
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

fn audit(rec: &ActionRecord, kind: AuditKind, note: &str) -> Record {
    Record::Audit(AuditRecord {
        ts: Timestamp::now(),
        kind,
        subject_id: rec.id.to_string(),
        trace_id: rec.trace_id.clone(),
        summary: format!(
            "{} {} {}: {note}",
            rec.spec.kind,
            rec.spec.subject,
            rec.state.as_str()
        ),
    })
}

async fn write(w: &StoreWriter, recs: impl IntoIterator<Item = Record>) {
    for r in recs {
        if let Err(e) = w.write(r).await {
            tracing::error!(evt = "store_write_failed", error = %e);
        }
    }
}

/// Loads what the store says is applied and makes the kernel and engine agree with it.
pub async fn reconcile(ledger: &Ledger, store: &Store, w: &StoreWriter) -> anyhow::Result<usize> {
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
        write(
            w,
            [
                Record::Action(f.record.clone()),
                audit(&f.record, AuditKind::ActionChanged, &f.note),
            ],
        )
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
    w: StoreWriter,
    mut stop: tokio::sync::watch::Receiver<bool>,
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
                write(
                    &w,
                    [
                        Record::Action(r.clone()),
                        audit(&r, AuditKind::ActionChanged, "time is up"),
                    ],
                )
                .await;
            }
        }
    })
}

/// Manual decisions for the API, backed by the ledger and the store.
pub struct Desk {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Where records go.
    pub writer: StoreWriter,
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
    async fn add(&self, req: DecisionRequest) -> Result<ActionRecord, String> {
        let spec = req.spec;
        over_limit(&self.limits, &spec)?;
        let plan = Plan {
            id: PlanId::new(),
            ts: Timestamp::now(),
            alert_id: AlertId::new(),
            investigation_id: InvestigationId::new(),
            mode: self.mode,
            severity: Severity::High,
            risk_band: "manual".into(),
            confidence_band: "manual".into(),
            actions: vec![spec.clone()],
            reason: format!(
                "manual decision: {}",
                if req.reason.is_empty() {
                    "(no reason given)"
                } else {
                    &req.reason
                }
            ),
            trace_id: req.trace_id,
        };
        let (rec, superseded) = self.ledger.decide(&plan, spec, req.dry_run).await;
        if let Some(old) = superseded {
            write(
                &self.writer,
                [
                    Record::Action(old.clone()),
                    audit(
                        &old,
                        AuditKind::ActionChanged,
                        "superseded by a longer action",
                    ),
                ],
            )
            .await;
        }
        if !req.dry_run {
            write(
                &self.writer,
                [
                    Record::Plan(plan.clone()),
                    Record::Action(rec.clone()),
                    audit(&rec, AuditKind::Operator, &plan.reason),
                ],
            )
            .await;
        }
        match rec.state {
            ActionState::Refused | ActionState::Failed => {
                let why = rec.error.clone().unwrap_or_else(|| "refused".into());
                Err(refusal_named(&rec.spec, why))
            }
            _ => Ok(rec),
        }
    }

    async fn list(&self) -> Vec<ActionRecord> {
        self.ledger.live()
    }

    async fn delete(&self, sel: DecisionSelector, trace: TraceId) -> Vec<ActionRecord> {
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
        for id in ids {
            if let Some(r) = self.ledger.revert(id, ActionState::Reverted).await {
                let mut note_rec = r.clone();
                note_rec.trace_id = trace.clone();
                write(
                    &self.writer,
                    [
                        Record::Action(r.clone()),
                        audit(&note_rec, AuditKind::Operator, "deleted by an operator"),
                    ],
                )
                .await;
                out.push(r);
            }
        }
        out
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
