//! Tampering with a log on disk, the way an attacker with write access would (recomputing CRCs,
//! renumbering, rewriting derived files): verification fails and names the record or checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_audit::format::{self, LogEntry, HEADER_LEN};
use sentinel_audit::merkle::{self, CompactRange};
use sentinel_audit::note::{Checkpoint, Signer};
use sentinel_audit::reader::{parse_checkpoints, LogDir};
use sentinel_audit::testlog::{BuiltLog, TestLog};
use sentinel_audit::verify::{
    verify, CheckpointProblem, RecordProblem, VerifyError, VerifyOptions,
};
use std::path::{Path, PathBuf};

/// 200 records, 40 a segment, a checkpoint every 25 (checkpoint k has size 25k).
fn build(tmp: &Path) -> BuiltLog {
    TestLog::new()
        .segment_records(40)
        .checkpoint_every(25)
        .write(tmp, 200)
        .unwrap()
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join("segments").join(format::segment_name(first))
}

fn seg_name(first: u64) -> String {
    format!("segments/{}", format::segment_name(first))
}

fn read_frames(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while let Ok(Some(f)) = format::decode_frame(&bytes, pos) {
        out.push((f.seq, f.payload.to_vec()));
        pos = f.end;
    }
    out
}

/// Writes a segment with valid CRCs, as an attacker would.
fn write_frames(path: &Path, first: u64, frames: &[(u64, Vec<u8>)]) {
    let mut out = format::segment_header(first).to_vec();
    for (seq, p) in frames {
        format::encode_frame(*seq, p, &mut out);
    }
    std::fs::write(path, out).unwrap();
}

/// Where frame `i` of a segment starts.
fn offset_of(frames: &[(u64, Vec<u8>)], i: usize) -> u64 {
    (HEADER_LEN + frames[..i].iter().map(|(_, p)| 16 + p.len()).sum::<usize>()) as u64
}

fn edit(payload: &[u8], f: impl FnOnce(&mut LogEntry)) -> Vec<u8> {
    let mut e = LogEntry::from_payload(payload).unwrap();
    f(&mut e);
    e.to_payload()
}

/// Rewrites the hashes file from the records, as an attacker covering their tracks would.
fn rebuild_hashes(dir: &Path) {
    let log = LogDir::open(dir).unwrap();
    let mut range = CompactRange::new();
    let mut out = Vec::new();
    for r in log.records(0) {
        for h in range.push(merkle::leaf_hash(&r.unwrap().payload)) {
            out.extend_from_slice(&h);
        }
    }
    std::fs::write(dir.join("hashes"), out).unwrap();
}

fn check(b: &BuiltLog) -> Result<sentinel_audit::verify::Report, VerifyError> {
    verify(&b.dir, &b.verifier(), &VerifyOptions::default())
}

#[track_caller]
fn record_err(
    r: Result<sentinel_audit::verify::Report, VerifyError>,
) -> (u64, Option<(String, u64)>, RecordProblem, String) {
    match r {
        Err(e @ VerifyError::Record { .. }) => {
            let msg = e.to_string();
            let VerifyError::Record {
                seq,
                place,
                problem,
            } = e
            else {
                unreachable!()
            };
            (seq, place.map(|p| (p.segment, p.offset)), problem, msg)
        }
        other => panic!("expected a record error, got {other:?}"),
    }
}

#[test]
fn the_untouched_log_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let r = check(&b).unwrap();
    assert_eq!(
        (r.records, r.checkpoints, r.not_checkpointed),
        (200, 9, 200..200)
    );
}

#[test]
fn a_flipped_byte_is_named_by_its_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let path = seg_path(&b.dir, 40);
    let frames = read_frames(&path);
    let at = offset_of(&frames, 17);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize + 16 + 30] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let (seq, place, problem, msg) = record_err(check(&b));
    assert_eq!(seq, 57);
    assert_eq!(place, Some((seg_name(40), at)));
    assert!(
        matches!(problem, RecordProblem::Corrupt(ref w) if w.contains("checksum")),
        "{problem:?}"
    );
    assert!(
        msg.starts_with(&format!(
            "record 57 (segments/00000000000000000040.seg at byte {at})"
        )),
        "{msg}"
    );
}

