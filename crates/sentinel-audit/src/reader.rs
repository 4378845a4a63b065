//! Reading a log directory without the daemon: its segments (plain or gzip-compressed once
//! archived), its records, its checkpoints, its stored hashes and its verifier key.
//!
//! Everything here opens files read-only. Records are read one segment at a time (a segment is
//! loaded whole, the log never is). A live log may end in a torn frame, what a crash in the middle of
//! a write leaves: a torn tail in the last segment ends the records and is reported, anywhere else it
//! is damage.

use crate::format::{self, FrameError, LogEntry, CHECKPOINTS_MAGIC, HEADER_LEN, SEGMENT_MAGIC};
use crate::merkle::{Hash, HashReader, MerkleError};
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The folder of segment files, under the audit directory.
pub const SEGMENTS_DIR: &str = "segments";
/// The stored hashes file.
pub const HASHES_FILE: &str = "hashes";
/// The checkpoints file.
pub const CHECKPOINTS_FILE: &str = "checkpoints";
/// The verifier key file.
pub const KEY_PUB_FILE: &str = "key.pub";
/// The list of segments archived out of the directory (written by [`crate::archive`]).
pub const ARCHIVED_FILE: &str = "archived";

/// Why a log directory could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds something other than the format.
    #[error("{}: {why}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// The first record it holds (from its name).
    pub first_seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Whether it is gzip-compressed (`.seg.gz`, archived).
    pub compressed: bool,
}

impl SegmentFile {
    /// Its name relative to the audit directory (`segments/<first>.seg[.gz]`), as errors name it.
    pub fn name(&self) -> String {
        let file = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{SEGMENTS_DIR}/{file}")
    }

    /// Its whole content, decompressed.
    pub fn load(&self) -> Result<Vec<u8>, ReadError> {
        let f = File::open(&self.path).map_err(io_err(&self.path))?;
        let mut out = Vec::new();
        if self.compressed {
            flate2::read::MultiGzDecoder::new(BufReader::new(f))
                .read_to_end(&mut out)
                .map_err(io_err(&self.path))?;
        } else {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            out.reserve(usize::try_from(len).unwrap_or(0));
            BufReader::new(f)
                .read_to_end(&mut out)
                .map_err(io_err(&self.path))?;
        }
        Ok(out)
    }
}

/// A tail that ends inside a frame (or in zero bytes a crash left), where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The file (`segments/…seg` or `checkpoints`).
    pub file: String,
    /// Where the torn frame starts.
    pub offset: u64,
    /// How many bytes follow from there (not read as records).
    pub bytes: u64,
}

/// Whether the frame error at `offset` of `buf` is what a crash during a write leaves: the bytes end
/// inside a frame, or only zero bytes follow (space the file system extended but never wrote).
pub fn is_torn(buf: &[u8], offset: usize, e: &FrameError) -> bool {
    match e {
        FrameError::Torn { .. } => true,
        FrameError::Corrupt { .. } => buf.get(offset..).is_some_and(|t| t.iter().all(|&b| b == 0)),
    }
}

/// Checks a loaded segment's header against its file name; answers its first record.
pub fn segment_first_seq(seg: &SegmentFile, bytes: &[u8]) -> Result<u64, ReadError> {
    let first = format::parse_header(SEGMENT_MAGIC, bytes).map_err(|e| ReadError::Format {
        path: seg.path.clone(),
        why: format!("bad segment header: {e}"),
    })?;
    if first != seg.first_seq {
        return Err(ReadError::Format {
            path: seg.path.clone(),
            why: format!(
                "the header says the first record is {first}, the file name says {}",
                seg.first_seq
            ),
        });
    }
    Ok(first)
}

/// A log directory (the `audit` directory under a data directory), opened read-only.
#[derive(Debug, Clone)]
pub struct LogDir {
    dir: PathBuf,
    segments: Vec<SegmentFile>,
    shadowed: Vec<PathBuf>,
}

/// The segment files in `seg_dir`, by first record. An archive interrupted between writing the
/// compressed copy and removing the original leaves both for the same first record: the original is
/// the truth and kept; the compressed copy is returned apart ("shadowed"). Other files (`.idx`,
/// temporary files) are not segments.
pub fn list_segments(seg_dir: &Path) -> std::io::Result<(Vec<SegmentFile>, Vec<PathBuf>)> {
    let mut segments: Vec<SegmentFile> = Vec::new();
    for e in std::fs::read_dir(seg_dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(first_seq) = format::parse_segment_name(name) else {
            continue;
        };
        segments.push(SegmentFile {
            first_seq,
            path: e.path(),
            compressed: name.ends_with(".gz"),
        });
    }
    segments.sort_by_key(|s| (s.first_seq, s.compressed));
    let mut shadowed = Vec::new();
    segments.dedup_by(|later, kept| {
        let same = later.first_seq == kept.first_seq;
        if same {
            shadowed.push(later.path.clone());
        }
        same
    });
    Ok((segments, shadowed))
}

