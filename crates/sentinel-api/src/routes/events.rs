//! Event intake: `POST /v1/events` (a JSON array) and `POST /v1/events/stream` (NDJSON, streamed with
//! bounded buffering). Good items are kept and bad ones reported by index or line number; a full
//! pipeline queue answers 429 with `Retry-After` and says how many items were already accepted.
//!
//! Accepted means stored: every item goes to the pipeline with a token of the request's [`AckGroup`],
//! and the answer (the 429 partial one and the stream's too) waits until each of them is committed or
//! failed. `accepted` counts only committed items; an item the store could not write is rejected with
//! its index or line. If the store does not confirm within the defend timeout, the answer is a 503
//! that says how many items are stored, failed and unconfirmed (never a 2xx).

use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type};
use crate::limits::StreamLimits;
use crate::state::AppState;
use crate::telemetry::{to_event, Posted};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use sentinel_core::TraceId;
use sentinel_pipeline::intake::Submission;
use sentinel_store::{AckGroup, AckToken};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};

/// At most this many item errors are listed in one answer (all are counted).
const MAX_LISTED_ERRORS: usize = 1000;

#[derive(Debug, Default, Serialize)]
struct ItemError {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    error: String,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    trace_id: String,
    accepted: usize,
    rejected: usize,
    errors: Vec<ItemError>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    errors_truncated: bool,
    /// Why the server ended an NDJSON stream before its end (e.g. it sent too slowly).
    #[serde(skip_serializing_if = "Option::is_none")]
    closed: Option<String>,
}

impl Report {
    fn reject(&mut self, e: ItemError) {
        self.rejected += 1;
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(e);
        } else {
            self.errors_truncated = true;
        }
    }
}

enum Refused {
    Busy,
    /// The intake is closed: why (this node takes no events, or it is shutting down).
    Closed(String),
    /// Sentinel began to stop during an NDJSON stream: the lines after the last one read were not.
    Stopping {
        last_read: usize,
    },
}

/// How often a stream waiting for its next chunk checks whether Sentinel is stopping.
const STOP_CHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// What waiting for a stream's next chunk gave.
enum Next {
    Chunk(Result<axum::body::Bytes, axum::Error>),
    End,
    /// Fewer than the minimum bytes arrived in the last window: `got` of them.
    Stalled {
        got: u64,
    },
    Stopping,
}

/// A stream's body rate: the bytes it sent in the window now running.
struct Rate {
    window_start: tokio::time::Instant,
    bytes: u64,
}

/// The stream's next chunk, unless it sends less than the minimum body rate (fewer than
/// `limits.min_bytes` in a `limits.window`: one byte every few seconds holds a slot as surely as
/// silence) or Sentinel begins to stop (then the stream is answered with what it sent so far, instead
/// of being cut without an answer). Stopping is readiness lost while the stream runs (`was_ready`:
/// ready when it began).
async fn next_chunk(
    s: &AppState,
    limits: &StreamLimits,
    rate: &mut Rate,
    was_ready: bool,
    stream: &mut axum::body::BodyDataStream,
) -> Next {
    loop {
        if was_ready && !s.ready.load(std::sync::atomic::Ordering::Acquire) {
            return Next::Stopping;
        }
        let window_end = rate.window_start + limits.window;
        if tokio::time::Instant::now() >= window_end {
            if rate.bytes < limits.min_bytes {
                return Next::Stalled { got: rate.bytes };
            }
            *rate = Rate {
                window_start: tokio::time::Instant::now(),
                bytes: 0,
            };
            continue;
        }
        tokio::select! {
            c = stream.next() => return match c {
                Some(Ok(c)) => {
                    rate.bytes += c.len() as u64;
                    Next::Chunk(Ok(c))
                }
                Some(Err(e)) => Next::Chunk(Err(e)),
                None => Next::End,
            },
            _ = tokio::time::sleep_until(window_end) => {}
            _ = tokio::time::sleep(STOP_CHECK) => {}
        }
    }
}

