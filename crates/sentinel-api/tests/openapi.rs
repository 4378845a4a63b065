//! The OpenAPI document against the router it describes: served to any role (not to anonymous
//! callers), it names exactly the operations of the route table (`routes/table.rs`: the key routes
//! and the webhooks), every route the source declares is in the table, and every path and method in
//! the document is routed (asked of the real router: a method the document does not name is a 405
//! from the route, not the 404 of an unknown path; a method it names is never a 405).
//!
//! Routes that exist only when configured (the webhooks, each with its secret; `/webhook/test` with
//! `SENTINEL_ENABLE_WEBHOOK_TEST=true`; `/v1/identity` with a server identity) are documented always,
//! with their 404 when absent: the router under test is built with all of them configured, so the
//! document's every operation must be routed there; without the configuration they are 404 like any
//! unknown path (checked too). The `/v1` and `/v1/` catch-all (any method) is no operation: the
//! source scan leaves it out (see `declared_routes`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{get, harness, harness_with, send, Harness, Setup};
use sentinel_api::webhook::WebhookSettings;
use sentinel_api::{ApiSettings, ServerId, WebhookAuth};
use sentinel_notify::config::Secret;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// The router with every route that exists only when configured: all three webhook secrets, the
/// unsigned test route, and a server identity.
async fn configured() -> Harness {
    let d = Setup::default();
    harness_with(Setup {
        settings: ApiSettings {
            webhooks: WebhookSettings {
                github: Some(Secret::new("github-secret-for-tests")),
                gitea: Some(Secret::new("gitea-secret-for-tests")),
                generic: Some(Secret::new("generic-secret-for-tests")),
                enable_test: true,
                ..WebhookSettings::default()
            },
            server_id: Some(ServerId::new([5u8; 32])),
            ..d.settings
        },
        ..d
    })
    .await
}

/// `(METHOD, full path)` of every row of the route tables.
fn table_operations() -> BTreeSet<(String, String)> {
    let keyed = sentinel_api::route_table()
        .iter()
        .map(|(m, p, _)| (m.to_string(), (*p).to_owned()));
    let hooks = sentinel_api::webhook_table()
        .iter()
        .map(|(m, p, _)| (m.to_string(), (*p).to_owned()));
    keyed.chain(hooks).collect()
}

/// The full path of a path as written in the source (routes nested under `/v1` are written without
/// it).
fn full_path(p: &str) -> String {
    if p.starts_with("/v1")
        || p.starts_with("/webhook/")
        || ["/health", "/ready", "/metrics"].contains(&p)
    {
        p.to_owned()
    } else {
        format!("/v1{p}")
    }
}

const METHODS: &[&str] = &[
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];

