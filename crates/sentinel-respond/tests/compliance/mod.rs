//! The compliance suite every actuator passes, whatever it drives (nftables, the Docker Engine, files).
//!
//! A [`Fixture`] builds the actuator from its configuration (again and again: a second build is the
//! daemon after a restart), names one action, and checks the real thing (the kernel's ruleset, the
//! engine, the file system) without going through the actuator. [`check`] then walks the life of an
//! action: plan (the preview has no effect), apply (in effect), observe (lists it), revert (gone), revert
//! again (idempotent `Ok`), and apply once more, then revert from the stored [`Applied`] by a fresh
//! actuator built from the same configuration (revert after restart), twice.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use async_trait::async_trait;
use sentinel_core::{ActionSpec, Actuator, Applied};

/// One actuator under test and the real world it changes.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// Builds the actuator from the fixture's configuration; every call is a fresh instance, as after
    /// a restart of the daemon.
    async fn build(&self) -> Box<dyn Actuator>;
    /// The action the suite plans, applies and reverts.
    fn spec(&self) -> ActionSpec;
    /// Everything the actuator could change, read from the real thing (not through the actuator), so a
    /// dry run can be shown to have changed nothing.
    async fn world(&self) -> String;
    /// Whether the action is in effect, read from the real thing.
    async fn in_effect(&self) -> bool;
}

/// Whether `seen` (what observe listed) holds the action `applied` stands for.
fn holds(seen: &[Applied], applied: &Applied) -> bool {
    seen.iter()
        .any(|s| s.kind == applied.kind && s.subject == applied.subject)
}

/// Runs the whole life of `fx`'s action and asserts every step.
pub async fn check(fx: &impl Fixture) {
    let act = fx.build().await;
    let spec = fx.spec();
    assert_eq!(act.kind(), spec.kind);
    assert!(!fx.in_effect().await, "in effect before anything was done");

    // Plan: operations listed, nothing changed.
    let before = fx.world().await;
    let preview = act.plan(&spec).await.unwrap();
    assert_eq!(preview.kind, spec.kind);
    assert!(
        !preview.operations.is_empty(),
        "a plan lists its operations"
    );
    assert_eq!(fx.world().await, before, "plan changed the world");
    assert!(!fx.in_effect().await, "plan put the action in effect");

    // Apply, observe.
    let applied = act.apply(&spec).await.unwrap();
    assert_eq!(applied.kind, spec.kind);
    assert!(
        fx.in_effect().await,
        "apply did not put the action in effect"
    );
    let seen = act.observe().await.unwrap();
    assert!(
        holds(&seen, &applied),
        "observe does not show {applied:?}: {seen:?}"
    );

    // Revert, twice.
    act.revert(&applied).await.unwrap();
    assert!(!fx.in_effect().await, "revert left the action in effect");
    assert!(
        !holds(&act.observe().await.unwrap(), &applied),
        "observe still shows a reverted action"
    );
    act.revert(&applied)
        .await
        .expect("a second revert is Ok (idempotent)");
    assert!(!fx.in_effect().await);

    // Apply again, store the token, "restart": a fresh instance reverts from the stored token alone.
    let applied = act.apply(&spec).await.unwrap();
    assert!(
        fx.in_effect().await,
        "apply after revert did not put the action in effect"
    );
    let stored = serde_json::to_string(&applied).unwrap();
    drop(act);
    let fresh = fx.build().await;
    let token: Applied = serde_json::from_str(&stored).unwrap();
    assert!(
        holds(&fresh.observe().await.unwrap(), &token),
        "a fresh instance does not observe the action in place"
    );
    fresh.revert(&token).await.unwrap();
    assert!(
        !fx.in_effect().await,
        "revert after restart left the action in effect"
    );
    fresh
        .revert(&token)
        .await
        .expect("a second revert after restart is Ok");
    assert!(!fx.in_effect().await);
}
