//! A router over a real store in a tempdir, with the test playing the pipeline at the other end of the
//! intake queue. No sockets: requests go through `oneshot`.
#![allow(dead_code)] // Each test binary uses a different part of the harness.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use sentinel_api::auth::{Auth, Principal, Role};
use sentinel_api::{ApiSettings, AppState};
use sentinel_core::{Event, EventId, EventKind, Redactor, Severity, Timestamp, TraceId};
use sentinel_pipeline::intake::{Outcome, Submission};
use sentinel_pipeline::metrics::Metrics;
use sentinel_store::Store;
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// How to build the router under test.
pub struct Setup {
    pub intake_capacity: usize,
    pub bypass: bool,
    pub settings: ApiSettings,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            intake_capacity: 1024,
            bypass: false,
            settings: ApiSettings {
                max_body_bytes: 1024,
                defend_timeout: Duration::from_secs(5),
                intake_wait: Duration::from_millis(50),
                ..ApiSettings::default()
            },
        }
    }
}

/// The router, its state, the intake receiver and the keys registered with it.
pub struct Harness {
    pub app: Router,
    pub state: AppState,
    pub store: Store,
    pub rx: mpsc::Receiver<Submission>,
    pub admin_key: String,
    pub viewer_key: String,
    _dir: tempfile::TempDir,
}

pub async fn harness() -> Harness {
    harness_with(Setup::default()).await
}

pub async fn harness_with(setup: Setup) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    let (tx, rx) = mpsc::channel::<Submission>(setup.intake_capacity);
    let auth = Auth::new([7u8; 32], setup.bypass);
    let admin_key = Auth::generate_key();
    let viewer_key = Auth::generate_key();
    assert!(auth.insert(
        &auth.hash(&admin_key),
        Principal {
            key_id: "k-admin".into(),
            name: "admin".into(),
            role: Role::Admin,
        },
    ));
    assert!(auth.insert(
        &auth.hash(&viewer_key),
        Principal {
            key_id: "k-viewer".into(),
            name: "viewer".into(),
            role: Role::Viewer,
        },
    ));
    let state = AppState {
        store: store.clone(),
        intake: tx,
        auth: Arc::new(auth),
        metrics: Arc::new(Metrics::default()),
        ready: Arc::new(AtomicBool::new(false)),
        redactor: Arc::new(Redactor::default()),
        settings: setup.settings,
        audit: None,
        decisions: None,
        intel: None,
        notify: None,
        operator_audit: None,
        system: Default::default(),
        ui: Default::default(),
    };
    Harness {
        app: sentinel_api::router(state.clone()),
        state,
        store,
        rx,
        admin_key,
        viewer_key,
        _dir: dir,
    }
}

/// What the pipeline answers for an event: a plain, non-alerting outcome.
pub fn outcome_for(ev: &Event) -> Outcome {
    Outcome {
        trace_id: ev.trace_id.clone(),
        event_id: ev.id,
        score: 10,
        severity: Severity::from_score(10),
        alerted: false,
        scenario: "none".into(),
        reasons: vec![],
        alert_id: None,
        risk_score: None,
        confidence: None,
        uncertainty: vec![],
        plan: None,
    }
}

/// Plays the pipeline's detect stage over the real store: answers every reply slot, stores every event
/// through a real [`StoreWriter`](sentinel_store::StoreWriter) with the submission's token (so the
/// route learns when it is committed), and forwards every event it received.
pub fn spawn_pipeline(
    mut rx: mpsc::Receiver<Submission>,
    store: &Store,
) -> mpsc::UnboundedReceiver<Event> {
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let (writer, _task) = store.writer(sentinel_store::WriterOptions::default());
    tokio::spawn(async move {
        while let Some(sub) = rx.recv().await {
            if let Some(reply) = sub.reply {
                let _ = reply.send(outcome_for(&sub.event));
            }
            let record = sentinel_store::Record::Event(sub.event.clone());
            let queued = match sub.ack {
                Some(t) => writer.write_acked(record, t).await,
                None => writer.write(record).await,
            };
            if queued.is_err() || seen_tx.send(sub.event).is_err() {
                break;
            }
        }
    });
    seen_rx
}

/// Every event received so far (the route answered, so all of them were handed over).
pub fn received(seen: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(ev) = seen.try_recv() {
        out.push(ev);
    }
    out
}

/// The events stored under `trace`, oldest first.
pub async fn stored(store: &Store, trace: &str) -> Vec<Event> {
    let page = store
        .list_events(&sentinel_store::EventFilter {
            trace_id: Some(trace.to_owned()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut items = page.items;
    items.reverse();
    items
}

/// Every submission waiting in the queue right now.
pub fn drain(rx: &mut mpsc::Receiver<Submission>) -> Vec<Submission> {
    let mut out = Vec::new();
    while let Ok(s) = rx.try_recv() {
        out.push(s);
    }
    out
}

/// A minimal event, for filling the queue.
pub fn filler_event() -> Event {
    Event {
        id: EventId::new(),
        kind: EventKind::telemetry(),
        ts: Timestamp::now(),
        source: "test".into(),
        src_ip: None,
        target: None,
        attrs: Default::default(),
        trace_id: TraceId::new(),
    }
}

/// An answered request.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.message` of an error body (and checks `error.code`).
    pub fn error(&self, code: &str) -> String {
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{v}");
        v["error"]["message"].as_str().unwrap().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(path: &str, key: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(k) = key {
        b = b.header("x-api-key", k);
    }
    b.body(Body::empty()).unwrap()
}

pub fn post(path: &str, key: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

pub fn post_json(path: &str, key: &str, body: impl Into<Body>) -> Request<Body> {
    post(path, key, "application/json", body)
}

/// A store in a new tempdir and a recorder over it as the daemon wires it: records through a writer
/// of the store, audit entries into a real audit log under the tempdir (named `origin`), indexed in
/// the store. Returns the tempdir (keep it), the store, the metrics the recorder counts in, and the
/// recorder.
pub async fn audited_store(
    origin: &str,
) -> (
    tempfile::TempDir,
    Store,
    Arc<Metrics>,
    sentinel_pipeline::recorder::Recorder,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _task) = store.writer(sentinel_store::WriterOptions::default());
    let (log, _log_task) = sentinel_audit::Log::open(sentinel_audit::AuditSettings::new(
        dir.path().join("audit"),
        origin,
    ))
    .await
    .unwrap();
    let (audit, _index) =
        sentinel_pipeline::recorder::LogAudit::start(log, writer.clone(), metrics.clone());
    let recorder = sentinel_pipeline::recorder::Recorder::new(
        writer,
        Arc::new(audit),
        Arc::new(Redactor::default()),
        metrics.clone(),
    );
    (dir, store, metrics, recorder)
}