#[test]
fn a_changed_record_with_a_valid_checksum_is_named_by_its_leaf_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let path = seg_path(&b.dir, 40);
    let mut frames = read_frames(&path);
    frames[17].1 = edit(&frames[17].1, |e| {
        e.summary = e.summary.replace("ssh", "SSH")
    });
    write_frames(&path, 40, &frames);
    let (seq, place, problem, msg) = record_err(check(&b));
    assert_eq!(seq, 57);
    assert_eq!(place, Some((seg_name(40), offset_of(&frames, 17))));
    assert_eq!(
        problem,
        RecordProblem::LeafMismatch {
            checkpoint: 3,
            size: 75,
            confirmed: true
        }
    );
    assert!(
        msg.contains("leaf hash does not match checkpoint 3 at size 75"),
        "{msg}"
    );

    // The attacker rewrites the hashes file too: the checkpoint still catches it, naming the range
    // between the checkpoints around the change.
    rebuild_hashes(&b.dir);
    let (seq, place, problem, _) = record_err(check(&b));
    assert_eq!(seq, 50);
    assert_eq!(place, Some((seg_name(40), offset_of(&frames, 10))));
    assert_eq!(
        problem,
        RecordProblem::RangeMismatch {
            end: 75,
            checkpoint: 3
        }
    );
}

#[test]
fn a_record_that_is_not_json_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let path = seg_path(&b.dir, 0);
    let mut frames = read_frames(&path);
    frames[3].1[0] = b'[';
    write_frames(&path, 0, &frames);
    let (seq, _, problem, _) = record_err(check(&b));
    assert_eq!(seq, 3);
    assert!(matches!(problem, RecordProblem::BadEntry(_)), "{problem:?}");
}

#[test]
fn a_deleted_record_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let path = seg_path(&b.dir, 40);
    let frames = read_frames(&path);
    let mut cut = frames.clone();
    cut.remove(17);
    write_frames(&path, 40, &cut);
    let (seq, place, problem, msg) = record_err(check(&b));
    assert_eq!(seq, 57);
    assert_eq!(place, Some((seg_name(40), offset_of(&frames, 17))));
    assert_eq!(problem, RecordProblem::Missing { next: Some(58) });
    assert!(
        msg.starts_with("record 57 missing") && msg.contains("next record is 58"),
        "{msg}"
    );

    // Renumbered after the cut (frames and entries, valid CRCs): the leaf hashes give it away.
    let renumbered: Vec<(u64, Vec<u8>)> = cut
        .iter()
        .enumerate()
        .map(|(i, (_, p))| {
            let seq = 40 + i as u64;
            (seq, edit(p, |e| e.seq = seq))
        })
        .collect();
    write_frames(&path, 40, &renumbered);
    let (seq, _, problem, _) = record_err(check(&b));
    assert_eq!(seq, 57);
    assert_eq!(
        problem,
        RecordProblem::LeafMismatch {
            checkpoint: 3,
            size: 75,
            confirmed: true
        }
    );
}

