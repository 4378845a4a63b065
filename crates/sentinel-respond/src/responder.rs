//! The responder: turns a plan into action records, screening each action against the allowlist.

use crate::allowlist::Allowlist;
use crate::preview::RecordOnly;
use sentinel_core::{
    ActionId, ActionKind, ActionRecord, ActionSpec, ActionState, Actuator, Mode, Plan, Preview,
    Timestamp,
};
use std::collections::HashMap;

/// Applies plans through actuators, one per kind.
pub struct Responder {
    allowlist: Allowlist,
    actuators: HashMap<ActionKind, Box<dyn Actuator>>,
}

impl Responder {
    /// A responder with record-only actuators for every kind.
    pub fn new(allowlist: Allowlist) -> Self {
        let actuators = ActionKind::ALL
            .into_iter()
            .map(|k| (k, Box::new(RecordOnly::new(k)) as Box<dyn Actuator>))
            .collect();
        Self {
            allowlist,
            actuators,
        }
    }

    /// Replaces the actuator for its kind.
    pub fn with_actuator(mut self, a: Box<dyn Actuator>) -> Self {
        self.actuators.insert(a.kind(), a);
        self
    }

    /// The allowlist in force.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// The actuator for a kind (record-only unless a real one was given).
    pub fn actuator(&self, kind: ActionKind) -> Option<&dyn Actuator> {
        self.actuators.get(&kind).map(|a| a.as_ref())
    }

    /// Why the allowlist stops this action, if it does: the subject's address is covered, or a range
    /// given in `params.cidr` overlaps an allowlisted network.
    pub fn screen(&self, spec: &ActionSpec) -> Option<String> {
        let ip = spec.subject.ip()?;
        if let Some(net) = self.allowlist.covering(ip) {
            return Some(format!("{} is on the allowlist ({net})", spec.subject));
        }
        let cidr: ipnet::IpNet = spec.params.get("cidr")?.as_str()?.parse().ok()?;
        let hit = self
            .allowlist
            .nets()
            .iter()
            .find(|n| cidr.contains(&n.network()) || n.contains(&cidr.network()))?;
        Some(format!("range {cidr} overlaps the allowlist ({hit})"))
    }

    /// Carries out a plan: one record per action, in the plan's order.
    pub async fn execute(&self, plan: &Plan) -> Vec<ActionRecord> {
        let mut out = Vec::with_capacity(plan.actions.len());
        for spec in &plan.actions {
            out.push(self.execute_one(plan, spec).await);
        }
        out
    }

    async fn execute_one(&self, plan: &Plan, spec: &ActionSpec) -> ActionRecord {
        let now = Timestamp::now();
        let mut rec = ActionRecord {
            id: ActionId::new(),
            plan_id: plan.id,
            alert_id: plan.alert_id,
            spec: spec.clone(),
            mode: plan.mode,
            state: ActionState::Planned,
            created: now,
            updated: now,
            expires_at: now.plus(std::time::Duration::from_secs(spec.ttl_secs)),
            preview: Preview {
                kind: spec.kind,
                operations: Vec::new(),
            },
            applied: None,
            error: None,
            trace_id: plan.trace_id.clone(),
        };
        if let Some(net) = spec.subject.ip().and_then(|ip| self.allowlist.covering(ip)) {
            rec.state = ActionState::Refused;
            rec.error = Some(format!("{} is on the allowlist ({net})", spec.subject));
            return rec;
        }
        let Some(act) = self.actuators.get(&spec.kind) else {
            rec.state = ActionState::Failed;
            rec.error = Some(format!("no actuator for {}", spec.kind));
            return rec;
        };
        match act.plan(spec).await {
            Ok(p) => rec.preview = p,
            Err(e) => {
                rec.state = ActionState::Refused;
                rec.error = Some(e.to_string());
                return rec;
            }
        }
        if plan.mode == Mode::Enforce {
            match act.apply(spec).await {
                Ok(applied) => {
                    rec.state = ActionState::Applied;
                    rec.applied = Some(applied);
                }
                Err(e) => {
                    rec.state = ActionState::Failed;
                    rec.error = Some(e.to_string());
                }
            }
            rec.updated = Timestamp::now();
        }
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_core::{AlertId, InvestigationId, PlanId, Severity, Subject, TraceId};

    fn plan(mode: Mode, ip: &str) -> Plan {
        Plan {
            id: PlanId::new(),
            ts: Timestamp::now(),
            alert_id: AlertId::new(),
            investigation_id: InvestigationId::new(),
            mode,
            severity: Severity::High,
            risk_band: "high".into(),
            confidence_band: "high".into(),
            actions: vec![ActionSpec {
                kind: ActionKind::BlockIp,
                subject: Subject::Ip(ip.parse().unwrap()),
                ttl_secs: 60,
                params: serde_json::Value::Null,
            }],
            reason: "test".into(),
            trace_id: TraceId::new(),
        }
    }

    #[tokio::test]
    async fn observe_mode_records_the_exact_operation() {
        let r = Responder::new(Allowlist::new([]));
        let recs = r.execute(&plan(Mode::Observe, "203.0.113.7")).await;
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].state, ActionState::Planned);
        assert_eq!(
            recs[0].preview.operations,
            ["nft add element inet sentinel blocked_v4 { 203.0.113.7 timeout 60s }"]
        );
        assert_eq!(
            recs[0].expires_at.as_millis() - recs[0].created.as_millis(),
            60_000
        );
        let recs = r.execute(&plan(Mode::Observe, "2001:db8::9")).await;
        assert!(recs[0].preview.operations[0].contains("blocked_v6 { 2001:db8::9 "));
    }

    #[tokio::test]
    async fn allowlisted_subjects_are_refused_with_the_reason() {
        let r = Responder::new(Allowlist::new(["192.0.2.0/24".parse().unwrap()]));
        let recs = r.execute(&plan(Mode::Enforce, "192.0.2.10")).await;
        assert_eq!(recs[0].state, ActionState::Refused);
        assert!(recs[0].error.as_deref().unwrap().contains("192.0.2.0/24"));
        let recs = r.execute(&plan(Mode::Observe, "127.0.0.1")).await;
        assert_eq!(recs[0].state, ActionState::Refused);
    }

    #[test]
    fn ranges_overlapping_the_allowlist_are_refused() {
        let r = Responder::new(Allowlist::new(["192.0.2.128/25".parse().unwrap()]));
        let mut spec = plan(Mode::Enforce, "192.0.2.0").actions.remove(0);
        spec.params = serde_json::json!({"cidr": "192.0.2.0/24"});
        assert!(r
            .screen(&spec)
            .unwrap()
            .contains("overlaps the allowlist (192.0.2.128/25)"));
        spec.params = serde_json::json!({"cidr": "192.0.2.0/25"});
        assert!(r.screen(&spec).is_none());
        spec.params = serde_json::json!({"cidr": "0.0.0.0/0"});
        assert!(r.screen(&spec).is_some(), "everything overlaps loopback");
    }

    #[tokio::test]
    async fn enforce_without_a_real_actuator_fails_loudly() {
        let r = Responder::new(Allowlist::new([]));
        let recs = r.execute(&plan(Mode::Enforce, "203.0.113.7")).await;
        assert_eq!(recs[0].state, ActionState::Failed);
        assert!(recs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("no enforcing actuator"));
    }
}
