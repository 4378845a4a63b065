//! What the API hands to the pipeline, and what the pipeline answers for `/v1/defend`.
//!
//! A submission may carry an [`AckToken`]: the pipeline stores the event with it, so the caller
//! learns when the event is committed (or that it was not). For `/v1/defend` the stages that store
//! the alert, investigation and plan the answer promises use siblings of that token, made before the
//! reply is sent.
//!
//! The answer itself is built once: [`Outcomes`] keeps, under the event's id, the caller's reply slot
//! and what detection found, until the decide stage completes it with the investigation and plan.

use sentinel_core::{AlertId, Event, EventId, Investigation, Plan, Reason, Severity, TraceId};
use sentinel_store::AckToken;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// One event for the pipeline, with a reply slot when the caller waits for the plan.
#[derive(Debug)]
pub struct Submission {
    /// The event, already redacted: what is stored, logged and answered.
    pub event: Event,
    /// Set for telemetry posted to the API, which the heuristic scores whatever its `source` says
    /// (log-line events leave it unset).
    pub telemetry: Option<Telemetry>,
    /// Where to send the outcome, for synchronous callers.
    pub reply: Option<oneshot::Sender<Outcome>>,
    /// Settled once the event (and, with a reply, every record the outcome promises) is committed.
    pub ack: Option<AckToken>,
}

impl Submission {
    /// API telemetry: scored by the heuristic. `raw` is the event as posted when redaction changed
    /// it (the detector must see an attack hidden under a secret-looking key).
    pub fn telemetry(
        event: Event,
        raw: Option<Event>,
        reply: Option<oneshot::Sender<Outcome>>,
        ack: Option<AckToken>,
    ) -> Self {
        Self {
            event,
            telemetry: Some(Telemetry {
                raw: raw.map(Box::new),
            }),
            reply,
            ack,
        }
    }

    /// An event read from a log source: counted by the scenarios, not scored by the heuristic.
    pub fn log(event: Event) -> Self {
        Self {
            event,
            telemetry: None,
            reply: None,
            ack: None,
        }
    }
}

/// What the pipeline needs besides the redacted event to score API telemetry.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// The event before redaction, when redaction changed it (otherwise the redacted event is the
    /// same). Only the detector reads it: it is never stored, logged or answered, and whatever the
    /// detector derives from it is redacted before it is.
    pub raw: Option<Box<Event>>,
}

/// The sending half of the pipeline's intake queue.
pub type IntakeTx = tokio::sync::mpsc::Sender<Submission>;

/// What the pipeline made of one event, as `/v1/defend` answers it.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// The event's id.
    pub event_id: EventId,
    /// Detector score, 0–100.
    pub score: u8,
    /// Severity of that score.
    pub severity: Severity,
    /// Whether the score crossed the alert threshold.
    pub alerted: bool,
    /// The scenario recognised (`none` when nothing fired).
    pub scenario: String,
    /// Every signal that fired.
    pub reasons: Vec<Reason>,
    /// The alert raised, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<AlertId>,
    /// The investigation's risk, 0–100, if investigated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_score: Option<u8>,
    /// The investigation's confidence, if investigated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Where the investigation was unsure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uncertainty: Vec<String>,
    /// The mitigation plan, if an alert was raised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// The `/v1/defend` callers waiting on their event's outcome, by event id.
///
/// The detect stage files what detection found ([`Outcomes::wait`]); the decide stage completes it
/// with the investigation and plan and sends it ([`Outcomes::answer`]). Between them, only the event
/// id travels with the alert. Dropping the registry (the stages ended) drops every reply slot, so a
/// caller still waiting learns the pipeline is gone.
#[derive(Debug, Default)]
pub struct Outcomes {
    waiting: Mutex<HashMap<EventId, (oneshot::Sender<Outcome>, Outcome)>>,
}

impl Outcomes {
    /// Files `detected` (what the caller will be told about detection) under `event`.
    pub fn wait(&self, event: EventId, reply: oneshot::Sender<Outcome>, detected: Outcome) {
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(event, (reply, detected));
        }
        // A poisoned lock drops the slot: the caller is told the pipeline dropped the request.
    }

    /// Completes the outcome filed under `event` with `inv` and `plan`, and sends it. False when no
    /// caller waits (anymore) under that id.
    pub fn answer(&self, event: EventId, inv: &Investigation, plan: &Plan) -> bool {
        let entry = self.waiting.lock().ok().and_then(|mut w| w.remove(&event));
        let Some((tx, detected)) = entry else {
            return false;
        };
        tx.send(Outcome {
            risk_score: Some(inv.risk_score),
            confidence: Some(inv.confidence),
            uncertainty: inv.uncertainty.clone(),
            plan: Some(plan.clone()),
            ..detected
        })
        .is_ok()
    }

    /// Sends the outcome filed under `event` as detection left it (no investigation, no plan): for a
    /// sensor, whose alerts are investigated on another node. False when no caller waits.
    pub fn detected(&self, event: EventId) -> bool {
        let entry = self.waiting.lock().ok().and_then(|mut w| w.remove(&event));
        match entry {
            Some((tx, detected)) => tx.send(detected).is_ok(),
            None => false,
        }
    }

    /// How many callers wait.
    pub fn len(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Whether no caller waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn detected(event: EventId) -> Outcome {
        Outcome {
            trace_id: TraceId::new(),
            event_id: event,
            score: 90,
            severity: Severity::High,
            alerted: true,
            scenario: "web_attack".into(),
            reasons: Vec::new(),
            alert_id: Some(AlertId::new()),
            risk_score: None,
            confidence: None,
            uncertainty: Vec::new(),
            plan: None,
        }
    }

    /// A sensor answers a waiting caller with the detection alone, once; nobody waits after that.
    #[test]
    fn a_detection_alone_answers_a_waiting_caller_once() {
        let o = Outcomes::default();
        let event = EventId::new();
        let (tx, mut rx) = oneshot::channel();
        o.wait(event, tx, detected(event));
        assert_eq!(o.len(), 1);
        assert!(o.detected(event));
        let got = rx.try_recv().unwrap();
        assert_eq!(
            (got.event_id, got.alerted, got.plan.is_none()),
            (event, true, true)
        );
        assert!(o.is_empty());
        assert!(!o.detected(event));
    }
}