/// How a request's items are numbered in its report.
#[derive(Clone, Copy)]
enum Numbering {
    /// By index in a JSON array (from 0).
    Index,
    /// By line in an NDJSON stream (from 1).
    Line,
}

/// A submission that was not queued: its token is withdrawn (the client is told by the refusal).
fn withdraw(sub: Submission) {
    if let Some(t) = sub.ack {
        t.withdraw();
    }
}

/// Hands one event to the pipeline with its token, waiting a bounded time for room.
async fn submit(s: &AppState, posted: Posted, ack: AckToken) -> Result<(), Refused> {
    // Marked as telemetry: scored by the heuristic whatever `source` the caller set.
    let sub = Submission::telemetry(posted.event, posted.raw, None, Some(ack));
    let sub = match s.intake.try_send(sub) {
        Ok(()) => {
            s.metrics.events_accepted.inc();
            return Ok(());
        }
        Err(TrySendError::Closed(sub)) => {
            withdraw(sub);
            return Err(Refused::Closed(
                s.settings
                    .intake_closed("; resend the items after the accepted ones"),
            ));
        }
        Err(TrySendError::Full(sub)) => sub,
    };
    match s.intake.send_timeout(sub, s.settings.intake_wait).await {
        Ok(()) => {
            s.metrics.events_accepted.inc();
            Ok(())
        }
        Err(SendTimeoutError::Timeout(sub)) => {
            withdraw(sub);
            s.metrics.events_rejected_busy.inc();
            Err(Refused::Busy)
        }
        Err(SendTimeoutError::Closed(sub)) => {
            withdraw(sub);
            Err(Refused::Closed(s.settings.intake_closed(
                "; resend the items after the accepted ones",
            )))
        }
    }
}

/// Waits until every item handed to the pipeline is committed or failed, then answers: `accepted`
/// is what was committed, and each item the store could not write is rejected with its number.
async fn answer(
    s: &AppState,
    group: &AckGroup,
    mut report: Report,
    refused: Option<Refused>,
    numbering: Numbering,
) -> Response {
    let wait = s.settings.defend_timeout;
    let summary = match tokio::time::timeout(wait, group.settled()).await {
        Ok(summary) => summary,
        Err(_) => {
            let now = group.summary();
            s.metrics.events_store_unconfirmed.add(now.outstanding);
            tracing::warn!(
                evt = "store_unconfirmed",
                trace = %report.trace_id,
                committed = now.committed,
                failed = now.failed,
                unconfirmed = now.outstanding,
            );
            return ApiError::Unavailable(format!(
                "the store did not confirm every item within {wait:?}: {} stored, {} not stored, \
                 {} unconfirmed (they may or may not be kept); {} malformed; resend what is not \
                 confirmed",
                now.committed, now.failed, now.outstanding, report.rejected
            ))
            .into_response();
        }
    };
    report.accepted = usize::try_from(summary.committed).unwrap_or(usize::MAX);
    if summary.failed > 0 {
        s.metrics.events_not_stored.add(summary.failed);
        let failures = group.failures();
        tracing::error!(
            evt = "events_not_stored",
            trace = %report.trace_id,
            count = summary.failed,
            first = failures.first().map(|f| f.error.as_str()).unwrap_or(""),
        );
        let listed = failures.len() as u64;
        for f in failures {
            let n = usize::try_from(f.item).unwrap_or(usize::MAX);
            report.reject(ItemError {
                index: matches!(numbering, Numbering::Index).then_some(n),
                line: matches!(numbering, Numbering::Line).then_some(n),
                error: format!("not stored: {}", f.error),
            });
        }
        let unlisted = usize::try_from(summary.failed - listed).unwrap_or(usize::MAX);
        if unlisted > 0 {
            report.rejected += unlisted;
            report.errors_truncated = true;
        }
        report
            .errors
            .sort_by_key(|e| (e.index.unwrap_or(0), e.line.unwrap_or(0)));
    }
    finish(report, refused)
}

