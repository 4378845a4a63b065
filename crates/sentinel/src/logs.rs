//! Structured logs: one JSON object per line with `ts`, `svc`, `lvl`, `evt`, `trace` and the event's
//! fields. Everything passes the redactor first: values under secret-looking keys at any depth, and
//! credentials in any text (also inside fields that hold JSON).
//!
//! Every line also carries `chain`, always as its last member: a running SHA-256 hash chain
//! ([`sentinel_audit::chain`]) so a shipped log file can be checked with `sentinel audit verify-logs`
//! for removed, edited, inserted or reordered lines. Every `logging.chain_every` lines (and at a clean
//! shutdown, [`finish`]) a `log_chain_checkpoint` line seals the block; the seals are handed out through
//! [`take_seals`] for the daemon to anchor in the audit log (`AuditKind::LogChain`). Lines are hashed
//! and written under one lock, so they appear in chain order.

use sentinel_audit::chain::{seal_channel, BlockSeal, ChainWriter};
use sentinel_core::{Redactor, Timestamp};
use serde_json::{Map, Value};
use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Fields a span carries (its `trace` in particular), kept in the span's extensions.
struct SpanFields(Map<String, Value>);

struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let v = match value.trim_start().starts_with('{') {
            true => serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into())),
            false => Value::String(value.into()),
        };
        self.0.insert(field.name().to_owned(), v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

/// Seals waiting for the daemon (at most this many; more are counted in `seals_dropped`).
const SEAL_QUEUE: usize = 1024;

/// The output: the chain (None when `chain_every` is 0) and where lines go, behind the one lock that
/// orders lines.
struct Output {
    inner: Mutex<Inner>,
}

struct Inner {
    chain: Option<ChainWriter>,
    sink: Box<dyn Write + Send>,
}

impl Output {
    fn new(chain: Option<ChainWriter>, sink: Box<dyn Write + Send>) -> Self {
        Output {
            inner: Mutex::new(Inner { chain, sink }),
        }
    }

    /// Chains `text` (a JSON object without `chain`) and writes it, under the lock.
    fn write(&self, text: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = String::with_capacity(text.len() + 96);
        let chained = match inner.chain.as_mut() {
            Some(w) => w
                .append(text, &Timestamp::now().to_rfc3339(), &mut buf)
                .is_ok(),
            None => false,
        };
        if !chained {
            // Chain off (or, never for a serialised object, not an object): the line as it is.
            buf.clear();
            buf.push_str(text);
            buf.push('\n');
        }
        let _ = inner.sink.write_all(buf.as_bytes());
        let _ = inner.sink.flush();
    }

    fn seal(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = String::new();
        if let Some(w) = inner.chain.as_mut() {
            w.seal(&Timestamp::now().to_rfc3339(), true, &mut buf);
        }
        let _ = inner.sink.write_all(buf.as_bytes());
        let _ = inner.sink.flush();
    }
}

static OUTPUT: OnceLock<Arc<Output>> = OnceLock::new();
static SEALS: Mutex<Option<tokio::sync::mpsc::Receiver<BlockSeal>>> = Mutex::new(None);
static ERRORS: OnceLock<ErrorQueue> = OnceLock::new();

/// Error lines waiting for the daemon to turn them into notices (at most this many; more are counted).
const ERROR_QUEUE: usize = 256;

/// An error-level log line, as the notification routes receive it (kind `error`).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorLine {
    /// Its `evt` (the de-duplication key: one wave of the same error is one message with a count).
    pub evt: String,
    /// The trace it belongs to, if any.
    pub trace: Option<String>,
    /// The whole line as logged (redacted), for the notice's body.
    pub line: String,
}

/// The queue of error lines and what did not fit.
struct ErrorQueue {
    tx: tokio::sync::mpsc::Sender<ErrorLine>,
    rx: Mutex<Option<tokio::sync::mpsc::Receiver<ErrorLine>>>,
    dropped: std::sync::atomic::AtomicU64,
}