impl LogDir {
    /// Lists the segments of the audit directory `dir` (which holds `segments/`, `hashes`,
    /// `checkpoints` and `key.pub`), in order.
    pub fn open(dir: &Path) -> Result<Self, ReadError> {
        let seg_dir = dir.join(SEGMENTS_DIR);
        let (segments, shadowed) = list_segments(&seg_dir).map_err(io_err(&seg_dir))?;
        Ok(LogDir {
            dir: dir.to_owned(),
            segments,
            shadowed,
        })
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segment files, in order of their first record.
    pub fn segments(&self) -> &[SegmentFile] {
        &self.segments
    }

    /// Compressed copies ignored because the plain segment is still there (an interrupted archive).
    pub fn shadowed(&self) -> &[PathBuf] {
        &self.shadowed
    }

    /// The records from `from_seq` on, one segment in memory at a time.
    pub fn records(&self, from_seq: u64) -> Records<'_> {
        // Start at the last segment that begins at or before from_seq.
        let start = self
            .segments
            .iter()
            .rposition(|s| s.first_seq <= from_seq)
            .unwrap_or(0);
        Records {
            log: self,
            next_segment: start,
            current: None,
            from_seq,
            torn: None,
            failed: false,
        }
    }

    /// Record `seq`, when a segment in the directory holds it (`None` when it is past the end, or
    /// its segment was archived out of the directory: see [`Self::archived`]).
    pub fn record(&self, seq: u64) -> Result<Option<StoredRecord>, ReadError> {
        match self.records(seq).next().transpose()? {
            Some(r) if r.seq == seq => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    /// The checkpoints file's frames (their signatures unchecked: see [`crate::verify`]).
    pub fn checkpoints(&self) -> Result<CheckpointsFile, ReadError> {
        let path = self.dir.join(CHECKPOINTS_FILE);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let parsed = parse_checkpoints(&bytes).map_err(|why| ReadError::Format {
            path: path.clone(),
            why,
        })?;
        if let Some(c) = parsed.corrupt {
            return Err(ReadError::Format {
                path,
                why: format!(
                    "checkpoint {} (at byte {}) is corrupt: {}",
                    c.index, c.offset, c.why
                ),
            });
        }
        Ok(parsed)
    }

    /// The stored hashes, read on demand (for proofs: [`crate::merkle::inclusion_proof`] and the rest).
    pub fn stored_hashes(&self) -> Result<StoredHashes, ReadError> {
        StoredHashes::open(&self.dir.join(HASHES_FILE))
    }

    /// The verifier key kept with the log (`key.pub`). Trusting it trusts whoever could write the
    /// directory: a verifier key from elsewhere is stronger.
    pub fn key_pub(&self) -> Result<String, ReadError> {
        let path = self.dir.join(KEY_PUB_FILE);
        std::fs::read_to_string(&path).map_err(io_err(&path))
    }

    /// The segments archived (empty when none was), by first record, each where it was put last: the
    /// list is appended to, so a segment compressed in place and later moved away with `--to` is listed
    /// twice, and the later line is where it is.
    pub fn archived(&self) -> Result<Vec<ArchivedRange>, ReadError> {
        let path = self.dir.join(ARCHIVED_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut out = std::collections::BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (Some(first), Some(end), Some(location)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ReadError::Format {
                    path,
                    why: format!("line {}: expected <first> <end> <location>", n + 1),
                });
            };
            let (Ok(first_seq), Ok(end_seq)) = (first.parse(), end.parse()) else {
                return Err(ReadError::Format {
                    path,
                    why: format!("line {}: bad record numbers", n + 1),
                });
            };
            out.insert(
                first_seq,
                ArchivedRange {
                    first_seq,
                    end_seq,
                    location: PathBuf::from(location),
                },
            );
        }
        Ok(out.into_values().collect())
    }
}

/// Records `[first_seq, end_seq)` archived to `location` (a `.seg.gz` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRange {
    /// The first record.
    pub first_seq: u64,
    /// One past the last record.
    pub end_seq: u64,
    /// Where the compressed segment went.
    pub location: PathBuf,
}

