//! `/ui/decisions`: the live decisions (what `GET /v1/decisions` serves), a revert button on each for
//! an operator, and the manual decision form with its dry-run preview.
//!
//! Every write goes through the same [`Decisions`](crate::decisions::Decisions) seam as the REST API:
//! a revert is `DELETE /v1/decisions?id=`'s path, a manual decision is parsed by
//! [`add_request`](crate::decisions::add_request) (so the dashboard and REST refuse the same input with
//! the same words) and previewed through the ledger's own dry run.
//!
//! DOM contract: `table#decisions` with one `tr[data-action-id]` per decision; for an operator each
//! row has `form.revert` (POST `/ui/decisions/{id}/revert`, hidden `next`); `form#manual` (POST
//! `/ui/decisions`) with `ip`, `kind`, `duration`, `reason` and the buttons `op=preview` and
//! `op=apply`; a preview renders `section#preview` and applies nothing; a confirmation after a
//! redirect is `p[role=status]`.

use crate::auth::Role;
use crate::decisions::{DecisionError, DecisionSelector, Decisions};
use crate::state::AppState;
use crate::ui::{
    csrf_input, head_row, layout, note_operator, page_query, safe_next, state_text, time_tag,
    urlencode, CsrfForm, FormRefusal, Nav, UiError, Viewer,
};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{html, Markup};
use sentinel_core::{
    ActionId, ActionKind, ActionRecord, ActionState, AuditKind, Origin, Timestamp, TraceId,
};
use sentinel_store::AuditRow;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Decisions shown per page.
pub const PAGE_SIZE: usize = 50;

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/decisions", get(page).post(manual))
        .route("/ui/decisions/{action_id}/revert", post(revert))
}

fn desk(state: &AppState) -> Result<&dyn Decisions, UiError> {
    state
        .decisions
        .as_deref()
        .ok_or_else(|| UiError::Unavailable("decisions are not available in this role".into()))
}

/// `GET /ui/decisions?before=&done=&id=`.
async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Markup, UiError> {
    let q = page_query(raw.as_deref(), &["before", "done", "id"])?;
    let before = match q.get("before").filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(
            b.parse::<ActionId>()
                .map_err(|_| UiError::BadRequest("`before`: not an action id".into()))?,
        ),
    };
    let done = match q.get("done").map(String::as_str) {
        None => None,
        Some("reverted") => Some("reverted"),
        Some("applied") => Some("applied"),
        Some(_) => return Err(UiError::BadRequest("`done`: reverted or applied".into())),
    };
    // The confirmation names a decision by its id only: a link cannot make the page say anything else.
    let notice = match done {
        None => None,
        Some(d) => {
            let id = q
                .get("id")
                .and_then(|i| i.parse::<ActionId>().ok())
                .ok_or_else(|| {
                    UiError::BadRequest("`id`: not an action id (with `done`)".into())
                })?;
            Some((d, id.to_string()))
        }
    };
    let desk = desk(&state)?;
    let (items, more) = desk.list_page(before, PAGE_SIZE).await;
    let reasons = reasons(&state, &items).await?;
    let here = match before {
        Some(b) => format!("/ui/decisions?before={b}"),
        None => "/ui/decisions".to_string(),
    };
    let body = html! {
        @if let Some((what, id)) = &notice {
            p class="notice" role="status" {
                "Decision " code { (id) } " " (what) "."
            }
        }
        (table(&viewer, &items, &reasons, &here))
        (older_link(&items, more))
        (manual_section(&viewer, &desk.kinds(), &FormValues::default(), None, None))
    };
    Ok(layout("Decisions", Nav::Decisions, Some(&viewer), body))
}

/// The link to the next page of decisions, when there is one.
fn older_link(items: &[ActionRecord], more: bool) -> Markup {
    html! {
        @if more {
            @if let Some(last) = items.last() {
                nav class="pager" aria-label="Pages" {
                    a rel="next" href={ "/ui/decisions?before=" (last.id) } { "Older decisions" }
                }
            }
        }
    }
}

