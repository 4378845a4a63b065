//! The service: each call authenticated and role-checked as its REST route is, then served through
//! the same store, intake queue and decisions desk.

use crate::convert::{self, status, unauthenticated};
use crate::proto;
use crate::proto::sentinel_server::Sentinel;
use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sentinel_api::auth::{Principal, Role};
use sentinel_api::decisions::{DecisionSelector, Decisions};
use sentinel_api::ratelimit::RateLimits;
use sentinel_api::{ApiError, ApiSettings, AppState};
use sentinel_core::{ActionRecord, Timestamp, TraceId};
use sentinel_pipeline::intake::Submission;
use sentinel_store::{AckGroup, ActionFilter, AlertFilter};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status, Streaming};

/// At most this many item errors are listed in an ingest report (all are counted), as REST.
const MAX_LISTED_ERRORS: usize = 1000;

/// Limits of the gRPC edge.
#[derive(Debug, Clone)]
pub struct GrpcSettings {
    /// Calls served at once (live streams excepted); more are refused with `RESOURCE_EXHAUSTED`.
    pub max_in_flight: usize,
    /// Live streams open at once; more are refused with `RESOURCE_EXHAUSTED`.
    pub max_streams: usize,
    /// How long a unary call may take before `UNAVAILABLE` (as REST's 503).
    pub request_timeout: Duration,
    /// How long ingest waits for room in a full pipeline queue.
    pub intake_wait: Duration,
    /// How long ingest waits for the store to confirm what it accepted.
    pub confirm_timeout: Duration,
    /// The longest message accepted (a telemetry object as large as REST's largest body, plus
    /// framing).
    pub max_message_bytes: usize,
    /// The longest telemetry object (REST's `max_body_bytes`).
    pub max_item_bytes: usize,
    /// How often a live stream looks for new records in the store.
    pub poll: Duration,
}

impl GrpcSettings {
    /// The same limits the REST edge applies.
    pub fn from_api(a: &ApiSettings) -> Self {
        Self {
            max_in_flight: a.max_in_flight.max(1),
            max_streams: 64,
            request_timeout: a.request_timeout,
            intake_wait: a.intake_wait,
            confirm_timeout: a.defend_timeout,
            max_message_bytes: a.max_body_bytes.saturating_add(1024),
            max_item_bytes: a.max_body_bytes,
            poll: Duration::from_millis(250),
        }
    }
}

/// The label of `sentinel_api_grpc_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The gRPC service over the REST router's state.
#[derive(Clone)]
pub struct GrpcService {
    state: AppState,
    settings: Arc<GrpcSettings>,
    in_flight: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    refused: Family<Reason, Counter>,
    skipped: Counter,
    /// The REST edge's rate limits (the same instance in the daemon: one budget per client address
    /// and per key, whichever API it uses).
    rate: Arc<RateLimits>,
}

impl GrpcService {
    /// A service over `state` with `settings` and the rate limits `rate` (give it the REST router's,
    /// see [`sentinel_api::router_with_limits`]); registers its metrics.
    pub fn new(state: AppState, settings: GrpcSettings, rate: Arc<RateLimits>) -> Self {
        let refused = Family::<Reason, Counter>::default();
        let r = refused.clone();
        state.metrics.register(|reg| {
            reg.register(
                "sentinel_api_grpc_refused",
                "gRPC calls refused, by reason (rate_limited, unauthenticated, permission_denied, busy, streams, timeout, idle).",
                r,
            )
        });
        let skipped = Counter::default();
        let k = skipped.clone();
        state.metrics.register(|reg| {
            reg.register(
                "sentinel_api_grpc_stream_skipped",
                "Live-stream polls that found more new alerts than one poll reads (the oldest were not streamed).",
                k,
            )
        });
        Self {
            rate,
            skipped,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            streams: Arc::new(Semaphore::new(settings.max_streams.max(1))),
            settings: Arc::new(settings),
            state,
            refused,
        }
    }

