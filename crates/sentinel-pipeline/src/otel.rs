//! OpenTelemetry export of each trace: the HTTP request as the root span, then one span per pipeline
//! stage (detect, investigate, decide, act, notify), posted to a collector over OTLP/HTTP as
//! protobuf `ExportTraceServiceRequest`s. Off unless `tracing.otlp_endpoint` names a collector.
//!
//! The OTel trace id IS the Sentinel trace id: a ULID is 128 bits, exactly an OTel trace id, so its
//! bytes are used as they are and `X-Trace-Id` finds the trace in any OTel backend. A caller's own
//! trace id that is not a ULID is mapped to the first 16 bytes of its SHA-256 ([`trace_id_bytes`]).
//!
//! No context travels with the work: every record already carries its trace id, and the root span's
//! id is derived from the trace id ([`root_span_id`]), so each stage names its parent without being
//! told. Sampling is decided by the trace id too, so every span of a trace agrees.
//!
//! Export never slows the pipeline nor grows it: a finished span goes into a bounded queue with
//! `try_send`; when the queue is full (a slow or absent collector) the span is dropped and counted
//! (`sentinel_otel_spans_dropped_total`), and one exporter task posts batches with a timeout. A failed
//! post drops its batch (counted in both `sentinel_otel_export_failures_total` and the dropped spans)
//! rather than retrying: a trace is diagnostics, not a record.

use crate::metrics::Metrics;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use sentinel_config::TracingConfig;
use sentinel_core::TraceId;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The most spans in one export request.
const BATCH: usize = 512;
/// How long a span may wait for its batch to fill before the batch is sent anyway.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How long one export request may take (connection included).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP exporter of one daemon, with its counters. Disabled (every span a no-op) until
/// [`Otel::start`] is given a collector.
#[derive(Debug, Default)]
pub struct Otel {
    exporting: OnceLock<Arc<Exporting>>,
    /// Spans handed to the collector (its answer was a 2xx).
    pub spans_exported: Counter,
    /// Spans dropped: the export queue was full, or their export failed.
    pub spans_dropped: Counter,
    /// Export requests that failed (no answer, a timeout, or a non-2xx status).
    pub export_failures: Counter,
}

#[derive(Debug)]
struct Exporting {
    tx: mpsc::Sender<Span>,
    /// A trace is exported when the first 8 bytes of its id, as a number, are below this (sample 1.0:
    /// every trace).
    sample_below: u64,
    all: bool,
}