/// Why each decision was taken, from the audit trail of its trace: an operator's reason, or the
/// plan's. One indexed read per trace on the page.
async fn reasons(
    state: &AppState,
    items: &[ActionRecord],
) -> Result<HashMap<ActionId, String>, UiError> {
    let mut by_trace: HashMap<TraceId, Vec<AuditRow>> = HashMap::new();
    let mut out = HashMap::new();
    for r in items {
        if !by_trace.contains_key(&r.trace_id) {
            let rows = state.store.audit_for_trace(&r.trace_id).await?;
            by_trace.insert(r.trace_id.clone(), rows);
        }
        let rows = by_trace.get(&r.trace_id).map(Vec::as_slice).unwrap_or(&[]);
        let found = match &r.origin {
            Origin::Operator => reason_in(
                rows,
                AuditKind::Operator,
                &r.id.to_string(),
                ": manual decision: ",
            ),
            Origin::Plan { plan_id, .. } => {
                reason_in(rows, AuditKind::PlanDecided, &plan_id.to_string(), "]: ")
            }
            Origin::Reconcile => Some("reconciled at start-up".to_string()),
        };
        if let Some(why) = found {
            out.insert(r.id, why);
        }
    }
    Ok(out)
}

/// What the first audit record of `kind` about `subject_id` says after `sep` in its summary.
fn reason_in(rows: &[AuditRow], kind: AuditKind, subject_id: &str, sep: &str) -> Option<String> {
    rows.iter()
        .filter(|a| a.record.kind == kind && a.record.subject_id == subject_id)
        .find_map(|a| {
            a.record
                .summary
                .split_once(sep)
                .map(|(_, why)| why.to_string())
        })
}

/// `in 3h 59m` (seconds under an hour only), `due now`.
fn time_left(at: Timestamp, now: Timestamp) -> String {
    let ms = at.as_millis().saturating_sub(now.as_millis());
    if ms <= 0 {
        return "due now".into();
    }
    let secs = (ms as u64 / 1000).max(1);
    let shown = if secs >= 3600 { secs - secs % 60 } else { secs };
    format!(
        "in {}",
        humantime::format_duration(Duration::from_secs(shown))
    )
}

fn origin_cell(r: &ActionRecord) -> Markup {
    match &r.origin {
        Origin::Plan { alert_id, .. } => html! {
            "plan · "
            a href={ "/ui/alerts/" (alert_id) } { "alert " (alert_id) }
        },
        Origin::Operator => html! { "operator" },
        Origin::Reconcile => html! { "reconcile" },
    }
}

/// The columns of `table#decisions` (an operator's has "Revert" too).
const COLUMNS: &[&str] = &[
    "Kind", "Subject", "Origin", "State", "Created", "Expires", "Reason",
];

