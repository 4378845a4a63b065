//! Full offline verification of a log directory: every record, every stored hash, every checkpoint.
//!
//! The records are read segment by segment (the next segment loads on another thread while this one
//! is checked) and each is checked where it stands: its frame (length, CRC), its sequence number
//! (frame header = position = the entry's own `seq`), its entry (the JSON reads as a [`LogEntry`]),
//! its leaf hash against the stored hashes. The tree is recomputed as the leaves stream in
//! ([`CompactRange`]) and compared with every checkpoint at its size; every checkpoint's signature is
//! checked, and their sizes and times must not go back. Two checkpoints both matching the same
//! recomputed tree is their consistency. Records after the latest checkpoint are reported as not yet
//! checkpointed; segments archived out of the directory are checked through the stored hashes.
//!
//! The error names the first bad record (its sequence number, segment file and byte offset) or the
//! bad checkpoint (its position in the checkpoints file and its size), and what is wrong.

use crate::format::{self, FrameError, LogEntry, HEADER_LEN, SEGMENT_MAGIC};
use crate::merkle::{self, CompactRange, Hash};
use crate::note::{Checkpoint, Verifier};
use crate::reader::{
    self, ArchivedRange, LogDir, ReadError, SegmentFile, TornTail, CHECKPOINTS_FILE, HASHES_FILE,
};
use sentinel_core::AuditKind;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Read every entry completely into a [`LogEntry`] (allocating its strings and parsing its time
    /// with the general RFC 3339 parser). The default check scans the form the log writes without a
    /// JSON parser and hands anything else to a parser that does not allocate; it accepts exactly
    /// what `LogEntry` accepts. This is the slower cross-check.
    pub full_parse: bool,
    /// Threads that check entries and hash leaves (default: the machine's cores, up to 8).
    pub threads: Option<usize>,
    /// Checkpoints saved earlier by a client (their signatures already checked by the caller, as
    /// a Certificate Transparency client keeps the last checkpoint it saw): the log must hold at
    /// least each one's size, and the root recomputed from its records at that size must be the
    /// saved root. A log rolled back to an older copy, truncated, or forked (rewritten from some
    /// point, with new checkpoints) fails naming the saved checkpoint, by its position here.
    pub pinned: Vec<Checkpoint>,
}

/// What is wrong with the log against a saved checkpoint ([`VerifyOptions::pinned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinnedProblem {
    /// The log holds fewer records than the saved checkpoint: it was rolled back or truncated.
    Beyond {
        /// The records the log holds.
        records: u64,
    },
    /// The root of the log's first `size` records is not the saved root: the log was forked.
    RootMismatch,
}

/// Where a record sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The segment (`segments/…seg[.gz]`).
    pub segment: String,
    /// The byte its frame starts at in the (uncompressed) segment.
    pub offset: u64,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.segment, self.offset)
    }
}

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordProblem {
    /// Its frame is damaged (bad checksum, impossible length) or cut short before the end of the log.
    Corrupt(String),
    /// The record is not there: the next one on disk is `next` (or the log ends: `None`).
    Missing {
        /// The sequence number found instead.
        next: Option<u64>,
    },
    /// Its frame holds an earlier sequence number than its position (a repeated or reordered record).
    OutOfOrder {
        /// The sequence number its frame holds.
        found: u64,
    },
    /// The entry does not read as a log entry.
    BadEntry(String),
    /// The entry's own `seq` is not its position.
    EntrySeq {
        /// What the entry says.
        found: u64,
    },
    /// Its leaf hash differs from the stored one, and the stored hashes lead to checkpoint
    /// `checkpoint`'s root (`confirmed`) or do not either.
    LeafMismatch {
        /// The first checkpoint that covers the record.
        checkpoint: usize,
        /// That checkpoint's size.
        size: u64,
        /// Whether the stored hashes agree with the checkpoint (so the record is what changed).
        confirmed: bool,
    },
    /// The records `[seq, end)` do not lead to checkpoint `checkpoint`'s root and the stored hashes
    /// were changed to match them, so the changed record cannot be pinpointed.
    RangeMismatch {
        /// One past the last record of the range.
        end: u64,
        /// The checkpoint.
        checkpoint: usize,
    },
    /// The log ends before this record, which checkpoint `checkpoint` (size `size`) covers.
    Truncated {
        /// The checkpoint.
        checkpoint: usize,
        /// Its size.
        size: u64,
        /// The torn tail where the log ends, if it ends in one.
        torn: Option<TornTail>,
    },
    /// The record was archived out of the directory and the stored hashes for it are gone.
    ArchivedWithoutHashes,
}

