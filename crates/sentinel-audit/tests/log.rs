//! The running log on real files with real fsync: round trips, proofs, segment rolls, recovery from
//! torn tails, refusal of damage, concurrency and group commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_audit::files::INDEX_EVERY;
use sentinel_audit::format::{self, LogEntry};
use sentinel_audit::merkle;
use sentinel_audit::note::Verifier;
use sentinel_audit::{AuditSettings, Log, LogError};
use sentinel_core::{AuditKind, AuditRecord, Timestamp, TraceId};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const ORIGIN: &str = "sentinel/test-host";

/// Everything logged by this test binary, from any thread.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct W(&'static Mutex<Vec<u8>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sub = tracing_subscriber::fmt()
            .with_writer(move || W(buf))
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(sub).unwrap();
        buf
    })
}

fn logged_lines(containing: &str) -> Vec<String> {
    let b = logs().lock().unwrap();
    String::from_utf8_lossy(&b)
        .lines()
        .filter(|l| l.contains(containing))
        .map(str::to_owned)
        .collect()
}

fn settings(dir: &Path) -> AuditSettings {
    let mut s = AuditSettings::new(dir, ORIGIN);
    s.checkpoint_every = 64;
    s
}

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::from_millis(1_764_476_400_000 + i as i64),
        kind: AuditKind::AlertRaised,
        subject_id: format!("alert-{i}"),
        trace_id: TraceId::new(),
        summary: format!("ssh brute force number {i}"),
        content_hash: i.is_multiple_of(2).then(|| format!("{i:064x}")),
    }
}