/// One record as read from its segment.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Its sequence number (from its frame).
    pub seq: u64,
    /// Its payload: the leaf, exactly as hashed.
    pub payload: Vec<u8>,
    /// The payload read as an entry.
    pub entry: LogEntry,
    /// The segment it is in (`segments/…`).
    pub segment: String,
    /// Where its frame starts in the (uncompressed) segment.
    pub offset: u64,
}

struct Loaded {
    seg: usize,
    bytes: Vec<u8>,
    pos: usize,
}

/// The records of a log, in order (see [`LogDir::records`]).
pub struct Records<'a> {
    log: &'a LogDir,
    next_segment: usize,
    current: Option<Loaded>,
    from_seq: u64,
    torn: Option<TornTail>,
    failed: bool,
}

impl Records<'_> {
    /// The torn tail reading stopped at, if any (known once the iterator has ended).
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    fn next_record(&mut self) -> Result<Option<StoredRecord>, ReadError> {
        loop {
            let Some(cur) = self.current.as_mut() else {
                let Some(seg) = self.log.segments.get(self.next_segment) else {
                    return Ok(None);
                };
                let bytes = seg.load()?;
                segment_first_seq(seg, &bytes)?;
                self.current = Some(Loaded {
                    seg: self.next_segment,
                    bytes,
                    pos: HEADER_LEN,
                });
                self.next_segment += 1;
                continue;
            };
            let seg = &self.log.segments[cur.seg];
            match format::decode_frame(&cur.bytes, cur.pos) {
                Ok(None) => self.current = None,
                Ok(Some(f)) => {
                    cur.pos = f.end;
                    if f.seq < self.from_seq {
                        continue;
                    }
                    let entry =
                        LogEntry::from_payload(f.payload).map_err(|e| ReadError::Format {
                            path: seg.path.clone(),
                            why: format!("record {} at byte {}: bad entry: {e}", f.seq, f.offset),
                        })?;
                    return Ok(Some(StoredRecord {
                        seq: f.seq,
                        payload: f.payload.to_vec(),
                        entry,
                        segment: seg.name(),
                        offset: f.offset as u64,
                    }));
                }
                Err(e) => {
                    let last = cur.seg + 1 == self.log.segments.len();
                    if last && is_torn(&cur.bytes, cur.pos, &e) {
                        self.torn = Some(TornTail {
                            file: seg.name(),
                            offset: cur.pos as u64,
                            bytes: (cur.bytes.len() - cur.pos) as u64,
                        });
                        self.current = None;
                        return Ok(None);
                    }
                    return Err(ReadError::Format {
                        path: seg.path.clone(),
                        why: e.to_string(),
                    });
                }
            }
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<StoredRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_record() {
            Ok(r) => r.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// One frame of the checkpoints file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFrame {
    /// Its position in the file, from 0.
    pub index: usize,
    /// The tree size its frame names.
    pub size: u64,
    /// The signed note (unchecked).
    pub text: Vec<u8>,
    /// Where its frame starts.
    pub offset: u64,
}

/// A frame of the checkpoints file that is damaged (not a torn tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptCheckpoint {
    /// Its position in the file.
    pub index: usize,
    /// Where it starts.
    pub offset: u64,
    /// What is wrong.
    pub why: String,
}

/// The checkpoints file, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointsFile {
    /// Its frames, in order.
    pub frames: Vec<CheckpointFrame>,
    /// A torn last frame (a crash while one was appended).
    pub torn: Option<TornTail>,
    /// A damaged frame where reading stopped.
    pub corrupt: Option<CorruptCheckpoint>,
}

/// Reads the checkpoints file's bytes; `Err` when its header is wrong.
pub fn parse_checkpoints(bytes: &[u8]) -> Result<CheckpointsFile, String> {
    format::parse_header(CHECKPOINTS_MAGIC, bytes).map_err(|e| format!("bad header: {e}"))?;
    let mut out = CheckpointsFile::default();
    let mut pos = HEADER_LEN;
    loop {
        match format::decode_frame(bytes, pos) {
            Ok(None) => break,
            Ok(Some(f)) => {
                out.frames.push(CheckpointFrame {
                    index: out.frames.len(),
                    size: f.seq,
                    text: f.payload.to_vec(),
                    offset: f.offset as u64,
                });
                pos = f.end;
            }
            Err(e) if is_torn(bytes, pos, &e) => {
                out.torn = Some(TornTail {
                    file: CHECKPOINTS_FILE.into(),
                    offset: pos as u64,
                    bytes: (bytes.len() - pos) as u64,
                });
                break;
            }
            Err(e) => {
                out.corrupt = Some(CorruptCheckpoint {
                    index: out.frames.len(),
                    offset: pos as u64,
                    why: e.to_string(),
                });
                break;
            }
        }
    }
    Ok(out)
}