    fn refuse(&self, reason: &'static str, s: Status) -> Status {
        self.refused.get_or_create(&Reason { reason }).inc();
        tracing::warn!(evt = "grpc_refused", reason, code = ?s.code(), msg = %s.message());
        s
    }

    /// Applies the rate limits, authenticates the call as REST does (same keys, same counter of
    /// failures, one answer for a missing and a wrong key) and checks the role — in REST's order: the
    /// limit per client address before authentication (a flood of bad keys costs the flooder a
    /// refusal, not us a key check each), the limit per key after it, the role last.
    fn allow<T>(&self, req: &Request<T>, min: Role) -> Result<Principal, Status> {
        // `None` only for a transport without addresses (not the TCP server `serve` runs): exempt, as
        // a REST request over the Unix socket is.
        if let Some(peer) = req.remote_addr() {
            self.rate
                .check_ip(peer.ip())
                .map_err(|e| self.rate_limited(e))?;
        }
        let headers = req.metadata().clone().into_headers();
        let p = match self.state.auth.check(&headers) {
            Ok(p) => p,
            Err(_) => {
                self.state.metrics.auth_failures.inc();
                return Err(self.refuse("unauthenticated", unauthenticated()));
            }
        };
        self.rate
            .check_key(&p.key_id)
            .map_err(|e| self.rate_limited(e))?;
        if p.role < min {
            return Err(self.refuse("permission_denied", Status::permission_denied("forbidden")));
        }
        Ok(p)
    }

    /// A rate limit's refusal as gRPC says it: `RESOURCE_EXHAUSTED` with the whole seconds to wait in
    /// the message and in `retry-after` metadata (REST's header). Counted twice over, as every REST
    /// 429 is: in `sentinel_api_rate_limited_total{by}` (by the limits, shared with REST) and here in
    /// `sentinel_api_grpc_refused_total{reason="rate_limited"}`; logged by the limits at debug level
    /// (a flood must not become a flood of log lines).
    fn rate_limited(&self, e: ApiError) -> Status {
        self.refused
            .get_or_create(&Reason {
                reason: "rate_limited",
            })
            .inc();
        let secs = match e {
            ApiError::TooManyRequests { retry_after } => retry_after,
            _ => 1,
        };
        let mut s = Status::resource_exhausted(format!("rate limited; retry after {secs}s"));
        s.metadata_mut().insert("retry-after", secs.into());
        s
    }

    /// A slot of the in-flight cap, or a refusal at once (never a queue).
    fn slot(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            self.refuse(
                "busy",
                Status::resource_exhausted("too many requests in flight"),
            )
        })
    }

    /// Runs a unary call within the request timeout.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let limit = self.settings.request_timeout;
        match tokio::time::timeout(limit, f).await {
            Ok(r) => r,
            Err(_) => Err(self.refuse(
                "timeout",
                Status::unavailable(format!("the request took longer than {limit:?}")),
            )),
        }
    }

    fn desk(&self) -> Result<&dyn Decisions, Status> {
        self.state
            .decisions
            .as_deref()
            .ok_or_else(|| Status::unavailable("decisions are not available in this role"))
    }

    /// Hands one event to the pipeline, waiting a bounded time for room (as REST's intake).
    async fn submit(&self, sub: Submission) -> Result<(), &'static str> {
        let s = &self.state;
        let sub = match s.intake.try_send(sub) {
            Ok(()) => {
                s.metrics.events_accepted.inc();
                return Ok(());
            }
            Err(TrySendError::Closed(sub)) => {
                withdraw(sub);
                return Err("closed");
            }
            Err(TrySendError::Full(sub)) => sub,
        };
        match s.intake.send_timeout(sub, self.settings.intake_wait).await {
            Ok(()) => {
                s.metrics.events_accepted.inc();
                Ok(())
            }
            Err(SendTimeoutError::Timeout(sub)) => {
                withdraw(sub);
                s.metrics.events_rejected_busy.inc();
                Err("busy")
            }
            Err(SendTimeoutError::Closed(sub)) => {
                withdraw(sub);
                Err("closed")
            }
        }
    }
}

