//! Fixtures shared by the store's integration tests: records with ids that sort by their timestamp.
#![allow(dead_code)]

use sentinel_core::{
    ActionId, ActionKind, ActionRecord, ActionSpec, ActionState, Alert, AlertId, Applied,
    AuditKind, AuditRecord, Event, EventId, EventKind, Evidence, Investigation, InvestigationId,
    Mode, Plan, PlanId, Preview, Reason, Severity, Subject, Timestamp, TraceId, Verdict,
};
use sentinel_store::{Store, WriterOptions};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use ulid::Ulid;

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A ULID whose time part is `ts_ms` and whose random part grows with every call, so ids made with the
/// same time still sort in creation order.
pub fn ulid_at(ts_ms: i64) -> Ulid {
    Ulid::from_parts(
        ts_ms as u64,
        u128::from(SEQ.fetch_add(1, Ordering::Relaxed)),
    )
}

pub fn trace(s: &str) -> TraceId {
    TraceId::parse(s).unwrap()
}

pub async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("nested/dir/sentinel.db"))
        .await
        .unwrap()
}

pub fn fast_writer() -> WriterOptions {
    WriterOptions {
        queue_capacity: 1024,
        batch_size: 64,
        flush_interval: Duration::from_millis(5),
    }
}

pub fn event(ts: i64, ip: &str, kind: &str, trace_id: &str) -> Event {
    let mut attrs = serde_json::Map::new();
    attrs.insert("user".into(), serde_json::json!("root"));
    Event {
        id: EventId(ulid_at(ts)),
        kind: EventKind(kind.into()),
        ts: Timestamp::from_millis(ts),
        source: "file:/var/log/auth.log".into(),
        src_ip: Some(ip.parse::<IpAddr>().unwrap()),
        target: Some("sshd".into()),
        attrs,
        trace_id: trace(trace_id),
    }
}

pub fn alert(
    ts: i64,
    scenario: &str,
    severity: Severity,
    subject: Subject,
    trace_id: &str,
) -> Alert {
    Alert {
        id: AlertId(ulid_at(ts)),
        ts: Timestamp::from_millis(ts),
        detector: "threshold".into(),
        scenario: scenario.into(),
        severity,
        score: 70,
        confidence: 0.75,
        subject,
        reasons: vec![Reason {
            code: "failed_logins".into(),
            detail: "12 failed logins (threshold 5)".into(),
            weight: 40,
        }],
        evidence: vec![event(ts - 1, "203.0.113.7", "auth_failure", trace_id)],
        trace_id: trace(trace_id),
    }
}

pub fn ip(s: &str) -> Subject {
    Subject::Ip(s.parse().unwrap())
}

pub fn investigation(a: &Alert) -> Investigation {
    Investigation {
        id: InvestigationId(ulid_at(a.ts.as_millis() + 1)),
        ts: Timestamp::from_millis(a.ts.as_millis() + 1),
        alert: a.clone(),
        evidence: vec![Evidence {
            provider: "abuseipdb".into(),
            verdict: Verdict::Malicious,
            score: Some(90),
            details: serde_json::json!({"reports": 12}),
        }],
        risk_score: 82,
        confidence: 0.5,
        uncertainty: vec!["greynoise timed out".into()],
        contributions: vec![sentinel_core::Contribution {
            input: "abuseipdb".into(),
            detail: "abuseipdb: malicious (confidence score 100)".into(),
            risk: 30,
            confidence: 0.1,
        }],
        trace_id: a.trace_id.clone(),
    }
}

pub fn plan(a: &Alert, i: &Investigation) -> Plan {
    Plan {
        id: PlanId(ulid_at(a.ts.as_millis() + 2)),
        ts: Timestamp::from_millis(a.ts.as_millis() + 2),
        alert_id: a.id,
        investigation_id: i.id,
        mode: Mode::Enforce,
        severity: a.severity,
        risk_band: "high".into(),
        confidence_band: "medium".into(),
        actions: vec![ActionSpec {
            kind: ActionKind::BlockIp,
            subject: a.subject.clone(),
            ttl_secs: 3600,
            params: sentinel_core::ActionParams::none(ActionKind::BlockIp),
        }],
        reason: "high risk, medium confidence".into(),
        trace_id: a.trace_id.clone(),
        scope: sentinel_core::Scope::Global,
    }
}

pub fn action(p: &Plan, kind: ActionKind, state: ActionState, created: i64) -> ActionRecord {
    let subject = p.actions[0].subject.clone();
    ActionRecord {
        id: ActionId(ulid_at(created)),
        origin: sentinel_core::Origin::of_plan(p),
        spec: ActionSpec {
            kind,
            subject: subject.clone(),
            ttl_secs: 3600,
            params: match kind {
                ActionKind::RateLimit => sentinel_core::ActionParams::parse(
                    kind,
                    &serde_json::json!({"rate_per_sec": 10}),
                )
                .unwrap(),
                _ => sentinel_core::ActionParams::none(kind),
            },
        },
        mode: p.mode,
        state,
        created: Timestamp::from_millis(created),
        updated: Timestamp::from_millis(created),
        expires_at: Timestamp::from_millis(created + 3_600_000),
        preview: Preview {
            kind,
            operations: vec!["nft add element inet sentinel block { 203.0.113.7 }".into()],
        },
        applied: (state == ActionState::Applied).then(|| Applied {
            kind,
            subject,
            token: serde_json::json!({"handle": 7}),
            operations: Vec::new(),
        }),
        error: None,
        trace_id: p.trace_id.clone(),
    }
}

pub fn audit(ts: i64, kind: AuditKind, subject_id: &str, trace_id: &str) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::from_millis(ts),
        kind,
        subject_id: subject_id.into(),
        trace_id: trace(trace_id),
        summary: format!("{} {subject_id}", kind.as_str()),
        content_hash: None,
    }
}