#[test]
fn reordered_records_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let path = seg_path(&b.dir, 40);
    let frames = read_frames(&path);

    // Swapped as they are.
    let mut swapped = frames.clone();
    swapped.swap(17, 18);
    write_frames(&path, 40, &swapped);
    let (seq, place, problem, _) = record_err(check(&b));
    assert_eq!(seq, 57);
    assert_eq!(place, Some((seg_name(40), offset_of(&frames, 17))));
    assert_eq!(problem, RecordProblem::OutOfOrder { found: 58 });

    // Swapped with the frames renumbered: the entry still says where it belongs.
    swapped[17].0 = 57;
    swapped[18].0 = 58;
    write_frames(&path, 40, &swapped);
    let (seq, _, problem, msg) = record_err(check(&b));
    assert_eq!(seq, 57);
    assert_eq!(problem, RecordProblem::EntrySeq { found: 58 });
    assert!(msg.contains("the entry says it is record 58"), "{msg}");

    // Entries renumbered too: the leaf hash.
    swapped[17].1 = edit(&swapped[17].1, |e| e.seq = 57);
    swapped[18].1 = edit(&swapped[18].1, |e| e.seq = 58);
    write_frames(&path, 40, &swapped);
    let (seq, _, problem, _) = record_err(check(&b));
    assert_eq!(seq, 57);
    assert_eq!(
        problem,
        RecordProblem::LeafMismatch {
            checkpoint: 3,
            size: 75,
            confirmed: true
        }
    );
}

#[test]
fn a_truncated_log_is_named_at_its_first_missing_record() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let path = seg_path(&b.dir, 160);
    let frames = read_frames(&path);
    let orig = std::fs::read(&path).unwrap();

    // Cut at a frame boundary: records 190..200 gone.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(offset_of(&frames, 30)).unwrap();
    let (seq, _, problem, msg) = record_err(check(&b));
    assert_eq!(seq, 190);
    assert_eq!(
        problem,
        RecordProblem::Truncated {
            checkpoint: 8,
            size: 200,
            torn: None
        }
    );
    assert!(msg.contains("truncated"), "{msg}");

    // Cut inside a frame: reported as a torn tail, and still a truncation.
    std::fs::write(&path, &orig[..offset_of(&frames, 35) as usize + 7]).unwrap();
    let (seq, _, problem, _) = record_err(check(&b));
    assert_eq!(seq, 195);
    let RecordProblem::Truncated {
        checkpoint: 8,
        size: 200,
        torn: Some(t),
    } = problem
    else {
        panic!("{problem:?}")
    };
    assert_eq!(
        (t.file.as_str(), t.offset, t.bytes),
        (seg_name(160).as_str(), offset_of(&frames, 35), 7)
    );

    // The last segment removed.
    std::fs::remove_file(&path).unwrap();
    let (seq, _, problem, _) = record_err(check(&b));
    assert_eq!(seq, 160);
    assert!(
        matches!(
            problem,
            RecordProblem::Truncated {
                checkpoint: 7,
                size: 175,
                ..
            }
        ),
        "{problem:?}"
    );
}

#[test]
fn a_removed_middle_segment_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    std::fs::remove_file(seg_path(&b.dir, 80)).unwrap();
    let (seq, place, problem, _) = record_err(check(&b));
    assert_eq!(seq, 80);
    assert_eq!(place, Some((seg_name(120), HEADER_LEN as u64)));
    assert_eq!(problem, RecordProblem::Missing { next: Some(120) });
}

#[test]
fn a_torn_tail_after_the_last_checkpoint_is_reported_not_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let b = TestLog::new()
        .segment_records(40)
        .checkpoint_every(25)
        .final_checkpoint(false)
        .write(tmp.path(), 190)
        .unwrap();
    let path = seg_path(&b.dir, 160);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 9)
        .unwrap();
    let r = check(&b).unwrap();
    assert_eq!(r.records, 189);
    assert_eq!(r.not_checkpointed, 175..189);
    let t = r.torn_tail.unwrap();
    assert_eq!(t.file, seg_name(160));
    assert!(t.bytes > 0);

    // A changed record no checkpoint covers yet: nothing signed covers it, and the stored
    // hashes past the latest checkpoint are what a crash may leave unsynced: reported, not failed.
    let mut frames = read_frames(&path);
    frames[20].1 = edit(&frames[20].1, |e| e.summary.push('!'));
    write_frames(&path, 160, &frames);
    let r = check(&b).unwrap();
    assert_eq!(r.hashes_differ_from, Some(180));
    assert_eq!(r.not_checkpointed, 175..189);

    // Stored hashes past the latest checkpoint zeroed (unsynced at a crash): the same report.
    let mut fixed = read_frames(&path);
    fixed[20].1 = sentinel_audit::testlog::test_entry(180).to_payload();
    write_frames(&path, 160, &fixed);
    assert_eq!(check(&b).unwrap().hashes_differ_from, None);
    let hashes = b.dir.join("hashes");
    let mut bytes = std::fs::read(&hashes).unwrap();
    let from = merkle::stored_hash_index(0, 177) as usize * 32;
    bytes[from..].fill(0);
    std::fs::write(&hashes, &bytes).unwrap();
    assert_eq!(check(&b).unwrap().hashes_differ_from, Some(177));
}