async fn spec(h: &common::Harness) -> Value {
    let r = send(&h.app, get("/v1/openapi.json", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(*m).is_some() {
                ops.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Every `.route("path", method(…).method(…))` in the crate's source, as `(METHOD, path)`; the path
/// as written (relative to where its router is nested).
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    collect_rs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut routes = BTreeSet::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let mut rest = src.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + ".route(".len()..].trim_start();
            // Only a literal path (rustfmt may break the line after the parenthesis).
            let Some(r) = rest.strip_prefix('"') else {
                continue;
            };
            rest = r;
            let end = rest.find('"').unwrap();
            let path = rest[..end].to_string();
            // The method router: up to the `)` that closes `.route(`.
            let mut depth = 1;
            let mut close = 0;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let methods = &rest[end + 1..close];
            // The `/v1/` catch-all (`any(not_found)`: 401 without a key, 404 with one) is no API
            // operation: it is what a path naming none answers.
            if methods.contains("any(") {
                rest = &rest[close..];
                continue;
            }
            let mut found = false;
            for m in METHODS {
                for token in [format!(" {m}("), format!(".{m}("), format!("({m}(")] {
                    if methods.contains(&token) {
                        routes.insert((m.to_uppercase(), path.clone()));
                        found = true;
                    }
                }
            }
            assert!(found, "{}: no method found for route {path}", f.display());
            rest = &rest[close..];
        }
    }
    routes
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        // The dashboard's pages (`src/ui/`) are cookie routes, not API operations: they are listed
        // and checked by the dashboard's own route table and its tests.
        if p.is_dir() && p.file_name().is_some_and(|n| n == "ui") {
            continue;
        }
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A concrete path for a templated one.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                // A number fits every parameter here (ids are then malformed, a 400, not a 404).
                "1"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_is_served_to_any_role_and_not_to_anonymous_callers() {
    let h = configured().await;
    let anon = send(&h.app, get("/v1/openapi.json", None)).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    let bad = send(&h.app, get("/v1/openapi.json", Some("snl_not_a_key"))).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anon.body, bad.body, "one answer for no key and a wrong key");
    let doc = spec(&h).await;
    let admin = send(&h.app, get("/v1/openapi.json", Some(&h.admin_key))).await;
    assert_eq!(admin.json(), doc, "every role gets the same document");

    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key", "{schemes}");
    assert!(doc["security"].as_array().unwrap().len() == 2);
    // Liveness and readiness need no key and are never limited; the identity challenge and the
    // unsigned test webhook need no key but are rate limited; the signed webhooks carry their own
    // signature scheme; every other operation carries the edge's answers for a key route.
    for (m, p) in operations(&doc) {
        let op = &doc["paths"][&p][m.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            // A WebSocket's success is the switch of protocols (101).
            responses.keys().any(|c| c.starts_with('2') || c == "101"),
            "{m} {p}: no success answer"
        );
        let hook = sentinel_api::webhook_table()
            .iter()
            .find(|(_, path, _)| *path == p)
            .map(|r| r.2);
        let expected: &[&str] = if p == "/health" || p == "/ready" {
            assert_eq!(op["security"], serde_json::json!([{}]), "{m} {p}");
            assert!(!responses.contains_key("429"), "{m} {p} is never limited");
            &[]
        } else if p == "/v1/identity" {
            assert_eq!(op["security"], serde_json::json!([{}]), "{m} {p}");
            &["400", "404", "413", "415", "429", "503"][..]
        } else if hook == Some(WebhookAuth::Unsigned) {
            assert_eq!(op["security"], serde_json::json!([{}]), "{m} {p}");
            &["400", "404", "409", "413", "429", "503"][..]
        } else if hook == Some(WebhookAuth::Signed) {
            let req = op["security"].as_array().unwrap();
            assert_eq!(req.len(), 1, "{m} {p}: {req:?}");
            let scheme = req[0].as_object().unwrap().keys().next().unwrap().clone();
            assert!(scheme.ends_with("_signature"), "{m} {p}: {scheme}");
            assert_eq!(schemes[&scheme]["in"], "header", "{m} {p}");
            assert!(
                op["description"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Exists only when")
                    || responses["200"]["description"]
                        .as_str()
                        .unwrap()
                        .contains("Exists only when"),
                "{m} {p}: the document must say the route exists only when configured"
            );
            &["400", "401", "404", "409", "413", "429", "503"][..]
        } else {
            &["400", "401", "403", "429", "503"][..]
        };
        for code in expected {
            assert!(responses.contains_key(*code), "{m} {p}: no {code}");
        }
        if !expected.is_empty() && p != "/v1/identity" && hook != Some(WebhookAuth::Unsigned) {
            assert_eq!(
                responses["401"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "{m} {p}"
            );
        }
        // Every answer that says "retry later" says when.
        for code in ["429", "503"] {
            if let Some(r) = responses.get(code) {
                assert_eq!(
                    r["headers"]["Retry-After"]["schema"]["type"], "integer",
                    "{m} {p}: {code} without Retry-After"
                );
            }
        }
    }
    // The 429 names the rate limit's code.
    let too_many = &doc["paths"]["/v1/alerts"]["get"]["responses"]["429"]["description"];
    assert!(
        too_many.as_str().unwrap().contains("rate_limited"),
        "{too_many}"
    );
}

/// Every list answers the page shape: `items` (a record or an elided marker), `next_cursor`,
/// `truncated_by`.
#[tokio::test]
async fn every_list_is_documented_as_a_page() {
    let h = harness().await;
    let doc = spec(&h).await;
    let resolve = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(r) => doc["components"]["schemas"][r.rsplit('/').next().unwrap()].clone(),
            None => v.clone(),
        }
    };
    for path in [
        "/v1/alerts",
        "/v1/actions",
        "/v1/events",
        "/v1/decisions",
        "/v1/keys",
    ] {
        let schema = resolve(
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        );
        let props = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: {schema}"));
        for field in ["items", "next_cursor", "truncated_by"] {
            assert!(
                props.contains_key(field),
                "{path}: no `{field}` in {schema}"
            );
        }
        // An item is the record or the elided marker, told apart by their fields (no tag).
        let item = resolve(&props["items"]["items"]);
        let choices = item["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: items are not one of record/marker: {item}"));
        let names: Vec<String> = choices
            .iter()
            .map(|c| {
                resolve(c)["properties"]
                    .as_object()
                    .map(|p| p.keys().cloned().collect::<Vec<_>>().join(","))
                    .unwrap_or_default()
            })
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.contains("elided") && n.contains("cursor")),
            "{path}: no elided marker among {names:?}"
        );
    }
    // Offset-paged lists say why they stopped too.
    for (path, items) in [
        ("/v1/audit/records", "records"),
        ("/v1/audit/checkpoints", "checkpoints"),
        ("/v1/notify/dead-letters", "items"),
    ] {
        let schema = resolve(
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        );
        for field in [items, "truncated_by"] {
            assert!(
                schema["properties"].get(field).is_some(),
                "{path}: no `{field}` in {schema}"
            );
        }
    }
}

