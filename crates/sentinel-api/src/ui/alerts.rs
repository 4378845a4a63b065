//! The alert pages: `GET /ui/alerts` (the alerts, filtered and paged by cursor) and
//! `GET /ui/alerts/{id}` (one alert's whole story: its evidence lines, each provider's verdict, how
//! the risk score was made, the plan and the rule that chose it, every action with its state and
//! expiry, and the audit trail of its trace with each record's inclusion proof checked here against
//! the latest signed checkpoint).
//!
//! DOM contract (the browser test relies on it): the list is `table#alerts`, one
//! `tr[data-alert-id]` per alert with a link `a[href="/ui/alerts/<id>"]`, the filters `form#alert-filters`
//! (GET) and the next page `a[rel=next]`. The story has `section#evidence`, `section#verdicts`,
//! `section#score`, `section#plan`, `section#actions` (rows `tr[data-action-id]`; for an operator, an
//! applied action has `form.revert` posting to `/ui/decisions/{action_id}/revert` with a hidden
//! `next`) and `section#audit`.
//!
//! Every query is an indexed, LIMITed store read: a page of alerts by the store's keyset cursor (the id
//! of the last alert shown), the actions of that page by alert id, and one alert's records by its id
//! and trace.

use super::{
    csrf_input, head_row, layout, page_query, state_text, time_tag, urlencode, Nav, UiError, Viewer,
};
use crate::auth::Role;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use sentinel_audit::merkle::{leaf_hash, verify_inclusion};
use sentinel_audit::note::{SignedCheckpoint, Verifier};
use sentinel_audit::{Log, LogError};
use sentinel_core::{
    ActionRecord, ActionState, Alert, AlertId, Event, Investigation, Plan, Severity, Timestamp,
};
use sentinel_store::{AlertActions, AlertFilter, AuditRow, StoreError};
use std::collections::HashMap;
use std::str::FromStr;

/// Alerts per page when the request names no `limit`.
const DEFAULT_PAGE: u32 = 50;
/// The largest `limit` a request may name.
const MAX_PAGE: u32 = 100;
/// Audit records shown on a story page (a note says when the trace has more).
const AUDIT_SHOWN: u32 = 200;
/// Evidence events, plans and actions shown on a story page.
const ROWS_SHOWN: usize = 200;
/// Characters of one evidence line or attribute shown; the rest is summarised by its size.
const TEXT_SHOWN: usize = 4096;
/// Characters of one provider's details shown.
const DETAILS_SHOWN: usize = 600;

/// The query parameters of `GET /ui/alerts`.
const LIST_PARAMS: &[&str] = &[
    "scenario",
    "severity",
    "min_severity",
    "subject",
    "since",
    "until",
    "cursor",
    "limit",
];

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/alerts", get(list))
        .route("/ui/alerts/{id}", get(story))
}

fn severity(s: Severity) -> Markup {
    html! { span class={ "sev sev-" (s.as_str()) } { (s.as_str()) } }
}

/// At most `max` characters of `s`, and how many bytes were left out.
pub(crate) fn clip(s: &str, max: usize) -> (&str, usize) {
    match s.char_indices().nth(max) {
        Some((at, _)) => (&s[..at], s.len() - at),
        None => (s, 0),
    }
}

fn clipped(s: &str, max: usize) -> Markup {
    let (shown, rest) = clip(s, max);
    html! {
        (shown)
        @if rest > 0 { " … (" (rest) " more bytes)" }
    }
}

/// A time filter: RFC 3339, epoch milliseconds, or a browser's `datetime-local` form
/// (`2026-11-30T18:30` or with seconds), read as UTC.
fn time_param(key: &str, v: &str) -> Result<Timestamp, UiError> {
    let v = v.trim();
    Timestamp::parse_rfc3339(v)
        .ok()
        .or_else(|| v.parse::<i64>().ok().map(Timestamp::from_millis))
        .or_else(|| Timestamp::parse_rfc3339(&format!("{v}Z")).ok())
        .or_else(|| Timestamp::parse_rfc3339(&format!("{v}:00Z")).ok())
        .ok_or_else(|| {
            let (shown, _) = clip(v, 64);
            UiError::BadRequest(format!(
                "`{key}`: not a time (RFC 3339 such as 2026-11-30T18:00:00Z, or epoch milliseconds): {shown:?}"
            ))
        })
}

