//! Every list answer is bounded by a count and by bytes, over a real socket with a real HTTP client:
//! a viewer asking for everything gets bounded answers and can still walk every page to the end;
//! records larger than a whole answer come back as markers, never whole; cursors name their kind;
//! a repeated query parameter is a 400 naming it; `/v1` and `/v1/` without a key are 401.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use async_trait::async_trait;
use common::*;
use sentinel_api::decisions::{DecisionError, DecisionRequest, DecisionSelector, Decisions};
use sentinel_api::{ApiSettings, PagingSettings};
use sentinel_core::{
    ActionId, ActionKind, ActionRecord, ActionSpec, ActionState, Alert, AlertId, Event, EventId,
    EventKind, Mode, Origin, Preview, Reason, Severity, Subject, Timestamp, TraceId,
};
use sentinel_store::{Record, WriterOptions};
use serde_json::Value;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves `app` on a free loopback port.
async fn serve(app: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// GET with a key: the status and the raw body.
async fn get(addr: SocketAddr, key: &str, path_and_query: &str) -> (u16, Vec<u8>) {
    let r = client()
        .get(format!("http://{addr}{path_and_query}"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

fn event(i: usize, pad: usize) -> Event {
    let mut attrs = serde_json::Map::new();
    attrs.insert("i".into(), i.into());
    attrs.insert("pad".into(), "x".repeat(pad).into());
    Event {
        id: EventId::new(),
        kind: EventKind("auth_failure".into()),
        ts: Timestamp::now(),
        source: "api".into(),
        src_ip: Some("203.0.113.7".parse().unwrap()),
        target: None,
        attrs,
        trace_id: TraceId::new(),
    }
}

async fn write(h: &Harness, records: Vec<Record>) {
    let (writer, task) = h.store.writer(WriterOptions::default());
    let n = records.len() as u64;
    for r in records {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    assert_eq!(task.finish().await.unwrap().records, n);
}

/// Walks a listing from its first page to its end and returns every page's body.
async fn walk(addr: SocketAddr, key: &str, path: &str, query: &str) -> Vec<Vec<u8>> {
    let mut pages = Vec::new();
    let mut q = query.to_string();
    for _ in 0..10_000 {
        let sep = if q.is_empty() { "" } else { "&" };
        let (status, body) = get(addr, key, &format!("{path}?{q}")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v = json(&body);
        let next = v["next_cursor"].as_str().map(str::to_owned);
        pages.push(body);
        match next {
            Some(c) => q = format!("{query}{sep}cursor={c}"),
            None => return pages,
        }
    }
    panic!("the listing never ended");
}

/// A viewer asking for a thousand events of up to 1.2 MB each: every answer stays within the byte
/// budget, and walking the pages still returns every event exactly once (the ones over the whole
/// budget as markers with their cursor).
#[tokio::test]
async fn a_viewer_asking_for_every_large_event_gets_bounded_pages_and_every_event() {
    let budget = 1 << 20;
    let h = harness_with(Setup {
        settings: ApiSettings {
            paging: PagingSettings {
                max_page_bytes: budget,
            },
            ..Setup::default().settings
        },
        ..Setup::default()
    })
    .await;
    // 20 events of 300 KB, 3 of 1.2 MB (over the whole budget), 200 small ones.
    let mut events: Vec<Event> = Vec::new();
    for i in 0..20 {
        events.push(event(i, 300_000));
    }
    for i in 20..23 {
        events.push(event(i, 1_200_000));
    }
    for i in 23..223 {
        events.push(event(i, 100));
    }
    write(&h, events.iter().cloned().map(Record::Event).collect()).await;
    let metrics_before = h.state.metrics.render();
    let (addr, server) = serve(h.app.clone()).await;

    let pages = walk(addr, &h.viewer_key, "/v1/events", "limit=1000").await;
    let mut seen = Vec::new();
    let (mut by_bytes, mut elided) = (0, 0);
    for body in &pages {
        assert!(
            body.len() <= budget,
            "an answer of {} bytes is over the budget of {budget}",
            body.len()
        );
        let v = json(body);
        if v["truncated_by"] == "bytes" {
            by_bytes += 1;
        }
        for item in v["items"].as_array().unwrap() {
            if item["elided"] == true {
                elided += 1;
                assert!(item["bytes"].as_u64().unwrap() > 1_200_000);
                let c = item["cursor"].as_str().unwrap();
                seen.push(c.strip_prefix("ev_").unwrap().to_owned());
                assert!(item.get("attrs").is_none(), "never answered whole");
            } else {
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(elided, 3, "the three events over the budget are markers");
    assert!(
        by_bytes >= 5,
        "300 KB events fill a 1 MiB page with 3: {by_bytes}"
    );
    assert_eq!(seen.len(), events.len(), "every event once");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), events.len());
    let want: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(unique.into_iter().cloned().collect::<HashSet<_>>(), want);

    // Both refusals to answer whole are counted.
    let (status, text) = get(addr, &h.admin_key, "/metrics").await;
    assert_eq!(status, 200);
    let count = |text: &str, name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let text = String::from_utf8(text).unwrap();
    assert!(
        count(&text, "sentinel_api_pages_truncated_total{by=\"bytes\"}")
            >= count(
                &metrics_before,
                "sentinel_api_pages_truncated_total{by=\"bytes\"}"
            ) + 5,
        "{text}"
    );
    assert!(
        count(&text, "sentinel_api_page_items_elided_total")
            >= count(&metrics_before, "sentinel_api_page_items_elided_total") + 3
    );
    server.abort();
}

fn alert(i: usize) -> Alert {
    Alert {
        id: AlertId::new(),
        ts: Timestamp::now(),
        detector: "test".into(),
        scenario: "ssh_bruteforce".into(),
        severity: Severity::High,
        score: 50,
        confidence: 0.9,
        subject: Subject::Ip(format!("198.51.100.{}", i % 250).parse().unwrap()),
        reasons: vec![Reason {
            code: "test".into(),
            detail: format!("alert {i}"),
            weight: 50,
        }],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

/// Without a `limit` a page holds 100 items; a `limit` over 1000 is a 400; pages walk to the end.
#[tokio::test]
async fn a_count_bounds_every_page_and_the_pages_walk_to_the_end() {
    let h = harness().await;
    let alerts: Vec<Alert> = (0..250).map(alert).collect();
    write(&h, alerts.iter().cloned().map(Record::Alert).collect()).await;
    let (addr, server) = serve(h.app.clone()).await;

    let (status, body) = get(addr, &h.viewer_key, "/v1/alerts").await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["items"].as_array().unwrap().len(), 100);
    assert_eq!(v["truncated_by"], "count");
    assert!(v["next_cursor"].as_str().unwrap().starts_with("al_"));

    let (status, body) = get(addr, &h.viewer_key, "/v1/alerts?limit=1001").await;
    assert_eq!(status, 400);
    assert!(json(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("`limit`"));

    let pages = walk(addr, &h.viewer_key, "/v1/alerts", "").await;
    assert_eq!(pages.len(), 3);
    let last = json(pages.last().unwrap());
    assert_eq!(last["items"].as_array().unwrap().len(), 50);
    assert_eq!(
        (last["next_cursor"].clone(), last["truncated_by"].clone()),
        (Value::Null, Value::Null)
    );
    let ids: HashSet<String> = pages
        .iter()
        .flat_map(|b| {
            json(b)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids.len(), 250);
    server.abort();
}

/// An event id (or an event cursor) given as an alert cursor is a 400 saying what it is.
#[tokio::test]
async fn a_cursor_of_another_kind_is_refused() {
    let h = harness().await;
    let events: Vec<Event> = (0..3).map(|i| event(i, 10)).collect();
    write(&h, events.iter().cloned().map(Record::Event).collect()).await;
    write(&h, (0..3).map(|i| Record::Alert(alert(i))).collect()).await;
    let (addr, server) = serve(h.app.clone()).await;

    let (_, body) = get(addr, &h.viewer_key, "/v1/events?limit=1").await;
    let ev_cursor = json(&body)["next_cursor"].as_str().unwrap().to_owned();
    assert!(ev_cursor.starts_with("ev_"), "{ev_cursor}");
    let (status, _) = get(
        addr,
        &h.viewer_key,
        &format!("/v1/events?limit=1&cursor={ev_cursor}"),
    )
    .await;
    assert_eq!(status, 200, "its own kind is fine");

    for (path, cursor, says) in [
        ("/v1/alerts", ev_cursor.clone(), "an event listing"),
        ("/v1/alerts", events[0].id.to_string(), "not a cursor"),
        ("/v1/actions", ev_cursor.clone(), "an event listing"),
        (
            "/v1/events",
            format!("al_{}", AlertId::new()),
            "an alert listing",
        ),
        ("/v1/events", "ev_nonsense".into(), "cursor"),
    ] {
        let (status, body) = get(addr, &h.viewer_key, &format!("{path}?cursor={cursor}")).await;
        assert_eq!(status, 400, "{path} {cursor}");
        let m = json(&body)["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.starts_with("`cursor`") && m.contains(says), "{path}: {m}");
    }
    server.abort();
}

/// A repeated parameter has no one meaning: a 400 naming it, on every route that reads parameters.
#[tokio::test]
async fn a_repeated_query_parameter_is_a_400_naming_it() {
    let h = harness().await;
    let (addr, server) = serve(h.app.clone()).await;
    for (path_and_query, name) in [
        ("/v1/alerts?limit=1&limit=1000", "limit"),
        ("/v1/events?kind=a&kind=b", "kind"),
        ("/v1/actions?state=applied&state=failed", "state"),
        ("/v1/audit?trace_id=a&trace_id=b", "trace_id"),
        ("/v1/audit/records?from=0&from=5", "from"),
        ("/v1/audit/checkpoints?limit=1&limit=2", "limit"),
        ("/v1/decisions?cursor=a&cursor=b", "cursor"),
        ("/v1/notify/dead-letters?limit=1&limit=2", "limit"),
    ] {
        let (status, body) = get(addr, &h.viewer_key, path_and_query).await;
        assert_eq!(status, 400, "{path_and_query}");
        let m = json(&body)["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            m.starts_with(&format!("`{name}`")) && m.contains("more than once"),
            "{path_and_query}: {m}"
        );
    }
    let r = client()
        .delete(format!(
            "http://{addr}/v1/decisions?ip=203.0.113.7&ip=203.0.113.8"
        ))
        .header("x-api-key", &h.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("`ip`: given more than once"));
    server.abort();
}

/// `/v1` and `/v1/` are under the key like everything else: 401 without one (any method), 404 with.
#[tokio::test]
async fn the_v1_root_is_401_without_a_key() {
    let h = harness().await;
    let (addr, server) = serve(h.app.clone()).await;
    for path in ["/v1", "/v1/"] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
            reqwest::Method::PUT,
        ] {
            let r = client()
                .request(method.clone(), format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path}");
            assert_eq!(
                json(&r.bytes().await.unwrap())["error"]["code"],
                "unauthorized"
            );
        }
        let (status, _) = get(addr, &h.viewer_key, path).await;
        assert_eq!(status, 404, "{path} with a key");
    }
    server.abort();
}

/// A desk with many live decisions (the paging is the trait's; the ledger's own is tested with it).
struct ManyDecisions(Vec<ActionRecord>);

#[async_trait]
impl Decisions for ManyDecisions {
    async fn add(&self, _req: DecisionRequest) -> Result<ActionRecord, DecisionError> {
        Err(DecisionError::Invalid("read-only in this test".into()))
    }
    async fn list(&self) -> Vec<ActionRecord> {
        self.0.clone()
    }
    async fn delete(
        &self,
        _sel: DecisionSelector,
        _trace: TraceId,
    ) -> Result<Vec<ActionRecord>, DecisionError> {
        Ok(vec![])
    }
}

fn decision(i: usize) -> ActionRecord {
    let spec = ActionSpec::plain(
        ActionKind::BlockIp,
        Subject::Ip(format!("203.0.113.{}", i % 250).parse().unwrap()),
        3600,
    );
    ActionRecord {
        id: ActionId::new(),
        origin: Origin::Operator,
        preview: Preview {
            kind: ActionKind::BlockIp,
            operations: vec![format!("add element {i} {}", "x".repeat(400))],
        },
        spec,
        mode: Mode::Enforce,
        state: ActionState::Applied,
        created: Timestamp::now(),
        updated: Timestamp::now(),
        expires_at: Timestamp::now(),
        applied: None,
        error: None,
        trace_id: TraceId::new(),
    }
}

/// `GET /v1/decisions` over thousands of live decisions: paged (100 by default, `dc_` cursors), each
/// answer under the budget, and the walk returns each decision once.
#[tokio::test]
async fn decisions_are_paged_by_count_and_bytes() {
    let h = harness_with(Setup {
        settings: ApiSettings {
            paging: PagingSettings {
                max_page_bytes: 64 * 1024,
            },
            ..Setup::default().settings
        },
        ..Setup::default()
    })
    .await;
    let all: Vec<ActionRecord> = (0..3000).map(decision).collect();
    let mut state = h.state.clone();
    state.decisions = Some(Arc::new(ManyDecisions(all.clone())));
    let (addr, server) = serve(sentinel_api::router(state)).await;

    let (status, body) = get(addr, &h.viewer_key, "/v1/decisions").await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert!(body.len() <= 64 * 1024);
    assert!(v["next_cursor"].as_str().unwrap().starts_with("dc_"));

    let pages = walk(addr, &h.viewer_key, "/v1/decisions", "limit=1000").await;
    let mut seen = Vec::new();
    for b in &pages {
        assert!(b.len() <= 64 * 1024, "{} bytes", b.len());
        let v = json(b);
        if v["next_cursor"].is_string() {
            assert_eq!(
                v["truncated_by"], "bytes",
                "a 64 KiB budget, not 1000 items"
            );
        }
        for r in v["items"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    let mut want: Vec<String> = all.iter().map(|r| r.id.to_string()).collect();
    want.sort_unstable();
    want.reverse();
    assert_eq!(seen, want, "every decision once, newest first");

    let (status, body) = get(
        addr,
        &h.viewer_key,
        &format!("/v1/decisions?cursor=ac_{}", all[0].id),
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("an action listing"));
    server.abort();
}
