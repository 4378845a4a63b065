//! Enforcement benchmark (run by `bench/enforce.sh`, as root): inside network namespaces it creates,
//!
//! 1. decide → live in the kernel: for 1,000 alerts, the time from the investigation entering the decide
//!    stage (policy matrix) through the ledger applying `block_ip` until `nft` has committed the element;
//!    p50/p99, through the table's resident `nft -i` session, then (the baseline, same process) with a
//!    table that spawns `nft -f -` per transaction, and the ratio.
//! 2. one batch of 100,000 addresses applied in a single nft transaction;
//! 3. lookups with 1,000,000 elements in the set: TCP connect latency from a (not blocked) source to the
//!    victim, p50/p99 over 2,000 connects, with an empty set and with the full one.
//!
//! Addresses: the namespaces use 192.0.2.0/24 and 2001:db8::/32; blocked elements come from
//! 203.0.113.0/24 and 2001:db8:100::/40. Nothing touches the host's own ruleset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{
    ActionKind, ActionSpec, Alert, AlertId, Investigation, InvestigationId, Mode, Policy, Severity,
    Subject, Timestamp, TraceId,
};
use sentinel_respond::actuators::nft::{FilterHook, NftBlockIp, NftTable};
use sentinel_respond::{
    ActionTemplate, Allowlist, Band, Bands, Ledger, LedgerConfig, MatrixRule, PolicyMatrix,
    Responder,
};
use sentinel_testkit::netns::Lan;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn investigation(ip: IpAddr) -> Investigation {
    let alert = Alert {
        id: AlertId::new(),
        ts: Timestamp::now(),
        detector: "bench".into(),
        scenario: "ssh_bruteforce".into(),
        severity: Severity::High,
        score: 80,
        confidence: 0.9,
        subject: Subject::Ip(ip),
        reasons: vec![],
        evidence: vec![],
        trace_id: TraceId::new(),
    };
    Investigation {
        id: InvestigationId::new(),
        ts: Timestamp::now(),
        trace_id: alert.trace_id.clone(),
        alert,
        evidence: vec![],
        risk_score: 85,
        confidence: 0.9,
        uncertainty: vec![],
        contributions: vec![],
    }
}

const CONNECT_TIMES_PY: &str = r#"
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ts = []
for _ in range(n):
    t = time.perf_counter()
    c = socket.create_connection((host, port), timeout=2)
    ts.append((time.perf_counter() - t) * 1e6)
    c.close()
