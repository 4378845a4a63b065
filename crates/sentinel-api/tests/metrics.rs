//! `/metrics` through the router: the whole exposition, with every kind of metric Sentinel keeps in it, is
//! read by a strict parser of the Prometheus text format, and its samples say what happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{filler_event, get, harness, send};
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use sentinel_pipeline::intake::Submission;
use sentinel_pipeline::metrics::{SessionReading, SourceReading, Stage};

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// The value of the sample of `family` with exactly these labels (a histogram's: its count).
fn value(e: &Exposition, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let f = e.families.get(family)?;
    let names = f.get_label_names();
    if names.len() != labels.len() {
        return None;
    }
    let values = names
        .iter()
        .map(|n| {
            labels
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| (*v).to_owned())
        })
        .collect::<Option<Vec<String>>>()?;
    match &f.get_sample_by_label_values(&values)?.value {
        PrometheusValue::Counter(c) => Some(c.value.as_f64()),
        PrometheusValue::Gauge(g) => Some(g.as_f64()),
        PrometheusValue::Histogram(h) => h.count.map(|c| c as f64),
        _ => None,
    }
}

fn kind(e: &Exposition, family: &str) -> Option<PrometheusType> {
    e.families.get(family).map(|f| f.family_type.clone())
}

#[tokio::test]
async fn the_whole_exposition_parses_and_counts_what_happened() {
    let h = harness().await;
    let m = &h.state.metrics;
    // What the daemon wires: the intake queue, a store writer, a log source with a fail2ban filter.
    m.register_queue("intake", &h.state.intake);
    let (writer, _task) = h.store.writer(sentinel_store::WriterOptions::default());
    m.store_writer.set(writer.monitor()).unwrap();
    m.log_sources
        .register("file:/var/log/auth.log", || SourceReading {
            lines_read: 5,
            ..SourceReading::default()
        });
    m.fail2ban_filters
        .register("file:/var/log/auth.log", "sshd", || SessionReading {
            live: 2,
            ..SessionReading::default()
        });
    m.source_lines
        .counts("file:/var/log/auth.log", "sshd")
        .matched
        .add(4);
    m.by_scenario.add("alerts_by_scenario", "ssh_bruteforce", 1);
    m.by_reason
        .add("log_lines_unparsed_by_reason", "no_match", 1);
    m.stage_latency(Stage::Investigate).observe(0.2);
    for _ in 0..3 {
        h.state
            .intake
            .try_send(Submission::telemetry(filler_event(), None, None, None))
            .unwrap();
    }
    let refused = send(&h.app, get("/metrics", Some("not-a-key"))).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let r = send(&h.app, get("/metrics", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body.clone()).unwrap();
    let e = match openmetrics_parser::prometheus::parse_prometheus(&text) {
        Ok(e) => e,
        Err(err) => panic!("/metrics does not parse: {err:?}\n{text}"),
    };
    // One TYPE line per family.
    let mut types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    let all = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), all, "{text}");

    let counters = [
        ("sentinel_auth_failures_total", &[][..], 1.0),
        ("sentinel_http_requests_total", &[][..], 1.0),
        ("sentinel_events_accepted_total", &[][..], 0.0),
        ("sentinel_log_lines_read_total", &[][..], 5.0),
        (
            "sentinel_source_lines_read_total",
            &[("source", "file:/var/log/auth.log")][..],
            5.0,
        ),
        (
            "sentinel_source_lines_matched_total",
            &[("source", "file:/var/log/auth.log"), ("filter", "sshd")][..],
            4.0,
        ),
        (
            "sentinel_alerts_by_scenario_total",
            &[("scenario", "ssh_bruteforce")][..],
            1.0,
        ),
        (
            "sentinel_log_lines_unparsed_by_reason_total",
            &[("reason", "no_match")][..],
            1.0,
        ),
        ("sentinel_store_records_dropped_total", &[][..], 0.0),
    ];
    for (family, labels, want) in counters {
        assert_eq!(kind(&e, family), Some(PrometheusType::Counter), "{family}");
        assert_eq!(value(&e, family, labels), Some(want), "{family}: {text}");
    }
    let gauges = [
        ("sentinel_intake_queue_depth", &[][..], 3.0),
        ("sentinel_queue_depth", &[("queue", "intake")][..], 3.0),
        (
            "sentinel_queue_capacity",
            &[("queue", "intake")][..],
            1024.0,
        ),
        (
            "sentinel_fail2ban_sessions_live",
            &[("source", "file:/var/log/auth.log"), ("filter", "sshd")][..],
            2.0,
        ),
        ("sentinel_store_batch_records_max", &[][..], 0.0),
    ];
    for (family, labels, want) in gauges {
        assert_eq!(kind(&e, family), Some(PrometheusType::Gauge), "{family}");
        assert_eq!(value(&e, family, labels), Some(want), "{family}: {text}");
    }
    for family in [
        "sentinel_stage_latency_seconds",
        "sentinel_store_batch_records",
    ] {
        assert_eq!(
            kind(&e, family),
            Some(PrometheusType::Histogram),
            "{family}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} histogram\n")),
            "{text}"
        );
    }
    for stage in Stage::ALL {
        let want = if stage == Stage::Investigate {
            1.0
        } else {
            0.0
        };
        assert_eq!(
            value(
                &e,
                "sentinel_stage_latency_seconds",
                &[("stage", stage.as_str())]
            ),
            Some(want),
            "{stage:?}: {text}"
        );
    }
    assert_eq!(value(&e, "sentinel_store_batch_records", &[]), Some(0.0));
}