/// What is wrong with a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointProblem {
    /// Its frame in the checkpoints file is damaged.
    Corrupt(String),
    /// The note is not text.
    NotText,
    /// No signature by the verifier key.
    NotSigned,
    /// A signature by the verifier key that does not verify.
    BadSignature,
    /// The note is malformed.
    Malformed(String),
    /// The frame's size is not the note's size.
    FrameSize {
        /// The size the frame names.
        frame: u64,
    },
    /// Its size is below the previous checkpoint's.
    SizeWentBack {
        /// The previous size.
        previous: u64,
    },
    /// Its time is before the previous checkpoint's.
    TimeWentBack {
        /// The previous time (ms).
        previous: u64,
    },
    /// Its root is not the root of the records (for records archived out of the directory,
    /// recomputed from the stored hashes).
    RootMismatch {
        /// Whether the records it covers were archived out of the directory.
        archived: bool,
    },
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The directory could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A bad record.
    #[error("{}", record_message(*seq, place.as_ref(), problem))]
    Record {
        /// Its sequence number (its position in the log).
        seq: u64,
        /// Where it is, when it is on disk.
        place: Option<Place>,
        /// What is wrong.
        problem: RecordProblem,
    },
    /// A bad checkpoint.
    #[error("checkpoint {index} (size {size}): {}", checkpoint_message(problem))]
    Checkpoint {
        /// Its position in the checkpoints file, from 0.
        index: usize,
        /// Its tree size (as its frame says when the note cannot be read).
        size: u64,
        /// What is wrong.
        problem: CheckpointProblem,
    },
    /// A bad segment file (header).
    #[error("{segment}: {why}")]
    Segment {
        /// The segment.
        segment: String,
        /// What is wrong.
        why: String,
    },
    /// The log disagrees with a checkpoint saved earlier ([`VerifyOptions::pinned`]).
    #[error("saved checkpoint {index} (size {size}): {}", pinned_message(problem))]
    Pinned {
        /// Its position in [`VerifyOptions::pinned`].
        index: usize,
        /// Its tree size.
        size: u64,
        /// What is wrong.
        problem: PinnedProblem,
    },
    /// The hashes file disagrees with the records.
    #[error("hashes file: stored hash {index} (record {record}) {}", hashes_message(*checkpoint))]
    Hashes {
        /// The index of the first wrong hash.
        index: u64,
        /// The record it belongs to.
        record: u64,
        /// The checkpoint that confirms the records, when it was the leaf hash that differed;
        /// `None` when the leaf matched and a hash above it did not.
        checkpoint: Option<usize>,
    },
}

fn pinned_message(p: &PinnedProblem) -> String {
    match p {
        PinnedProblem::Beyond { records } => format!(
            "the log holds only {records} records: it was rolled back to an older copy or truncated"
        ),
        PinnedProblem::RootMismatch => "the root of the log's records at that size is not the \
            saved root: the log was rewritten (forked) at or before that size"
            .into(),
    }
}

fn hashes_message(checkpoint: Option<usize>) -> String {
    match checkpoint {
        Some(c) => format!("does not match the record, which checkpoint {c} confirms"),
        None => "does not match the hashes below it".into(),
    }
}

fn record_message(seq: u64, place: Option<&Place>, p: &RecordProblem) -> String {
    let at = place.map(|p| format!(" ({p})")).unwrap_or_default();
    match p {
        RecordProblem::Corrupt(why) => format!("record {seq}{at}: damaged frame: {why}"),
        RecordProblem::Missing { next: Some(n) } => {
            format!("record {seq} missing{at}: next record is {n}")
        }
        RecordProblem::Missing { next: None } => format!("record {seq} missing: the log ends"),
        RecordProblem::OutOfOrder { found } => {
            format!("record {seq}{at}: the frame holds record {found} (repeated or out of order)")
        }
        RecordProblem::BadEntry(why) => format!("record {seq}{at}: not a log entry: {why}"),
        RecordProblem::EntrySeq { found } => {
            format!("record {seq}{at}: the entry says it is record {found}")
        }
        RecordProblem::LeafMismatch {
            checkpoint,
            size,
            confirmed: true,
        } => format!(
            "record {seq}{at}: leaf hash does not match checkpoint {checkpoint} at size {size} \
             (the stored hashes match the checkpoint: the record was changed)"
        ),
        RecordProblem::LeafMismatch {
            checkpoint, size, ..
        } => format!(
            "record {seq}{at}: leaf hash does not match checkpoint {checkpoint} at size {size} \
             (nor do the stored hashes: the record and the hashes file were both changed)"
        ),
        RecordProblem::RangeMismatch { end, checkpoint } => format!(
            "records {seq}..{end} (from {at}): their root does not match checkpoint {checkpoint} \
             at size {end}, and the hashes file was rewritten to match them: a record in this \
             range was changed (or the checkpoint is over another log, which no later \
             checkpoint can tell)",
            at = place.map(|p| p.to_string()).unwrap_or_default()
        ),
        RecordProblem::Truncated {
            checkpoint,
            size,
            torn,
        } => {
            let tail = torn
                .as_ref()
                .map(|t| {
                    format!(
                        ", ending in {} torn bytes in {} at byte {}",
                        t.bytes, t.file, t.offset
                    )
                })
                .unwrap_or_default();
            format!(
                "record {seq} missing: the log ends at record {seq}{tail}, but checkpoint \
                 {checkpoint} covers {size} records (truncated)"
            )
        }
        RecordProblem::ArchivedWithoutHashes => format!(
            "record {seq}: archived out of the directory and the hashes file does not cover it"
        ),
    }
}

fn checkpoint_message(p: &CheckpointProblem) -> String {
    match p {
        CheckpointProblem::Corrupt(why) => format!("damaged frame in the checkpoints file: {why}"),
        CheckpointProblem::NotText => "the note is not UTF-8 text".into(),
        CheckpointProblem::NotSigned => "no signature by the verifier key".into(),
        CheckpointProblem::BadSignature => "bad signature".into(),
        CheckpointProblem::Malformed(why) => format!("malformed: {why}"),
        CheckpointProblem::FrameSize { frame } => {
            format!("its frame says size {frame}, its note another")
        }
        CheckpointProblem::SizeWentBack { previous } => {
            format!("size below the previous checkpoint's ({previous})")
        }
        CheckpointProblem::TimeWentBack { previous } => {
            format!("time before the previous checkpoint's ({previous} ms)")
        }
        CheckpointProblem::RootMismatch { archived: false } => {
            "root hash does not match the records".into()
        }
        CheckpointProblem::RootMismatch { archived: true } => {
            "root hash does not match the stored hashes of the archived records".into()
        }
    }
}