impl Otel {
    /// Registers the counters (`sentinel_otel_*_total`), at zero whether export is on or off.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "sentinel_otel_spans_exported",
            "Trace spans accepted by the OTLP collector.",
            self.spans_exported.clone(),
        );
        registry.register(
            "sentinel_otel_spans_dropped",
            "Trace spans dropped: the export queue was full (a slow or absent collector) or their export failed.",
            self.spans_dropped.clone(),
        );
        registry.register(
            "sentinel_otel_export_failures",
            "OTLP export requests that failed (no answer, timeout, or a non-2xx status).",
            self.export_failures.clone(),
        );
    }

    /// Starts exporting to `cfg.otlp_endpoint` (nothing when it is `None`): spawns the exporter
    /// task, so it must be called within a tokio runtime. A second call changes nothing.
    pub fn start(&self, cfg: &TracingConfig) -> anyhow::Result<()> {
        let Some(endpoint) = cfg.otlp_endpoint.as_deref() else {
            return Ok(());
        };
        if self.exporting.get().is_some() {
            return Ok(());
        }
        let url = traces_url(endpoint);
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .connect_timeout(EXPORT_TIMEOUT)
            .build()?;
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let sample = cfg.sample.clamp(0.0, 1.0);
        let exporting = Arc::new(Exporting {
            tx,
            // The comparison is on the trace id's first 8 bytes (`u64::MAX as f64` rounds up to 2^64,
            // which the cast saturates back to `u64::MAX`).
            sample_below: (sample * u64::MAX as f64) as u64,
            all: sample >= 1.0,
        });
        if self.exporting.set(exporting).is_err() {
            return Ok(());
        }
        let task = Task {
            client,
            shown: shown(&url),
            url,
            resource: Resource {
                attributes: vec![
                    kv("service.name", &cfg.service_name),
                    kv("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Default::default()
            },
            exported: self.spans_exported.clone(),
            dropped: self.spans_dropped.clone(),
            failures: self.export_failures.clone(),
        };
        tracing::info!(
            evt = "otel_export_on",
            url = %task.shown,
            service = %cfg.service_name,
            sample,
            queue = cfg.queue,
        );
        tokio::spawn(task.run(rx));
        Ok(())
    }

    /// Whether spans of this trace are exported (export is on and the trace is sampled).
    fn sampled(&self, trace: &[u8; 16]) -> Option<&Exporting> {
        let e = self.exporting.get()?;
        let head = u64::from_be_bytes(trace[..8].try_into().ok()?);
        (e.all || head < e.sample_below).then_some(&**e)
    }

    /// The root span of an HTTP request (`SERVER` kind, the id [`root_span_id`] gives); set its
    /// status with [`SpanGuard::attr_int`] before it ends.
    pub fn request_span(&self, trace: &TraceId, method: &str, path: &str) -> SpanGuard<'_> {
        let id = trace_id_bytes(trace);
        let mut g = self.guard(id, format!("{method} {path}"), SpanKind::Server, None);
        if let Some(span) = &mut g.span {
            span.span_id = root_span_id(&id).to_vec();
            span.attributes.push(kv("http.request.method", method));
            span.attributes.push(kv("url.path", path));
            span.attributes
                .push(kv("sentinel.trace_id", trace.as_str()));
        }
        g
    }

    /// A pipeline stage's span under the trace's root span; it ends when the guard is dropped.
    pub fn stage_span(&self, trace: &TraceId, stage: &'static str) -> SpanGuard<'_> {
        let id = trace_id_bytes(trace);
        let mut g = self.guard(
            id,
            stage.to_owned(),
            SpanKind::Internal,
            Some(root_span_id(&id)),
        );
        if let Some(span) = &mut g.span {
            span.attributes.push(kv("sentinel.stage", stage));
        }
        g
    }

    fn guard(
        &self,
        trace: [u8; 16],
        name: String,
        kind: SpanKind,
        parent: Option<[u8; 8]>,
    ) -> SpanGuard<'_> {
        let Some(e) = self.sampled(&trace) else {
            return SpanGuard {
                span: None,
                exporting: None,
                dropped: &self.spans_dropped,
            };
        };
        let span = Span {
            trace_id: trace.to_vec(),
            span_id: new_span_id().to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name,
            kind: kind as i32,
            start_time_unix_nano: now_nanos(),
            ..Default::default()
        };
        SpanGuard {
            span: Some(span),
            exporting: Some(e),
            dropped: &self.spans_dropped,
        }
    }
}

/// A span in progress; it ends, and is queued for export, when dropped. A no-op when export is off
/// or the trace is not sampled.
#[must_use = "the span ends when this is dropped"]
pub struct SpanGuard<'a> {
    span: Option<Span>,
    exporting: Option<&'a Exporting>,
    dropped: &'a Counter,
}

impl SpanGuard<'_> {
    /// Adds a text attribute.
    pub fn attr(&mut self, key: &str, value: &str) {
        if let Some(s) = &mut self.span {
            s.attributes.push(kv(key, value));
        }
    }

    /// Adds an integer attribute.
    pub fn attr_int(&mut self, key: &str, value: i64) {
        if let Some(s) = &mut self.span {
            s.attributes.push(KeyValue {
                key: key.to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(value)),
                }),
                ..Default::default()
            });
        }
    }
}

impl Drop for SpanGuard<'_> {
    fn drop(&mut self) {
        let (Some(mut span), Some(e)) = (self.span.take(), self.exporting) else {
            return;
        };
        span.end_time_unix_nano = now_nanos().max(span.start_time_unix_nano);
        // Never waits: a full queue (a slow or absent collector) drops the span, counted.
        if e.tx.try_send(span).is_err() {
            self.dropped.inc();
        }
    }
}