fn rewrite_checkpoints(dir: &Path, f: impl FnOnce(&mut Vec<(u64, Vec<u8>)>)) {
    let path = dir.join("checkpoints");
    let parsed = parse_checkpoints(&std::fs::read(&path).unwrap()).unwrap();
    let mut frames: Vec<(u64, Vec<u8>)> = parsed
        .frames
        .into_iter()
        .map(|c| (c.size, c.text))
        .collect();
    f(&mut frames);
    let mut out = format::checkpoints_header().to_vec();
    for (size, text) in &frames {
        format::encode_frame(*size, text, &mut out);
    }
    std::fs::write(path, out).unwrap();
}

#[track_caller]
fn checkpoint_err(
    r: Result<sentinel_audit::verify::Report, VerifyError>,
) -> (usize, u64, CheckpointProblem, String) {
    match r {
        Err(e @ VerifyError::Checkpoint { .. }) => {
            let msg = e.to_string();
            let VerifyError::Checkpoint {
                index,
                size,
                problem,
            } = e
            else {
                unreachable!()
            };
            (index, size, problem, msg)
        }
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn a_checkpoint_signed_by_another_key_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let other = Signer::from_seed("sentinel/test", [9u8; 32]).unwrap();
    rewrite_checkpoints(&b.dir, |frames| {
        frames[4].1 = other.sign(&b.checkpoints[4].checkpoint).text.into_bytes();
    });
    let (index, size, problem, msg) = checkpoint_err(check(&b));
    assert_eq!(
        (index, size, problem),
        (4, 100, CheckpointProblem::NotSigned)
    );
    assert_eq!(
        msg,
        "checkpoint 4 (size 100): no signature by the verifier key"
    );
}

#[test]
fn a_checkpoint_with_an_edited_size_and_the_old_signature_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    rewrite_checkpoints(&b.dir, |frames| {
        let text = String::from_utf8(frames[5].1.clone()).unwrap();
        frames[5] = (90, text.replacen("\n125\n", "\n90\n", 1).into_bytes());
    });
    let (index, size, problem, msg) = checkpoint_err(check(&b));
    assert_eq!(
        (index, size, problem),
        (5, 90, CheckpointProblem::BadSignature)
    );
    assert_eq!(msg, "checkpoint 5 (size 90): bad signature");
}

#[test]
fn checkpoints_out_of_order_or_with_a_wrong_root_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    rewrite_checkpoints(&b.dir, |frames| frames.swap(2, 3));
    let (index, size, problem, _) = checkpoint_err(check(&b));
    assert_eq!(
        (index, size, problem),
        (3, 50, CheckpointProblem::SizeWentBack { previous: 75 })
    );

    // A checkpoint signed with the log's own key over a root the records do not have (what a
    // thief of the key would add): the next checkpoint matches the records, so the checkpoint is
    // named.
    let tmp2 = tempfile::tempdir().unwrap();
    let b = build(tmp2.path());
    let mut cp: Checkpoint = b.checkpoints[6].checkpoint.clone();
    cp.root[0] ^= 1;
    let forged = b.signer.sign(&cp).text.into_bytes();
    rewrite_checkpoints(&b.dir, |frames| frames[6].1 = forged.clone());
    let (index, size, problem, msg) = checkpoint_err(check(&b));
    assert_eq!((index, size), (6, 150));
    assert_eq!(problem, CheckpointProblem::RootMismatch { archived: false });
    assert_eq!(
        msg,
        "checkpoint 6 (size 150): root hash does not match the records"
    );

    // Added next to the genuine one of the same size: two roots for one size.
    rewrite_checkpoints(&b.dir, |frames| {
        frames[6].1 = b.checkpoints[6].text.clone().into_bytes();
        frames.insert(7, (150, forged.clone()));
    });
    let (index, size, _, _) = checkpoint_err(check(&b));
    assert_eq!((index, size), (7, 150));

    // The forged one is the last: nothing after it tells the records from the checkpoint, and
    // the records' range is named.
    rewrite_checkpoints(&b.dir, |frames| {
        frames.truncate(6);
        frames.push((150, forged.clone()));
    });
    let (seq, _, problem, _) = record_err(check(&b));
    assert_eq!(seq, 125);
    assert_eq!(
        problem,
        RecordProblem::RangeMismatch {
            end: 150,
            checkpoint: 6
        }
    );
}

