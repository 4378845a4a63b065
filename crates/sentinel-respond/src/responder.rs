//! The responder: the allowlist and the one actuator of each kind. The ledger is the only path that
//! plans and applies through it.

use crate::allowlist::Allowlist;
use sentinel_core::{ActionKind, ActionSpec, Actuator};
use std::collections::HashMap;

/// The allowlist and an actuator per kind.
pub struct Responder {
    allowlist: Allowlist,
    actuators: HashMap<ActionKind, Box<dyn Actuator>>,
}

impl Responder {
    /// A responder with no actuator yet; a kind with none fails every action of that kind.
    pub fn new(allowlist: Allowlist) -> Self {
        Self {
            allowlist,
            actuators: HashMap::new(),
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

    /// The actuator for a kind.
    pub fn actuator(&self, kind: ActionKind) -> Option<&dyn Actuator> {
        self.actuators.get(&kind).map(|a| a.as_ref())
    }

    /// Why the allowlist stops this action, if it does: the subject's address is covered, or the range
    /// in its (already parsed) `cidr` overlaps an allowlisted network.
    pub fn screen(&self, spec: &ActionSpec) -> Option<String> {
        let ip = spec.subject.ip()?;
        if let Some(net) = self.allowlist.covering(ip) {
            return Some(format!("{} is on the allowlist ({net})", spec.subject));
        }
        let cidr = spec.params.cidr()?.net();
        let hit = self.allowlist.nets().iter().find(|n| {
            let n = n.trunc();
            cidr.contains(&n.network()) || n.contains(&cidr.network())
        })?;
        Some(format!("range {cidr} overlaps the allowlist ({hit})"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_core::{ActionParams, Subject};
    use serde_json::json;

    fn spec(ip: &str, params: serde_json::Value) -> ActionSpec {
        let p = ActionParams::parse(ActionKind::BlockIp, &params).unwrap();
        ActionSpec::new(ActionKind::BlockIp, Subject::Ip(ip.parse().unwrap()), 60, p).unwrap()
    }

    #[test]
    fn ranges_overlapping_the_allowlist_are_refused() {
        let r = Responder::new(Allowlist::new(["192.0.2.128/25".parse().unwrap()]));
        assert!(r
            .screen(&spec("192.0.2.0", json!({"cidr": "192.0.2.0/24"})))
            .unwrap()
            .contains("overlaps the allowlist (192.0.2.128/25)"));
        assert!(r
            .screen(&spec("192.0.2.0", json!({"cidr": "192.0.2.0/25"})))
            .is_none());
        assert!(
            r.screen(&spec("127.0.0.9", json!({"cidr": "127.0.0.0/8"})))
                .is_some(),
            "loopback itself"
        );
        assert!(
            r.screen(&spec("126.1.2.3", json!({"cidr": "126.0.0.0/8"})))
                .is_none(),
            "a neighbour of loopback"
        );
    }

    #[test]
    fn allowlisted_subjects_are_refused_with_the_reason() {
        let r = Responder::new(Allowlist::new(["192.0.2.0/24".parse().unwrap()]));
        assert!(r
            .screen(&spec("192.0.2.10", serde_json::Value::Null))
            .unwrap()
            .contains("192.0.2.0/24"));
        assert!(r
            .screen(&spec("127.0.0.1", serde_json::Value::Null))
            .is_some());
        assert!(r
            .screen(&spec("203.0.113.7", serde_json::Value::Null))
            .is_none());
    }
}
