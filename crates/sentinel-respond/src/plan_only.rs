//! An actuator that may only plan: the real actuator of its kind, built from configuration defaults,
//! in a role that has not been given the backend to enforce with.
//!
//! Its dry run is the real actuator's own `plan()`, so observe mode records exactly what enforce would
//! run. Asked to apply, it refuses loudly instead of pretending. Revert goes to the real actuator (an
//! action applied while the kind still enforced must still be undone); observe reports nothing, since
//! this role does not hold the backend.

use async_trait::async_trait;
use sentinel_core::{ActError, ActionKind, ActionSpec, Actuator, Applied, Preview};

/// The real actuator for a kind, with `apply` refused.
pub struct PlanOnly {
    inner: Box<dyn Actuator>,
}

impl PlanOnly {
    /// Wraps the real actuator of a kind.
    pub fn new(inner: Box<dyn Actuator>) -> Self {
        Self { inner }
    }
}

fn refused(kind: ActionKind) -> ActError {
    ActError::Backend(format!(
        "no enforcing actuator is configured for {kind}; only observe mode is available for it"
    ))
}

#[async_trait]
impl Actuator for PlanOnly {
    fn kind(&self) -> ActionKind {
        self.inner.kind()
    }

    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
        self.inner.plan(a).await
    }

    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
        Err(refused(a.kind))
    }

    async fn apply_batch(&self, specs: &[ActionSpec]) -> Vec<Result<Applied, ActError>> {
        specs.iter().map(|s| Err(refused(s.kind))).collect()
    }

    async fn revert(&self, t: &Applied) -> Result<(), ActError> {
        self.inner.revert(t).await
    }

    async fn observe(&self) -> Result<Vec<Applied>, ActError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::actuators::nft::{NftBlockIp, NftTable};
    use sentinel_core::Subject;

    #[tokio::test]
    async fn plans_as_the_real_actuator_and_refuses_to_apply() {
        let spec = ActionSpec::plain(
            ActionKind::BlockIp,
            Subject::Ip("203.0.113.7".parse().unwrap()),
            60,
        );
        let real = NftBlockIp::new(NftTable::default());
        let p = PlanOnly::new(Box::new(real.clone()));
        assert_eq!(p.kind(), ActionKind::BlockIp);
        assert_eq!(
            p.plan(&spec).await.unwrap(),
            real.plan(&spec).await.unwrap()
        );
        assert_eq!(
            p.plan(&spec).await.unwrap().operations,
            ["add element inet sentinel blocked_v4 { 203.0.113.7 timeout 60s }"]
        );
        let e = p.apply(&spec).await.unwrap_err().to_string();
        assert!(
            e.contains("no enforcing actuator is configured for block_ip"),
            "{e}"
        );
        assert!(p.apply_batch(std::slice::from_ref(&spec)).await[0].is_err());
        assert!(p.observe().await.unwrap().is_empty());
    }
}