/// The stored hashes file, read on demand: a [`HashReader`] for proofs and tree hashes.
#[derive(Debug)]
pub struct StoredHashes {
    file: File,
    path: PathBuf,
    count: u64,
}

impl StoredHashes {
    /// Opens a hashes file.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        Ok(StoredHashes {
            file,
            path: path.to_owned(),
            count: len / 32,
        })
    }

    /// How many whole hashes it holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hash at `index`.
    pub fn get(&self, index: u64) -> Result<Hash, MerkleError> {
        if index >= self.count {
            return Err(MerkleError::Read(format!(
                "no stored hash {index} in {} ({} hashes)",
                self.path.display(),
                self.count
            )));
        }
        let mut h = [0u8; 32];
        self.file
            .read_exact_at(&mut h, index * 32)
            .map_err(|e| MerkleError::Read(format!("{}: {e}", self.path.display())))?;
        Ok(h)
    }
}

impl HashReader for StoredHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes.iter().map(|&i| self.get(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testlog::TestLog;

    #[test]
    fn reads_records_across_plain_and_compressed_segments_and_reports_a_torn_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let built = TestLog::new()
            .segment_records(10)
            .write(tmp.path(), 35)
            .unwrap();
        let log = LogDir::open(&built.dir).unwrap();
        assert_eq!(
            log.segments()
                .iter()
                .map(|s| s.first_seq)
                .collect::<Vec<_>>(),
            vec![0, 10, 20, 30]
        );
        // Compress the second segment as archiving does.
        let seg = &log.segments()[1];
        let raw = std::fs::read(&seg.path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &raw).unwrap();
        let gz = seg.path.with_extension("seg.gz");
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        // Both present: the plain one is read and the compressed copy is reported as shadowed.
        let log = LogDir::open(&built.dir).unwrap();
        assert_eq!(log.shadowed(), std::slice::from_ref(&gz));
        std::fs::remove_file(&seg.path).unwrap();
        // Tear the last record of the last segment.
        let last = built.dir.join(SEGMENTS_DIR).join(format::segment_name(30));
        let len = std::fs::metadata(&last).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        f.set_len(len - 5).unwrap();

        let log = LogDir::open(&built.dir).unwrap();
        assert!(log.segments()[1].compressed);
        let mut it = log.records(3);
        let seqs: Vec<u64> = it.by_ref().map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, (3..34).collect::<Vec<_>>());
        let torn = it.torn_tail().unwrap();
        assert_eq!(torn.file, "segments/00000000000000000030.seg");
        assert!(torn.bytes > 0 && torn.bytes < 400, "{torn:?}");
        let r: Vec<StoredRecord> = log.records(12).take(1).map(|r| r.unwrap()).collect();
        assert_eq!(r[0].entry, crate::testlog::test_entry(12));
        assert_eq!(r[0].segment, "segments/00000000000000000010.seg.gz");
        assert_eq!(log.record(12).unwrap().unwrap().payload, r[0].payload);
        assert!(log.record(34).unwrap().is_none(), "the torn record");
        std::fs::remove_file(&gz).unwrap();
        let log = LogDir::open(&built.dir).unwrap();
        assert!(log.record(12).unwrap().is_none(), "archived away");
        assert_eq!(log.record(25).unwrap().unwrap().seq, 25);
    }

    #[test]
    fn checkpoints_hashes_and_key_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let built = TestLog::new()
            .checkpoint_every(4)
            .write(tmp.path(), 10)
            .unwrap();
        let log = LogDir::open(&built.dir).unwrap();
        let cps = log.checkpoints().unwrap();
        assert_eq!(
            cps.frames.iter().map(|f| f.size).collect::<Vec<_>>(),
            vec![0, 4, 8, 10]
        );
        assert!(cps.torn.is_none() && cps.corrupt.is_none());
        let hashes = log.stored_hashes().unwrap();
        assert_eq!(hashes.count(), crate::merkle::stored_hash_count(10));
        let root = crate::merkle::tree_hash(10, &hashes).unwrap();
        assert_eq!(root, built.checkpoints[3].checkpoint.root);
        let v = crate::note::Verifier::parse(&log.key_pub().unwrap()).unwrap();
        assert_eq!(v, built.signer.verifier());
    }
}