/// The filters of the list, as given (empty values dropped) and as the store reads them.
struct ListQuery {
    /// The filters given (not the cursor), in [`LIST_PARAMS`] order, for the form and the next link.
    given: Vec<(&'static str, String)>,
    filter: AlertFilter,
}

impl ListQuery {
    fn parse(query: Option<&str>) -> Result<Self, UiError> {
        let q = page_query(query, LIST_PARAMS)?;
        let text = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let sev = |k: &str| {
            text(k)
                .map(|v| {
                    Severity::from_str(v).map_err(|_| {
                        UiError::BadRequest(format!(
                            "`{k}`: not a severity (info, low, medium, high, critical)"
                        ))
                    })
                })
                .transpose()
        };
        let limit = match text("limit") {
            None => DEFAULT_PAGE,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(UiError::BadRequest(format!(
                        "`limit`: must be a number from 1 to {MAX_PAGE}"
                    )))
                }
            },
        };
        let cursor = text("cursor")
            .map(|c| {
                AlertId::from_str(c).map(|id| id.to_string()).map_err(|_| {
                    UiError::BadRequest(
                        "`cursor`: not a cursor this page gave out (follow the next-page link)"
                            .into(),
                    )
                })
            })
            .transpose()?;
        let filter = AlertFilter {
            severity: sev("severity")?,
            min_severity: sev("min_severity")?,
            scenario: text("scenario").map(str::to_owned),
            subject: text("subject").map(str::to_owned),
            trace_id: None,
            since: text("since").map(|v| time_param("since", v)).transpose()?,
            until: text("until").map(|v| time_param("until", v)).transpose()?,
            cursor,
            limit,
            // A page of alerts is bounded by count; a huge alert is still one row of the table.
            max_bytes: 0,
        };
        let given = LIST_PARAMS
            .iter()
            .filter(|k| **k != "cursor")
            .filter_map(|k| text(k).map(|v| (*k, v.to_owned())))
            .collect();
        Ok(ListQuery { given, filter })
    }

    fn value(&self, key: &str) -> &str {
        self.given
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The link to the page after `cursor`, with the same filters.
    fn next_link(&self, cursor: &str) -> String {
        let mut out = String::from("/ui/alerts?");
        for (k, v) in &self.given {
            out.push_str(k);
            out.push('=');
            out.push_str(&urlencode(v));
            out.push('&');
        }
        out.push_str("cursor=");
        out.push_str(&urlencode(cursor));
        out
    }
}

fn filters_form(q: &ListQuery) -> Markup {
    let sev_select = |name: &str, label: &str| {
        let current = q.value(name).to_ascii_lowercase();
        html! {
            label for={ "f-" (name) } { (label) }
            select id={ "f-" (name) } name=(name) {
                option value="" selected[current.is_empty()] { "any" }
                @for s in Severity::ALL {
                    option value=(s.as_str()) selected[current == s.as_str()] { (s.as_str()) }
                }
            }
        }
    };
    html! {
        form id="alert-filters" method="get" action="/ui/alerts" class="filters" {
            div {
                label for="f-scenario" { "Scenario" }
                input id="f-scenario" type="text" name="scenario" value=(q.value("scenario"));
            }
            div { (sev_select("severity", "Severity")) }
            div { (sev_select("min_severity", "At least")) }
            div {
                label for="f-subject" { "Subject" }
                input id="f-subject" type="text" name="subject" value=(q.value("subject"))
                    placeholder="203.0.113.7 or ip:203.0.113.7";
            }
            div {
                label for="f-since" { "Since (UTC)" }
                input id="f-since" type="text" name="since" value=(q.value("since"))
                    placeholder="2026-11-30T18:00:00Z";
            }
            div {
                label for="f-until" { "Until (UTC)" }
                input id="f-until" type="text" name="until" value=(q.value("until"))
                    placeholder="2026-11-30T19:00:00Z";
            }
            @if !q.value("limit").is_empty() {
                input type="hidden" name="limit" value=(q.value("limit"));
            }
            div { button type="submit" { "Filter" } " " a href="/ui/alerts" { "Clear" } }
        }
    }
}