fn finish(report: Report, refused: Option<Refused>) -> Response {
    match refused {
        None => (StatusCode::OK, Json(report)).into_response(),
        Some(Refused::Busy) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({
                    "error": {"code": "busy", "message": "the pipeline is busy; resend the items after the accepted ones"},
                    "report": report,
                })),
            )
                .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            r
        }
        Some(Refused::Closed(why)) => unavailable(why, report),
        Some(Refused::Stopping { last_read }) => unavailable(
            format!(
                "Sentinel is stopping: lines after line {last_read} were not read; resend them \
                 (and any listed as not stored)"
            ),
            report,
        ),
    }
}

/// A `503` that still says what was stored: the items before the refusal may have been accepted.
fn unavailable(message: String, report: Report) -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "error": {"code": "unavailable", "message": message},
            "report": report,
        })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    r
}

/// `POST /v1/events`: a JSON array of telemetry objects.
#[utoipa::path(post, path = "/v1/events", tag = "intake",
    request_body(content = Vec<super::openapi::Telemetry>, content_type = "application/json"),
    responses(
        (status = 200, description = "What was stored and what was refused, by index. Role: operator.", body = super::openapi::IntakeReport),
        (status = 429, description = "Busy: what was stored before; resend the rest after `Retry-After`.", body = super::openapi::IntakeRefusal),
        (status = 503, description = "Stopping or unconfirmed: what was stored before.", body = super::openapi::IntakeRefusal),
    ))]
pub(crate) async fn post_batch(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_content_type(&headers, &["application/json"], "application/json")?;
    let bytes = read_limited(&headers, body, s.settings.max_body_bytes).await?;
    let items = match parse_json_value(&bytes).map_err(ApiError::BadRequest)? {
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::BadRequest(
                "expected a JSON array of events".into(),
            ))
        }
    };
    let mut report = Report {
        trace_id: trace.to_string(),
        ..Default::default()
    };
    let group = AckGroup::new();
    for (i, item) in items.into_iter().enumerate() {
        match to_event(item, &trace, &s.redactor, false, &format!("[{i}]")) {
            Ok(posted) => {
                s.metrics.secrets_redacted.add(posted.masked as u64);
                if let Err(r) = submit(&s, posted, group.token(i as u64)).await {
                    return Ok(answer(&s, &group, report, Some(r), Numbering::Index).await);
                }
            }
            Err(e) => {
                s.metrics.events_invalid.inc();
                report.reject(ItemError {
                    index: Some(i),
                    error: e.0,
                    ..Default::default()
                });
            }
        }
    }
    Ok(answer(&s, &group, report, None, Numbering::Index).await)
}

/// `POST /v1/events/stream`: NDJSON, one telemetry object per line, read as it arrives.
#[utoipa::path(post, path = "/v1/events/stream", tag = "intake",
    request_body(content = String, content_type = "application/x-ndjson", description = "One telemetry object per line."),
    responses(
        (status = 200, description = "What was stored and what was refused, by line. Role: operator.", body = super::openapi::IntakeReport),
        (status = 429, description = "Busy: what was stored before; resend the rest after `Retry-After`.", body = super::openapi::IntakeRefusal),
        (status = 503, description = "Stopping or unconfirmed: what was stored before.", body = super::openapi::IntakeRefusal),
    ))]
