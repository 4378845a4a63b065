//! Plans (what the policy chose) and actions (what an actuator did, and how to undo it).

use crate::alert::{Severity, Subject};
use crate::ids::{ActionId, AlertId, InvestigationId, PlanId, TraceId};
use crate::params::{check_fit, check_subject, ActionParams, SpecError};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Whether a plan is only recorded or really applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Record the plan and what would be done; change nothing.
    #[default]
    Observe,
    /// Apply the plan for real.
    Enforce,
}

impl Mode {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Enforce => "enforce",
        }
    }
}

/// The kinds of response Sentinel can apply. Every one is reversible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Drop traffic from an address or range.
    BlockIp,
    /// Limit the rate of traffic from an address.
    RateLimit,
    /// Send an address's traffic to a honeypot.
    RedirectToHoneypot,
    /// Cut a container off its networks.
    IsolateContainer,
    /// Move a file into quarantine.
    QuarantineFile,
}

impl ActionKind {
    /// All kinds.
    pub const ALL: [ActionKind; 5] = [
        ActionKind::BlockIp,
        ActionKind::RateLimit,
        ActionKind::RedirectToHoneypot,
        ActionKind::IsolateContainer,
        ActionKind::QuarantineFile,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::BlockIp => "block_ip",
            ActionKind::RateLimit => "rate_limit",
            ActionKind::RedirectToHoneypot => "redirect_to_honeypot",
            ActionKind::IsolateContainer => "isolate_container",
            ActionKind::QuarantineFile => "quarantine_file",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                // Quote the name only when it is short and plain: never echo long or hostile input.
                let shown = if s.len() <= 32
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    format!("`{s}`")
                } else {
                    "given".to_string()
                };
                format!(
                    "unknown action {shown} (block_ip, rate_limit, redirect_to_honeypot, isolate_container, quarantine_file)"
                )
            })
    }
}

/// One action a plan asks for, its parameters already parsed into their types.
///
/// Read from JSON (a stored record), the parameters are parsed for the kind; parameters that no longer
/// parse are kept as [`ActionParams::Stored`] so the record stays readable, and [`ActionSpec::check`]
/// refuses them. [`ActionSpec::new`] checks that the subject fits the kind and is well formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawActionSpec")]
pub struct ActionSpec {
    /// What to do.
    pub kind: ActionKind,
    /// To whom.
    pub subject: Subject,
    /// How long it stays before it is reverted, in seconds.
    pub ttl_secs: u64,
    /// Kind-specific parameters (rate, honeypot address, …).
    #[serde(skip_serializing_if = "ActionParams::is_empty")]
    pub params: ActionParams,
}

/// The wire form of an [`ActionSpec`], before its parameters are parsed.
#[derive(Deserialize)]
struct RawActionSpec {
    kind: ActionKind,
    subject: Subject,
    ttl_secs: u64,
    #[serde(default)]
    params: serde_json::Value,
}

impl From<RawActionSpec> for ActionSpec {
    /// Parameters that no longer parse (a record stored before they were typed) are kept as
    /// [`ActionParams::Stored`]: the record stays readable, and [`ActionSpec::check`] refuses to let it
    /// be applied.
    fn from(r: RawActionSpec) -> Self {
        let params = ActionParams::from_stored(r.kind, &r.params);
        ActionSpec {
            kind: r.kind,
            subject: r.subject,
            ttl_secs: r.ttl_secs,
            params,
        }
    }
}

impl ActionSpec {
    /// A checked action: the subject fits the kind and is well formed, the parameters belong to the
    /// kind and fit the subject (a range contains the address, a honeypot has its family).
    pub fn new(
        kind: ActionKind,
        subject: Subject,
        ttl_secs: u64,
        params: ActionParams,
    ) -> Result<Self, SpecError> {
        check_subject(kind, &subject)?;
        check_fit(kind, &subject, &params)?;
        Ok(ActionSpec {
            kind,
            subject,
            ttl_secs,
            params,
        })
    }