fn actions_cell(a: Option<&AlertActions>) -> Markup {
    html! {
        @match a {
            None => span class="muted" { "none" },
            Some(a) => {
                ul class="cell-list" {
                    @for (kind, state) in &a.actions {
                        li { (kind.as_str()) ": " (state_text(*state)) }
                    }
                    @if a.more { li { "and more" } }
                }
            }
        }
    }
}

/// `GET /ui/alerts`: the alerts, newest first, filtered by scenario, severity (exact or at least),
/// subject and time, paged by cursor.
async fn list(viewer: Viewer, State(s): State<AppState>, uri: Uri) -> Result<Markup, UiError> {
    let q = ListQuery::parse(uri.query())?;
    let page = s.store.list_alerts(&q.filter).await.map_err(|e| match e {
        StoreError::BadCursor => {
            UiError::BadRequest("`cursor`: not a cursor this page gave out".into())
        }
        other => UiError::from(other),
    })?;
    let ids: Vec<AlertId> = page.items.iter().map(|a| a.id).collect();
    let acted = s.store.alert_action_states(&ids).await?;
    let body = html! {
        (filters_form(&q))
        @if page.items.is_empty() {
            p class="empty" {
                @if q.filter.cursor.is_some() { "No more alerts match these filters." }
                @else { "No alerts match these filters." }
            }
        } @else {
            table id="alerts" {
                caption { "Alerts, newest first" }
                (head_row(["Time", "Scenario", "Severity", "Subject", "Score", "Actions"]))
                tbody {
                    @for a in &page.items {
                        tr data-alert-id=(a.id.to_string()) {
                            td { (time_tag(a.ts)) }
                            td { a href={ "/ui/alerts/" (a.id.to_string()) } { (a.scenario) } }
                            td { (severity(a.severity)) }
                            td { code { (a.subject.key()) } }
                            td { (a.score) }
                            td { (actions_cell(acted.get(&a.id))) }
                        }
                    }
                }
            }
        }
        nav class="pager" aria-label="Pages" {
            @if q.filter.cursor.is_some() {
                a href={ "/ui/alerts" @if !q.given.is_empty() { "?" (given_query(&q)) } } { "First page" }
                " "
            }
            @if let Some(next) = &page.next_cursor {
                a rel="next" href=(q.next_link(next)) { "Older alerts" }
            }
        }
    };
    Ok(layout("Alerts", Nav::Alerts, Some(&viewer), body))
}

fn given_query(q: &ListQuery) -> String {
    q.given
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// How one audit record's inclusion in the log stands.
enum Proof {
    /// Verified against the checkpoint of this size.
    Verified { size: u64 },
    /// Not checked, and why.
    Unchecked(String),
    /// Checked and found wrong.
    Failed(String),
}

/// The audit trail's proof context: the latest checkpoint, its signature checked.
struct ProofContext {
    checkpoint: Option<SignedCheckpoint>,
    /// Why no proof can be checked at all (no log, a checkpoint that does not verify).
    none: Option<String>,
    proofs: Vec<Proof>,
}

/// The last checkpoint note whose signature was verified, with the key it was verified with: a new
/// checkpoint is signed at most every few seconds, so most pages find it verified already.
static VERIFIED: std::sync::Mutex<Option<(String, String)>> = std::sync::Mutex::new(None);

fn already_verified(key: &str, text: &str) -> bool {
    let last = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
    last.as_ref().is_some_and(|(k, t)| k == key && t == text)
}

fn remember_verified(key: String, text: String) {
    *VERIFIED.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, text));
}