async fn fill(log: &Log, from: u64, n: u64) {
    for i in from..from + n {
        let a = log.append(record(i)).await.unwrap();
        assert_eq!(a.seq, i);
    }
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

fn check_records(log: &Log, n: u64) {
    let got = log.read(0, n as usize + 10).unwrap();
    assert_eq!(got.len() as u64, n);
    for (i, e) in got.iter().enumerate() {
        let want = record(i as u64);
        assert_eq!(e.seq, i as u64);
        assert_eq!(e.entry.seq, i as u64);
        assert_eq!(e.entry.subject_id, want.subject_id);
        assert_eq!(e.entry.summary, want.summary);
        assert_eq!(e.entry.content_hash, want.content_hash);
        assert_eq!(e.leaf, merkle::leaf_hash(&e.entry.to_payload()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_append_reopen_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    // Created: the key (0600), its public half, and a signed checkpoint of the empty tree.
    let mode = fs::metadata(dir.join("key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let v = Verifier::parse(&fs::read_to_string(dir.join("key.pub")).unwrap()).unwrap();
    assert_eq!(v.to_text(), log.verifier_key());
    let first = log.latest_checkpoint();
    assert_eq!(first.checkpoint.size, 0);
    assert_eq!(first.checkpoint.root, merkle::empty_root());
    v.verify(&first.text).unwrap();

    fill(&log, 0, 100).await;
    assert_eq!(log.size(), 100);
    check_records(&log, 100);
    let last = task.finish().await.unwrap();
    assert_eq!(last.checkpoint.size, 100);
    assert!(matches!(
        log.append(record(100)).await,
        Err(LogError::Closed)
    ));

    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    assert_eq!(log.size(), 100);
    assert_eq!(log.latest_checkpoint(), last);
    assert_eq!(log.verifier_key(), v.to_text());
    check_records(&log, 100);
    assert_eq!(log.append(record(100)).await.unwrap().seq, 100);
    // Proofs over records from before and after the reopen verify.
    let cp = log.checkpoint_now().await.unwrap();
    assert_eq!(cp.checkpoint.size, 101);
    for seq in [0u64, 5, 99, 100] {
        let leaf = log.read(seq, 1).unwrap()[0].leaf;
        let proof = log.inclusion_proof(seq, 101).unwrap();
        merkle::verify_inclusion(seq, 101, &leaf, &proof, &cp.checkpoint.root).unwrap();
    }
    let proof = log.consistency_proof(100, 101).unwrap();
    merkle::verify_consistency(100, 101, &proof, &last.checkpoint.root, &cp.checkpoint.root)
        .unwrap();
    // Reads of one record in the middle, and past the end.
    let one = log.read(37, 1).unwrap();
    assert_eq!((one.len(), one[0].seq), (1, 37));
    assert!(log.read(102, 1).is_err());
    assert!(log.read(101, 5).unwrap().is_empty());
    assert!(log.inclusion_proof(0, 102).is_err());
    assert!(log.consistency_proof(5, 102).is_err());
    task.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_from_the_running_log_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let mut s = settings(&dir);
    s.checkpoint_every = 37;
    let (log, task) = Log::open(s).await.unwrap();
    let v = Verifier::parse(&log.verifier_key()).unwrap();
    let mut rx = log.subscribe_checkpoints();
    fill(&log, 0, 300).await;
    let now = log.checkpoint_now().await.unwrap();
    assert_eq!(now.checkpoint.size, 300);
    assert_eq!(rx.borrow_and_update().checkpoint.size, 300);
    // Asking again without new records answers the same checkpoint.
    assert_eq!(log.checkpoint_now().await.unwrap(), now);

    let cps = log.checkpoints(0, 1000).unwrap();
    assert!(cps.len() >= 300 / 37, "{} checkpoints", cps.len());
    assert_eq!(cps[0].checkpoint.size, 0);
    assert_eq!(cps.last().unwrap(), &now);
    let entries = log.read(0, 300).unwrap();
    for c in &cps {
        v.verify(&c.text).unwrap();
        let n = c.checkpoint.size;
        assert_eq!(log.checkpoint_at(n).unwrap().as_ref(), Some(c));
        assert_eq!(log.root_at(n).unwrap(), c.checkpoint.root);
        for seq in (0..n).step_by(7) {
            let proof = log.inclusion_proof(seq, n).unwrap();
            merkle::verify_inclusion(
                seq,
                n,
                &entries[seq as usize].leaf,
                &proof,
                &c.checkpoint.root,
            )
            .unwrap();
            // A proof of another record's leaf fails.
            if n > 1 {
                let other = &entries[((seq + 1) % n) as usize].leaf;
                assert!(
                    merkle::verify_inclusion(seq, n, other, &proof, &c.checkpoint.root).is_err()
                );
            }
        }
        for o in &cps {
            let m = o.checkpoint.size;
            if m <= n {
                let proof = log.consistency_proof(m, n).unwrap();
                merkle::verify_consistency(m, n, &proof, &o.checkpoint.root, &c.checkpoint.root)
                    .unwrap();
            }
        }
    }
    assert_eq!(log.checkpoint_at(5).unwrap(), None);
    assert_eq!(log.checkpoints(38, 2).unwrap().len(), 2);
    assert!(log.checkpoints(38, 2).unwrap()[0].checkpoint.size >= 38);
    task.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_segments_roll_and_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let mut s = settings(&dir);
    s.segment_bytes = 4096;
    let (log, task) = Log::open(s.clone()).await.unwrap();
    // Batches of concurrent appends, so rolls happen inside batches too.
    let mut n = 0u64;
    for _ in 0..20 {
        let mut pend = Vec::new();
        for _ in 0..50 {
            pend.push(log.submit(record(n)).await.unwrap());
            n += 1;
        }
        for p in pend {
            p.await.unwrap();
        }
    }
    assert_eq!(log.size(), 1000);
    let seg_dir = dir.join("segments");
    let segs = fs::read_dir(&seg_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "seg")
        .count();
    let idxs = fs::read_dir(&seg_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "idx")
        .count();
    assert!(segs > 50, "{segs} segments");
    assert_eq!(idxs, segs - 1, "every sealed segment has an index");
    for f in fs::read_dir(&seg_dir).unwrap() {
        let len = f.unwrap().metadata().unwrap().len();
        assert!(len <= 4096, "a segment of {len} bytes");
    }
    check_records(&log, 1000);
    for seq in [0u64, 1, 255, 256, 257, 511, 999] {
        assert_eq!(log.read(seq, 1).unwrap()[0].seq, seq);
    }
    task.finish().await.unwrap();

    // Reopen uses the indexes; one removed is rebuilt.
    let any_idx = fs::read_dir(&seg_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().unwrap() == "idx")
        .unwrap();
    fs::remove_file(&any_idx).unwrap();
    let (log, task) = Log::open(s).await.unwrap();
    assert!(any_idx.exists());
    assert_eq!(log.size(), 1000);
    check_records(&log, 1000);
    let cp = task.finish().await.unwrap();
    assert_eq!(cp.checkpoint.size, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_segment_is_read_through_its_sparse_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    let n = INDEX_EVERY * 3 + 5;
    let mut pend = Vec::new();
    for i in 0..n {
        pend.push(log.submit(record(i)).await.unwrap());
    }
    for p in pend {
        p.await.unwrap();
    }
    for seq in [0, INDEX_EVERY - 1, INDEX_EVERY, 2 * INDEX_EVERY + 3, n - 1] {
        let got = log.read(seq, 3).unwrap();
        assert_eq!(got[0].seq, seq);
        assert_eq!(got[0].entry.subject_id, format!("alert-{seq}"));
    }
    task.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_off_and_logged_and_acknowledged_records_stay() {
    let _ = logs();
    for (name, tail) in [
        ("garbage", {
            let mut g = vec![0xAB; 100];
            g[..8].copy_from_slice(&60u64.to_le_bytes());
            g
        }),
        ("partial", {
            let mut b = Vec::new();
            format::encode_frame(60, &LogEntry::new(60, record(60)).to_payload(), &mut b);
            b.truncate(b.len() - 10);
            b
        }),
        ("zeros", vec![0u8; 7]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        let (log, task) = Log::open(settings(&dir)).await.unwrap();
        fill(&log, 0, 60).await;
        task.finish().await.unwrap();
        let seg = last_segment(&dir);
        let good = fs::metadata(&seg).unwrap().len();
        append_bytes(&seg, &tail);

        let (log, task) = Log::open(settings(&dir)).await.unwrap();
        assert_eq!(log.size(), 60, "{name}");
        assert_eq!(fs::metadata(&seg).unwrap().len(), good, "{name}");
        let lines = logged_lines(&seg.display().to_string());
        assert!(
            lines.iter().any(|l| l.contains("audit_tail_truncated")
                && l.contains(&format!("bytes={}", tail.len()))
                && l.contains("records=60")),
            "{name}: {lines:?}"
        );
        check_records(&log, 60);
        assert_eq!(log.append(record(60)).await.unwrap().seq, 60);
        check_records(&log, 61);
        let cp = task.finish().await.unwrap();
        Verifier::parse(&log.verifier_key())
            .unwrap()
            .verify(&cp.text)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_before_good_records_refuses_to_open_and_names_where() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    fill(&log, 0, 40).await;
    task.finish().await.unwrap();
    let seg = last_segment(&dir);
    let bytes = fs::read(&seg).unwrap();
    // Find record 10's frame.
    let mut off = format::HEADER_LEN;
    for _ in 0..10 {
        off = format::decode_frame(&bytes, off).unwrap().unwrap().end;
    }
    let mut bad = bytes.clone();
    bad[off + format::FRAME_HEAD + 5] ^= 0x20;
    fs::write(&seg, &bad).unwrap();
    match Log::open(settings(&dir)).await {
        Err(LogError::Corrupt {
            file, offset, seq, ..
        }) => {
            assert_eq!(file, seg.display().to_string());
            assert_eq!((offset, seq), (off as u64, 10));
        }
        other => panic!("opened over damage: {other:?}"),
    }
    // Nothing was cut.
    assert_eq!(fs::read(&seg).unwrap(), bad);

    // A gap (record 10 removed whole) is refused too.
    let end10 = format::decode_frame(&bytes, off).unwrap().unwrap().end;
    let mut gap = bytes[..off].to_vec();
    gap.extend_from_slice(&bytes[end10..]);
    fs::write(&seg, &gap).unwrap();
    match Log::open(settings(&dir)).await {
        Err(LogError::Corrupt { seq, why, .. }) => {
            assert_eq!(seq, 10, "{why}");
        }
        other => panic!("opened over a gap: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_checkpoint_covers_may_not_go_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    fill(&log, 0, 30).await;
    assert_eq!(log.checkpoint_now().await.unwrap().checkpoint.size, 30);
    task.finish().await.unwrap();
    let seg = last_segment(&dir);
    let bytes = fs::read(&seg).unwrap();
    let mut off = format::HEADER_LEN;
    for _ in 0..25 {
        off = format::decode_frame(&bytes, off).unwrap().unwrap().end;
    }
    // Cut at a frame boundary: the file looks clean, but 5 signed records are gone.
    fs::write(&seg, &bytes[..off]).unwrap();
    let err = Log::open(settings(&dir)).await.unwrap_err();
    assert!(matches!(err, LogError::Mismatch(_)), "{err}");
    assert!(err.to_string().contains("30"), "{err}");

    // Records replaced by others (still well framed) do not match the signed root.
    let mut forged = bytes[..off].to_vec();
    for i in 25..30u64 {
        let mut r = record(i);
        r.summary = "nothing happened".into();
        format::encode_frame(i, &LogEntry::new(i, r).to_payload(), &mut forged);
    }
    fs::write(&seg, &forged).unwrap();
    fs::remove_file(dir.join("hashes")).unwrap();
    let err = Log::open(settings(&dir)).await.unwrap_err();
    assert!(matches!(err, LogError::Mismatch(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashes_file_is_derived_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    fill(&log, 0, 200).await;
    let cp = task.finish().await.unwrap();
    let good = fs::read(dir.join("hashes")).unwrap();
    for damage in ["remove", "short", "long"] {
        match damage {
            "remove" => fs::remove_file(dir.join("hashes")).unwrap(),
            "short" => fs::write(dir.join("hashes"), &good[..good.len() - 100]).unwrap(),
            _ => {
                let mut b = good.clone();
                b.extend_from_slice(&[7u8; 96]);
                fs::write(dir.join("hashes"), &b).unwrap();
            }
        }
        let (log, task) = Log::open(settings(&dir)).await.unwrap();
        assert_eq!(fs::read(dir.join("hashes")).unwrap(), good, "{damage}");
        let leaf = log.read(123, 1).unwrap()[0].leaf;
        let proof = log.inclusion_proof(123, 200).unwrap();
        merkle::verify_inclusion(123, 200, &leaf, &proof, &cp.checkpoint.root).unwrap();
        task.finish().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_checkpoint_is_cut_off_and_a_bad_key_name_refused() {
    let _ = logs();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    fill(&log, 0, 10).await;
    let cp = task.finish().await.unwrap();
    let cpf = dir.join("checkpoints");
    let good = fs::read(&cpf).unwrap();
    let mut torn = Vec::new();
    format::encode_frame(11, cp.text.as_bytes(), &mut torn);
    torn.truncate(torn.len() / 2);
    append_bytes(&cpf, &torn);
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    assert_eq!(fs::read(&cpf).unwrap(), good);
    assert_eq!(log.latest_checkpoint(), cp);
    assert!(logged_lines(&cpf.display().to_string())
        .iter()
        .any(|l| l.contains("audit_checkpoints_tail_truncated")));
    task.finish().await.unwrap();

    // A lost key is not silently replaced: the log's checkpoints were signed with it.
    let key = fs::read(dir.join("key")).unwrap();
    fs::remove_file(dir.join("key")).unwrap();
    let err = Log::open(settings(&dir)).await.unwrap_err();
    assert!(err.to_string().contains("key is missing"), "{err}");
    assert!(!dir.join("key").exists());
    fs::write(dir.join("key"), key).unwrap();
    fs::set_permissions(dir.join("key"), fs::Permissions::from_mode(0o600)).unwrap();

    let mut other = settings(&dir);
    other.origin = "sentinel/other-host".into();
    let err = Log::open(other).await.unwrap_err();
    assert!(matches!(err, LogError::Key(_)), "{err}");
    assert!(err.to_string().contains("sentinel/other-host"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_distinct_contiguous_seqs_in_shared_fsyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let mut s = settings(&dir);
    s.checkpoint_every = 1_000_000;
    let (log, task) = Log::open(s).await.unwrap();
    let before = log.stats().snapshot();
    let tasks = 64u64;
    let each = 100u64;
    let mut joins = Vec::new();
    for t in 0..tasks {
        let log = log.clone();
        joins.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..each {
                let r = record(t * 1000 + i);
                let a = log.append(r).await.unwrap();
                got.push((a.seq, t * 1000 + i, a.leaf));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for j in joins {
        all.extend(j.await.unwrap());
    }
    all.sort_by_key(|a| a.0);
    let seqs: Vec<u64> = all.iter().map(|a| a.0).collect();
    assert_eq!(seqs, (0..tasks * each).collect::<Vec<_>>());
    // Each seq holds the record its appender was told.
    let stored = log.read(0, (tasks * each) as usize).unwrap();
    for (a, e) in all.iter().zip(&stored) {
        assert_eq!(e.entry.subject_id, format!("alert-{}", a.1));
        assert_eq!(e.leaf, a.2);
    }
    let st = log.stats().snapshot();
    let appends = st.appends - before.appends;
    let batches = st.batches - before.batches;
    assert_eq!(appends, tasks * each);
    assert!(
        batches * 4 < appends,
        "{batches} batches for {appends} appends"
    );
    assert!(st.fsyncs - before.fsyncs <= batches * 2 + 2);
    assert_eq!(st.failures, 0);
    task.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_seam_appends_and_checkpoints_follow_the_interval() {
    use sentinel_core::AuditLog;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let mut s = settings(&dir);
    s.checkpoint_every = 1_000_000;
    s.checkpoint_interval = Duration::from_millis(100);
    let (log, task) = Log::open(s).await.unwrap();
    let seam: &dyn AuditLog = &log;
    let r = seam.append(record(0)).await.unwrap();
    assert!(r.committed_at.as_millis() > 0);
    seam.append_queued(record(1)).await.unwrap();
    let mut rx = log.subscribe_checkpoints();
    // The interval signs a checkpoint of both without being asked.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if rx.borrow_and_update().checkpoint.size == 2 {
                break;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    let before = log.stats().snapshot().checkpoints;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        log.stats().snapshot().checkpoints,
        before,
        "no checkpoint without new records"
    );
    check_records(&log, 2);
    task.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_fails_its_batch_and_refuses_appends_until_reopened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let mut s = settings(&dir);
    s.segment_bytes = 4096;
    let (log, task) = Log::open(s.clone()).await.unwrap();
    // A second writer on the same log is refused.
    let err = Log::open(s.clone()).await.unwrap_err();
    assert!(err.to_string().contains("another writer"), "{err}");
    // Directories where the next segments would go: the roll cannot create its file.
    let seg_dir = dir.join("segments");
    for i in 1..100u64 {
        fs::create_dir(seg_dir.join(format::segment_name(i))).unwrap();
    }
    let mut acked = 0u64;
    let failed = loop {
        match log.append(record(acked)).await {
            Ok(a) => {
                assert_eq!(a.seq, acked);
                acked += 1;
            }
            Err(e) => break e,
        }
        assert!(acked < 100, "no roll happened");
    };
    assert!(matches!(failed, LogError::Write(_)), "{failed}");
    assert!(
        failed.to_string().contains(&format::segment_name(acked)),
        "{failed}"
    );
    assert!(matches!(
        log.append(record(acked)).await,
        Err(LogError::Poisoned)
    ));
    let st = log.stats().snapshot();
    assert_eq!((st.appends, st.failures), (acked, 2));
    assert_eq!(log.size(), acked);
    check_records(&log, acked);
    let _ = task.finish().await;

    for i in 1..100u64 {
        fs::remove_dir(seg_dir.join(format::segment_name(i))).unwrap();
    }
    let (log, task) = Log::open(s).await.unwrap();
    assert_eq!(log.size(), acked);
    check_records(&log, acked);
    assert_eq!(log.append(record(acked)).await.unwrap().seq, acked);
    task.finish().await.unwrap();
}

/// A signing key owned by another user (a log directory handed over, or planted): that user can
/// read the key and sign checkpoints over any history, so the log does not open with it.
/// Changing a file's owner needs root; elsewhere there is nothing to set up and the test stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_owned_by_another_user_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    log.append(record(0)).await.unwrap();
    drop(log);
    task.finish().await.unwrap();
    let key = dir.join("key");
    let me = fs::metadata(&key).unwrap().uid();
    if std::os::unix::fs::chown(&key, Some(65534), None).is_err() {
        eprintln!("not root: cannot give the key to another user; nothing to check");
        return;
    }
    let Err(err) = Log::open(settings(&dir)).await else {
        panic!("opened with a key another user owns");
    };
    assert!(
        matches!(
            &err,
            LogError::Key(sentinel_audit::keyfile::KeyError::Owner { owner: 65534, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    std::os::unix::fs::chown(&key, Some(me), None).unwrap();
    let (log, task) = Log::open(settings(&dir)).await.unwrap();
    assert_eq!(log.size(), 1);
    drop(log);
    task.finish().await.unwrap();
}

/// An archive interrupted after writing a segment's compressed copy and before removing the original
/// leaves both: the log still opens on the original (warning about the copy), as the offline reader
/// reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_archive_leaves_a_log_that_opens() {
    let _ = logs();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let mut s = settings(&dir);
    s.segment_bytes = 4096;
    let (log, task) = Log::open(s.clone()).await.unwrap();
    fill(&log, 0, 200).await;
    drop(log);
    task.finish().await.unwrap();
    let first = dir
        .join("segments")
        .join(sentinel_audit::format::segment_name(0));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    use std::io::Write as _;
    gz.write_all(&fs::read(&first).unwrap()).unwrap();
    let copy = first.with_extension("seg.gz");
    fs::write(&copy, gz.finish().unwrap()).unwrap();

    let (log, task) = Log::open(s).await.unwrap();
    assert_eq!(log.size(), 200);
    check_records(&log, 200);
    assert!(copy.exists(), "the copy is left for the archive to finish");
    assert!(!logged_lines("audit_segment_shadowed").is_empty());
    drop(log);
    task.finish().await.unwrap();
}
