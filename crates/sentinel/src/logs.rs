//! Structured logs: one JSON object per line with `ts`, `svc`, `lvl`, `evt`, `trace` and the event's
//! fields. Everything passes the redactor first: values under secret-looking keys at any depth, and
//! credentials in any text (also inside fields that hold JSON).

use sentinel_core::{Redactor, Timestamp};
use serde_json::{Map, Value};
use std::fmt;
use std::io::Write;
use std::sync::Arc;
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

/// The JSON-lines layer.
pub struct JsonLines {
    redactor: Arc<Redactor>,
    max_level: Level,
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
        line.extend(fields);
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
    }
}

/// Installs the JSON-lines logger for the process. Safe to call twice (the second call does nothing).
pub fn init(level: &str, redactor: Arc<Redactor>) {
    let max_level = match level {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        _ => Level::INFO,
    };
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(
            max_level,
        ))
        .with(JsonLines {
            redactor,
            max_level,
        })
        .try_init();
}