/// Checks every record of `rows` against the latest checkpoint of `log`, reading the log's files (run
/// on the blocking pool).
fn check_proofs(log: &Log, rows: &[AuditRow]) -> ProofContext {
    let cp = log.latest_checkpoint();
    let key = log.verifier_key();
    let signed = if already_verified(&key, &cp.text) {
        Ok(cp.clone())
    } else {
        Verifier::parse(&key)
            .and_then(|v| v.verify(&cp.text))
            .map_err(|e| e.to_string())
    };
    match signed {
        Ok(c) if c.checkpoint == cp.checkpoint => remember_verified(key, cp.text.clone()),
        Ok(_) => {
            return ProofContext {
                checkpoint: Some(cp),
                none: Some("the latest checkpoint's note does not match what it says".into()),
                proofs: Vec::new(),
            }
        }
        Err(e) => {
            return ProofContext {
                checkpoint: Some(cp),
                none: Some(format!(
                    "the latest checkpoint's signature does not verify: {e}"
                )),
                proofs: Vec::new(),
            }
        }
    }
    let size = cp.checkpoint.size;
    let proofs = rows
        .iter()
        .map(|row| {
            let Some(seq) = row.log_seq else {
                return Proof::Unchecked(
                    "not in the audit log (stored before the log was kept, or its append failed)"
                        .into(),
                );
            };
            if seq >= size {
                return Proof::Unchecked(format!(
                    "not yet in a checkpoint (the latest holds {size} records)"
                ));
            }
            match prove(log, seq, size, row, &cp) {
                Ok(p) => p,
                Err(LogError::Archived { .. }) => {
                    Proof::Unchecked("its log segment was archived".into())
                }
                Err(e) => Proof::Failed(format!("could not be checked: {e}")),
            }
        })
        .collect();
    ProofContext {
        checkpoint: Some(cp),
        none: None,
        proofs,
    }
}

fn prove(
    log: &Log,
    seq: u64,
    size: u64,
    row: &AuditRow,
    cp: &SignedCheckpoint,
) -> Result<Proof, LogError> {
    let Some(entry) = log.read(seq, 1)?.into_iter().next() else {
        return Ok(Proof::Failed(format!(
            "record {seq} is missing from the log"
        )));
    };
    if entry.entry.record() != row.record {
        return Ok(Proof::Failed(format!(
            "the store's copy differs from record {seq} of the audit log"
        )));
    }
    // The leaf is hashed here from the record's bytes, not taken from the log's own word.
    let leaf = leaf_hash(&entry.entry.to_payload());
    let proof = log.inclusion_proof(seq, size)?;
    Ok(
        match verify_inclusion(seq, size, &leaf, &proof, &cp.checkpoint.root) {
            Ok(()) => Proof::Verified { size },
            Err(e) => Proof::Failed(format!("the inclusion proof does not verify: {e}")),
        },
    )
}

/// Counts (`audit_proof_failures`) and logs every record found not matching the audit log, and a
/// checkpoint whose signature does not verify.
fn report_failures(s: &AppState, trace: &str, rows: &[AuditRow], checked: &ProofContext) {
    if checked.checkpoint.is_some() {
        if let Some(why) = &checked.none {
            s.metrics.audit_proof_failures.inc();
            tracing::warn!(evt = "ui_audit_proof_failed", trace, error = %why);
        }
    }
    for (row, p) in rows.iter().zip(&checked.proofs) {
        if let Proof::Failed(why) = p {
            s.metrics.audit_proof_failures.inc();
            tracing::warn!(evt = "ui_audit_proof_failed", trace, seq = ?row.log_seq, error = %why);
        }
    }
}

async fn proofs(s: &AppState, rows: &[AuditRow]) -> ProofContext {
    let Some(log) = s.audit.clone() else {
        return ProofContext {
            checkpoint: None,
            none: Some("this node keeps no audit log, so no proof can be checked here".into()),
            proofs: Vec::new(),
        };
    };
    let rows = rows.to_vec();
    match tokio::task::spawn_blocking(move || check_proofs(&log, &rows)).await {
        Ok(p) => p,
        Err(e) => {
            s.metrics.audit_proof_failures.inc();
            tracing::warn!(evt = "ui_audit_proof_failed", error = %e);
            ProofContext {
                checkpoint: None,
                none: Some("the proofs could not be checked; see the daemon's log".into()),
                proofs: Vec::new(),
            }
        }
    }
}

