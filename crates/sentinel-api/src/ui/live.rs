//! `GET /ui/live`: the live feed. The page is rendered on the server with the latest
//! [`LATEST`] alerts and actions (two indexed, `LIMIT`ed reads: fast whatever the store holds), so it
//! is useful without JavaScript; `/ui/static/live.js` then opens the WebSocket `/v1/stream` (the
//! session cookie authenticates it) from the page's resume cursor and puts each new item at the top
//! of `ol#feed`, keeping at most [`KEPT`], reconnecting with the last cursor it received (with a
//! backoff of 1 s doubling to 30 s) and saying so in the `role=status` line.
//!
//! The resume cursor (`ol#feed[data-resume]`, a stream cursor `st_<audit_seq>_<event_rowid>`) is the
//! store's feed head read *before* the page's items ([`snapshot`]): whatever is committed after it
//! comes over the stream, so nothing committed between the render and the socket opening is missed.
//! When no alert or action was noted while the items were read (the usual case) the page is exactly
//! the feed up to that cursor; on a busy store an item may be both on the page and in the stream, and
//! live.js shows it once (same `data-kind`, `data-id` and, for an action, `data-state`).
//!
//! DOM contract: `ol#feed[data-resume]`, newest first, one `li` per item with `data-kind`
//! (`alert`|`action`) and `data-id` (an action's also `data-state`); items that came over the stream
//! also carry their `data-cursor`; an alert links `/ui/alerts/<id>`; the text says the scenario,
//! subject and severity of an alert, the kind, subject and state of an action.

use super::{layout, time_tag, Nav, UiError, Viewer};
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use sentinel_core::{ActionRecord, Alert, Timestamp};
use sentinel_store::{ActionFilter, AlertFilter, FeedCursor};

/// Items rendered by the server.
pub const LATEST: u32 = 50;
/// Items the page keeps as new ones arrive.
pub const KEPT: u32 = 200;
/// Reads of the page's items tried before settling for a cursor that may repeat an item.
const SNAPSHOT_TRIES: usize = 3;

/// The live feed's route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ui/live", get(page))
}

/// One line of the feed.
pub(crate) enum Item {
    /// An alert raised.
    Alert(Alert),
    /// An action in its latest state.
    Action(Box<ActionRecord>),
}

impl Item {
    fn ts(&self) -> Timestamp {
        match self {
            Item::Alert(a) => a.ts,
            Item::Action(a) => a.created,
        }
    }
}

/// A class name built only from `[a-z0-9_-]` (values from records never reach a class otherwise).
fn class(prefix: &str, v: &str) -> String {
    let clean: String = v
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{prefix}{clean}")
}

fn item(i: &Item) -> Markup {
    match i {
        Item::Alert(a) => {
            let sev = a.severity.as_str();
            html! {
                li data-kind="alert" data-id=(a.id) {
                    (time_tag(a.ts))
                    span class="kind" { "alert" }
                    span class={ "sev " (class("sev-", sev)) } { (sev) }
                    a href={ "/ui/alerts/" (a.id) } { (a.scenario) }
                    span class="subject" { (a.subject) }
                }
            }
        }
        Item::Action(r) => {
            let state = r.state.as_str();
            html! {
                li data-kind="action" data-id=(r.id) data-state=(state) {
                    (time_tag(r.created))
                    span class="kind" { "action" }
                    span class="action-kind" { (r.spec.kind) }
                    span class="subject" { (r.spec.subject) }
                    span class={ "state " (class("state-", state)) } { (state) }
                }
            }
        }
    }
}

/// The latest `n` alerts and actions together, newest first.
async fn latest(state: &AppState, n: u32) -> Result<Vec<Item>, UiError> {
    let alerts = AlertFilter {
        limit: n,
        ..Default::default()
    };
    let actions = ActionFilter {
        limit: n,
        ..Default::default()
    };
    let (alerts, actions) = futures::try_join!(
        state.store.list_alerts(&alerts),
        state.store.list_actions(&actions)
    )?;
    let mut items: Vec<Item> = alerts
        .items
        .into_iter()
        .map(Item::Alert)
        .chain(actions.items.into_iter().map(|a| Item::Action(Box::new(a))))
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse(i.ts()));
    items.truncate(n as usize);
    Ok(items)
}

/// The latest `n` items and the stream cursor to resume after them: the feed head read before the
/// items, so every alert or action not on the page comes after it. When the head did not move while
/// the items were read, the page is exactly the feed up to it; otherwise the read is tried again, at
/// most [`SNAPSHOT_TRIES`] times, and then the cursor read before the last read is kept (an item may
/// then come twice; live.js shows it once).
pub(crate) async fn snapshot(state: &AppState, n: u32) -> Result<(Vec<Item>, FeedCursor), UiError> {
    let mut before = state.store.feed_head().await?;
    let mut tries = 1;
    loop {
        let items = latest(state, n).await?;
        let after = state.store.feed_head().await?;
        // Alerts and actions are audit-noted: only the audit part of the head matters here.
        if after.audit_seq == before.audit_seq || tries >= SNAPSHOT_TRIES {
            return Ok((items, before));
        }
        before = after;
        tries += 1;
    }
}

async fn page(viewer: Viewer, State(state): State<AppState>) -> Result<Markup, UiError> {
    let (items, resume) = snapshot(&state, LATEST).await?;
    let body = html! {
        p id="live-status" class="live-status" role="status" aria-live="polite" data-state="static" {
            "Showing the latest items. New ones appear here when JavaScript is on."
        }
        section aria-labelledby="feed-title" {
            h2 id="feed-title" { "Alerts and actions, newest first" }
            @if items.is_empty() {
                p id="feed-empty" class="empty" { "Nothing yet: no alert or action is stored." }
            }
            ol id="feed" class="feed" data-stream="/v1/stream" data-kinds="alert,action"
                data-max=(KEPT) data-resume=(resume) {
                @for i in &items { (item(i)) }
            }
        }
        script src="/ui/static/live.js" defer {}
    };
    Ok(layout("Live feed", Nav::Live, Some(&viewer), body))
}
