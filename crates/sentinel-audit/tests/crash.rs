//! Crash test: a child process (this test binary, re-run in the child role) appends under load from
//! many concurrent appenders and prints every acknowledged seq; the parent kills it with SIGKILL at a
//! random moment, reopens the log, and checks that every acknowledged record is there with its
//! content, that proofs from the recovered log verify, and that its latest checkpoint verifies with
//! the key. Many rounds on the same log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::Rng;
use sentinel_audit::merkle;
use sentinel_audit::note::Verifier;
use sentinel_audit::{AuditSettings, Log};
use sentinel_core::{AuditKind, AuditRecord, Timestamp, TraceId};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "SENTINEL_AUDIT_CRASH_CHILD";
const ORIGIN: &str = "sentinel/crash-test";

fn settings(dir: &Path) -> AuditSettings {
    let mut s = AuditSettings::new(dir, ORIGIN);
    // Small segments and frequent checkpoints, so kills land in rolls and signing too.
    s.segment_bytes = 64 << 10;
    s.checkpoint_every = 200;
    s.checkpoint_interval = Duration::from_millis(50);
    s.max_batch = 512;
    s
}

fn record(round: u32, task: u32, i: u32) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::from_millis(1_764_476_400_000),
        kind: AuditKind::ActionChanged,
        subject_id: format!("r{round}-t{task}-i{i}"),
        trace_id: TraceId::new(),
        summary: format!("round {round} task {task} append {i}"),
        content_hash: None,
    }
}

/// The child: appends until killed, printing `ACK <seq> <subject_id>` once each append is durable.
#[test]
fn crash_child_role() {
    let Ok(dir) = std::env::var(ROLE) else {
        return; // not the child: nothing to do
    };
    let round: u32 = std::env::var("CRASH_ROUND").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (log, _task) = Log::open(settings(Path::new(&dir))).await.unwrap();
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
        println!("READY");
        let mut joins = Vec::new();
        for t in 0..64u32 {
            let log = log.clone();
            let stdout = stdout.clone();
            joins.push(tokio::spawn(async move {
                for i in 0.. {
                    let r = record(round, t, i);
                    let id = r.subject_id.clone();
                    let a = log.append(r).await.unwrap();
                    let line = format!("ACK {} {id}\n", a.seq);
                    let mut out = stdout.lock().unwrap();
                    out.write_all(line.as_bytes()).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let exe = std::env::current_exe().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut prev_cp: Option<(u64, merkle::Hash)> = None;
    let started = Instant::now();
    let mut truncated = 0;
    let rounds = 30u32;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_role",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, &dir)
            .env("CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.ends_with("READY") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                // A line cut by the kill has no id yet; any whole ACK line counts.
                let mut parts = line.split(' ');
                if let (Some("ACK"), Some(seq), Some(id), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                {
                    if let Ok(seq) = seq.parse::<u64>() {
                        got.push((seq, id.to_owned()));
                    }
                }
            }
            got
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the child opened the log");
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..=300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = reader.join().unwrap();
        for (seq, id) in got {
            assert!(id.starts_with(&format!("r{round}-")), "{seq} {id}");
            if let Some(old) = acked.insert(seq, id.clone()) {
                panic!("seq {seq} acknowledged twice: {old} and {id}");
            }
        }

        // Reopen: every acknowledged record is there, proofs verify, the checkpoint verifies.
        let acked_now = acked.clone();
        let prev = prev_cp;
        let dir2 = dir.clone();
        let last_round = round + 1 == rounds;
        let before = dir_bytes(&dir.join("segments"));
        let cp = rt.block_on(async move {
            let (log, task) = Log::open(settings(&dir2)).await.unwrap();
            let size = log.size();
            let max = acked_now.keys().next_back().copied();
            assert!(
                max.is_none_or(|m| m < size),
                "size {size}, acknowledged {max:?}"
            );
            // This round's acknowledgements (read in one go) and a sample of earlier ones now; all
            // of them in the last round.
            let mut rng = rand::thread_rng();
            let prefix = format!("r{round}-");
            let lo = match last_round {
                true => 0,
                false => acked_now
                    .iter()
                    .find(|(_, id)| id.starts_with(&prefix))
                    .map_or(size, |(s, _)| *s),
            };
            let tail = log.read(lo, (size - lo) as usize).unwrap();
            assert_eq!(tail.len() as u64, size - lo);
            for (seq, id) in &acked_now {
                let e = if *seq >= lo {
                    tail[(*seq - lo) as usize].clone()
                } else if rng.gen_ratio(1, 200) {
                    log.read(*seq, 1).unwrap().remove(0)
                } else {
                    continue;
                };
                assert_eq!(&e.entry.subject_id, id, "record {seq}");
                assert_eq!(e.entry.seq, *seq);
                let i = id.rsplit("-i").next().unwrap();
                assert!(
                    e.entry.summary.ends_with(&format!("append {i}")),
                    "record {seq}"
                );
            }
            let v =
                Verifier::parse(&std::fs::read_to_string(dir2.join("key.pub")).unwrap()).unwrap();
            let latest = log.latest_checkpoint();
            v.verify(&latest.text).unwrap();
            assert_eq!(latest.checkpoint.size, size, "reopen signs what survived");
            let root = latest.checkpoint.root;
            for _ in 0..50.min(size) {
                let seq = rng.gen_range(0..size);
                let proof = log.inclusion_proof(seq, size).unwrap();
                let leaf = log.read(seq, 1).unwrap()[0].leaf;
                merkle::verify_inclusion(seq, size, &leaf, &proof, &root).unwrap();
            }
            if let Some((m, old_root)) = prev {
                let proof = log.consistency_proof(m, size).unwrap();
                merkle::verify_consistency(m, size, &proof, &old_root, &root).unwrap();
            }
            let cp = task.finish().await.unwrap();
            (cp.checkpoint.size, cp.checkpoint.root)
        });
        prev_cp = Some(cp);
        if dir_bytes(&dir.join("segments")) < before {
            truncated += 1;
        }
    }
    let n = acked.len();
    assert!(
        n > 1000,
        "only {n} appends were acknowledged in {rounds} rounds"
    );
    eprintln!(
        "{rounds} rounds, {n} acknowledged appends, final size {}, {truncated} torn tails cut, {:?}",
        prev_cp.map_or(0, |c| c.0),
        started.elapsed()
    );
}

/// The bytes of the segment files (the `.idx` files left out).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