/// `GET /ui/alerts/{id}`: one alert's whole story.
async fn story(
    viewer: Viewer,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Markup, UiError> {
    let id = AlertId::from_str(&id)
        .map_err(|_| UiError::BadRequest("not an alert id (a ULID of 26 characters)".into()))?;
    let detail = s.store.get_alert(id).await?.ok_or(UiError::NotFound)?;
    let trail = s
        .store
        .audit_trail(&detail.alert.trace_id, AUDIT_SHOWN)
        .await?;
    let checked = proofs(&s, &trail.rows).await;
    report_failures(&s, detail.alert.trace_id.as_str(), &trail.rows, &checked);
    let a = &detail.alert;
    let title = format!("Alert: {} on {}", a.scenario, a.subject.key());
    let body = html! {
        (facts(a))
        (evidence(&a.evidence))
        (verdicts(detail.investigation.as_ref()))
        (score(a, detail.investigation.as_ref()))
        (plans(&detail.plans))
        (actions(&viewer, a.id, &detail.actions))
        (audit(&trail.rows, trail.more, &checked))
    };
    Ok(layout(&title, Nav::Alerts, Some(&viewer), body))
}

fn facts(a: &Alert) -> Markup {
    html! {
        p { a href="/ui/alerts" { "All alerts" } }
        dl class="facts" {
            dt { "Alert" } dd { code { (a.id.to_string()) } }
            dt { "When" } dd { (time_tag(a.ts)) }
            dt { "Detector" } dd { (a.detector) }
            dt { "Scenario" } dd { (a.scenario) }
            dt { "Severity" } dd { (severity(a.severity)) }
            dt { "Score" } dd { (a.score) " / 100" }
            dt { "Confidence" } dd { (format!("{:.2}", a.confidence)) }
            dt { "Subject" } dd { code { (a.subject.key()) } }
            dt { "Trace" } dd { code { (a.trace_id.as_str()) } }
        }
        @if !a.reasons.is_empty() {
            h2 { "Why it fired" }
            ul class="reasons" {
                @for r in &a.reasons {
                    li { code { (r.code) } ": " (r.detail) " (+" (r.weight) ")" }
                }
            }
        }
    }
}

/// A JSON value as short text: strings bare, everything else as compact JSON.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn evidence(events: &[Event]) -> Markup {
    html! {
        section id="evidence" aria-labelledby="h-evidence" {
            h2 id="h-evidence" { "Evidence" }
            @if events.is_empty() {
                p class="empty" { "No evidence lines were kept with this alert." }
            } @else {
                ol class="evidence" {
                    @for e in events.iter().take(ROWS_SHOWN) {
                        li data-event-id=(e.id.to_string()) {
                            p class="meta" {
                                (time_tag(e.ts)) " · " (e.kind.0) " · from " code { (e.source) }
                                @if let Some(ip) = e.src_ip { " · address " code { (ip.to_string()) } }
                                @if let Some(t) = &e.target { " · target " code { (t) } }
                            }
                            @if let Some(line) = e.attrs.get("line") {
                                pre { code { (clipped(&value_text(line), TEXT_SHOWN)) } }
                            }
                            @let others: Vec<_> = e.attrs.iter().filter(|(k, _)| k.as_str() != "line").collect();
                            @if !others.is_empty() {
                                dl class="attrs" {
                                    @for (k, v) in others {
                                        dt { (k) }
                                        dd { code { (clipped(&value_text(v), TEXT_SHOWN)) } }
                                    }
                                }
                            }
                        }
                    }
                }
                @if events.len() > ROWS_SHOWN {
                    p class="note" { (events.len() - ROWS_SHOWN) " more evidence events are not shown." }
                }
            }
        }
    }
}

/// A provider's details in brief: an object's fields as `key: value`, anything else as text.
fn details_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}: {}", value_text(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => value_text(other),
    }
}

