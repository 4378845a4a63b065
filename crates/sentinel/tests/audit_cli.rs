//! `sentinel audit verify|show|tail|archive` and `sentinel backup`, run as the real binary over audit
//! logs written by the real `sentinel_audit::Log` (real files, real fsync) in temporary directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sentinel_audit::format::{self, LogEntry};
use sentinel_audit::merkle::{self, Hash};
use sentinel_audit::note::{Signer, Verifier};
use sentinel_audit::reader::LogDir;
use sentinel_audit::{AuditSettings, Log};
use sentinel_core::{AuditKind, AuditRecord, Timestamp, TraceId};
use sentinel_store::{AuditRow, Record, Store, WriterOptions};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const ORIGIN: &str = "sentinel/cli-test";

fn settings(data: &Path) -> AuditSettings {
    let mut s = AuditSettings::new(data.join("audit"), ORIGIN);
    s.checkpoint_every = 64;
    // Small segments: a few hundred records span several of them.
    s.segment_bytes = 16 * 1024;
    s
}

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::from_millis(1_764_476_400_000 + i as i64),
        kind: if i.is_multiple_of(2) {
            AuditKind::AlertRaised
        } else {
            AuditKind::PlanDecided
        },
        subject_id: format!("alert-{i}"),
        trace_id: TraceId::new(),
        summary: format!("ssh brute force number {i}"),
        content_hash: i.is_multiple_of(3).then(|| format!("{i:064x}")),
    }
}

/// Appends records `from..from + n` to the log in `data/audit` (created on first use), with a
/// checkpoint at the end (the log signs one when it finishes).
async fn append(data: &Path, from: u64, n: u64) {
    let (log, task) = Log::open(settings(data)).await.unwrap();
    assert_eq!(log.size(), from);
    for i in from..from + n {
        assert_eq!(log.append(record(i)).await.unwrap().seq, i);
    }
    drop(log);
    task.finish().await.unwrap();
}