fn table(
    viewer: &Viewer,
    items: &[ActionRecord],
    reasons: &HashMap<ActionId, String>,
    here: &str,
) -> Markup {
    let now = Timestamp::now();
    let operator = viewer.can(Role::Operator);
    html! {
        @if items.is_empty() {
            p class="empty" { "No live decisions." }
        } @else {
            div class="table-wrap" {
                table id="decisions" {
                    caption { "Live decisions, newest first" }
                    (head_row(COLUMNS.iter().copied().chain(operator.then_some("Revert"))))
                    tbody {
                        @for r in items {
                            tr data-action-id=(r.id) {
                                td { (r.spec.kind.as_str()) }
                                td { (r.spec.subject)
                                    @if let Some(c) = r.spec.params.cidr() { " (range " (c.to_string()) ")" }
                                }
                                td { (origin_cell(r)) }
                                td { (state_text(r.state)) " (" (r.mode.as_str()) ")" }
                                td { (time_tag(r.created)) }
                                td { (time_tag(r.expires_at)) " " span class="left" { "(" (time_left(r.expires_at, now)) ")" } }
                                td {
                                    @if let Some(why) = reasons.get(&r.id) { (why) } @else { "—" }
                                    @if let Some(note) = &r.error { br; span class="note" { "note: " (note) } }
                                }
                                @if operator {
                                    td {
                                        form class="revert" method="post" action={ "/ui/decisions/" (r.id) "/revert" } {
                                            (csrf_input(viewer))
                                            input type="hidden" name="next" value=(here);
                                            button type="submit" aria-label={ "Revert " (r.spec.kind.as_str()) " on " (r.spec.subject) } { "Revert" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the manual form holds (kept, escaped, when it is shown again).
#[derive(Debug, Default, Deserialize)]
struct FormValues {
    #[serde(default)]
    ip: String,
    #[serde(default)]
    container: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    op: String,
}

/// Which input an error is about, from the `` `field`: `` it starts with.
fn field_of(msg: &str) -> Option<&'static str> {
    let name = msg.strip_prefix('`')?.split_once('`')?.0;
    Some(match name {
        "ip" | "params.cidr" => "ip",
        "container" => "container",
        "file" => "file",
        "kind" => "kind",
        "duration" | "ttl" => "duration",
        "reason" => "reason",
        _ => return None,
    })
}

/// A text input with its label and, when the error is about it, the error next to it.
fn text_field(
    name: &str,
    label: &str,
    value: &str,
    hint: &str,
    error: Option<&(Option<&'static str>, String)>,
) -> Markup {
    let err = error.filter(|(f, _)| *f == Some(name)).map(|(_, m)| m);
    let id = format!("manual-{name}");
    let err_id = format!("{id}-error");
    html! {
        div class="field" {
            label for=(id) { (label) }
            @if let Some(m) = err {
                input type="text" id=(id) name=(name) value=(value) placeholder=(hint)
                    aria-invalid="true" aria-describedby=(err_id);
                span class="field-error" id=(err_id) { (m) }
            } @else {
                input type="text" id=(id) name=(name) value=(value) placeholder=(hint);
            }
        }
    }
}

fn manual_section(
    viewer: &Viewer,
    kinds: &[ActionKind],
    v: &FormValues,
    error: Option<&(Option<&'static str>, String)>,
    preview: Option<Markup>,
) -> Markup {
    if !viewer.can(Role::Operator) {
        return html! {
            p class="hint" { "Operators can revert decisions and add manual ones here." }
        };
    }
    let subjects = kinds.contains(&ActionKind::IsolateContainer);
    let files = kinds.contains(&ActionKind::QuarantineFile);
    let kind_err = error.filter(|(f, _)| *f == Some("kind")).map(|(_, m)| m);
    let general = error.filter(|(f, _)| f.is_none()).map(|(_, m)| m);
    html! {
        section id="manual-decision" aria-labelledby="manual-title" {
            h2 id="manual-title" { "Manual decision" }
            @if let Some(p) = preview { (p) }
            form id="manual" method="post" action="/ui/decisions" {
                (csrf_input(viewer))
                @if let Some(m) = general {
                    p class="error" role="alert" id="manual-error" { (m) }
                }
                (text_field("ip", "IP address or range", &v.ip, "203.0.113.7 or 203.0.113.0/24", error))
                @if subjects {
                    (text_field("container", "or container", &v.container, "name or id", error))
                }
                @if files {
                    (text_field("file", "or file", &v.file, "/absolute/path", error))
                }
                div class="field" {
                    label for="manual-kind" { "Kind" }
                    @if let Some(m) = kind_err {
                        select id="manual-kind" name="kind" aria-invalid="true" aria-describedby="manual-kind-error" {
                            (kind_options(kinds, &v.kind))
                        }
                        span class="field-error" id="manual-kind-error" { (m) }
                    } @else {
                        select id="manual-kind" name="kind" { (kind_options(kinds, &v.kind)) }
                    }
                }
                (text_field("duration", "Duration", &v.duration, "4h, 30m, 7d", error))
                (text_field("reason", "Reason", &v.reason, "why", error))
                div class="buttons" {
                    button type="submit" name="op" value="preview" { "Preview (dry run)" }
                    button type="submit" name="op" value="apply" { "Apply" }
                }
            }
        }
    }
}

fn kind_options(kinds: &[ActionKind], chosen: &str) -> Markup {
    html! {
        option value="" selected[chosen.is_empty()] { "default for the subject" }
        @for k in kinds {
            option value=(k.as_str()) selected[chosen == k.as_str()] { (k.as_str()) }
        }
    }
}

/// The page again with the manual form (values kept), an error and/or a preview, with `status`.
async fn form_again(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    values: &FormValues,
    error: Option<(Option<&'static str>, String)>,
    preview: Option<Markup>,
) -> Result<Response, UiError> {
    let desk = desk(state)?;
    let (items, more) = desk.list_page(None, PAGE_SIZE).await;
    let reasons = reasons(state, &items).await?;
    let body = html! {
        (manual_section(viewer, &desk.kinds(), values, error.as_ref(), preview))
        (table(viewer, &items, &reasons, "/ui/decisions"))
        (older_link(&items, more))
    };
    Ok((
        status,
        layout("Decisions", Nav::Decisions, Some(viewer), body),
    )
        .into_response())
}

fn preview_section(r: &ActionRecord) -> Markup {
    let now = Timestamp::now();
    html! {
        section id="preview" aria-labelledby="preview-title" {
            h3 id="preview-title" { "Preview: nothing was applied" }
            dl class="facts" {
                dt { "Kind" } dd { (r.spec.kind.as_str()) }
                dt { "Subject" } dd { (r.spec.subject)
                    @if let Some(c) = r.spec.params.cidr() { " (range " (c.to_string()) ")" } }
                dt { "Mode" } dd { (r.mode.as_str()) }
                dt { "Would expire" } dd { (time_tag(r.expires_at)) " (" (time_left(r.expires_at, now)) ", TTL " (humantime::format_duration(Duration::from_secs(r.spec.ttl_secs))) ")" }
                @if let Some(note) = &r.error { dt { "Notes" } dd { (note) } }
            }
            @if !r.preview.operations.is_empty() {
                p { "What would be done:" }
                ol class="operations" {
                    @for op in &r.preview.operations { li { code { (op) } } }
                }
            }
        }
    }
}

fn refusal_section(why: &str) -> Markup {
    html! {
        section id="preview" aria-labelledby="preview-title" {
            h3 id="preview-title" { "Preview: this decision would be refused" }
            p class="refused" role="alert" { "Refused: " (why) }
        }
    }
}

/// `POST /ui/decisions`: the manual form, previewed (`op=preview`) or applied (`op=apply`).
async fn manual(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceId>,
    CsrfForm(viewer, v): CsrfForm<FormValues>,
) -> Result<Response, UiError> {
    require_operator(&state, &viewer, "manual decision")?;
    // The page again with the form as sent, an error and/or a preview.
    let again = |status, error, preview| form_again(&state, &viewer, status, &v, error, preview);
    let dry_run = match v.op.as_str() {
        "preview" => true,
        "apply" => false,
        _ => {
            return again(
                StatusCode::BAD_REQUEST,
                Some((None, "`op`: preview or apply".into())),
                None,
            )
            .await
        }
    };
    let mut body = serde_json::json!({
        "duration": v.duration,
        "reason": v.reason,
        "dry_run": dry_run,
    });
    for (key, val) in [
        ("ip", &v.ip),
        ("container", &v.container),
        ("file", &v.file),
    ] {
        if !val.trim().is_empty() {
            body[key] = val.trim().into();
        }
    }
    if !v.kind.is_empty() {
        body["kind"] = v.kind.clone().into();
    }
    let req = match crate::decisions::add_request(&state, body, trace.clone()) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            return again(StatusCode::BAD_REQUEST, Some((field_of(&msg), msg)), None).await;
        }
    };
    match desk(&state)?.add(req).await {
        Ok(rec) if dry_run => again(StatusCode::OK, None, Some(preview_section(&rec))).await,
        Ok(rec) => {
            tracing::info!(evt = "ui_decision_added", trace = %trace, key_id = %viewer.principal.key_id,
                action = %rec.id, kind = %rec.spec.kind, subject = %rec.spec.subject);
            Ok(Redirect::to(&format!("/ui/decisions?done=applied&id={}", rec.id)).into_response())
        }
        Err(DecisionError::Invalid(why)) if dry_run => {
            again(StatusCode::OK, None, Some(refusal_section(&why))).await
        }
        Err(DecisionError::Invalid(why)) => {
            again(StatusCode::BAD_REQUEST, Some((field_of(&why), why)), None).await
        }
        Err(DecisionError::NotStored(why)) => {
            tracing::warn!(evt = "ui_decision_not_stored", trace = %trace, error = %why);
            Err(UiError::Unavailable(why))
        }
    }
}

/// The 403 page for a viewer, logged with who tried and counted in
/// `sentinel_ui_forms_refused_total{reason="role"}`.
fn require_operator(state: &AppState, viewer: &Viewer, what: &str) -> Result<(), UiError> {
    viewer.require(Role::Operator).inspect_err(|_| {
        state.ui.counters.form_refused(FormRefusal::Role);
        tracing::info!(evt = "ui_forbidden", what, key_id = %viewer.principal.key_id,
            role = viewer.principal.role.as_str());
    })
}

/// The revert form's body.
#[derive(Debug, Deserialize)]
struct RevertForm {
    #[serde(default)]
    next: Option<String>,
}

fn page_with(status: StatusCode, title: &str, viewer: &Viewer, msg: String) -> Response {
    let body = html! {
        p class="error" role="alert" { (msg) }
        p { a href="/ui/decisions" { "Back to the decisions" } }
    };
    (status, layout(title, Nav::Decisions, Some(viewer), body)).into_response()
}

/// `POST /ui/decisions/{action_id}/revert`: the ledger reverts it, as `DELETE /v1/decisions?id=` does.
async fn revert(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Path(action_id): Path<String>,
    CsrfForm(viewer, form): CsrfForm<RevertForm>,
) -> Result<Response, UiError> {
    require_operator(&state, &viewer, "revert")?;
    let Ok(id) = action_id.parse::<ActionId>() else {
        return Err(UiError::NotFound);
    };
    let reverted = desk(&state)?
        .delete(DecisionSelector::Id(id), trace.clone())
        .await
        .map_err(|e| match e {
            DecisionError::Invalid(m) => UiError::BadRequest(m),
            DecisionError::NotStored(m) => UiError::Unavailable(m),
        })?;
    let key_id = &viewer.principal.key_id;
    let Some(rec) = reverted.into_iter().next() else {
        // Nothing live by that id: say whether it ever existed.
        return Ok(match state.store.get_action(id).await? {
            Some(r) => page_with(
                StatusCode::CONFLICT,
                "Not live",
                &viewer,
                format!(
                    "decision {} is not live (it is {}); nothing was changed",
                    r.id,
                    r.state.as_str()
                ),
            ),
            None => page_with(
                StatusCode::NOT_FOUND,
                "Not found",
                &viewer,
                format!("there is no decision {id}; nothing was changed"),
            ),
        });
    };
    let summary = format!(
        "ui: revert {} {} {} -> {} (key {} {:?})",
        rec.id,
        rec.spec.kind,
        rec.spec.subject,
        rec.state.as_str(),
        key_id,
        viewer.principal.name
    );
    tracing::info!(evt = "ui_decision_reverted", trace = %trace, key_id = %key_id, summary = %summary);
    // Who asked, next to the ledger's own record of the revert (same trace).
    note_operator(&state, key_id, &trace, summary).await;
    if rec.state != ActionState::Reverted {
        // The actuator could not undo it: the ledger keeps it live and retries.
        return Ok(page_with(
            StatusCode::SERVICE_UNAVAILABLE,
            "Revert failed",
            &viewer,
            format!(
                "decision {} could not be reverted yet: {}",
                rec.id,
                rec.error.as_deref().unwrap_or("the actuator refused")
            ),
        ));
    }
    let to = safe_next(form.next.as_deref()).unwrap_or("/ui/decisions");
    let sep = if to.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!(
        "{to}{sep}done=reverted&id={}",
        urlencode(&rec.id.to_string())
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_in_messages() {
        assert_eq!(field_of("`duration`: not a duration"), Some("duration"));
        assert_eq!(field_of("`params.cidr`: overlaps"), Some("ip"));
        assert_eq!(field_of("give exactly one of `ip`"), None);
    }

    #[test]
    fn time_left_reads_well() {
        let now = Timestamp::from_millis(1_000_000);
        assert_eq!(time_left(now, now), "due now");
        assert_eq!(
            time_left(Timestamp::from_millis(1_000_000 + 90_000), now),
            "in 1m 30s"
        );
        assert_eq!(
            time_left(Timestamp::from_millis(1_000_000 + 4 * 3_600_000 - 1), now),
            "in 3h 59m"
        );
        assert_eq!(
            time_left(Timestamp::from_millis(1_000_000 + 4 * 3_600_000), now),
            "in 4h"
        );
    }
}