fn verdicts(inv: Option<&Investigation>) -> Markup {
    html! {
        section id="verdicts" aria-labelledby="h-verdicts" {
            h2 id="h-verdicts" { "Threat-intel verdicts" }
            @match inv {
                None => p class="empty" { "Not investigated yet." },
                Some(inv) => {
                    @if inv.evidence.is_empty() {
                        p class="empty" { "No provider gave a verdict." }
                    } @else {
                        table {
                            caption { "Each provider's verdict on " code { (inv.alert.subject.key()) } }
                            (head_row(["Provider", "Verdict", "Score", "Details"]))
                            tbody {
                                @for e in inv.evidence.iter().take(ROWS_SHOWN) {
                                    @let verdict = serde_json::to_value(e.verdict).ok().map(|v| value_text(&v)).unwrap_or_default();
                                    tr data-provider=(e.provider) {
                                        td { (e.provider) }
                                        td { span class={ "verdict verdict-" (verdict) } { (verdict) } }
                                        td { @if let Some(sc) = e.score { (sc) } @else { "—" } }
                                        td { (clipped(&details_text(&e.details), DETAILS_SHOWN)) }
                                    }
                                }
                            }
                        }
                    }
                    @if !inv.uncertainty.is_empty() {
                        h3 { "Uncertainty" }
                        ul class="uncertainty" {
                            @for u in &inv.uncertainty { li { (u) } }
                        }
                    }
                }
            }
        }
    }
}