    /// [`ActionSpec::new`] with the parameters still in their JSON form.
    pub fn parse(
        kind: ActionKind,
        subject: Subject,
        ttl_secs: u64,
        params: &serde_json::Value,
    ) -> Result<Self, SpecError> {
        let params = ActionParams::parse(kind, params)?;
        Self::new(kind, subject, ttl_secs, params)
    }

    /// An action of `kind` on `subject` with no parameters (all defaults).
    pub fn plain(kind: ActionKind, subject: Subject, ttl_secs: u64) -> Self {
        ActionSpec {
            kind,
            subject,
            ttl_secs,
            params: ActionParams::none(kind),
        }
    }

    /// Checks the whole action again ([`ActionSpec::new`]'s rules).
    pub fn check(&self) -> Result<(), SpecError> {
        check_subject(self.kind, &self.subject)?;
        check_fit(self.kind, &self.subject, &self.params)
    }
}

/// What the policy chose for one investigation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Unique id.
    pub id: PlanId,
    /// When it was decided.
    pub ts: Timestamp,
    /// The alert behind it.
    pub alert_id: AlertId,
    /// The investigation behind it.
    pub investigation_id: InvestigationId,
    /// Observe or enforce.
    pub mode: Mode,
    /// The alert's severity.
    pub severity: Severity,
    /// The risk band the investigation fell in (`low`, `medium`, `high`).
    pub risk_band: String,
    /// The confidence band (`low`, `medium`, `high`).
    pub confidence_band: String,
    /// What to do; empty when the matrix asks for nothing.
    pub actions: Vec<ActionSpec>,
    /// Why: which matrix rule matched.
    pub reason: String,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Which responders apply it: every one (the default, and what plans stored before the scope
    /// was kept read as), or only the named host's. Written only when it names a host, so a global
    /// plan keeps the JSON it always had.
    #[serde(default, skip_serializing_if = "Scope::is_global")]
    pub scope: Scope,
}

/// Which responders a [`Plan`] is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every responder applies it, each on its own host.
    #[default]
    Global,
    /// Only the responder of this node (host) applies it.
    Host(String),
}

impl Scope {
    /// Whether every responder applies it.
    pub fn is_global(&self) -> bool {
        matches!(self, Scope::Global)
    }

    /// Whether the responder of `node` applies it.
    pub fn includes(&self, node: &str) -> bool {
        match self {
            Scope::Global => true,
            Scope::Host(h) => h == node,
        }
    }
}

/// Where an action is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Decided, not yet applied (or only observed).
    Planned,
    /// Live.
    Applied,
    /// Could not be applied.
    Failed,
    /// Undone before its time.
    Reverted,
    /// Undone because its time was up.
    Expired,
    /// Refused by the allowlist or a cap.
    Refused,
}

impl ActionState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Planned => "planned",
            ActionState::Applied => "applied",
            ActionState::Failed => "failed",
            ActionState::Reverted => "reverted",
            ActionState::Expired => "expired",
            ActionState::Refused => "refused",
        }
    }
}

impl FromStr for ActionState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ActionState::Planned,
            ActionState::Applied,
            ActionState::Failed,
            ActionState::Reverted,
            ActionState::Expired,
            ActionState::Refused,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown action state `{s}`"))
    }
}

/// The dry-run view of an action: exactly what would be done, with no effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// The kind of action.
    pub kind: ActionKind,
    /// The exact rules, commands or API calls, in order.
    pub operations: Vec<String>,
}

/// What an actuator applied; serialisable, and all that `revert` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The kind of action.
    pub kind: ActionKind,
    /// Who it was applied to.
    pub subject: Subject,
    /// Actuator-specific revert token.
    pub token: serde_json::Value,
    /// The operations apply carried out, rendered as its dry run renders them (empty for what was
    /// found in place rather than applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