fn error_queue() -> &'static ErrorQueue {
    ERRORS.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::channel(ERROR_QUEUE);
        ErrorQueue {
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    })
}

/// The receiver of error-level lines (once; None afterwards). The daemon sends each through the
/// notification routes as a notice of kind `error`. Lines logged by the notification crate itself
/// are not queued (a failing channel must not notify about itself in a loop).
pub fn take_errors() -> Option<tokio::sync::mpsc::Receiver<ErrorLine>> {
    error_queue()
        .rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// Error lines that found the queue full (they are still in the log).
pub fn errors_dropped() -> u64 {
    error_queue()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Queues an error line for the notification routes; never blocks.
fn queue_error(line: &Value, text: &str) {
    let evt = match line.get("evt") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "error".to_owned(),
    };
    let trace = line.get("trace").and_then(Value::as_str).map(str::to_owned);
    let q = error_queue();
    if q.tx
        .try_send(ErrorLine {
            evt,
            trace,
            line: text.to_owned(),
        })
        .is_err()
    {
        q.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The receiver of the chain's block seals (once; None afterwards, or when the chain is off). The
/// daemon appends each as an `AuditKind::LogChain` audit record with `content_hash` = the seal (hex),
/// so the log file's blocks are anchored in the signed Merkle log. Until it is taken, seals wait in a
/// bounded queue; beyond it they are counted, and every checkpoint line says how many (`seals_dropped`).
pub fn take_seals() -> Option<tokio::sync::mpsc::Receiver<BlockSeal>> {
    SEALS.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Seals the chain's current block (`"final":true`) at a clean shutdown. Lines logged afterwards
/// start a new block.
pub fn finish() {
    if let Some(o) = OUTPUT.get() {
        o.seal();
    }
}

/// The JSON-lines layer.
pub struct JsonLines {
    redactor: Arc<Redactor>,
    max_level: Level,
    out: Arc<Output>,
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut m = Map::new();
        attrs.record(&mut Collect(&mut m));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(m));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > self.max_level {
            return;
        }
        let mut fields = Map::new();
        event.record(&mut Collect(&mut fields));
        let mut line = Map::new();
        line.insert("ts".into(), Timestamp::now().to_rfc3339().into());
        line.insert("svc".into(), "sentinel".into());
        line.insert(
            "lvl".into(),
            meta.level().as_str().to_ascii_lowercase().into(),
        );
        let evt = fields
            .remove("evt")
            .or_else(|| fields.get("message").cloned())
            .unwrap_or_else(|| meta.target().into());
        line.insert("evt".into(), evt);
        let mut trace = fields.remove("trace");
        if trace.is_none() {
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope {
                    if let Some(f) = span.extensions().get::<SpanFields>() {
                        if let Some(t) = f.0.get("trace") {
                            trace = Some(t.clone());
                            break;
                        }
                    }
                }
            }
        }
        line.insert("trace".into(), trace.unwrap_or(Value::Null));
        if let Some(msg) = fields.remove("message") {
            if line.get("evt") != Some(&msg) {
                line.insert("msg".into(), msg);
            }
        }
        // Keys at any depth, and free text in every string (messages, error strings, JSON inside them).
        self.redactor.redact_map(&mut fields);
        for key in ["msg", "evt"] {
            if let Some(v) = line.get_mut(key) {
                self.redactor.redact(v);
            }
        }
        // `chain` is added by the output, as the last member; a field of that name would collide.
        if let Some(v) = fields.remove("chain") {
            fields.insert("chain_field".into(), v);
        }
        line.extend(fields);
        let line = Value::Object(line);
        let text = line.to_string();
        if *meta.level() == Level::ERROR && !meta.target().starts_with("sentinel_notify") {
            queue_error(&line, &text);
        }
        self.out.write(&text);
    }
}

/// Installs the JSON-lines logger for the process, chaining lines in blocks of `chain_every` (0: no
/// chain). Safe to call twice (the second call does nothing).
pub fn init(level: &str, redactor: Arc<Redactor>, chain_every: u64) {
    let max_level = match level {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        _ => Level::INFO,
    };
    if OUTPUT.get().is_some() {
        return;
    }
    let chain = (chain_every > 0).then(|| {
        let (tx, rx) = seal_channel(SEAL_QUEUE);
        *SEALS.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
        ChainWriter::new(chain_every).with_seals(tx)
    });
    let out = OUTPUT
        .get_or_init(|| Arc::new(Output::new(chain, Box::new(std::io::stdout()))))
        .clone();
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(
            max_level,
        ))
        .with(JsonLines {
            redactor,
            max_level,
            out,
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Many threads logging at once through the real layer: the lines land in chain order (hash and
    /// write under one lock), so the file verifies; seals are handed out.
    #[test]
    fn concurrent_lines_are_written_in_chain_order() {
        let buf = Shared::default();
        let (tx, mut rx) = seal_channel(1024);
        let out = Arc::new(Output::new(
            Some(ChainWriter::new(7).with_seals(tx)),
            Box::new(buf.clone()),
        ));
        let layer = JsonLines {
            redactor: Arc::new(Redactor::new(std::iter::empty::<&str>())),
            max_level: Level::INFO,
            out: out.clone(),
        };
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        std::thread::scope(|s| {
            for t in 0..8 {
                let d = dispatch.clone();
                s.spawn(move || {
                    tracing::dispatcher::with_default(&d, || {
                        for i in 0..250 {
                            tracing::info!(
                                evt = "work",
                                thread = t,
                                i,
                                chain = "a field named chain"
                            );
                        }
                    });
                });
            }
        });
        out.seal();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let report = sentinel_audit::chain::verify_log(text.as_bytes()).unwrap();
        // 2000 lines in blocks of 7: 285 full blocks and a final one of 5.
        assert_eq!(report.chain_lines, 2000 + 286);
        assert_eq!(report.foreign_lines, 0);
        assert!(report.runs[0].clean_end);
        let mut seals = 0;
        while rx.try_recv().is_ok() {
            seals += 1;
        }
        assert_eq!(seals, 286);
        // A field named `chain` is kept under another name; `chain` is the last member.
        let first = text.lines().next().unwrap();
        assert!(
            first.contains("\"chain_field\":\"a field named chain\""),
            "{first}"
        );
        // Every line holds the one and only `"chain":` key at its end.
        for l in text.lines() {
            assert_eq!(l.matches("\"chain\":").count(), 1, "{l}");
        }
    }

    /// Error lines reach the notification queue with their `evt` and trace (secrets redacted);
    /// warnings do not, nor errors the notification crate logs about itself.
    #[test]
    fn error_lines_are_queued_for_notices() {
        let buf = Shared::default();
        let layer = JsonLines {
            redactor: Arc::new(Redactor::new(["password"])),
            max_level: Level::INFO,
            out: Arc::new(Output::new(None, Box::new(buf.clone()))),
        };
        let mut rx = take_errors().unwrap();
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::warn!(evt = "only_a_warning");
            tracing::error!(target: "sentinel_notify::deliver", evt = "notice_dead_letter");
            tracing::error!(
                evt = "stage_crashed",
                trace = "t-1",
                password = "hunter2",
                stage = "act"
            );
        });
        let got = rx.try_recv().unwrap();
        assert_eq!(got.evt, "stage_crashed");
        assert_eq!(got.trace.as_deref(), Some("t-1"));
        assert!(got.line.contains("\"stage\":\"act\""), "{}", got.line);
        assert!(!got.line.contains("hunter2"), "{}", got.line);
        assert!(rx.try_recv().is_err(), "only the one error line is queued");
        assert!(take_errors().is_none(), "the receiver is handed out once");
    }
}