/// What verification found (all of it checked unless said otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records in the log (read from segments or archived elsewhere).
    pub records: u64,
    /// Records read from segment files in the directory (plain or compressed).
    pub records_read: u64,
    /// Records archived out of the directory: checked by the stored hashes only.
    pub archived_elsewhere: Vec<Range<u64>>,
    /// Segment files read (of them compressed).
    pub segments: usize,
    /// Compressed segment files read.
    pub compressed_segments: usize,
    /// Checkpoints checked.
    pub checkpoints: usize,
    /// The latest checkpoint.
    pub latest: Option<Checkpoint>,
    /// Records after the latest checkpoint: their frames, sequence, entries and stored hashes are
    /// checked, but no signature covers them yet.
    pub not_checkpointed: Range<u64>,
    /// A torn last frame in the last segment (a live log after a crash: the daemon truncates it).
    pub torn_tail: Option<TornTail>,
    /// A torn last frame in the checkpoints file.
    pub torn_checkpoint: Option<TornTail>,
    /// Hashes in the hashes file (it is derived data: the daemon rebuilds it when it opens the log).
    pub stored_hashes: u64,
    /// Hashes the records call for.
    pub expected_hashes: u64,
    /// The first record after the latest checkpoint whose stored hashes differ from its own. The
    /// daemon syncs the hashes file before each checkpoint and rebuilds what follows after a crash,
    /// so this is what a crash leaves; nothing signed covers these records yet (an edit would show
    /// here too, with no way to tell).
    pub hashes_differ_from: Option<u64>,
    /// Compressed copies ignored because the plain segment is still there (an interrupted archive).
    pub shadowed: Vec<PathBuf>,
}

/// Checks a whole log directory (the `audit` directory) against `verifier`.
pub fn verify(
    dir: &Path,
    verifier: &Verifier,
    opts: &VerifyOptions,
) -> Result<Report, VerifyError> {
    let log = LogDir::open(dir)?;
    let cps = read_checkpoints(&log, verifier)?;
    let archived = log.archived()?;
    let mut pins: Vec<(usize, Checkpoint)> = opts.pinned.iter().cloned().enumerate().collect();
    pins.sort_by_key(|(_, c)| c.size);
    let mut v = Walk {
        pins: &pins,
        next_pin: 0,
        cps: &cps.list,
        next_cp: 0,
        range: CompactRange::new(),
        stored: Vec::with_capacity(64),
        hashes: HashStream::open(&dir.join(HASHES_FILE))?,
        pending: None,
        checkpointed: cps.list.last().map_or(0, |(_, c)| c.size),
        unsynced: None,
        deferred: None,
        range_start: (0, None),
        dir,
        full_parse: opts.full_parse,
        threads: opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8))),
    };
    v.at_size()?; // checkpoints of the empty tree
    v.at_pin()?;

    let mut report = Report {
        records: 0,
        records_read: 0,
        archived_elsewhere: Vec::new(),
        segments: 0,
        compressed_segments: 0,
        checkpoints: cps.list.len(),
        latest: cps.list.last().map(|(_, c)| c.clone()),
        not_checkpointed: 0..0,
        torn_tail: None,
        torn_checkpoint: cps.torn,
        stored_hashes: v.hashes.count,
        expected_hashes: 0,
        hashes_differ_from: None,
        shadowed: log.shadowed().to_vec(),
    };

    let segs = log.segments();
    let loads = Prefetch::start(segs.to_vec());
    for (i, loaded) in loads.enumerate() {
        let seg = &segs[i];
        let bytes = loaded?;
        let expected = v.range.size();
        if seg.first_seq > expected {
            match archived_cover(&archived, expected, seg.first_seq) {
                true => {
                    v.archived_range(expected, seg.first_seq)?;
                    report.archived_elsewhere.push(expected..seg.first_seq);
                }
                false => {
                    return Err(VerifyError::Record {
                        seq: expected,
                        place: Some(Place {
                            segment: seg.name(),
                            offset: HEADER_LEN as u64,
                        }),
                        problem: RecordProblem::Missing {
                            next: Some(seg.first_seq),
                        },
                    })
                }
            }
        }
        let last = i + 1 == segs.len();
        report.segments += 1;
        report.compressed_segments += usize::from(seg.compressed);
        report.torn_tail = v.segment(seg, &bytes, last)?;
    }
    let end = v.range.size();
    // Archived past the last segment on disk cannot happen (the last segment is never archived),
    // but a log whose every segment went away still has its hashes.
    let stop = archived
        .iter()
        .fold(end, |e, a| if a.first_seq == e { a.end_seq } else { e });
    if stop > end {
        v.archived_range(end, stop)?;
        report.archived_elsewhere.push(end..stop);
    }
    if let Some((_, records)) = v.deferred.take() {
        // The last checkpoint disagrees with records the hashes file agrees with: either was
        // rewritten, and no later checkpoint tells which.
        return Err(records);
    }
    let end = v.range.size();
    if let Some((index, cp)) = pins.get(v.next_pin) {
        return Err(VerifyError::Pinned {
            index: *index,
            size: cp.size,
            problem: PinnedProblem::Beyond { records: end },
        });
    }
    if let Some((index, cp)) = cps.list.get(v.next_cp) {
        return Err(VerifyError::Record {
            seq: end,
            place: None,
            problem: RecordProblem::Truncated {
                checkpoint: *index,
                size: cp.size,
                torn: report.torn_tail.clone(),
            },
        });
    }
    report.hashes_differ_from = v.unsynced;
    let checkpointed = report.latest.as_ref().map_or(0, |c| c.size);
    report.records = end;
    report.records_read = end
        - report
            .archived_elsewhere
            .iter()
            .map(|r| r.end - r.start)
            .sum::<u64>();
    report.not_checkpointed = checkpointed..end;
    report.expected_hashes = merkle::stored_hash_count(end);
    Ok(report)
}