/// Where an action came from: a plan the pipeline decided, an operator, or reconcile at start-up.
///
/// Serialised flat into its [`ActionRecord`] as `"origin": "plan" | "operator" | "reconcile"`, with a
/// plan's ids beside it (`plan_id`, `alert_id`, `investigation_id`), so a plan's action keeps the JSON
/// it always had. Only an action that comes from a plan names a plan, an alert and an investigation;
/// records stored before the origin was kept read as `plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum Origin {
    /// The policy decided it for an investigated alert.
    Plan {
        /// The plan it belongs to.
        plan_id: PlanId,
        /// The alert behind it.
        alert_id: AlertId,
        /// The investigation behind it (absent in records stored before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        investigation_id: Option<InvestigationId>,
    },
    /// An operator asked for it (API or CLI); the record's trace is the request's.
    Operator,
    /// Reconcile at start-up found something outside any plan (an orphan removed, a backend that
    /// could not be read).
    Reconcile,
}

impl Origin {
    /// The origin of an action `plan` asks for.
    pub fn of_plan(plan: &Plan) -> Self {
        Origin::Plan {
            plan_id: plan.id,
            alert_id: plan.alert_id,
            investigation_id: Some(plan.investigation_id),
        }
    }

    /// The plan, when the action comes from one.
    pub fn plan_id(&self) -> Option<PlanId> {
        match self {
            Origin::Plan { plan_id, .. } => Some(*plan_id),
            _ => None,
        }
    }

    /// The alert, when the action comes from a plan.
    pub fn alert_id(&self) -> Option<AlertId> {
        match self {
            Origin::Plan { alert_id, .. } => Some(*alert_id),
            _ => None,
        }
    }

    /// The snake_case name (`plan`, `operator`, `reconcile`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Plan { .. } => "plan",
            Origin::Operator => "operator",
            Origin::Reconcile => "reconcile",
        }
    }
}

/// An action and its state, as kept in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawActionRecord")]
pub struct ActionRecord {
    /// Unique id.
    pub id: ActionId,
    /// Where it came from (flattened: `origin` and, for a plan, its ids).
    #[serde(flatten)]
    pub origin: Origin,
    /// What was asked.
    pub spec: ActionSpec,
    /// Observe or enforce.
    pub mode: Mode,
    /// Where it is in its life.
    pub state: ActionState,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
    /// When it is reverted automatically.
    pub expires_at: Timestamp,
    /// The dry run: what was (or would have been) done.
    pub preview: Preview,
    /// The revert token, once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
    /// Why it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The trace it belongs to.
    pub trace_id: TraceId,
}

/// The stored form of an [`ActionRecord`], read before its origin is known: records stored before
/// the origin was kept have only `plan_id` and `alert_id`, and read as coming from that plan.
#[derive(Deserialize)]
struct RawActionRecord {
    id: ActionId,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    plan_id: Option<PlanId>,
    #[serde(default)]
    alert_id: Option<AlertId>,
    #[serde(default)]
    investigation_id: Option<InvestigationId>,
    spec: ActionSpec,
    mode: Mode,
    state: ActionState,
    created: Timestamp,
    updated: Timestamp,
    expires_at: Timestamp,
    preview: Preview,
    #[serde(default)]
    applied: Option<Applied>,
    #[serde(default)]
    error: Option<String>,
    trace_id: TraceId,
}