#[test]
fn an_edited_hashes_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let b = build(tmp.path());
    let path = b.dir.join("hashes");
    let orig = std::fs::read(&path).unwrap();

    // A leaf hash.
    let leaf = merkle::stored_hash_index(0, 57);
    let mut bytes = orig.clone();
    bytes[leaf as usize * 32] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    match check(&b) {
        Err(VerifyError::Hashes {
            index,
            record,
            checkpoint,
        }) => {
            assert_eq!((index, record, checkpoint), (leaf, 57, Some(3)));
        }
        other => panic!("{other:?}"),
    }

    // An inner hash (record 59 completes the subtree of records 56..60).
    let inner = merkle::stored_hash_index(2, 14);
    let mut bytes = orig.clone();
    bytes[inner as usize * 32 + 5] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = check(&b).unwrap_err();
    assert!(
        matches!(e, VerifyError::Hashes { index, record: 59, .. } if index == inner),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("hashes file: stored hash {inner} (record 59) does not match the hashes below it")
    );
}

/// Segments of many records are checked on several threads: the first bad record is still the one
/// named, whichever thread found which.
#[test]
fn the_first_bad_record_is_named_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let b = TestLog::new()
        .segment_records(6_000)
        .checkpoint_every(1000)
        .write(tmp.path(), 6_000)
        .unwrap();
    let path = seg_path(&b.dir, 0);
    let mut frames = read_frames(&path);
    frames[4500].1[0] = b'[';
    frames[1500].1 = edit(&frames[1500].1, |e| e.seq = 1499);
    write_frames(&path, 0, &frames);
    for threads in 1..=4 {
        let opts = VerifyOptions {
            threads: Some(threads),
            ..VerifyOptions::default()
        };
        let (seq, place, problem, _) = record_err(verify(&b.dir, &b.verifier(), &opts));
        assert_eq!(seq, 1500, "{threads} threads");
        assert_eq!(place, Some((seg_name(0), offset_of(&frames, 1500))));
        assert_eq!(problem, RecordProblem::EntrySeq { found: 1499 });
    }
    frames[1500].1 = edit(&frames[1500].1, |e| e.seq = 1500);
    write_frames(&path, 0, &frames);
    for threads in 1..=4 {
        let opts = VerifyOptions {
            threads: Some(threads),
            ..VerifyOptions::default()
        };
        let (seq, _, problem, _) = record_err(verify(&b.dir, &b.verifier(), &opts));
        assert_eq!(seq, 4500, "{threads} threads");
        assert!(matches!(problem, RecordProblem::BadEntry(_)), "{problem:?}");
    }
    frames[4500].1[0] = b'{';
    write_frames(&path, 0, &frames);
    for threads in 1..=4 {
        let opts = VerifyOptions {
            threads: Some(threads),
            ..VerifyOptions::default()
        };
        assert_eq!(verify(&b.dir, &b.verifier(), &opts).unwrap().records, 6_000);
    }
}