/// Whether archived ranges tile `[from, to)` exactly.
fn archived_cover(archived: &[ArchivedRange], from: u64, to: u64) -> bool {
    let mut at = from;
    while at < to {
        match archived
            .iter()
            .find(|a| a.first_seq == at && a.end_seq > at)
        {
            Some(a) => at = a.end_seq,
            None => return false,
        }
    }
    at == to
}

struct CheckedCheckpoints {
    /// (index in the file, checkpoint), sizes non-decreasing.
    list: Vec<(usize, Checkpoint)>,
    torn: Option<TornTail>,
}

fn read_checkpoints(log: &LogDir, verifier: &Verifier) -> Result<CheckedCheckpoints, VerifyError> {
    let path = log.dir().join(CHECKPOINTS_FILE);
    let bytes = std::fs::read(&path).map_err(|source| ReadError::Io {
        path: path.clone(),
        source,
    })?;
    let file = reader::parse_checkpoints(&bytes).map_err(|why| ReadError::Format { path, why })?;
    let mut list: Vec<(usize, Checkpoint)> = Vec::with_capacity(file.frames.len());
    for f in &file.frames {
        let bad = |problem| VerifyError::Checkpoint {
            index: f.index,
            size: f.size,
            problem,
        };
        let text = std::str::from_utf8(&f.text).map_err(|_| bad(CheckpointProblem::NotText))?;
        let signed = verifier.verify(text).map_err(|e| {
            bad(match e {
                crate::note::NoteError::NotSigned(_) => CheckpointProblem::NotSigned,
                crate::note::NoteError::BadSignature(_) => CheckpointProblem::BadSignature,
                other => CheckpointProblem::Malformed(other.to_string()),
            })
        })?;
        let cp = signed.checkpoint;
        if cp.size != f.size {
            return Err(VerifyError::Checkpoint {
                index: f.index,
                size: cp.size,
                problem: CheckpointProblem::FrameSize { frame: f.size },
            });
        }
        if let Some((_, prev)) = list.last() {
            if cp.size < prev.size {
                return Err(bad(CheckpointProblem::SizeWentBack {
                    previous: prev.size,
                }));
            }
            if cp.time_ms < prev.time_ms {
                return Err(bad(CheckpointProblem::TimeWentBack {
                    previous: prev.time_ms,
                }));
            }
        }
        list.push((f.index, cp));
    }
    if let Some(c) = file.corrupt {
        let size = list.last().map_or(0, |(_, c)| c.size);
        return Err(VerifyError::Checkpoint {
            index: c.index,
            size,
            problem: CheckpointProblem::Corrupt(format!("at byte {}: {}", c.offset, c.why)),
        });
    }
    Ok(CheckedCheckpoints {
        list,
        torn: file.torn,
    })
}

/// The hashes file, read in order as the records stream in.
struct HashStream {
    reader: Option<BufReader<std::fs::File>>,
    path: PathBuf,
    /// How many hashes the file holds.
    count: u64,
    /// The index of the next hash.
    next: u64,
}