fn signed(n: i32) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn score(a: &Alert, inv: Option<&Investigation>) -> Markup {
    html! {
        section id="score" aria-labelledby="h-score" {
            h2 id="h-score" { "How the risk score was made" }
            @match inv {
                None => p class="empty" {
                    "Not investigated yet; the detector scored it " (a.score) " / 100."
                },
                Some(inv) => {
                    @if inv.contributions.is_empty() {
                        p class="empty" { "This investigation kept no breakdown of its score." }
                    } @else {
                        table {
                            caption { "Each input's part, in the order applied" }
                            (head_row(["Input", "What it said", "Risk", "Confidence"]))
                            tbody {
                                @for c in &inv.contributions {
                                    tr {
                                        td { code { (c.input) } }
                                        td { (c.detail) }
                                        td class="num" { (signed(c.risk)) }
                                        td class="num" {
                                            @if c.confidence > 0.0 { "+" }
                                            (format!("{:.2}", c.confidence))
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p class="final" {
                        "Risk score " strong data-risk=(inv.risk_score) { (inv.risk_score) " / 100" }
                        ", confidence " strong { (format!("{:.2}", inv.confidence)) }
                        " (investigated " (time_tag(inv.ts)) ")."
                    }
                }
            }
        }
    }
}

fn plans(plans: &[Plan]) -> Markup {
    html! {
        section id="plan" aria-labelledby="h-plan" {
            h2 id="h-plan" { "Plan" }
            @if plans.is_empty() {
                p class="empty" { "No plan was decided for this alert." }
            }
            @for p in plans.iter().take(ROWS_SHOWN) {
                article class="plan" data-plan-id=(p.id.to_string()) {
                    dl class="facts" {
                        dt { "Decided" } dd { (time_tag(p.ts)) }
                        dt { "Mode" } dd { span class={ "mode mode-" (p.mode.as_str()) } { (p.mode.as_str()) } }
                        dt { "Severity" } dd { (severity(p.severity)) }
                        dt { "Risk band" } dd { (p.risk_band) }
                        dt { "Confidence band" } dd { (p.confidence_band) }
                        dt { "Rule that chose it" } dd class="rule" { (p.reason) }
                    }
                    @if p.actions.is_empty() {
                        p { "The policy asked for no action." }
                    } @else {
                        ul class="asked" {
                            @for spec in &p.actions {
                                li {
                                    (spec.kind.as_str()) " on " code { (spec.subject.key()) }
                                    " for " (humantime::format_duration(std::time::Duration::from_secs(spec.ttl_secs)).to_string())
                                }
                            }
                        }
                    }
                }
            }
            @if plans.len() > ROWS_SHOWN {
                p class="note" { (plans.len() - ROWS_SHOWN) " more plans are not shown." }
            }
        }
    }
}

fn actions(viewer: &Viewer, alert: AlertId, actions: &[ActionRecord]) -> Markup {
    let operator = viewer.can(Role::Operator);
    let next = format!("/ui/alerts/{alert}");
    html! {
        section id="actions" aria-labelledby="h-actions" {
            h2 id="h-actions" { "Actions" }
            @if actions.is_empty() {
                p class="empty" { "No action was taken." }
            } @else {
                table {
                    caption { "Every action, oldest first, in its latest state" }
                    (head_row(["Kind", "Subject", "Mode", "State", "Created", "Expires"].into_iter().chain(operator.then_some("Undo"))))
                    tbody {
                        @for r in actions.iter().take(ROWS_SHOWN) {
                            tr data-action-id=(r.id.to_string()) {
                                td { (r.spec.kind.as_str()) }
                                td { code { (r.spec.subject.key()) } }
                                td { (r.mode.as_str()) }
                                td {
                                    (state_text(r.state))
                                    @if let Some(e) = &r.error { " — " (clipped(e, DETAILS_SHOWN)) }
                                }
                                td { (time_tag(r.created)) }
                                td { (time_tag(r.expires_at)) }
                                @if operator {
                                    td {
                                        @if r.state == ActionState::Applied {
                                            form class="revert" method="post" action={ "/ui/decisions/" (r.id.to_string()) "/revert" } {
                                                (csrf_input(viewer))
                                                input type="hidden" name="next" value=(next);
                                                button type="submit" aria-label={ "Revert " (r.spec.kind.as_str()) " on " (r.spec.subject.key()) } { "Revert" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if actions.len() > ROWS_SHOWN {
                    p class="note" { (actions.len() - ROWS_SHOWN) " more actions are not shown." }
                }
            }
        }
    }
}

fn short_hex(h: &[u8]) -> String {
    let full = hex::encode(h);
    full.get(..16).map_or(full.clone(), |s| format!("{s}…"))
}

fn audit(rows: &[AuditRow], more: bool, checked: &ProofContext) -> Markup {
    let by_index: HashMap<usize, &Proof> = checked.proofs.iter().enumerate().collect();
    html! {
        section id="audit" aria-labelledby="h-audit" {
            h2 id="h-audit" { "Audit trail" }
            @if let Some(cp) = &checked.checkpoint {
                p class="checkpoint" {
                    "Latest signed checkpoint: " (cp.checkpoint.size) " records, root "
                    code { (hex::encode(cp.checkpoint.root)) }
                }
            }
            @if let Some(why) = &checked.none {
                p class="note" { (why) }
            }
            @if rows.is_empty() {
                p class="empty" { "No audit record of this trace." }
            } @else {
                table {
                    caption { "The trace's audit records, in log order, with their inclusion proofs" }
                    (head_row(["Log seq", "Time", "Kind", "About", "Summary", "Inclusion proof"]))
                    tbody {
                        @for (i, row) in rows.iter().enumerate() {
                            tr data-seq=[row.log_seq] {
                                td { @if let Some(seq) = row.log_seq { (seq) } @else { "—" } }
                                td { (time_tag(row.record.ts)) }
                                td { (row.record.kind.as_str()) }
                                td { code { (row.record.subject_id) } }
                                td { (clipped(&row.record.summary, DETAILS_SHOWN)) }
                                td {
                                    @match by_index.get(&i) {
                                        Some(Proof::Verified { size }) => span class="proof proof-ok" {
                                            "proof verified against checkpoint " (size) " (root "
                                            @if let Some(cp) = &checked.checkpoint { code { (short_hex(&cp.checkpoint.root)) } }
                                            ")"
                                        },
                                        Some(Proof::Unchecked(why)) => span class="proof proof-none" { (why) },
                                        Some(Proof::Failed(why)) => span class="proof proof-bad" { "NOT verified: " (why) },
                                        None => span class="proof proof-none" { "not checked" },
                                    }
                                }
                            }
                        }
                    }
                }
                @if more {
                    p class="note" { "Only the first " (AUDIT_SHOWN) " records of this trace are shown; the trace has more." }
                }
            }
        }
    }
}