/// The OTel trace id of a Sentinel trace id: a ULID's own 128 bits (big-endian, as the ULID's text
/// orders them), else the first 16 bytes of the text's SHA-256.
pub fn trace_id_bytes(trace: &TraceId) -> [u8; 16] {
    if let Ok(u) = ulid::Ulid::from_string(trace.as_str()) {
        if u.0 != 0 {
            return u.0.to_be_bytes();
        }
    }
    let digest = Sha256::digest(trace.as_str().as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The span id of a trace's root span (the HTTP request), derived from the trace id so the stages
/// can name it as their parent without carrying it (never all zeroes, which OTel calls invalid).
pub fn root_span_id(trace: &[u8; 16]) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(b"sentinel-root-span")
        .chain_update(trace)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    if out == [0; 8] {
        out[7] = 1;
    }
    out
}

/// A random span id (the random low 64 bits of a new ULID; never all zeroes).
fn new_span_id() -> [u8; 8] {
    let low = (ulid::Ulid::new().0 as u64).max(1);
    low.to_be_bytes()
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// The traces URL of an OTLP/HTTP endpoint: `/v1/traces` appended to the base URL unless the path
/// already ends with it (the OTel SDKs' rule for `OTEL_EXPORTER_OTLP_ENDPOINT`).
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The URL as logged: credentials before an `@` (basic auth to the collector) masked.
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[end..]),
        None => url.to_owned(),
    }
}

/// The exporter task: batches spans and posts them.
struct Task {
    client: reqwest::Client,
    url: String,
    /// `url` as logged.
    shown: String,
    resource: Resource,
    exported: Counter,
    dropped: Counter,
    failures: Counter,
}

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Span>) {
        let mut batch: Vec<Span> = Vec::with_capacity(BATCH);
        // Failures are logged when they start and when they end, not once per post (an absent
        // collector would otherwise write a line every half second); the counter moves each time.
        let mut failing = false;
        loop {
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
            // Let the batch fill for a moment: one request per burst, not per span.
            let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
            while batch.len() < BATCH {
                let room = BATCH - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let n = batch.len() as u64;
            match self.post(std::mem::take(&mut batch)).await {
                Ok(()) => {
                    self.exported.inc_by(n);
                    if failing {
                        failing = false;
                        tracing::info!(evt = "otel_export_recovered", url = %self.shown);
                    }
                }
                Err(e) => {
                    self.failures.inc();
                    self.dropped.inc_by(n);
                    if !failing {
                        failing = true;
                        tracing::warn!(evt = "otel_export_failed", url = %self.shown, spans = n, error = %e);
                    }
                }
            }
        }
    }

    async fn post(&self, spans: Vec<Span>) -> Result<(), String> {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "sentinel".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            // Without the URL: it may hold credentials.
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        // The body is read (and dropped) so the connection can be reused.
        let _ = resp.bytes().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the collector answered {status}"))
        }
    }
}

/// Starts the export the configuration asks for on the daemon's metrics (the one call the daemon
/// makes); logs and carries on without export when it cannot start.
pub fn start(metrics: &Metrics, cfg: &TracingConfig) {
    if let Err(e) = metrics.otel.start(cfg) {
        tracing::error!(evt = "otel_export_not_started", error = %e);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_ulid_trace_id_is_its_own_bytes() {
        let u = ulid::Ulid::new();
        let t = TraceId::parse(&u.to_string()).unwrap();
        assert_eq!(trace_id_bytes(&t), u.0.to_be_bytes());
        let other = TraceId::parse("my-own-trace-7").unwrap();
        assert_ne!(trace_id_bytes(&other), [0; 16]);
        assert_eq!(trace_id_bytes(&other), trace_id_bytes(&other));
    }

    #[test]
    fn the_traces_url_is_appended_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/v1/traces/"),
            "http://127.0.0.1:4318/v1/traces"
        );
    }

    #[test]
    fn credentials_in_the_url_are_not_logged() {
        assert_eq!(
            shown("https://u:p@collector.example:4318/v1/traces"),
            "https://***@collector.example:4318/v1/traces"
        );
        assert_eq!(
            shown("http://127.0.0.1:4318/v1/traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
    }

    #[test]
    fn spans_are_no_ops_while_export_is_off() {
        let o = Otel::default();
        let t = TraceId::new();
        drop(o.stage_span(&t, "detect"));
        assert_eq!(o.spans_dropped.get(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let o = Otel::default();
        // A collector that is never there: the reserved TEST-NET-1 address, never reached because
        // the queue of one fills before the exporter's batch wait ends.
        o.start(&TracingConfig {
            otlp_endpoint: Some("http://192.0.2.1:9".into()),
            service_name: "sentinel".into(),
            sample: 1.0,
            queue: 1,
        })
        .unwrap();
        let t = TraceId::new();
        for _ in 0..50 {
            drop(o.stage_span(&t, "detect"));
        }
        assert!(o.spans_dropped.get() >= 48, "{}", o.spans_dropped.get());
    }
}