fn withdraw(sub: Submission) {
    if let Some(t) = sub.ack {
        t.withdraw();
    }
}

/// The call's trace id: the caller's `x-trace-id` if well formed (as REST takes the header), else a
/// new one.
fn trace_of<T>(req: &Request<T>) -> TraceId {
    req.metadata()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceId::parse)
        .unwrap_or_default()
}

fn with_trace<T>(body: T, trace: &TraceId) -> Response<T> {
    let mut r = Response::new(body);
    if let Ok(v) = trace.to_string().parse() {
        r.metadata_mut().insert("x-trace-id", v);
    }
    r
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn parsed<T: FromStr>(key: &str, v: &str) -> Result<Option<T>, Status>
where
    T::Err: std::fmt::Display,
{
    opt(v)
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| Status::invalid_argument(format!("`{key}`: {e}")))
        })
        .transpose()
}

/// A time as REST's queries take it: RFC 3339 or epoch milliseconds.
fn time(key: &str, v: &str) -> Result<Option<Timestamp>, Status> {
    opt(v)
        .map(|v| {
            Timestamp::parse_rfc3339(&v)
                .or_else(|e| v.parse::<i64>().map(Timestamp::from_millis).map_err(|_| e))
                .map_err(|_| {
                    Status::invalid_argument(format!(
                        "`{key}`: not an RFC 3339 time or epoch milliseconds: {v:?}"
                    ))
                })
        })
        .transpose()
}

fn limit(n: u32) -> Result<u32, Status> {
    if n > 1000 {
        return Err(Status::invalid_argument(
            "`limit`: must be between 1 and 1000",
        ));
    }
    Ok(n)
}

/// What an ingest stream did, as REST's report.
#[derive(Default)]
struct Report {
    rejected: u64,
    errors: Vec<proto::ItemError>,
    truncated: bool,
}

impl Report {
    fn reject(&mut self, index: u64, error: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(proto::ItemError { index, error });
        } else {
            self.truncated = true;
        }
    }
}

/// Why an ingest stream's next item did not come.
enum Stop {
    /// Nothing for [`crate::INGEST_IDLE`].
    Idle,
    /// Readiness was lost while the stream ran: Sentinel is stopping.
    Stopping,
}

/// How often an ingest stream waiting for its next item checks whether Sentinel is stopping.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The stream's next item, unless it stays quiet for [`crate::INGEST_IDLE`] or Sentinel begins to
/// stop (then the stream is answered with what it sent so far, as REST's NDJSON stream).
async fn next_item(
    s: &AppState,
    was_ready: bool,
    stream: &mut Streaming<proto::IngestEvent>,
) -> Result<Option<Result<proto::IngestEvent, Status>>, Stop> {
    let idle = tokio::time::sleep(crate::INGEST_IDLE);
    tokio::pin!(idle);
    loop {
        if was_ready && !s.ready.load(Ordering::Acquire) {
            return Err(Stop::Stopping);
        }
        tokio::select! {
            m = stream.next() => return Ok(m),
            _ = &mut idle => return Err(Stop::Idle),
            _ = tokio::time::sleep(STOP_CHECK) => {}
        }
    }
}

type LiveStream = Pin<Box<dyn futures::Stream<Item = Result<proto::StreamItem, Status>> + Send>>;