#[tokio::test]
async fn the_document_the_route_table_and_the_source_name_the_same_routes() {
    let h = harness().await;
    let doc = spec(&h).await;
    let documented = operations(&doc);
    let table = table_operations();
    assert!(
        table.len() >= 35,
        "the route tables are too short: {table:?}"
    );
    let missing: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "in the route table but not in the document: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        extra.is_empty(),
        "in the document but not in the route table: {extra:?}"
    );

    // Every route the source declares is in the table. The webhooks with a secret are routed from a
    // list of `(source, "path", secret)` in webhook.rs (one `.route` call for the configured ones):
    // their paths must be written there.
    let declared: BTreeSet<(String, String)> = declared_routes()
        .into_iter()
        .map(|(m, p)| (m, full_path(&p)))
        .collect();
    assert!(
        declared.len() >= 30,
        "the source scan found too few routes: {declared:?}"
    );
    let unlisted: Vec<_> = declared.difference(&table).collect();
    assert!(
        unlisted.is_empty(),
        "routed but not in routes/table.rs: {unlisted:?}"
    );
    let webhook_src = include_str!("../src/webhook.rs");
    for (m, p) in table.difference(&declared) {
        assert!(
            p.starts_with("/webhook/") && webhook_src.contains(&format!("\"{p}\"")),
            "{m} {p} is in routes/table.rs but routed nowhere"
        );
    }
}

#[tokio::test]
async fn routes_that_exist_only_when_configured_are_absent_otherwise() {
    let h = harness().await;
    let unknown = send(
        &h.app,
        Request::builder()
            .method(Method::POST)
            .uri("/no-such-route")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for (m, p, _) in sentinel_api::webhook_table() {
        let r = send(
            &h.app,
            Request::builder()
                .method(m.clone())
                .uri(*p)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}");
        assert_eq!(
            r.body, unknown.body,
            "{m} {p}: not the answer of an unknown path"
        );
    }
    let r = send(
        &h.app,
        Request::builder()
            .method(Method::POST)
            .uri("/v1/identity")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"nonce":"00112233445566778899aabbccddeeff"}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no server identity: no challenge"
    );
}

#[tokio::test]
async fn every_documented_path_and_method_is_routed() {
    // Every route that exists only when configured is configured here.
    let h = configured().await;
    let doc = spec(&h).await;
    let ops = operations(&doc);
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    // An unknown path answers 404, a known path with a method it has not 405: the probe can tell.
    let unknown = send(
        &h.app,
        Request::builder()
            .method(Method::PATCH)
            .uri("/v1/no-such-route")
            .header("x-api-key", &h.admin_key)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for p in paths {
        let uri = concrete(p);
        let unused = METHODS
            .iter()
            .map(|m| m.to_uppercase())
            .find(|m| m != "HEAD" && !ops.contains(&(m.clone(), p.clone())))
            .unwrap();
        let r = send(
            &h.app,
            Request::builder()
                .method(unused.as_str())
                .uri(&uri)
                .header("x-api-key", &h.admin_key)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{unused} {uri}: the documented path {p} is not routed"
        );
    }
    for (m, p) in &ops {
        let uri = concrete(p);
        let r = send(
            &h.app,
            Request::builder()
                .method(m.as_str())
                .uri(&uri)
                .header("x-api-key", &h.admin_key)
                // A body no route reads: answered at once (415 or 400), nothing reaches the pipeline.
                .header("content-type", "text/plain")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri}");
        if !p.contains('{') {
            assert_ne!(r.status, StatusCode::NOT_FOUND, "{m} {uri}");
        }
    }
}

/// OpenAPI requires every `operationId` to be unique (validators refuse the document, and code
/// generators would emit two functions of one name); utoipa names an operation after its handler,
/// so two handlers both called `stats` collided.
#[tokio::test]
async fn every_operation_id_is_unique() {
    let h = harness().await;
    let doc = spec(&h).await;
    let mut seen: std::collections::BTreeMap<String, String> = Default::default();
    for (m, p) in operations(&doc) {
        let op = &doc["paths"][&p][m.to_lowercase()];
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {p}: no operationId"))
            .to_owned();
        if let Some(first) = seen.insert(id.clone(), format!("{m} {p}")) {
            panic!("operationId {id:?} is used by {first} and {m} {p}");
        }
    }
    assert!(seen.contains_key("intel_stats") && seen.contains_key("notify_stats"));
}
