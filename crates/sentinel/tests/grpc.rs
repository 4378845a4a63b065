//! The gRPC API of a real daemon (`api.grpc_listen`), through tonic's own client over a real socket,
//! against REST on the same data: events ingested over gRPC show up in REST, alerts, actions and
//! decisions read the same through both, decisions added and deleted through either are seen by the
//! other, the live stream delivers what is stored, and the auth subset (no key, bad key, a viewer
//! writing) is refused as REST refuses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use sentinel_grpc::proto::sentinel_client::SentinelClient;
use sentinel_grpc::proto::{
    delete_decision_request::Selector, stream_item::Item, AddDecisionRequest,
    DeleteDecisionRequest, IngestEvent, ListActionsRequest, ListAlertsRequest,
    ListDecisionsRequest, StreamRequest,
};
use serde_json::Value;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Request};

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

fn authed<T>(msg: T, key: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

async fn client(d: &Daemon) -> SentinelClient<Channel> {
    let addr_file = d.data().join("grpc.addr");
    let addr = eventually(Duration::from_secs(10), || async {
        std::fs::read_to_string(&addr_file)
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .await;
    SentinelClient::connect(format!("http://{}", addr.trim()))
        .await
        .unwrap()
}

async fn rest(d: &Daemon, key: &str, path: &str) -> Value {
    let r = d
        .client()
        .get(d.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

/// Starts a daemon with gRPC on, stops it, adds a viewer key to its store, starts it again.
async fn daemon_with_viewer() -> (Daemon, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "api:\n  grpc_listen: 127.0.0.1:0\n",
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let data = d.data();
    let (dir, _) = d.stop();
    let store = sentinel_store::Store::open(&data.join("sentinel.db"))
        .await
        .unwrap();
    let auth = sentinel_api::auth::Auth::new(
        sentinel_api::auth::load_or_create_secret(&data.join("auth.secret")).unwrap(),
        false,
    );
    let viewer = sentinel_api::auth::Auth::generate_key();
    store
        .insert_api_key(&sentinel_store::ApiKeyRow {
            id: "01GRPCVIEWER".into(),
            name: "grpc-viewer".into(),
            role: "viewer".into(),
            hash: auth.hash(&viewer),
            created: sentinel_core::Timestamp::now(),
            expires: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    store.close().await;
    (Daemon::start_in(dir, &[]), viewer)
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_matches_rest_on_the_same_data_and_refuses_as_rest_does() {
    let (d, viewer) = daemon_with_viewer().await;
    let admin = d.key.clone();
    let mut c = client(&d).await;

    // Auth subset: no key and a wrong key are the same UNAUTHENTICATED; a viewer reads but may not
    // write (PERMISSION_DENIED), exactly as REST answers 401 / 403.
    let e = c
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e2 = c
        .list_alerts(authed(ListAlertsRequest::default(), "snl_wrong"))
        .await
        .unwrap_err();
    assert_eq!(e2.code(), Code::Unauthenticated);
    assert_eq!(e.message(), e2.message(), "one answer for both");
    let mut x = Request::new(ListDecisionsRequest::default());
    x.metadata_mut()
        .insert("x-api-key", "snl_wrong".parse().unwrap());
    assert_eq!(
        c.list_decisions(x).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    c.list_alerts(authed(ListAlertsRequest::default(), &viewer))
        .await
        .unwrap();
    let add = AddDecisionRequest {
        ip: Some("198.51.100.9".into()),
        duration: "4h".into(),
        reason: "grpc test".into(),
        ..Default::default()
    };
    let e = c
        .add_decision(authed(add.clone(), &viewer))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = c
        .delete_decision(authed(
            DeleteDecisionRequest {
                selector: Some(Selector::All(true)),
            },
            &viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = c
        .ingest(authed(
            futures::stream::iter(vec![IngestEvent {
                json: ATTACK.into(),
            }]),
            &viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // The same refusals at REST, for the record of parity.
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&viewer)
        .json(&serde_json::json!({"ip": "198.51.100.9", "duration": "4h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing a refused call tried was done.
    assert!(rest(&d, &admin, "/v1/decisions").await["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // A live stream opened before anything happens sees what follows.
    let mut live = c
        .stream(authed(StreamRequest::default(), &viewer))
        .await
        .unwrap()
        .into_inner();

    // Ingest over gRPC (client streaming): good items stored, a malformed one reported by index.
    let items = vec![
        IngestEvent {
            json: ATTACK.into(),
        },
        IngestEvent {
            json: "{not json".into(),
        },
        IngestEvent {
            json: r#"{"src_ip":"not an ip"}"#.into(),
        },
        IngestEvent {
            json: r#"{"kind":"login","src_ip":"192.0.2.44","user":"alice"}"#.into(),
        },
    ];
    let resp = c
        .ingest(authed(futures::stream::iter(items), &admin))
        .await
        .unwrap();
    let trace = resp
        .metadata()
        .get("x-trace-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let report = resp.into_inner();
    assert_eq!(report.trace_id, trace);
    assert_eq!(report.accepted, 2, "{report:?}");
    assert_eq!(report.rejected, 2, "{report:?}");
    let idx: Vec<u64> = report.errors.iter().map(|e| e.index).collect();
    assert_eq!(idx, [1, 2], "{report:?}");
    assert!(report.errors[1].error.contains("src_ip"), "{report:?}");
    // ... and REST sees those events under the same trace.
    let events = rest(&d, &admin, &format!("/v1/events?trace_id={trace}")).await;
    let ips: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["src_ip"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ips.len(), 2, "{events}");
    assert!(
        ips.contains(&"203.0.113.7") && ips.contains(&"192.0.2.44"),
        "{events}"
    );

    // The attack raised an alert: gRPC and REST list the same alerts, record for record.
    let rest_alerts = eventually(Duration::from_secs(10), || async {
        let v = rest(&d, &viewer, "/v1/alerts").await;
        (!v["items"].as_array().unwrap().is_empty()).then_some(v)
    })
    .await;
    let page = c
        .list_alerts(authed(ListAlertsRequest::default(), &viewer))
        .await
        .unwrap()
        .into_inner();
    let grpc_alerts: Vec<Value> = page.items.iter().map(|a| parse(&a.json)).collect();
    assert_eq!(&Value::Array(grpc_alerts), &rest_alerts["items"]);
    assert_eq!(page.items[0].trace_id, trace);
    assert!(
        page.items[0].subject.contains("203.0.113.7"),
        "{:?}",
        page.items[0]
    );
    // Filters mean the same: by trace, and a bad value is refused naming the field.
    let by_trace = c
        .list_alerts(authed(
            ListAlertsRequest {
                trace_id: trace.clone(),
                ..Default::default()
            },
            &viewer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        by_trace.items.len(),
        rest_alerts["items"].as_array().unwrap().len()
    );
    let e = c
        .list_alerts(authed(
            ListAlertsRequest {
                severity: "apocalyptic".into(),
                ..Default::default()
            },
            &viewer,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("`severity`"), "{e:?}");

    // Decisions: one added through gRPC, one through REST; both APIs list both, the same.
    let added = c
        .add_decision(authed(add, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.kind, "block_ip");
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"ip": "198.51.100.10", "duration": "2h", "reason": "rest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rest_rec: Value = r.json().await.unwrap();
    let rest_list = rest(&d, &viewer, "/v1/decisions").await;
    let grpc_list = c
        .list_decisions(authed(ListDecisionsRequest::default(), &viewer))
        .await
        .unwrap()
        .into_inner();
    let grpc_list: Vec<Value> = grpc_list.items.iter().map(|a| parse(&a.json)).collect();
    assert_eq!(Value::Array(grpc_list.clone()), rest_list["items"]);
    let ids: Vec<&str> = grpc_list
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&added.id.as_str()) && ids.contains(&rest_rec["id"].as_str().unwrap()));
    // Paged as REST pages it: one at a time, the same records in the same order, then the end.
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .list_decisions(authed(
                ListDecisionsRequest {
                    cursor: cursor.clone(),
                    limit: 1,
                },
                &viewer,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.items.len() <= 1);
        walked.extend(page.items.iter().map(|a| parse(&a.json)));
        match page.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
        assert!(walked.len() <= grpc_list.len(), "the walk never ends");
    }
    assert_eq!(walked, grpc_list);
    // A bad decision is refused with REST's words.
    let e = c
        .add_decision(authed(
            AddDecisionRequest {
                ip: Some("198.51.100.11".into()),
                duration: "soon".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("`duration`"), "{e:?}");

    // Actions: the same through both.
    let rest_actions = rest(&d, &viewer, "/v1/actions").await;
    let grpc_actions = c
        .list_actions(authed(ListActionsRequest::default(), &viewer))
        .await
        .unwrap()
        .into_inner();
    let grpc_actions: Vec<Value> = grpc_actions.items.iter().map(|a| parse(&a.json)).collect();
    assert_eq!(Value::Array(grpc_actions), rest_actions["items"]);

    // Delete the REST one through gRPC: REST no longer lists it.
    let removed = c
        .delete_decision(authed(
            DeleteDecisionRequest {
                selector: Some(Selector::Ip("198.51.100.10".into())),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.items.len(), 1);
    assert_eq!(removed.items[0].id, rest_rec["id"].as_str().unwrap());
    let after = rest(&d, &viewer, "/v1/decisions").await;
    assert!(
        after["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != rest_rec["id"]),
        "{after}"
    );

    // The live stream delivered the alert and the decisions' actions as stored (REST's JSON).
    let mut got_alert = None;
    let mut got_actions = std::collections::HashSet::new();
    let want_alert = rest_alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got_alert.is_none() || !got_actions.contains(&added.id) {
        let next = tokio::time::timeout_at(deadline, live.message())
            .await
            .expect("the stream delivered in time")
            .unwrap()
            .expect("the stream stays open");
        match next.item.unwrap() {
            Item::Alert(a) => {
                if a.id == want_alert {
                    assert_eq!(parse(&a.json), rest_alerts["items"][0]);
                    got_alert = Some(a);
                }
            }
            Item::Action(a) => {
                got_actions.insert(a.id.clone());
            }
        }
    }
    drop(live);

    // Live streams have a cap of their own (64): the next one is refused at once, counted, while
    // unary calls still pass (streams never hold the in-flight slots).
    let mut open = Vec::new();
    let refused = loop {
        match c.stream(authed(StreamRequest::default(), &viewer)).await {
            Ok(s) => open.push(s.into_inner()),
            Err(e) => break e,
        }
        assert!(open.len() <= 64, "the streams cap did not hold");
    };
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(open.len(), 64);
    c.list_alerts(authed(ListAlertsRequest::default(), &viewer))
        .await
        .unwrap();
    drop(open);

    // Refusals were counted where REST's are, and by reason.
    let m = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |line_start: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line_start} missing:\n{m}"))
    };
    assert_eq!(
        metric("sentinel_api_grpc_refused_total{reason=\"unauthenticated\"}"),
        3.0
    );
    assert_eq!(
        metric("sentinel_api_grpc_refused_total{reason=\"permission_denied\"}"),
        3.0
    );
    assert!(metric("sentinel_auth_failures_total") >= 3.0);
    assert_eq!(
        metric("sentinel_api_grpc_refused_total{reason=\"streams\"}"),
        1.0
    );

    // A stream open when Sentinel stops ends with a reason (it does not hold the shutdown), and the
    // address file goes with the server.
    let mut last = c
        .stream(authed(StreamRequest::default(), &viewer))
        .await
        .unwrap()
        .into_inner();
    let grpc_addr = d.data().join("grpc.addr");
    let (_dir, out) = d.stop();
    let end = tokio::time::timeout(Duration::from_secs(10), last.message())
        .await
        .expect("the stream ended");
    let e = end.expect_err("ended with a status");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("stopping"), "{e:?}");
    assert!(!out.contains("grpc_stop_timeout"), "{out}");
    assert!(!grpc_addr.exists());
}

/// The value of `series` (name and labels, as rendered) in a Prometheus text answer.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A new key of `role`, made by the admin over REST.
async fn new_key(d: &Daemon, role: &str) -> String {
    let r = d
        .client()
        .post(d.url("/v1/keys"))
        .bearer_auth(&d.key)
        .json(&serde_json::json!({ "name": format!("grpc-{role}"), "role": role }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["key"].as_str().unwrap().to_owned()
}

/// The REST edge's rate limits hold over gRPC, with the same budget: a flood on one key is refused
/// with `RESOURCE_EXHAUSTED` and a retry hint while another key goes on, the key's REST requests are
/// refused too (one budget for both APIs), and the refusals are counted.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_applies_the_rest_rate_limits_per_key_and_per_address() {
    let dir = tempfile::tempdir().unwrap();
    // Loopback is exempt from the limit per address by default: only the limit per key is in play.
    // One request an hour after a burst of 5: the refusals below cannot depend on timing.
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "api:\n  grpc_listen: 127.0.0.1:0\n  rate_limit:\n    per_key: { rate: 1/h, burst: 5 }\n",
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let flooder = new_key(&d, "viewer").await;
    let other = new_key(&d, "viewer").await;
    let mut c = client(&d).await;

    let mut ok = 0;
    let mut refused = None;
    for _ in 0..20 {
        match c
            .list_alerts(authed(ListAlertsRequest::default(), &flooder))
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(ok, 5, "the burst, then refusals");
    let e = refused.expect("the flood was never refused");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let retry: u64 = e
        .metadata()
        .get("retry-after")
        .expect("a retry hint")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    assert!(e.message().contains("retry after"), "{}", e.message());
    // Every call of the key is refused now, streams as well.
    let e = c
        .stream(authed(StreamRequest::default(), &flooder))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // One budget for both APIs: the key's REST requests are refused as well.
    let r = d
        .client()
        .get(d.url("/v1/alerts"))
        .bearer_auth(&flooder)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());

    // Another key is not limited by the first one's flood.
    c.list_alerts(authed(ListAlertsRequest::default(), &other))
        .await
        .unwrap();
    let m = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Two gRPC refusals and the REST one, in the counter both APIs share.
    assert_eq!(
        sample(&m, "sentinel_api_rate_limited_total{by=\"key\"}"),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "sentinel_api_grpc_refused_total{reason=\"rate_limited\"}"
        ),
        Some(2.0),
        "{m}"
    );
    d.stop();

    // The limit per client address, checked before the key: with loopback not exempt, a flood from
    // this address is refused whatever the key (even none), over gRPC and then REST alike.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "api:\n  grpc_listen: 127.0.0.1:0\n  rate_limit:\n    per_ip: { rate: 1/h, burst: 4 }\n    exempt: []\n",
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let mut c = client(&d).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        let r = c.list_alerts(ListAlertsRequest::default()).await;
        codes.push(r.map(|_| Code::Ok).unwrap_or_else(|e| e.code()));
    }
    assert_eq!(
        codes,
        [
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::ResourceExhausted,
        ],
        "bad keys spend the address's budget, then the address is refused before any key check"
    );
    let e = c
        .list_alerts(authed(ListAlertsRequest::default(), &d.key))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    let r = d
        .client()
        .get(d.url("/v1/version"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "one budget per address for REST and gRPC");
    // Counted. `/metrics` over TCP is refused from here too: read it over the Unix socket, which
    // has no client address to limit (its peers are checked by their credentials).
    let local = reqwest::Client::builder()
        .unix_socket(d.data().join("api.sock"))
        .build()
        .unwrap();
    let m = local
        .get("http://localhost/metrics")
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&m, "sentinel_api_rate_limited_total{by=\"ip\"}"),
        Some(4.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "sentinel_api_grpc_refused_total{reason=\"rate_limited\"}"
        ),
        Some(3.0),
        "{m}"
    );
    d.stop();
}
