//! A client's saved checkpoints against the log on disk (`VerifyOptions::pinned`): an attacker who
//! owns the host and its signing key can roll the whole log back to an older copy, or rewrite it
//! from some point and sign fresh checkpoints; the log then agrees with itself, and only a
//! checkpoint saved earlier shows it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_audit::format::{self, LogEntry, HEADER_LEN};
use sentinel_audit::merkle::{self, CompactRange};
use sentinel_audit::note::{Checkpoint, Signer};
use sentinel_audit::reader::LogDir;
use sentinel_audit::testlog::{BuiltLog, TestLog};
use sentinel_audit::verify::{verify, PinnedProblem, VerifyError, VerifyOptions};
use std::path::Path;

fn build(data: &Path, n: u64) -> BuiltLog {
    TestLog::new()
        .segment_records(40)
        .checkpoint_every(25)
        .write(data, n)
        .unwrap()
}

fn pinned(
    b: &BuiltLog,
    pins: Vec<Checkpoint>,
) -> Result<sentinel_audit::verify::Report, VerifyError> {
    verify(
        &b.dir,
        &b.verifier(),
        &VerifyOptions {
            pinned: pins,
            ..VerifyOptions::default()
        },
    )
}

/// Rewrites record `seq` (valid CRC), the hashes file and every checkpoint (signed again with the
/// log's own key): what someone holding the key does to change history.
fn fork_at(b: &BuiltLog, seq: u64, signer: &Signer) {
    let seg = b
        .dir
        .join("segments")
        .join(format::segment_name(seq / 40 * 40));
    let bytes = std::fs::read(&seg).unwrap();
    let mut out = bytes[..HEADER_LEN].to_vec();
    let mut pos = HEADER_LEN;
    while let Ok(Some(f)) = format::decode_frame(&bytes, pos) {
        let mut p = f.payload.to_vec();
        if f.seq == seq {
            let mut e = LogEntry::from_payload(&p).unwrap();
            e.summary = "nothing happened".into();
            p = e.to_payload();
        }
        format::encode_frame(f.seq, &p, &mut out);
        pos = f.end;
    }
    std::fs::write(&seg, out).unwrap();
    let log = LogDir::open(&b.dir).unwrap();
    let mut range = CompactRange::new();
    let mut hashes = Vec::new();
    let mut cps = format::checkpoints_header().to_vec();
    let sign = |range: &CompactRange, cps: &mut Vec<u8>| {
        let s = signer.sign(&Checkpoint {
            origin: signer.name().to_owned(),
            size: range.size(),
            root: range.root(),
            time_ms: 1_800_000_000_000 + range.size(),
        });
        format::encode_frame(range.size(), s.text.as_bytes(), cps);
    };
    sign(&range, &mut cps);
    for r in log.records(0) {
        for h in range.push(merkle::leaf_hash(&r.unwrap().payload)) {
            hashes.extend_from_slice(&h);
        }
        if range.size().is_multiple_of(25) {
            sign(&range, &mut cps);
        }
    }
    std::fs::write(b.dir.join("hashes"), hashes).unwrap();
    std::fs::write(b.dir.join("checkpoints"), cps).unwrap();
}

#[test]
fn the_log_verifies_against_its_own_saved_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path(), 200);
    let pins = vec![
        b.checkpoints[0].checkpoint.clone(),
        b.checkpoints[8].checkpoint.clone(),
        b.checkpoints[3].checkpoint.clone(),
    ];
    assert_eq!(pinned(&b, pins).unwrap().records, 200);
}

#[test]
fn a_log_rolled_back_to_an_older_copy_fails_against_a_later_saved_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let new = build(&tmp.path().join("new"), 200);
    let saved = new.checkpoints.last().unwrap().checkpoint.clone();
    assert_eq!(saved.size, 200);
    // The attacker puts back a copy taken at 150 records: it verifies on its own.
    let old = build(&tmp.path().join("old"), 150);
    assert!(pinned(&old, vec![]).is_ok());
    let e = pinned(&old, vec![old.checkpoints[2].checkpoint.clone(), saved]).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Pinned {
                index: 1,
                size: 200,
                problem: PinnedProblem::Beyond { records: 150 }
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("rolled back"), "{e}");
}

#[test]
fn a_log_rewritten_and_signed_again_with_its_own_key_fails_against_a_saved_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path(), 200);
    let saved_early = b.checkpoints[2].checkpoint.clone(); // size 50
    let saved_late = b.checkpoints[6].checkpoint.clone(); // size 150
    fork_at(&b, 120, &b.signer);
    // The rewritten log agrees with itself: every checkpoint is signed by the same key.
    assert_eq!(pinned(&b, vec![]).unwrap().records, 200);
    // The saved checkpoint before the edit still holds; the one after names the fork.
    let e = pinned(&b, vec![saved_early, saved_late]).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::Pinned {
                index: 1,
                size: 150,
                problem: PinnedProblem::RootMismatch
            }
        ),
        "{e:?}"
    );
}
