//! Archiving sealed segments keeps the log verifiable and its proofs working, whether the compressed
//! segments stay in the directory or are moved away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_audit::archive::{archive, ArchiveError};
use sentinel_audit::format::{self, HEADER_LEN};
use sentinel_audit::merkle;
use sentinel_audit::reader::LogDir;
use sentinel_audit::testlog::{test_entry, BuiltLog, TestLog};
use sentinel_audit::verify::{verify, CheckpointProblem, VerifyError, VerifyOptions};
use std::path::Path;

/// 200 records, 40 a segment (0, 40, 80, 120, 160), a checkpoint every 25.
fn build(tmp: &Path) -> BuiltLog {
    TestLog::new()
        .segment_records(40)
        .checkpoint_every(25)
        .write(tmp, 200)
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Proofs from the stored hashes, checked against the signed checkpoints.
fn proofs_work(b: &BuiltLog) {
    let log = LogDir::open(&b.dir).unwrap();
    let hashes = log.stored_hashes().unwrap();
    let last = b.checkpoints.last().unwrap().checkpoint.clone();
    for seq in [0u64, 10, 39, 40, 119, 150, 199] {
        let p = merkle::inclusion_proof(seq, last.size, &hashes).unwrap();
        merkle::verify_inclusion(seq, last.size, &b.leaves[seq as usize], &p, &last.root).unwrap();
    }
    let old = b.checkpoints[2].checkpoint.clone(); // size 50
    let p = merkle::consistency_proof(old.size, last.size, &hashes).unwrap();
    merkle::verify_consistency(old.size, last.size, &p, &old.root, &last.root).unwrap();
}

#[test]
fn archived_in_place_the_log_verifies_and_reads_and_proofs_work() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let seg_dir = b.dir.join("segments");
    let r = archive(&b.dir, 120, None).unwrap();
    assert_eq!(
        r.archived
            .iter()
            .map(|a| (a.first_seq, a.end_seq))
            .collect::<Vec<_>>(),
        vec![(0, 40), (40, 80), (80, 120)]
    );
    assert!(r.archived.iter().all(|a| a.compressed_bytes < a.bytes));
    assert_eq!(
        files(&seg_dir),
        vec![
            "00000000000000000000.seg.gz",
            "00000000000000000040.seg.gz",
            "00000000000000000080.seg.gz",
            "00000000000000000120.seg",
            "00000000000000000160.seg",
        ]
    );
    let rep = verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!(
        (rep.records, rep.records_read, rep.compressed_segments),
        (200, 200, 3)
    );
    assert!(rep.archived_elsewhere.is_empty());
    let rec = LogDir::open(&b.dir)
        .unwrap()
        .records(45)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((rec.seq, rec.entry), (45, test_entry(45)));
    proofs_work(&b);

    // Again: nothing more to do below 120; everything below u64::MAX except the last segment.
    assert!(archive(&b.dir, 120, None).unwrap().archived.is_empty());
    let r = archive(&b.dir, u64::MAX, None).unwrap();
    assert_eq!(
        r.archived.iter().map(|a| a.first_seq).collect::<Vec<_>>(),
        vec![120]
    );
    assert!(
        seg_dir.join(format::segment_name(160)).exists(),
        "the last segment stays"
    );
    verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap();
}

#[test]
fn moved_away_the_checkpoints_are_still_checked_through_the_stored_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let dest = tmp.path().join("cold");
    archive(&b.dir, 80, None).unwrap(); // some compressed in place first
    let r = archive(&b.dir, 160, Some(&dest)).unwrap();
    assert_eq!(
        r.archived.iter().map(|a| a.first_seq).collect::<Vec<_>>(),
        vec![0, 40, 80, 120]
    );
    assert_eq!(files(&dest).len(), 4);
    assert_eq!(
        files(&b.dir.join("segments")),
        vec!["00000000000000000160.seg"]
    );
    let rep = verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!(rep.records, 200);
    assert_eq!(rep.records_read, 40);
    assert_eq!(rep.archived_elsewhere, vec![0..160]);
    proofs_work(&b);

    // The moved segments are whole: put back, they verify as records again.
    for f in files(&dest) {
        std::fs::copy(dest.join(&f), b.dir.join("segments").join(&f)).unwrap();
    }
    let rep = verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!((rep.records_read, rep.compressed_segments), (200, 4));
}

#[test]
fn with_the_archive_moved_away_a_changed_hashes_file_still_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    archive(&b.dir, 120, Some(&tmp.path().join("cold"))).unwrap();
    let path = b.dir.join("hashes");
    let orig = std::fs::read(&path).unwrap();

    // One leaf hash changed: the hash above it no longer matches.
    let mut bytes = orig.clone();
    bytes[merkle::stored_hash_index(0, 10) as usize * 32] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap_err();
    assert!(matches!(e, VerifyError::Hashes { record: 11, .. }), "{e:?}");

    // The hashes rewritten consistently from a changed leaf: the signed checkpoint catches it.
    let mut leaves = b.leaves.clone();
    leaves[10][0] ^= 1;
    let mut range = merkle::CompactRange::new();
    let mut out = Vec::new();
    for l in leaves {
        for h in range.push(l) {
            out.extend_from_slice(&h);
        }
    }
    std::fs::write(&path, &out).unwrap();
    let e = verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Checkpoint {
                index: 1,
                size: 25,
                problem: CheckpointProblem::RootMismatch { archived: true }
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "checkpoint 1 (size 25): root hash does not match the stored hashes of the archived records"
    );
}