pub(crate) async fn post_stream(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Extension(limits): Extension<StreamLimits>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_content_type(
        &headers,
        &[
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/x-jsonlines",
        ],
        "application/x-ndjson",
    )?;
    let max_line = s.settings.max_body_bytes;
    let mut report = Report {
        trace_id: trace.to_string(),
        ..Default::default()
    };
    let group = AckGroup::new();
    let mut stream = body.into_data_stream();
    let mut rate = Rate {
        window_start: tokio::time::Instant::now(),
        bytes: 0,
    };
    let was_ready = s.ready.load(std::sync::atomic::Ordering::Acquire);
    let mut buf: Vec<u8> = Vec::new();
    let mut line_no = 0usize;
    let mut skipping = false; // inside an over-long line, discarding until its end
    let handle = |s: &AppState, line: &[u8], no: usize, report: &mut Report| -> Option<Posted> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let parsed = parse_json_value(line)
            .and_then(|v| to_event(v, &trace, &s.redactor, false, "").map_err(|e| e.0));
        match parsed {
            Ok(posted) => {
                s.metrics.secrets_redacted.add(posted.masked as u64);
                Some(posted)
            }
            Err(e) => {
                s.metrics.events_invalid.inc();
                report.reject(ItemError {
                    line: Some(no),
                    error: e,
                    ..Default::default()
                });
                None
            }
        }
    };
    loop {
        // A stream that goes quiet does not hold its connection (and its in-flight slot) forever.
        let chunk = match next_chunk(&s, &limits, &mut rate, was_ready, &mut stream).await {
            Next::Chunk(Ok(c)) => c,
            Next::Chunk(Err(e)) => {
                // The lines before were handed over and may be stored: the client is told which.
                report.reject(ItemError {
                    line: Some(line_no + 1),
                    error: format!(
                        "could not read the body: {e}; the stream was closed; the lines before were kept"
                    ),
                    ..Default::default()
                });
                return Ok(answer(&s, &group, report, None, Numbering::Line).await);
            }
            Next::End => break,
            Next::Stopping => {
                let refused = Refused::Stopping { last_read: line_no };
                return Ok(answer(&s, &group, report, Some(refused), Numbering::Line).await);
            }
            Next::Stalled { got } => {
                // What it sent before is kept (and answered for); the rest is not read.
                limits.stalled.inc();
                let why = format!(
                    "stalled: {got} bytes in the last {}s, below the minimum of {} bytes per {}s; \
                     the stream was closed after line {line_no}; the lines before were kept",
                    limits.window.as_secs_f64(),
                    limits.min_bytes,
                    limits.window.as_secs_f64(),
                );
                tracing::warn!(
                    evt = "stream_stalled",
                    trace = %report.trace_id,
                    got,
                    min_bytes = limits.min_bytes,
                    window_ms = limits.window.as_millis() as u64,
                    lines_read = line_no,
                );
                report.reject(ItemError {
                    line: Some(line_no + 1),
                    error: why.clone(),
                    ..Default::default()
                });
                report.closed = Some(why);
                return Ok(answer(&s, &group, report, None, Numbering::Line).await);
            }
        };
        let mut rest: &[u8] = &chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            rest = &tail[1..];
            line_no += 1;
            if skipping {
                skipping = false;
                buf.clear();
                continue;
            }
            // A line that arrived whole, or whose end arrived, is checked here too: the check below
            // only sees the unfinished tail of a chunk.
            if buf.len() + head.len() > max_line {
                s.metrics.events_invalid.inc();
                report.reject(ItemError {
                    line: Some(line_no),
                    error: format!("line longer than {max_line} bytes"),
                    ..Default::default()
                });
                buf.clear();
                continue;
            }
            let ev = if buf.is_empty() {
                handle(&s, head, line_no, &mut report)
            } else {
                buf.extend_from_slice(head);
                let line = std::mem::take(&mut buf);
                handle(&s, &line, line_no, &mut report)
            };
            if let Some(ev) = ev {
                if let Err(r) = submit(&s, ev, group.token(line_no as u64)).await {
                    return Ok(answer(&s, &group, report, Some(r), Numbering::Line).await);
                }
            }
        }
        if !skipping {
            buf.extend_from_slice(rest);
            if buf.len() > max_line {
                s.metrics.events_invalid.inc();
                report.reject(ItemError {
                    line: Some(line_no + 1),
                    error: format!("line longer than {max_line} bytes"),
                    ..Default::default()
                });
                skipping = true;
                buf.clear();
            }
        }
    }
    if !buf.is_empty() && !skipping {
        line_no += 1;
        if let Some(ev) = handle(&s, &buf, line_no, &mut report) {
            if let Err(r) = submit(&s, ev, group.token(line_no as u64)).await {
                return Ok(answer(&s, &group, report, Some(r), Numbering::Line).await);
            }
        }
    }
    Ok(answer(&s, &group, report, None, Numbering::Line).await)
}
