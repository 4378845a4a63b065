//! The OpenAPI document against the router it describes: served to any role (not to anonymous
//! callers), every route the source declares is in it with its methods, and every path and method in
//! it is routed (asked of the real router: a method the document does not name is a 405 from the
//! route, not the 404 of an unknown path; a method it names is never a 405).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{get, harness, send};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

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
    let h = harness().await;
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
    // Liveness and readiness need no key; every other operation carries the edge's answers.
    for (m, p) in operations(&doc) {
        let op = &doc["paths"][&p][m.to_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|c| c.starts_with('2')),
            "{m} {p}: no success answer"
        );
        if p == "/health" || p == "/ready" {
            assert_eq!(op["security"], serde_json::json!([{}]), "{m} {p}");
        } else {
            for code in ["400", "401", "403", "429", "503"] {
                assert!(responses.contains_key(code), "{m} {p}: no {code}");
            }
            assert_eq!(
                responses["401"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error"
            );
        }
    }
}

#[tokio::test]
async fn every_declared_route_is_in_the_document() {
    let h = harness().await;
    let doc = spec(&h).await;
    let documented = operations(&doc);
    let declared = declared_routes();
    assert!(
        declared.len() >= 25,
        "the source scan found too few routes: {declared:?}"
    );
    let mut missing = Vec::new();
    for (m, p) in &declared {
        // Routes nested under `/v1` are written without it.
        let found = documented.contains(&(m.clone(), p.clone()))
            || documented.contains(&(m.clone(), format!("/v1{p}")));
        if !found {
            missing.push(format!("{m} {p}"));
        }
    }
    assert!(
        missing.is_empty(),
        "routed but not in the document: {missing:?}"
    );
    let mut unrouted = Vec::new();
    for (m, p) in &documented {
        let rel = p.strip_prefix("/v1").unwrap_or(p);
        if !declared.contains(&(m.clone(), p.clone()))
            && !declared.contains(&(m.clone(), rel.into()))
        {
            unrouted.push(format!("{m} {p}"));
        }
    }
    assert!(
        unrouted.is_empty(),
        "documented but declared nowhere: {unrouted:?}"
    );
}

#[tokio::test]
async fn every_documented_path_and_method_is_routed() {
    let h = harness().await;
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