#[tonic::async_trait]
impl Sentinel for GrpcService {
    async fn ingest(
        &self,
        req: Request<Streaming<proto::IngestEvent>>,
    ) -> Result<Response<proto::IngestReport>, Status> {
        self.allow(&req, Role::Operator)?;
        let _slot = self.slot()?;
        let trace = trace_of(&req);
        let s = &self.state;
        let mut stream = req.into_inner();
        let was_ready = s.ready.load(Ordering::Acquire);
        let group = AckGroup::new();
        let mut report = Report::default();
        let mut index = 0u64;
        // Why the stream ended early, if it did: said in the answer (with what was stored).
        let mut cut: Option<(&'static str, String)> = None;
        loop {
            let msg = match next_item(&self.state, was_ready, &mut stream).await {
                Ok(Some(Ok(m))) => m,
                Ok(None) => break,
                Err(Stop::Stopping) => {
                    cut = Some((
                        "closed",
                        format!("Sentinel is stopping: items from index {index} were not read; resend them"),
                    ));
                    break;
                }
                Ok(Some(Err(e))) => {
                    // A message too large, a reset: the items before were handed over and are kept.
                    s.metrics.events_invalid.inc();
                    report.reject(
                        index,
                        format!("could not read the stream: {}; the stream was closed; the items before were kept", e.message()),
                    );
                    break;
                }
                Err(Stop::Idle) => {
                    self.refused.get_or_create(&Reason { reason: "idle" }).inc();
                    tracing::warn!(evt = "grpc_refused", reason = "idle", trace = %trace, items = index);
                    report.reject(
                        index,
                        format!(
                            "no data for {}s: the stream was closed; the items before were kept",
                            crate::INGEST_IDLE.as_secs()
                        ),
                    );
                    break;
                }
            };
            let i = index;
            index += 1;
            if msg.json.len() > self.settings.max_item_bytes {
                s.metrics.events_invalid.inc();
                report.reject(
                    i,
                    format!("item longer than {} bytes", self.settings.max_item_bytes),
                );
                continue;
            }
            let parsed = serde_json::from_str::<Value>(&msg.json)
                .map_err(|e| {
                    format!(
                        "malformed JSON at line {} column {}: {e}",
                        e.line(),
                        e.column()
                    )
                })
                .and_then(|v| sentinel_api::front::telemetry_event(s, v, &trace));
            match parsed {
                Ok((event, raw)) => {
                    // Marked as telemetry: scored by the heuristic whatever `source` the caller set.
                    let sub = Submission::telemetry(event, raw, None, Some(group.token(i)));
                    match self.submit(sub).await {
                        Ok(()) => {}
                        Err("busy") => {
                            cut = Some((
                                "busy",
                                format!("the pipeline is busy; resend the items from index {i}"),
                            ));
                            break;
                        }
                        Err(_) => {
                            cut = Some((
                                "closed",
                                format!(
                                    "Sentinel is shutting down; resend the items from index {i}"
                                ),
                            ));
                            break;
                        }
                    }
                }
                Err(e) => {
                    s.metrics.events_invalid.inc();
                    report.reject(i, e);
                }
            }
        }
        let wait = self.settings.confirm_timeout;
        let summary = match tokio::time::timeout(wait, group.settled()).await {
            Ok(summary) => summary,
            Err(_) => {
                let now = group.summary();
                s.metrics.events_store_unconfirmed.add(now.outstanding);
                tracing::warn!(evt = "store_unconfirmed", api = "grpc", trace = %trace, committed = now.committed, failed = now.failed, unconfirmed = now.outstanding);
                return Err(Status::unavailable(format!(
                    "the store did not confirm every item within {wait:?}: {} stored, {} not stored, \
                     {} unconfirmed (they may or may not be kept); {} malformed; resend what is not \
                     confirmed",
                    now.committed, now.failed, now.outstanding, report.rejected
                )));
            }
        };
        if summary.failed > 0 {
            s.metrics.events_not_stored.add(summary.failed);
            let failures = group.failures();
            tracing::error!(evt = "events_not_stored", api = "grpc", trace = %trace, count = summary.failed);
            let listed = failures.len() as u64;
            for f in failures {
                report.reject(f.item, format!("not stored: {}", f.error));
            }
            if summary.failed > listed {
                report.rejected += summary.failed - listed;
                report.truncated = true;
            }
            report.errors.sort_by_key(|e| e.index);
        }
        if let Some((reason, msg)) = cut {
            let msg = format!(
                "{msg} ({} stored, {} rejected before)",
                summary.committed, report.rejected
            );
            let st = if reason == "busy" {
                Status::resource_exhausted(msg)
            } else {
                Status::unavailable(msg)
            };
            return Err(self.refuse(reason, st));
        }
        Ok(with_trace(
            proto::IngestReport {
                trace_id: trace.to_string(),
                accepted: summary.committed,
                rejected: report.rejected,
                errors: report.errors,
                errors_truncated: report.truncated,
            },
            &trace,
        ))
    }

    async fn list_alerts(
        &self,
        req: Request<proto::ListAlertsRequest>,
    ) -> Result<Response<proto::AlertPage>, Status> {
        self.allow(&req, Role::Viewer)?;
        let _slot = self.slot()?;
        let q = req.into_inner();
        let f = AlertFilter {
            severity: parsed("severity", &q.severity)?,
            min_severity: parsed("min_severity", &q.min_severity)?,
            scenario: opt(&q.scenario),
            subject: opt(&q.subject),
            trace_id: opt(&q.trace_id),
            since: time("since", &q.since)?,
            until: time("until", &q.until)?,
            cursor: cursor("al_", &q.cursor)?,
            limit: limit(q.limit)?,
            max_bytes: self.state.settings.paging.max_page_bytes,
        };
        self.bounded(async {
            let page = self
                .state
                .store
                .list_alerts(&f)
                .await
                .map_err(|e| status(ApiError::from(e)))?;
            Ok(Response::new(proto::AlertPage {
                items: page
                    .items
                    .iter()
                    .map(convert::alert)
                    .collect::<Result<_, _>>()?,
                next_cursor: page.next_cursor.map(|c| format!("al_{c}")),
            }))
        })
        .await
    }

    async fn list_actions(
        &self,
        req: Request<proto::ListActionsRequest>,
    ) -> Result<Response<proto::ActionPage>, Status> {
        self.allow(&req, Role::Viewer)?;
        let _slot = self.slot()?;
        let q = req.into_inner();
        let f = ActionFilter {
            state: parsed("state", &q.state)?,
            kind: parsed("kind", &q.kind)?,
            subject: opt(&q.subject),
            trace_id: opt(&q.trace_id),
            since: time("since", &q.since)?,
            until: time("until", &q.until)?,
            cursor: cursor("ac_", &q.cursor)?,
            limit: limit(q.limit)?,
            max_bytes: self.state.settings.paging.max_page_bytes,
        };
        self.bounded(async {
            let page = self
                .state
                .store
                .list_actions(&f)
                .await
                .map_err(|e| status(ApiError::from(e)))?;
            Ok(Response::new(proto::ActionPage {
                items: page
                    .items
                    .iter()
                    .map(convert::action)
                    .collect::<Result<_, _>>()?,
                next_cursor: page.next_cursor.map(|c| format!("ac_{c}")),
            }))
        })
        .await
    }

    type StreamStream = LiveStream;

    async fn stream(
        &self,
        req: Request<proto::StreamRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        self.allow(&req, Role::Viewer)?;
        // Streams have their own cap: they never hold the in-flight slots unary calls need.
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            self.refuse(
                "streams",
                Status::resource_exhausted("too many live streams open"),
            )
        })?;
        let q = req.into_inner();
        let (alerts, actions) = match (q.alerts, q.actions) {
            (false, false) => (true, true),
            other => other,
        };
        let rx = crate::live::start(
            self.state.store.clone(),
            alerts,
            actions,
            self.settings.poll,
            permit,
            self.skipped.clone(),
            self.state.ready.clone(),
        )
        .await
        .map_err(|e| status(ApiError::from(e)))?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn list_decisions(
        &self,
        req: Request<proto::ListDecisionsRequest>,
    ) -> Result<Response<proto::ActionPage>, Status> {
        self.allow(&req, Role::Viewer)?;
        let _slot = self.slot()?;
        let q = req.into_inner();
        let before = match cursor("dc_", &q.cursor)? {
            None => None,
            Some(c) => Some(c.parse::<sentinel_core::ActionId>().map_err(|_| {
                Status::invalid_argument("cursor: not a cursor of this list (expected `dc_…`)")
            })?),
        };
        // Paged as REST pages it (same order, same cursors), so a viewer cannot take the whole
        // ledger in one answer here either: a count, then the byte budget (at least one item).
        let limit = match limit(q.limit)? {
            0 => 100,
            n => n as usize,
        };
        let budget = self.state.settings.paging.max_page_bytes;
        self.bounded(async {
            let (records, mut more) = self.desk()?.list_page(before, limit).await;
            let mut items = Vec::with_capacity(records.len());
            let mut bytes = 0usize;
            for r in &records {
                let a = convert::action(r)?;
                bytes = bytes.saturating_add(a.json.len());
                if bytes > budget && !items.is_empty() {
                    more = true;
                    break;
                }
                items.push(a);
            }
            let next_cursor = more
                .then(|| items.last().map(|a: &proto::Action| format!("dc_{}", a.id)))
                .flatten();
            Ok(Response::new(proto::ActionPage { items, next_cursor }))
        })
        .await
    }