#[test]
fn only_checkpointed_whole_segments_are_archived_and_damaged_ones_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let b = TestLog::new()
        .segment_records(40)
        .checkpoint_every(50)
        .final_checkpoint(false)
        .write(tmp.path(), 130)
        .unwrap();
    // The latest checkpoint covers 100 records: segment 80..120 is not covered yet.
    let r = archive(&b.dir, 1000, None).unwrap();
    assert_eq!(r.limit, 100);
    assert_eq!(
        r.archived.iter().map(|a| a.first_seq).collect::<Vec<_>>(),
        vec![0, 40]
    );

    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let seg = b.dir.join("segments").join(format::segment_name(40));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[HEADER_LEN + 40] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let e = archive(&b.dir, 200, None).unwrap_err();
    assert!(
        matches!(e, ArchiveError::Damaged { ref segment, .. } if segment == "segments/00000000000000000040.seg"),
        "{e:?}"
    );
    // The damaged segment was left as it is, the one before it archived.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
    assert!(b
        .dir
        .join("segments")
        .join("00000000000000000000.seg.gz")
        .exists());
}

#[test]
fn nothing_is_moved_away_that_the_hashes_file_cannot_stand_in_for() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let dest = tmp.path().join("cold");
    let path = b.dir.join("hashes");
    let orig = std::fs::read(&path).unwrap();

    // Short (the daemon rebuilds it when it opens the log): nothing leaves.
    std::fs::write(&path, &orig[..merkle::stored_hash_count(30) as usize * 32]).unwrap();
    let e = archive(&b.dir, 200, Some(&dest)).unwrap_err();
    assert!(
        matches!(e, ArchiveError::Hashes { ref segment, .. } if segment == "segments/00000000000000000000.seg"),
        "{e:?}"
    );
    assert!(b
        .dir
        .join("segments")
        .join(format::segment_name(0))
        .exists());

    // A stored leaf that is not the record's: that segment stays, the one before it went.
    let mut bytes = orig.clone();
    bytes[merkle::stored_hash_index(0, 50) as usize * 32] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = archive(&b.dir, 200, Some(&dest)).unwrap_err();
    assert!(e.to_string().contains("record 50"), "{e}");
    assert_eq!(files(&dest), vec!["00000000000000000000.seg.gz"]);
    assert!(b
        .dir
        .join("segments")
        .join(format::segment_name(40))
        .exists());

    // Repaired, the rest goes and the log verifies.
    std::fs::write(&path, &orig).unwrap();
    archive(&b.dir, 200, Some(&dest)).unwrap();
    let rep = verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap();
    assert_eq!(rep.archived_elsewhere, vec![0..160]);
}

/// Archived segments hold the same records as the private data directory: whatever the umask, every
/// file archiving writes is 0600 and a directory it creates for `--to` is 0700.
#[test]
fn archived_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    // Under the usual umask (022) a plain new file is 0644: archiving must not inherit that.
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    assert_ne!(
        mode(&probe),
        0o600,
        "a umask that already makes files private proves nothing"
    );

    archive(&b.dir, 80, None).unwrap();
    let seg_dir = b.dir.join("segments");
    for name in ["00000000000000000000.seg.gz", "00000000000000000040.seg.gz"] {
        assert_eq!(mode(&seg_dir.join(name)), 0o600, "{name}");
    }
    let cold = tmp.path().join("cold/deeper");
    archive(&b.dir, 120, Some(&cold)).unwrap();
    assert_eq!(mode(&cold), 0o700);
    for name in files(&cold) {
        assert_eq!(mode(&cold.join(&name)), 0o600, "{name}");
    }
    assert_eq!(files(&cold).len(), 3);
    assert_eq!(mode(&b.dir.join("archived")), 0o600);
    verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap();
}

/// A segment compressed in place and later moved away is listed where it is now (the later line of the
/// append-only list), and every location is absolute, whatever directory `archive` ran in.
#[test]
fn the_archived_list_names_where_each_segment_is_now() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    archive(&b.dir, 80, None).unwrap();
    let cold = tmp.path().join("cold");
    archive(&b.dir, 80, Some(&cold)).unwrap();
    let list = LogDir::open(&b.dir).unwrap().archived().unwrap();
    let got: Vec<(u64, u64, std::path::PathBuf)> = list
        .iter()
        .map(|a| (a.first_seq, a.end_seq, a.location.clone()))
        .collect();
    let cold = std::fs::canonicalize(&cold).unwrap();
    assert_eq!(
        got,
        vec![
            (0, 40, cold.join("00000000000000000000.seg.gz")),
            (40, 80, cold.join("00000000000000000040.seg.gz")),
        ]
    );
    assert!(got.iter().all(|(_, _, p)| p.is_absolute() && p.exists()));
    verify(&b.dir, &b.verifier(), &VerifyOptions::default()).unwrap();
}