impl HashStream {
    fn open(path: &Path) -> Result<Self, ReadError> {
        match std::fs::File::open(path) {
            Ok(f) => {
                let count = f
                    .metadata()
                    .map_err(|source| ReadError::Io {
                        path: path.to_owned(),
                        source,
                    })?
                    .len()
                    / 32;
                Ok(HashStream {
                    reader: Some(BufReader::with_capacity(1 << 20, f)),
                    path: path.to_owned(),
                    count,
                    next: 0,
                })
            }
            // Derived data: the daemon rebuilds it. Without it only archived records cannot be checked.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashStream {
                reader: None,
                path: path.to_owned(),
                count: 0,
                next: 0,
            }),
            Err(source) => Err(ReadError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The next stored hash, `None` past the end of the file.
    fn next_hash(&mut self) -> Result<Option<Hash>, ReadError> {
        if self.next >= self.count {
            return Ok(None);
        }
        let Some(r) = self.reader.as_mut() else {
            return Ok(None);
        };
        let mut h = [0u8; 32];
        r.read_exact(&mut h).map_err(|source| ReadError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.next += 1;
        Ok(Some(h))
    }
}

/// A record whose leaf hash differs from the stored one, waiting for the next checkpoint to tell
/// which of the two changed.
struct Pending {
    seq: u64,
    place: Option<Place>,
    hash_index: u64,
}

/// The state of one verification walk over the log.
struct Walk<'a> {
    cps: &'a [(usize, Checkpoint)],
    /// The saved checkpoints (their index in the options), by size.
    pins: &'a [(usize, Checkpoint)],
    next_pin: usize,
    next_cp: usize,
    range: CompactRange,
    stored: Vec<Hash>,
    hashes: HashStream,
    pending: Option<Pending>,
    /// The latest checkpoint's size.
    checkpointed: u64,
    /// The first record past the latest checkpoint whose stored hashes differ.
    unsynced: Option<u64>,
    /// A checkpoint whose root the records (and the stored hashes) do not match: the checkpoint's
    /// error and the records' error, until the next checkpoint tells which one is wrong.
    deferred: Option<(VerifyError, VerifyError)>,
    /// The first record after the last checkpoint passed, and where it is.
    range_start: (u64, Option<Place>),
    dir: &'a Path,
    full_parse: bool,
    threads: usize,
}

impl Walk<'_> {
    /// Pushes a leaf and compares the hashes it stores with the hashes file.
    fn push(
        &mut self,
        leaf: Hash,
        seq: u64,
        place: impl Fn() -> Option<Place>,
    ) -> Result<(), VerifyError> {
        self.stored.clear();
        self.range.push_into(leaf, &mut self.stored);
        for (k, h) in self.stored.iter().enumerate() {
            let index = self.hashes.next;
            let Some(s) = self.hashes.next_hash()? else {
                break; // a short hashes file is reported, not an error
            };
            if s != *h && seq >= self.checkpointed {
                // Past the latest checkpoint the stored hashes are not yet synced (the daemon
                // syncs them before each checkpoint and rebuilds the rest after a crash), and no
                // signature covers these records either way: reported, not failed.
                self.unsynced.get_or_insert(seq);
            } else if s != *h && self.pending.is_none() {
                if k == 0 {
                    self.pending = Some(Pending {
                        seq,
                        place: place(),
                        hash_index: index,
                    });
                } else {
                    // The leaf matched and a hash above it did not: the hashes file was changed.
                    return Err(VerifyError::Hashes {
                        index,
                        record: seq,
                        checkpoint: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// Compares the tree with the saved checkpoints at its current size.
    fn at_pin(&mut self) -> Result<(), VerifyError> {
        let size = self.range.size();
        while let Some((index, cp)) = self.pins.get(self.next_pin).filter(|(_, c)| c.size == size) {
            self.next_pin += 1;
            if self.range.root() != cp.root {
                return Err(VerifyError::Pinned {
                    index: *index,
                    size,
                    problem: PinnedProblem::RootMismatch,
                });
            }
        }
        Ok(())
    }

    /// Compares the tree with the checkpoints at its current size.
    fn at_size(&mut self) -> Result<(), VerifyError> {
        self.at_size_archived(false)
    }

    fn at_size_archived(&mut self, archived: bool) -> Result<(), VerifyError> {
        let size = self.range.size();
        let mut matched = false;
        let mut passed = false;
        while let Some((index, cp)) = self.cps.get(self.next_cp) {
            if cp.size != size {
                break;
            }
            let index = *index;
            self.next_cp += 1;
            passed = true;
            let bad_checkpoint = VerifyError::Checkpoint {
                index,
                size,
                problem: CheckpointProblem::RootMismatch { archived },
            };
            if self.range.root() != cp.root {
                if matched || archived {
                    // Another signed checkpoint of this size matches the records (two roots for
                    // one size), or the records are only known by their stored hashes.
                    return Err(bad_checkpoint);
                }
                if let Some(d) = self.deferred.take() {
                    // Two checkpoints in a row disagree with the records: the records changed.
                    return Err(d.1);
                }
                if self.pending.is_some() {
                    return Err(self.mismatch(index, cp));
                }
                // Either the records and the hashes file were both rewritten, or this checkpoint
                // is the odd one: the next checkpoint tells (it commits to these records too).
                let e = self.mismatch(index, cp);
                self.deferred = Some((bad_checkpoint, e));
                continue;
            }
            if let Some((c, _)) = self.deferred.take() {
                // A later checkpoint matches the records, so they are what the log signed: the
                // earlier one that did not is a checkpoint over some other log.
                return Err(c);
            }
            matched = true;
            if let Some(p) = self.pending.take() {
                // The records match the checkpoint: the stored hash was what changed.
                return Err(VerifyError::Hashes {
                    index: p.hash_index,
                    record: p.seq,
                    checkpoint: Some(index),
                });
            }
        }
        if passed {
            self.range_start = (size, None);
        }
        Ok(())
    }

    /// The records' error when checkpoint `index` does not match them.
    fn mismatch(&mut self, index: usize, cp: &Checkpoint) -> VerifyError {
        if let Some(p) = self.pending.take() {
            let confirmed = reader::StoredHashes::open(&self.dir.join(HASHES_FILE))
                .ok()
                .and_then(|h| merkle::tree_hash(cp.size, &h).ok())
                .is_some_and(|r| r == cp.root);
            return VerifyError::Record {
                seq: p.seq,
                place: p.place,
                problem: RecordProblem::LeafMismatch {
                    checkpoint: index,
                    size: cp.size,
                    confirmed,
                },
            };
        }
        // Every leaf matches the stored hashes and still the root differs: either the hashes file
        // was rewritten along with the records, or the checkpoint is wrong (it is signed, so only
        // the key holder made it).
        let (seq, place) = self.range_start.clone();
        VerifyError::Record {
            seq,
            place,
            problem: RecordProblem::RangeMismatch {
                end: cp.size,
                checkpoint: index,
            },
        }
    }

    /// Records `[from, to)` whose segments were archived out of the directory: their leaves come
    /// from the hashes file, and the tree they make is checked against the checkpoints.
    fn archived_range(&mut self, from: u64, to: u64) -> Result<(), VerifyError> {
        for seq in from..to {
            let Some(leaf) = self.hashes.next_hash()? else {
                return Err(VerifyError::Record {
                    seq,
                    place: None,
                    problem: RecordProblem::ArchivedWithoutHashes,
                });
            };
            self.stored.clear();
            self.range.push_into(leaf, &mut self.stored);
            for h in self.stored.iter().skip(1) {
                let index = self.hashes.next;
                match self.hashes.next_hash()? {
                    Some(s) if s == *h => {}
                    Some(_) => {
                        return Err(VerifyError::Hashes {
                            index,
                            record: seq,
                            checkpoint: None,
                        })
                    }
                    None => {
                        return Err(VerifyError::Record {
                            seq,
                            place: None,
                            problem: RecordProblem::ArchivedWithoutHashes,
                        })
                    }
                }
            }
            self.at_size_archived(true)?;
            self.at_pin()?;
        }
        Ok(())
    }

    /// Checks one loaded segment; answers the torn tail it ends in (only the last one may).
    fn segment(
        &mut self,
        seg: &SegmentFile,
        bytes: &[u8],
        last: bool,
    ) -> Result<Option<TornTail>, VerifyError> {
        let name = seg.name();
        let seg_err = |why: String| VerifyError::Segment {
            segment: name.clone(),
            why,
        };
        let first = format::parse_header(SEGMENT_MAGIC, bytes)
            .map_err(|e| seg_err(format!("bad segment header: {e}")))?;
        if first != seg.first_seq {
            return Err(seg_err(format!(
                "the header says the first record is {first}, the file name says {}",
                seg.first_seq
            )));
        }
        let expected = self.range.size();
        if first < expected {
            return Err(VerifyError::Record {
                seq: first,
                place: Some(Place {
                    segment: name.clone(),
                    offset: HEADER_LEN as u64,
                }),
                problem: RecordProblem::OutOfOrder { found: first },
            });
        }
        let place = |offset: usize| Place {
            segment: name.clone(),
            offset: offset as u64,
        };
        // 1. Find the frames (their lengths and checksums), in order: cheap.
        let mut frames: Vec<FrameAt> = Vec::new();
        let mut pos = HEADER_LEN;
        let stop = loop {
            match format::decode_frame(bytes, pos) {
                Ok(Some(f)) => {
                    frames.push(FrameAt {
                        seq: f.seq,
                        offset: f.offset,
                        payload: f.end - f.payload.len()..f.end,
                    });
                    pos = f.end;
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        // 2. Check the entries and hash the leaves, on every core: the costly part.
        let base = self.range.size();
        let (leaves, bad_entry) =
            entries_and_leaves(bytes, &frames, base, self.full_parse, self.threads);
        // 3. In order: sequence numbers, entries, the tree, the stored hashes, the checkpoints.
        for (i, f) in frames.iter().enumerate() {
            let seq = base + i as u64;
            if f.seq != seq {
                return Err(VerifyError::Record {
                    seq,
                    place: Some(place(f.offset)),
                    // A later number where this one belongs: missing, unless it comes later on
                    // (then the records were moved).
                    problem: match f.seq > seq && !frames[i..].iter().any(|g| g.seq == seq) {
                        true => RecordProblem::Missing { next: Some(f.seq) },
                        false => RecordProblem::OutOfOrder { found: f.seq },
                    },
                });
            }
            if let Some((at, problem)) = bad_entry.as_ref().filter(|(at, _)| *at == i) {
                let _ = at;
                return Err(VerifyError::Record {
                    seq,
                    place: Some(place(f.offset)),
                    problem: problem.clone(),
                });
            }
            if self.range_start.1.is_none() {
                self.range_start = (seq, Some(place(f.offset)));
            }
            self.push(leaves[i], seq, || Some(place(f.offset)))?;
            if self
                .cps
                .get(self.next_cp)
                .is_some_and(|(_, c)| c.size == seq + 1)
            {
                self.at_size()?;
            }
            if self
                .pins
                .get(self.next_pin)
                .is_some_and(|(_, c)| c.size == seq + 1)
            {
                self.at_pin()?;
            }
        }
        if let Some(e) = stop {
            if last && reader::is_torn(bytes, pos, &e) {
                return Ok(Some(TornTail {
                    file: name.clone(),
                    offset: pos as u64,
                    bytes: (bytes.len() - pos) as u64,
                }));
            }
            let why = match e {
                FrameError::Torn { .. } => {
                    "the segment ends inside this frame (and is not the last)".into()
                }
                FrameError::Corrupt { why, .. } => why,
            };
            return Err(VerifyError::Record {
                seq: self.range.size(),
                place: Some(place(pos)),
                problem: RecordProblem::Corrupt(why),
            });
        }
        Ok(None)
    }
}

/// A frame found in a segment.
struct FrameAt {
    seq: u64,
    offset: usize,
    payload: Range<usize>,
}

/// Below this many frames a segment is checked on one thread.
const PARALLEL_MIN: usize = 4096;

/// Checks the entries of `frames` (the entry at `i` must say `base + i`) and hashes their leaves,
/// split over `threads` threads; answers the leaves and the first bad entry (the leaves from it
/// on are not computed).
fn entries_and_leaves(
    bytes: &[u8],
    frames: &[FrameAt],
    base: u64,
    full: bool,
    threads: usize,
) -> (Vec<Hash>, Option<(usize, RecordProblem)>) {
    let mut leaves = vec![[0u8; 32]; frames.len()];
    let work = |first: usize, out: &mut [Hash], fr: &[FrameAt]| -> Option<(usize, RecordProblem)> {
        for (j, (o, f)) in out.iter_mut().zip(fr).enumerate() {
            let payload = &bytes[f.payload.clone()];
            let i = first + j;
            if let Err(p) = check_entry(payload, base + i as u64, full) {
                return Some((i, p));
            }
            *o = merkle::leaf_hash(payload);
        }
        None
    };
    let threads = match frames.len() < PARALLEL_MIN {
        true => 1,
        false => threads.max(1),
    };
    if threads == 1 {
        let bad = work(0, &mut leaves, frames);
        return (leaves, bad);
    }
    let chunk = frames.len().div_ceil(threads);
    let bad = std::thread::scope(|s| {
        let mut parts = leaves
            .chunks_mut(chunk)
            .zip(frames.chunks(chunk))
            .enumerate();
        let first = parts.next();
        let handles: Vec<_> = parts
            .map(|(c, (out, fr))| (c, s.spawn(move || work(c * chunk, out, fr))))
            .collect();
        let mut bad = first.and_then(|(_, (out, fr))| work(0, out, fr));
        for (c, h) in handles {
            let found = match h.join() {
                Ok(found) => found,
                // A thread that failed checked nothing: say so at its first record.
                Err(_) => Some((
                    c * chunk,
                    RecordProblem::BadEntry("the checking thread failed".into()),
                )),
            };
            if bad.is_none() {
                bad = found;
            }
        }
        bad
    });
    (leaves, bad)
}

/// An entry read without allocating: the same fields and rules as [`LogEntry`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the fields are read to be checked
struct EntryView<'a> {
    seq: u64,
    ts: TimeCheck,
    kind: AuditKind,
    #[serde(borrow)]
    subject_id: Cow<'a, str>,
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(borrow)]
    summary: Cow<'a, str>,
    #[serde(borrow)]
    content_hash: Option<Cow<'a, str>>,
}

/// A time checked as [`sentinel_core::Timestamp`] reads it (RFC 3339 text or integer milliseconds),
/// without allocating for the usual form.
struct TimeCheck;

impl<'de> Deserialize<'de> for TimeCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TimeCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or milliseconds")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TimeCheck, E> {
                if canonical_time_ok(s.as_bytes()) {
                    return Ok(TimeCheck);
                }
                sentinel_core::Timestamp::parse_rfc3339(s)
                    .map(|_| TimeCheck)
                    .map_err(|e| E::custom(format!("not an RFC 3339 time: {e}")))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<TimeCheck, E> {
                Ok(TimeCheck)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<TimeCheck, E> {
                match i64::try_from(n) {
                    Ok(_) => Ok(TimeCheck),
                    Err(_) => Err(E::custom("milliseconds out of range")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks that `payload` reads as the log entry at `seq`.
fn check_entry(payload: &[u8], seq: u64, full: bool) -> Result<(), RecordProblem> {
    let bad = |e: serde_json::Error| RecordProblem::BadEntry(e.to_string());
    let found = if full {
        LogEntry::from_payload(payload).map_err(bad)?.seq
    } else if let Some(seq) = canonical_entry_seq(payload) {
        seq
    } else {
        let v: EntryView<'_> = serde_json::from_slice(payload).map_err(bad)?;
        v.seq
    };
    match found == seq {
        true => Ok(()),
        false => Err(RecordProblem::EntrySeq { found }),
    }
}

/// The `seq` of an entry in exactly the form the log writes it (compact JSON, fields in order,
/// strings without escapes, the usual time form), read without a JSON parser; `None` for anything
/// else, which then goes to the parser. Everything this accepts, [`LogEntry`] accepts.
fn canonical_entry_seq(p: &[u8]) -> Option<u64> {
    std::str::from_utf8(p).ok()?;
    let mut c = Scan { p, i: 0 };
    c.lit(b"{\"seq\":")?;
    let seq = c.uint()?;
    c.lit(b",\"ts\":\"")?;
    if !canonical_time_ok(c.plain_str()?) {
        return None;
    }
    c.lit(b",\"kind\":\"")?;
    let kind = std::str::from_utf8(c.plain_str()?).ok()?;
    let de = serde::de::value::StrDeserializer::<serde::de::value::Error>::new(kind);
    AuditKind::deserialize(de).ok()?;
    for field in [
        &b",\"subject_id\":\""[..],
        b",\"trace_id\":\"",
        b",\"summary\":\"",
    ] {
        c.lit(field)?;
        c.plain_str()?;
    }
    c.lit(b",\"content_hash\":")?;
    if c.lit(b"null").is_none() {
        c.lit(b"\"")?;
        c.plain_str()?;
    }
    c.lit(b"}")?;
    (c.i == p.len()).then_some(seq)
}

struct Scan<'a> {
    p: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn lit(&mut self, l: &[u8]) -> Option<()> {
        let end = self.i.checked_add(l.len())?;
        (self.p.get(self.i..end)? == l).then(|| self.i = end)
    }

    /// A JSON integer without leading zeros that fits a u64.
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(d) = self.p.get(self.i).filter(|d| d.is_ascii_digit()) {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let len = self.i - start;
        (len == 1 || (len > 1 && self.p[start] != b'0')).then_some(n)
    }

    /// The rest of a string without escapes or control characters, up to its closing quote.
    fn plain_str(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        loop {
            match *self.p.get(self.i)? {
                b'"' => break,
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        let s = &self.p[start..self.i];
        self.i += 1;
        Some(s)
    }
}

/// Whether `ts` is a valid time in the form the log writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`); anything
/// else goes to the general RFC 3339 parser.
fn canonical_time_ok(ts: &[u8]) -> bool {
    if ts.len() != 24 {
        return false;
    }
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    if !ts.iter().zip(shape).all(|(&c, &s)| match s {
        b'd' => c.is_ascii_digit(),
        _ => c == s,
    }) {
        return false;
    }
    let num = |r: Range<usize>| {
        ts[r]
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, min, sec) = (num(11..13), num(14..16), num(17..19));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    day >= 1 && day <= days && hour < 24 && min < 60 && sec < 60
}

/// Loads segments on another thread, one ahead of the one being checked.
struct Prefetch {
    rx: std::sync::mpsc::Receiver<Result<Vec<u8>, ReadError>>,
}

impl Prefetch {
    fn start(segs: Vec<SegmentFile>) -> Self {
        // Rendezvous: at most the segment being checked and the next one are in memory.
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        std::thread::spawn(move || {
            for s in segs {
                let r = s.load();
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    return;
                }
            }
        });
        Prefetch { rx }
    }
}

impl Iterator for Prefetch {
    type Item = Result<Vec<u8>, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testlog::{test_entry, TestLog};

    #[test]
    fn a_good_log_verifies_and_says_what_is_not_checkpointed() {
        let tmp = tempfile::tempdir().unwrap();
        let built = TestLog::new()
            .segment_records(30)
            .checkpoint_every(40)
            .final_checkpoint(false)
            .write(tmp.path(), 130)
            .unwrap();
        for full_parse in [false, true] {
            let opts = VerifyOptions {
                full_parse,
                ..VerifyOptions::default()
            };
            let r = verify(&built.dir, &built.verifier(), &opts).unwrap();
            assert_eq!(r.records, 130);
            assert_eq!(r.records_read, 130);
            assert_eq!(r.segments, 5);
            assert_eq!(r.checkpoints, 4); // 0, 40, 80, 120
            assert_eq!(r.not_checkpointed, 120..130);
            assert_eq!(r.stored_hashes, r.expected_hashes);
            assert!(r.torn_tail.is_none());
        }
    }

    #[test]
    fn the_fast_entry_check_accepts_what_log_entry_accepts() {
        for seq in 0..50 {
            let p = test_entry(seq).to_payload();
            // The form the log writes takes the path without a parser.
            assert_eq!(canonical_entry_seq(&p), Some(seq));
            assert_eq!(check_entry(&p, seq, false), Ok(()));
            assert_eq!(check_entry(&p, seq, true), Ok(()));
            assert_eq!(
                check_entry(&p, seq + 1, false),
                Err(RecordProblem::EntrySeq { found: seq })
            );
        }
        let good = String::from_utf8(test_entry(5).to_payload()).unwrap();
        let variants = [
            good.clone(),
            good.replace(".005Z", "Z"), // other RFC 3339 forms: accepted
            good.replace(".005Z", ".005+01:00"),
            good.replace("\"2025-11-30T04:20:00.005Z\"", "1764476400005"), // milliseconds
            good.replace("\"2025-11-30T04:20:00.005Z\"", "-5"),
            good.replace("\"2025-11-30T04:20:00.005Z\"", "1.5"),
            good.replace("\"2025-11-30T04:20:00.005Z\"", "18446744073709551615"),
            good.replace("\"2025-11-30T04:20:00.005Z\"", "null"),
            good.replace("2025-11-30", "2025-02-30"), // no such day: refused
            good.replace("2025-11-30", "2024-02-29"), // leap day: accepted
            good.replace("2025-11-30", "2025-02-29"),
            good.replace("T04:", "T24:"),
            good.replace("investigation_concluded", "no_such"),
            good.replace("\"summary\"", "\"summery\""),
            good.replace(",\"content_hash\":null", ""),
            good.replace("}", ",\"extra\":1}"),
            good.replace("\"seq\":5", "\"seq\":\"5\""),
            good.replace("ssh", "s\\u0073h"),
            good.replace("ssh", "s\\\"h"),
            good.replace("ssh", "s\th"),
            good.replace("ssh", "s\u{e9}h"),
            good.replace("\"seq\":5", "\"seq\":05"),
            good.replace("\"seq\":5", "\"seq\":5.0"),
            good.replace("\"seq\":5", "\"seq\":99999999999999999999"),
            good.replace(",\"ts\"", ", \"ts\""),
            good.replace("\"content_hash\":null", "\"content_hash\":\"ab\""),
            good.replace("\"content_hash\":null", "\"content_hash\":nul"),
            good.replace("investigation_concluded", "alert_raised"),
            good.replace("investigation_concluded", "Investigation_concluded"),
            format!("{good} "), // escapes: accepted
            good[..good.len() - 1].to_string(),
        ];
        assert!(good.contains(",\"content_hash\":null"), "{good}");
        let mut differ = 0;
        for v in &variants {
            differ += usize::from(*v != good);
        }
        assert_eq!(
            differ,
            variants.len() - 1,
            "every variant but the first changes something"
        );
        for v in variants {
            let full = LogEntry::from_payload(v.as_bytes()).is_ok();
            let fast = check_entry(v.as_bytes(), 5, false).is_ok();
            assert_eq!(fast, full, "{v}");
            // The scan without a parser never accepts what the parser refuses.
            if canonical_entry_seq(v.as_bytes()).is_some() {
                assert!(full, "{v}");
            }
        }
    }
}