    async fn add_decision(
        &self,
        req: Request<proto::AddDecisionRequest>,
    ) -> Result<Response<proto::Action>, Status> {
        self.allow(&req, Role::Operator)?;
        let _slot = self.slot()?;
        let trace = trace_of(&req);
        let q = req.into_inner();
        let params = if q.params_json.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str::<Value>(&q.params_json)
                .map_err(|e| Status::invalid_argument(format!("`params`: malformed JSON: {e}")))?
        };
        // The body REST takes, checked by REST's own function (same rules, same words).
        let mut body = json!({
            "duration": q.duration,
            "reason": q.reason,
            "params": params,
            "dry_run": q.dry_run,
        });
        for (k, v) in [
            ("ip", q.ip),
            ("container", q.container),
            ("file", q.file),
            ("kind", q.kind),
        ] {
            if let (Some(v), Some(m)) = (v, body.as_object_mut()) {
                m.insert(k.into(), Value::String(v));
            }
        }
        let request = sentinel_api::decisions::add_request(&self.state, body, trace.clone())
            .map_err(status)?;
        self.bounded(async {
            let rec: ActionRecord = self
                .desk()?
                .add(request)
                .await
                .map_err(|e| status(ApiError::from(e)))?;
            Ok(with_trace(convert::action(&rec)?, &trace))
        })
        .await
    }

    async fn delete_decision(
        &self,
        req: Request<proto::DeleteDecisionRequest>,
    ) -> Result<Response<proto::ActionList>, Status> {
        use proto::delete_decision_request::Selector;
        self.allow(&req, Role::Operator)?;
        let _slot = self.slot()?;
        let trace = trace_of(&req);
        let sel = match req.into_inner().selector {
            Some(Selector::Ip(ip)) => DecisionSelector::Ip(
                ip.parse::<IpAddr>()
                    .map(|a| a.to_canonical())
                    .map_err(|_| Status::invalid_argument("`ip`: not an address"))?,
            ),
            Some(Selector::Id(id)) => DecisionSelector::Id(
                id.parse()
                    .map_err(|_| Status::invalid_argument("`id`: not an action id"))?,
            ),
            Some(Selector::All(true)) => DecisionSelector::All,
            _ => {
                return Err(Status::invalid_argument(
                    "give exactly one of `ip`, `id` or `all=true`",
                ))
            }
        };
        self.bounded(async {
            let removed = self
                .desk()?
                .delete(sel, trace.clone())
                .await
                .map_err(|e| status(ApiError::from(e)))?;
            Ok(with_trace(convert::actions(&removed)?, &trace))
        })
        .await
    }
}

/// A page cursor as REST gives it out (`al_…`, `ac_…`: the kind names the list, so a cursor of one
/// list given to another is refused), unwrapped to the store's position.
fn cursor(prefix: &str, c: &str) -> Result<Option<String>, Status> {
    if c.is_empty() {
        return Ok(None);
    }
    c.strip_prefix(prefix)
        .filter(|rest| !rest.is_empty())
        .map(|rest| Some(rest.to_owned()))
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "cursor: not a cursor of this list (expected `{prefix}…`)"
            ))
        })
}