ts.sort()
print(ts[len(ts) // 2], ts[int(len(ts) * 0.99)])
"#;

#[tokio::main]
async fn main() {
    let lan = Lan::new(&["victim", "client"]).unwrap();
    let victim = lan.hub();
    let client = lan.host("client").unwrap();
    let _listener = victim.ns.listen_tcp(victim.sock_v4(8080), "v").unwrap();
    let table = NftTable::new("sentinel")
        .unwrap()
        .in_netns(victim.ns.name())
        .unwrap()
        .with_hooks(&[FilterHook::Input, FilterHook::Forward])
        .unwrap();
    table.ensure().await.unwrap();

    // 1. decide → kernel, 1,000 decisions.
    let policy = PolicyMatrix::new(
        vec![MatrixRule {
            name: "block".into(),
            severity: vec![Severity::High, Severity::Critical],
            risk: vec![Band::High],
            confidence: vec![Band::High, Band::Medium],
            actions: vec![ActionTemplate {
                kind: ActionKind::BlockIp,
                ttl: Duration::from_secs(3600),
                params: sentinel_core::ActionParams::none(ActionKind::BlockIp),
            }],
        }],
        Bands {
            medium: 40.0,
            high: 70.0,
        },
        Bands {
            medium: 0.5,
            high: 0.8,
        },
        Mode::Enforce,
    );
    let resident = decide_to_kernel(&policy, &table, 0).await;
    let spawned = decide_to_kernel(&policy, &table.clone().without_session(), 1).await;
    println!(
        "decide_to_kernel_ms resident_session p50={:.3} p99={:.3} n=1000",
        resident.0, resident.1
    );
    println!(
        "decide_to_kernel_ms spawn_per_batch p50={:.3} p99={:.3} n=1000 (baseline)",
        spawned.0, spawned.1
    );
    println!(
        "decide_to_kernel ratio resident/spawn p50={:.3} p99={:.3} session_restarts={}",
        resident.0 / spawned.0,
        resident.1 / spawned.1,
        table.session_restarts()
    );
    run_rest(&table, client, victim).await;
}

/// 1,000 decisions through the ledger onto `table`, each a fresh address (`round` picks the range);
/// (p50, p99) in ms.
async fn decide_to_kernel(policy: &PolicyMatrix, table: &NftTable, round: u16) -> (f64, f64) {
    let ledger = Ledger::new(
        Responder::new(Allowlist::new([])).with_actuator(Box::new(NftBlockIp::new(table.clone()))),
        LedgerConfig::default(),
    );
    let mut lat = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let ip = if i < 250 && round == 0 {
            IpAddr::from([203, 0, 113, (i % 250) as u8])
        } else {
            IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 0x100, round, 0, 0, 0, i as u16,
            ))
        };
        let inv = investigation(ip);
        let t = Instant::now();
        let plan = policy.decide(&inv);
        let recs = ledger.execute(&plan).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            recs[0].state,
            sentinel_core::ActionState::Applied,
            "{:?}",
            recs[0].error
        );
    }
    (pct(&mut lat.clone(), 0.5), pct(&mut lat, 0.99))
}

async fn run_rest(
    table: &NftTable,
    client: &sentinel_testkit::netns::Host,
    victim: &sentinel_testkit::netns::Host,
) {
    // Empty set for the lookup baseline.
    table
        .run("flush set inet sentinel blocked_v4\nflush set inet sentinel blocked_v6\n")
        .await
        .unwrap();
    let baseline = client
        .ns
        .run(
            "python3",
            &[
                "-c",
                CONNECT_TIMES_PY,
                &victim.v4.to_string(),
                "8080",
                "2000",
            ],
        )
        .unwrap();

    // 2. + 3. one batch of 100,000, then up to 1,000,000 elements.
    let block = NftBlockIp::new(table.clone());
    let mut batch_secs = Vec::new();
    for b in 0..10u32 {
        let specs: Vec<ActionSpec> = (0..100_000u32)
            .map(|i| {
                let n = b * 100_000 + i;
                ActionSpec {
                    kind: ActionKind::BlockIp,
                    subject: Subject::Ip(IpAddr::V6(Ipv6Addr::new(
                        0x2001,
                        0xdb8,
                        0x1ff,
                        0,
                        0,
                        0,
                        (n >> 16) as u16,
                        n as u16,
                    ))),
                    ttl_secs: 3600,
                    params: sentinel_core::ActionParams::none(ActionKind::BlockIp),
                }
            })
            .collect();
        let t = Instant::now();
        let res = block.apply_batch(&specs).await;
        batch_secs.push(t.elapsed().as_secs_f64());
        assert!(res.iter().all(|r| r.is_ok()));
    }
    println!(
        "batch_100k_s first={:.3} median_of_10={:.3}",
        batch_secs[0],
        pct(&mut batch_secs.clone(), 0.5)
    );
    let full = client
        .ns
        .run(
            "python3",
            &[
                "-c",
                CONNECT_TIMES_PY,
                &victim.v4.to_string(),
                "8080",
                "2000",
            ],
        )
        .unwrap();
    let b: Vec<f64> = baseline
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let f: Vec<f64> = full
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    println!("connect_us empty_set p50={:.1} p99={:.1}", b[0], b[1]);
    println!(
        "connect_us 1M_elements p50={:.1} p99={:.1} (ratio p50 {:.2})",
        f[0],
        f[1],
        f[0] / b[0]
    );
    table.remove().await.unwrap();
}