/// A temporary directory with a data directory `data` holding a log of `n` records.
fn with_log(n: u64) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    runtime().block_on(append(&data, 0, n));
    (tmp, data)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sentinel(cwd: &Path, args: &[&str]) -> Output {
    common::command(cwd).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn key_pub(data: &Path) -> String {
    std::fs::read_to_string(data.join("audit/key.pub"))
        .unwrap()
        .trim()
        .to_owned()
}

fn checkpoint_sizes(data: &Path) -> Vec<u64> {
    let log = LogDir::open(&data.join("audit")).unwrap();
    log.checkpoints()
        .unwrap()
        .frames
        .iter()
        .map(|f| f.size)
        .collect()
}

fn last_segment(data: &Path) -> PathBuf {
    let log = LogDir::open(&data.join("audit")).unwrap();
    log.segments().last().unwrap().path.clone()
}

fn unhex(s: &str) -> Hash {
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[test]
fn verify_passes_with_a_summary_and_json_report() {
    let (tmp, data) = with_log(300);
    let d = data.to_str().unwrap();
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("records:       300"), "{out}");
    let sizes = checkpoint_sizes(&data);
    assert!(sizes.len() >= 5, "{sizes:?}");
    assert!(
        out.contains(&format!("checkpoints:   {}", sizes.len())),
        "{out}"
    );
    assert!(out.contains("latest:        size 300"), "{out}");
    assert!(out.contains("not yet checkpointed: none"), "{out}");
    // Without --key the key comes from the directory: said clearly.
    assert!(
        err.contains("proves only that the log agrees with itself"),
        "{err}"
    );

    // JSON, with the key given as text and with several threads.
    let key = key_pub(&data);
    let o = sentinel(
        tmp.path(),
        &[
            "audit",
            "verify",
            "--data-dir",
            d,
            "--key",
            &key,
            "--threads",
            "3",
            "--json",
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(!err.contains("agrees with itself"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], 300);
    assert_eq!(v["checkpoints"], sizes.len());
    assert_eq!(v["latest_checkpoint"]["size"], 300);
    assert_eq!(v["key"], key.as_str());
    assert!(v["segments"].as_u64().unwrap() > 1, "{v}");

    // A usage error is exit 2; a missing log directory too.
    let o = sentinel(
        tmp.path(),
        &["audit", "verify", "--data-dir", d, "--threads", "0"],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", "nowhere"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
}

#[test]
fn a_flipped_byte_fails_verify_naming_the_record() {
    let (tmp, data) = with_log(300);
    let d = data.to_str().unwrap();
    let log = LogDir::open(&data.join("audit")).unwrap();
    let r = log.record(123).unwrap().unwrap();
    let path = data.join("audit").join(&r.segment);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[r.offset as usize + 16 + 20] ^= 0x01; // inside record 123's payload
    std::fs::write(&path, &bytes).unwrap();

    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("FAILED"), "{err}");
    assert!(err.contains("record 123 "), "{err}");
    assert!(err.contains(&r.segment), "{err}");
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["record"], 123);
    assert_eq!(v["segment"], r.segment.as_str());

    // A file removed from the log directory: the log is incomplete (1), not a usage error.
    std::fs::remove_file(data.join("audit/checkpoints")).unwrap();
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(text(&o).1.contains("checkpoints"), "{:?}", text(&o));
}

#[test]
fn a_replaced_key_fails_verify_unless_the_real_key_is_given() {
    let (tmp, data) = with_log(200);
    let d = data.to_str().unwrap();
    let real = key_pub(&data);
    let real_file = tmp.path().join("noted.pub");
    std::fs::write(&real_file, format!("{real}\n")).unwrap();
    let other = Signer::generate(ORIGIN).unwrap().verifier().to_text();
    std::fs::write(data.join("audit/key.pub"), format!("{other}\n")).unwrap();

    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("checkpoint 0 (size 0)"), "{err}");
    assert!(err.contains("no signature by the verifier key"), "{err}");

    // The key noted elsewhere, as a file or as text: the log itself is intact and passes, and the
    // replaced key.pub is reported.
    for key in [real_file.to_str().unwrap(), real.as_str()] {
        let o = sentinel(
            tmp.path(),
            &["audit", "verify", "--data-dir", d, "--key", key],
        );
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
        assert!(out.contains("records:       200"), "{out}");
        assert!(out.contains("it was replaced"), "{out}");
    }
    // A --key that is neither a file nor a key is a usage error.
    let o = sentinel(
        tmp.path(),
        &["audit", "verify", "--data-dir", d, "--key", "no-such-key"],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn show_prints_a_record_and_a_proof_that_verifies() {
    let (tmp, data) = with_log(300);
    let d = data.to_str().unwrap();
    let o = sentinel(
        tmp.path(),
        &["audit", "show", "201", "--proof", "--json", "--data-dir", d],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["seq"], 201);
    assert_eq!(v["entry"]["subject_id"], "alert-201");
    assert_eq!(v["verified"], true);
    // Checked here independently: the entry's payload gives the leaf, the proof leads from it to the
    // root of the checkpoint, whose signature verifies with the log's key.
    let entry: LogEntry = serde_json::from_value(v["entry"].clone()).unwrap();
    let leaf = merkle::leaf_hash(&entry.to_payload());
    assert_eq!(v["leaf_hash"], hex(&leaf));
    let proof: Vec<Hash> = v["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    let verifier = Verifier::parse(&key_pub(&data)).unwrap();
    let cp = verifier
        .verify(v["checkpoint"].as_str().unwrap())
        .unwrap()
        .checkpoint;
    assert_eq!(cp.size, 300);
    assert_eq!(v["tree_size"], 300);
    merkle::verify_inclusion(201, cp.size, &leaf, &proof, &cp.root).unwrap();
    let mut wrong = proof.clone();
    wrong[0][0] ^= 1;
    assert!(merkle::verify_inclusion(201, cp.size, &leaf, &wrong, &cp.root).is_err());

    // The human form says what it checked.
    let o = sentinel(
        tmp.path(),
        &["audit", "show", "201", "--proof", "--data-dir", d],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("leaf hash: {}", hex(&leaf))), "{out}");
    let last = checkpoint_sizes(&data).len() - 1;
    assert!(
        out.contains(&format!(
            "proof verifies against checkpoint {last} (size 300) signed by {}",
            key_pub(&data)
        )),
        "{out}"
    );
    for h in &proof {
        assert!(out.contains(&hex(h)), "{out}");
    }
    // A record that is not there.
    let o = sentinel(tmp.path(), &["audit", "show", "300", "--data-dir", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("no record 300"), "{:?}", text(&o));

    // A whole record after the latest checkpoint: shown, but no proof yet (exit 1, said why), and
    // verify counts it as not yet checkpointed.
    let mut frame = Vec::new();
    format::encode_frame(
        300,
        &LogEntry::new(300, record(300)).to_payload(),
        &mut frame,
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(last_segment(&data))
        .unwrap();
    f.write_all(&frame).unwrap();
    let o = sentinel(tmp.path(), &["audit", "show", "300", "--data-dir", d]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains("alert-300"), "{:?}", text(&o));
    let o = sentinel(
        tmp.path(),
        &["audit", "show", "300", "--proof", "--data-dir", d],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("alert-300"), "{out}");
    assert!(err.contains("not covered by a checkpoint yet"), "{err}");
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("not yet checkpointed: 1 record(s), 300..301"),
        "{out}"
    );
    assert!(
        out.contains("warning: the stored hashes") || out.contains("warning: the hashes file"),
        "{out}"
    );
}

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn seqs(out: &str) -> Vec<u64> {
    out.lines()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn tail_prints_the_last_records() {
    let (tmp, data) = with_log(300);
    let d = data.to_str().unwrap();
    let o = sentinel(tmp.path(), &["audit", "tail", "-n", "3", "--data-dir", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert_eq!(seqs(&out), vec![297, 298, 299]);
    let line = out.lines().last().unwrap();
    assert!(line.contains("plan_decided"), "{line}");
    assert!(line.contains("ssh brute force number 299"), "{line}");
    assert!(line.contains("2025-11-30T04:20:00.299Z"), "{line}");
    // The default is 10, across a segment boundary when needed; more than there are is all of them.
    let o = sentinel(tmp.path(), &["audit", "tail", "--data-dir", d]);
    assert_eq!(seqs(&text(&o).0), (290..300).collect::<Vec<_>>());
    let o = sentinel(
        tmp.path(),
        &["audit", "tail", "-n", "1000", "--data-dir", d],
    );
    assert_eq!(seqs(&text(&o).0), (0..300).collect::<Vec<_>>());
}

#[test]
fn tail_follow_sees_appends_across_segment_rolls_and_stops_on_sigterm() {
    let (tmp, data) = with_log(100);
    let mut child = common::command(tmp.path())
        .args(["audit", "tail", "-n", "2", "-f", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |rx: &mpsc::Receiver<String>| -> u64 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a line within 20 s");
        line.split('\t').next().unwrap().parse().unwrap()
    };
    assert_eq!(next(&rx), 98);
    assert_eq!(next(&rx), 99);
    // Appended after it started: one record, then enough to roll to new segments.
    runtime().block_on(append(&data, 100, 1));
    assert_eq!(next(&rx), 100);
    let segments_before = LogDir::open(&data.join("audit")).unwrap().segments().len();
    runtime().block_on(append(&data, 101, 150));
    assert!(LogDir::open(&data.join("audit")).unwrap().segments().len() > segments_before);
    for want in 101..251 {
        assert_eq!(next(&rx), want);
    }
    // A frame the writer is still writing is "not yet": nothing is printed until it is whole.
    let mut frame = Vec::new();
    format::encode_frame(
        251,
        &LogEntry::new(251, record(251)).to_payload(),
        &mut frame,
    );
    let seg = last_segment(&data);
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&frame[..frame.len() / 2]).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(800)).is_err());
    f.write_all(&frame[frame.len() / 2..]).unwrap();
    assert_eq!(next(&rx), 251);
    // SIGTERM: a clean stop.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");

    // Ctrl-C (SIGINT) too.
    let mut child = common::command(tmp.path())
        .args(["audit", "tail", "-n", "1", "-f", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("251\t"), "{first}");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn archived_segments_still_verify_in_place_and_moved_away() {
    let (tmp, data) = with_log(400);
    let d = data.to_str().unwrap();
    let o = sentinel(
        tmp.path(),
        &["audit", "archive", "--before", "150", "--data-dir", d],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("records 0.."), "{out}");
    assert!(out.contains("segment(s) archived"), "{out}");
    let gz = LogDir::open(&data.join("audit"))
        .unwrap()
        .segments()
        .iter()
        .filter(|s| s.compressed)
        .count();
    assert!(gz >= 1, "{out}");
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d, "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["records"], 400);
    assert_eq!(v["compressed_segments"], gz);

    // Moved out of the directory: checked through the stored hashes.
    let away = tmp.path().join("cold");
    let o = sentinel(
        tmp.path(),
        &[
            "audit",
            "archive",
            "--before",
            "250",
            "--to",
            away.to_str().unwrap(),
            "--data-dir",
            d,
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(std::fs::read_dir(&away).unwrap().count() >= 1);
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("archived elsewhere: 0.."), "{out}");
    assert!(out.contains("records:       400"), "{out}");
    // Nothing left below the limit: said, not silent.
    let o = sentinel(
        tmp.path(),
        &["audit", "archive", "--before", "1", "--data-dir", d],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).0.contains("nothing to archive"), "{:?}", text(&o));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The backup runs while a log appends continuously and the store indexes each record after the log
/// made it durable (as the daemon's recorder does).
#[test]
fn backup_while_writing_is_consistent_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dest = tmp.path().join("backup");
    let rt = runtime();
    let _in_runtime = rt.enter();
    let (log, task) = rt.block_on(Log::open(settings(&data))).unwrap();
    let store = rt.block_on(Store::open(&data.join("sentinel.db"))).unwrap();
    let (writer, wtask) = store.writer(WriterOptions {
        queue_capacity: 1024,
        batch_size: 32,
        flush_interval: Duration::from_millis(2),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(log);
    let mut feeders = Vec::new();
    for _ in 0..2 {
        let (log, writer, stop) = (log.clone(), writer.clone(), stop.clone());
        feeders.push(rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = record(n);
                let a = log.append(r.clone()).await.unwrap();
                writer
                    .write(Record::Audit(AuditRow::logged(a.seq, r)))
                    .await
                    .unwrap();
                n += 1;
            }
        }));
    }
    while log.size() < 600 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = sentinel(
        tmp.path(),
        &[
            "backup",
            dest.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let written_during = log.size();
    stop.store(true, Ordering::Relaxed);
    for f in feeders {
        rt.block_on(f).unwrap();
    }
    drop(writer);
    rt.block_on(wtask.finish()).unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("the copy verifies"), "{out}");
    assert!(out.contains("SIGNING KEY"), "{out}");
    assert!(written_during > 600);
    // Only the store and the log: no API key files, no SQLite side files left behind.
    let mut names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["audit", "sentinel.db"]);

    // The copy verifies with the CLI, against the original log's key.
    let key = key_pub(&data);
    let o = sentinel(
        tmp.path(),
        &[
            "audit",
            "verify",
            "--json",
            "--key",
            &key,
            "--data-dir",
            dest.to_str().unwrap(),
        ],
    );
    let (vout, verr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{vout}\n{verr}");
    let v: Value = serde_json::from_str(&vout).unwrap();
    let copied = v["records"].as_u64().unwrap();
    assert!(copied >= 600, "{vout}");
    assert!(
        out.contains(&format!("audit log: {copied} records")),
        "{out}"
    );

    // The copied store opens, holds rows, and refers to no record past the copied log.
    let rows: Vec<(i64, String)> = rt.block_on(async {
        let copy = Store::open(&dest.join("sentinel.db")).await.unwrap();
        copy.close().await;
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
            "sqlite://{}",
            dest.join("sentinel.db").display()
        ))
        .await
        .unwrap();
        let rows = sqlx::query_as("SELECT log_seq, subject_id FROM audit ORDER BY log_seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        sqlx::Connection::close(conn).await.unwrap();
        rows
    });
    assert!(
        rows.len() > 100,
        "the copied store holds rows: {}",
        rows.len()
    );
    let max = rows.last().unwrap().0 as u64;
    assert!(max < copied, "max log_seq {max}, log {copied}");
    // Every index row names a record the copied log holds, and the same one.
    let copy_log = LogDir::open(&dest.join("audit")).unwrap();
    let by_seq: std::collections::HashMap<u64, String> = copy_log
        .records(0)
        .map(|r| {
            let r = r.unwrap();
            (r.seq, r.entry.subject_id)
        })
        .collect();
    assert_eq!(by_seq.len() as u64, copied);
    for (seq, subject) in &rows {
        assert_eq!(by_seq.get(&(*seq as u64)), Some(subject), "record {seq}");
    }

    // Private: directories 0700, files 0600 (the signing key among them).
    assert_eq!(mode(&dest), 0o700);
    assert_eq!(mode(&dest.join("audit")), 0o700);
    assert_eq!(mode(&dest.join("audit/key")), 0o600);
    for e in std::fs::read_dir(dest.join("audit/segments")).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600);
    }
    for f in [
        "sentinel.db",
        "audit/key.pub",
        "audit/hashes",
        "audit/checkpoints",
    ] {
        assert_eq!(mode(&dest.join(f)), 0o600, "{f}");
    }
    // The original log carries on and verifies; a daemon could start from the copy.
    drop(log);
    rt.block_on(task.finish()).unwrap();
    rt.block_on(store.close());
    let (copy_log, copy_task) = rt.block_on(Log::open(settings(&dest))).unwrap();
    assert_eq!(copy_log.size(), copied);
    drop(copy_log);
    rt.block_on(copy_task.finish()).unwrap();

    // A directory that is not empty is refused, and left alone.
    let o = sentinel(
        tmp.path(),
        &[
            "backup",
            dest.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("not empty"), "{:?}", text(&o));

    // A symbolic link is refused, even to an empty directory (the copy holds the signing key).
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&empty, &link).unwrap();
    let o = sentinel(
        tmp.path(),
        &[
            "backup",
            link.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("symbolic link"), "{:?}", text(&o));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // A data directory without an audit log is named as such.
    let o = sentinel(
        tmp.path(),
        &["audit", "verify", "--data-dir", empty.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no audit log in"), "{:?}", text(&o));
}

/// A half-written record frame and a half-written checkpoint frame (a writer caught mid-write, or a
/// crash) are left out of the copy, and the stored hashes are recomputed (here the original's are
/// cut short, as after a crash): the copy verifies with no torn tail, and a log opens on it.
#[test]
fn backup_leaves_out_half_written_frames_and_recomputes_the_hashes() {
    let (tmp, data) = with_log(200);
    let dest = tmp.path().join("copy");
    std::fs::create_dir(&dest).unwrap(); // an empty directory is accepted
    let mut frame = Vec::new();
    format::encode_frame(
        200,
        &LogEntry::new(200, record(200)).to_payload(),
        &mut frame,
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(last_segment(&data))
        .unwrap();
    f.write_all(&frame[..frame.len() - 7]).unwrap();
    let mut cp = Vec::new();
    format::encode_frame(300, b"origin\n300\n", &mut cp);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("audit/checkpoints"))
        .unwrap();
    f.write_all(&cp[..10]).unwrap();
    let hashes = data.join("audit/hashes");
    let len = std::fs::metadata(&hashes).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&hashes)
        .unwrap()
        .set_len(len / 2 / 32 * 32)
        .unwrap();

    let o = sentinel(
        tmp.path(),
        &[
            "backup",
            dest.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("store: none"), "{out}");
    assert!(out.contains("audit log: 200 records"), "{out}");
    let o = sentinel(
        tmp.path(),
        &[
            "audit",
            "verify",
            "--json",
            "--data-dir",
            dest.to_str().unwrap(),
        ],
    );
    let (vout, verr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{vout}\n{verr}");
    let v: Value = serde_json::from_str(&vout).unwrap();
    assert_eq!(v["records"], 200);
    assert_eq!(v["torn_tail"], Value::Null);
    assert_eq!(v["torn_checkpoint"], Value::Null);
    assert_eq!(v["stored_hashes"], v["expected_hashes"]);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{vout}"); // the key's origin only
                                                                      // The original's torn tail is reported by verify, not an error.
    let o = sentinel(
        tmp.path(),
        &[
            "audit",
            "verify",
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    );
    let v: Value = serde_json::from_str(&text(&o).0).unwrap();
    assert!(v["torn_tail"]["bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["torn_checkpoint"]["bytes"].as_u64().unwrap() > 0, "{v}");
    let rt = runtime();
    let (log, task) = rt.block_on(Log::open(settings(&dest))).unwrap();
    assert_eq!(log.size(), 200);
    drop(log);
    rt.block_on(task.finish()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn verify_against_a_saved_checkpoint_catches_a_rolled_back_log() {
    let (tmp, data) = with_log(100);
    let d = data.to_str().unwrap();
    let old_copy = tmp.path().join("old-audit");
    copy_dir(&data.join("audit"), &old_copy);
    runtime().block_on(append(&data, 100, 100));
    // What a client saved: the latest signed note, as `GET /v1/audit/checkpoint` serves it.
    let log = LogDir::open(&data.join("audit")).unwrap();
    let last = log.checkpoints().unwrap().frames.last().unwrap().clone();
    assert_eq!(last.size, 200);
    let saved = tmp.path().join("saved-200.note");
    std::fs::write(&saved, &last.text).unwrap();
    let s = saved.to_str().unwrap();

    let o = sentinel(
        tmp.path(),
        &["audit", "verify", "--data-dir", d, "--checkpoint", s],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(
        out.contains("saved:         1 checkpoint(s) consistent"),
        "{out}"
    );

    // Root puts the older copy back: it verifies on its own, not against the saved checkpoint.
    std::fs::remove_dir_all(data.join("audit")).unwrap();
    copy_dir(&old_copy, &data.join("audit"));
    let o = sentinel(tmp.path(), &["audit", "verify", "--data-dir", d]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let o = sentinel(
        tmp.path(),
        &["audit", "verify", "--data-dir", d, "--checkpoint", s],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("saved checkpoint 0 (size 200)"), "{err}");
    assert!(err.contains("holds only 100 records"), "{err}");
    assert!(err.contains("saved-200.note"), "{err}");

    // And with a new key in place (key and key.pub replaced): the saved note is not signed by it.
    let other = Signer::generate(ORIGIN).unwrap();
    std::fs::write(data.join("audit/key.pub"), other.verifier().to_text()).unwrap();
    let o = sentinel(
        tmp.path(),
        &["audit", "verify", "--data-dir", d, "--checkpoint", s],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("saved checkpoint") && err.contains("saved-200.note"),
        "{err}"
    );
}