impl TryFrom<RawActionRecord> for ActionRecord {
    type Error = String;
    fn try_from(r: RawActionRecord) -> Result<Self, Self::Error> {
        let origin = match r.origin.as_deref() {
            None | Some("plan") => match (r.plan_id, r.alert_id) {
                (Some(plan_id), Some(alert_id)) => Origin::Plan {
                    plan_id,
                    alert_id,
                    investigation_id: r.investigation_id,
                },
                _ => return Err("an action from a plan needs `plan_id` and `alert_id`".into()),
            },
            Some("operator") => Origin::Operator,
            Some("reconcile") => Origin::Reconcile,
            Some(other) => {
                let shown: String = other.chars().take(32).collect();
                return Err(format!(
                    "unknown action origin `{shown}` (plan, operator, reconcile)"
                ));
            }
        };
        Ok(ActionRecord {
            id: r.id,
            origin,
            spec: r.spec,
            mode: r.mode,
            state: r.state,
            created: r.created,
            updated: r.updated,
            expires_at: r.expires_at,
            preview: r.preview,
            applied: r.applied,
            error: r.error,
            trace_id: r.trace_id,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn stored(extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({
            "id": "01J0000000000000000000000A",
            "spec": {"kind": "block_ip", "subject": {"type": "ip", "value": "203.0.113.7"}, "ttl_secs": 60},
            "mode": "observe",
            "state": "planned",
            "created": 1_000,
            "updated": 1_000,
            "expires_at": 61_000,
            "preview": {"kind": "block_ip", "operations": []},
            "trace_id": "t-1"
        });
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        v
    }

    /// A record stored before the origin was kept (ids only) reads as coming from its plan, and is
    /// written back with the same ids plus `"origin": "plan"`.
    #[test]
    fn an_old_record_reads_as_from_its_plan_and_keeps_its_ids() {
        let plan = "01J0000000000000000000000B";
        let alert = "01J0000000000000000000000C";
        let old = stored(json!({"plan_id": plan, "alert_id": alert}));
        let rec: ActionRecord = serde_json::from_value(old).unwrap();
        match &rec.origin {
            Origin::Plan {
                plan_id,
                alert_id,
                investigation_id,
            } => {
                assert_eq!(plan_id.to_string(), plan);
                assert_eq!(alert_id.to_string(), alert);
                assert_eq!(*investigation_id, None);
            }
            other => panic!("read as {other:?}"),
        }
        let back = serde_json::to_value(&rec).unwrap();
        assert_eq!(back["origin"], "plan");
        assert_eq!(back["plan_id"], plan);
        assert_eq!(back["alert_id"], alert);
        assert!(back.get("investigation_id").is_none());
        let again: ActionRecord = serde_json::from_value(back).unwrap();
        assert_eq!(again, rec);
    }

    /// An operator's and reconcile's actions name no plan, alert or investigation.
    #[test]
    fn operator_and_reconcile_actions_name_no_plan() {
        for (origin, name) in [
            (Origin::Operator, "operator"),
            (Origin::Reconcile, "reconcile"),
        ] {
            let mut rec: ActionRecord =
                serde_json::from_value(stored(json!({"origin": name}))).unwrap();
            assert_eq!(rec.origin, origin);
            rec.origin = origin.clone();
            let v = serde_json::to_value(&rec).unwrap();
            assert_eq!(v["origin"], name);
            for key in ["plan_id", "alert_id", "investigation_id"] {
                assert!(v.get(key).is_none(), "{name} record has {key}: {v}");
            }
            assert_eq!(serde_json::from_value::<ActionRecord>(v).unwrap(), rec);
        }
    }

    /// A plan stored before the scope was kept reads as global, and a global plan is written
    /// without it; a host scope is written and read back.
    #[test]
    fn a_plan_without_a_scope_is_global_and_a_host_scope_round_trips() {
        let old = json!({
            "id": "01J0000000000000000000000B",
            "ts": "1970-01-01T00:00:01.000Z",
            "alert_id": "01J0000000000000000000000C",
            "investigation_id": "01J0000000000000000000000D",
            "mode": "observe",
            "severity": "high",
            "risk_band": "high",
            "confidence_band": "high",
            "actions": [],
            "reason": "r",
            "trace_id": "t-1"
        });
        let mut plan: Plan = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(plan.scope, Scope::Global);
        assert!(plan.scope.includes("web-1"));
        assert_eq!(serde_json::to_value(&plan).unwrap(), old);
        plan.scope = Scope::Host("web-2".into());
        let v = serde_json::to_value(&plan).unwrap();
        assert_eq!(v["scope"], json!({"host": "web-2"}));
        assert_eq!(serde_json::from_value::<Plan>(v).unwrap(), plan);
        assert!(plan.scope.includes("web-2") && !plan.scope.includes("web-1"));
    }

    /// A plan origin without its ids, or an unknown origin, is an error naming it, not a guess.
    #[test]
    fn a_plan_origin_without_ids_or_an_unknown_origin_is_refused() {
        let e = serde_json::from_value::<ActionRecord>(stored(json!({"origin": "plan"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("plan_id"), "{e}");
        let e = serde_json::from_value::<ActionRecord>(stored(json!({"origin": "expiry"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown action origin `expiry`"), "{e}");
    }
}
