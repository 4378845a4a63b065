//! Archiving old segments: gzip a sealed segment, make the copy durable, then remove the original
//! (or move the compressed copy out of the directory). The hashes file and the checkpoints stay, so
//! inclusion and consistency proofs keep working and [`crate::verify`] still checks every checkpoint:
//! it reads a compressed segment as it reads a plain one, and checks a segment moved away through
//! the stored hashes (the `archived` file lists what went where).
//!
//! Only whole sealed segments go: never the last (active) one, never one holding a record at or past
//! `before_seq`, and never one holding records the latest checkpoint does not cover yet (once moved
//! away, a record is checked only through its stored hash and a signed root over it). Each segment
//! is checked (header, frames, sequence) before it is compressed, and the compressed copy is read
//! back and compared before the original is removed. An interrupted archive leaves both copies
//! (readers prefer the original) and running it again finishes the work.

use crate::format::{self, HEADER_LEN, SEGMENT_MAGIC};
use crate::merkle;
use crate::reader::{LogDir, ReadError, SegmentFile, StoredHashes, ARCHIVED_FILE, HASHES_FILE};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why archiving stopped (segments archived before it stay archived: each step is complete).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The log could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A file could not be written, synced, renamed or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The hashes file cannot stand in for a segment moved away: it is left where it is.
    #[error("{segment}: not moved away: {why}")]
    Hashes {
        /// The segment.
        segment: String,
        /// What is wrong.
        why: String,
    },
    /// A segment is damaged: it is left as it is (run `verify`).
    #[error("{segment}: not archived, the segment is damaged: {why}")]
    Damaged {
        /// The segment.
        segment: String,
        /// What is wrong.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One segment archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedSegment {
    /// Its first record.
    pub first_seq: u64,
    /// One past its last record.
    pub end_seq: u64,
    /// Where the compressed segment is now.
    pub file: PathBuf,
    /// Its size before compression.
    pub bytes: u64,
    /// Its size compressed.
    pub compressed_bytes: u64,
}

/// What [`archive`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The segments archived, in order.
    pub archived: Vec<ArchivedSegment>,
    /// Records below this were eligible: the smaller of `before_seq` and the latest checkpoint's size.
    pub limit: u64,
}

/// Archives the sealed segments of the audit directory `dir` whose records are all below
/// `before_seq`: compressed in place (`.seg.gz`), or moved to `dest` when given.
pub fn archive(
    dir: &Path,
    before_seq: u64,
    dest: Option<&Path>,
) -> Result<ArchiveReport, ArchiveError> {
    let log = LogDir::open(dir)?;
    let checkpointed = log
        .checkpoints()?
        .frames
        .iter()
        .map(|f| f.size)
        .max()
        .unwrap_or(0);
    let limit = before_seq.min(checkpointed);
    let mut report = ArchiveReport {
        archived: Vec::new(),
        limit,
    };
    if let Some(d) = dest {
        // Created private (0700), as the data directory is; an existing directory is left as it is.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(io(d))?;
    }
    let segs = log.segments();
    for pair in segs.windows(2) {
        let (seg, next) = (&pair[0], &pair[1]);
        if next.first_seq > limit {
            break;
        }
        if seg.compressed && dest.is_none() {
            continue; // already archived in place
        }
        report
            .archived
            .push(archive_one(dir, seg, next.first_seq, dest)?);
    }
    Ok(report)
}

/// A new (or emptied) file only its owner can read or write (0600, whatever the umask): archived
/// segments hold the same records as the private data directory.
fn private_file(path: &Path) -> Result<File, ArchiveError> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    // A leftover file of an interrupted run keeps its old mode through `open`: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(path))?;
    Ok(f)
}

fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Checks that the hashes file holds the leaf hash of every record of the segment.
fn check_stored_leaves(
    dir: &Path,
    seg: &SegmentFile,
    leaves: &[merkle::Hash],
) -> Result<(), ArchiveError> {
    let hashes = StoredHashes::open(&dir.join(HASHES_FILE))?;
    let end = seg.first_seq + leaves.len() as u64;
    if hashes.count() < merkle::stored_hash_count(end) {
        return Err(ArchiveError::Hashes {
            segment: seg.name(),
            why: format!(
                "the hashes file holds {} hashes, {} are needed up to record {end} \
                 (the daemon rebuilds it when it opens the log)",
                hashes.count(),
                merkle::stored_hash_count(end)
            ),
        });
    }
    for (i, leaf) in leaves.iter().enumerate() {
        let seq = seg.first_seq + i as u64;
        let stored =
            hashes
                .get(merkle::stored_hash_index(0, seq))
                .map_err(|e| ArchiveError::Hashes {
                    segment: seg.name(),
                    why: e.to_string(),
                })?;
        if stored != *leaf {
            return Err(ArchiveError::Hashes {
                segment: seg.name(),
                why: format!("the stored hash of record {seq} is not its hash (run verify)"),
            });
        }
    }
    Ok(())
}

/// Checks a segment's header, frames and sequence; answers its records' leaf hashes.
fn check_segment(
    seg: &SegmentFile,
    bytes: &[u8],
    end_seq: u64,
) -> Result<Vec<merkle::Hash>, ArchiveError> {
    let damaged = |why: String| ArchiveError::Damaged {
        segment: seg.name(),
        why,
    };
    let first = format::parse_header(SEGMENT_MAGIC, bytes).map_err(|e| damaged(e.to_string()))?;
    if first != seg.first_seq {
        return Err(damaged(format!(
            "the header says record {first}, the name {}",
            seg.first_seq
        )));
    }
    let (mut pos, mut want) = (HEADER_LEN, first);
    let mut leaves = Vec::new();
    while let Some(f) = format::decode_frame(bytes, pos).map_err(|e| damaged(e.to_string()))? {
        if f.seq != want {
            return Err(damaged(format!(
                "record {want} expected at byte {pos}, found {}",
                f.seq
            )));
        }
        leaves.push(merkle::leaf_hash(f.payload));
        want += 1;
        pos = f.end;
    }
    if want != end_seq {
        return Err(damaged(format!(
            "it ends at record {want}, the next segment starts at {end_seq}"
        )));
    }
    Ok(leaves)
}

fn archive_one(
    dir: &Path,
    seg: &SegmentFile,
    end_seq: u64,
    dest: Option<&Path>,
) -> Result<ArchivedSegment, ArchiveError> {
    let seg_dir = seg.path.parent().unwrap_or(dir).to_owned();
    let bytes = seg.load()?;
    let leaves = check_segment(seg, &bytes, end_seq)?;
    if dest.is_some() {
        // Once moved away, these records are checked through their stored hashes only: those
        // must be there and be the records' hashes.
        check_stored_leaves(dir, seg, &leaves)?;
    }
    let gz_name = format!("{}.gz", format::segment_name(seg.first_seq));
    let gz = seg_dir.join(&gz_name);
    if !seg.compressed {
        let tmp = seg_dir.join(format!("{gz_name}.tmp"));
        let f = private_file(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        enc.write_all(&bytes).map_err(io(&tmp))?;
        let f = enc.finish().map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        // Read the copy back before trusting it with the only copy of these records.
        let mut back = Vec::with_capacity(bytes.len());
        File::open(&tmp)
            .and_then(|f| flate2::read::MultiGzDecoder::new(f).read_to_end(&mut back))
            .map_err(io(&tmp))?;
        if back != bytes {
            return Err(ArchiveError::Io {
                path: tmp,
                source: std::io::Error::other("the compressed copy does not read back the same"),
            });
        }
        std::fs::rename(&tmp, &gz).map_err(io(&gz))?;
        sync_dir(&seg_dir)?;
    }
    let compressed_bytes = std::fs::metadata(&gz).map_err(io(&gz))?.len();
    let mut file = gz.clone();
    if let Some(d) = dest {
        let target = d.join(&gz_name);
        let tmp = d.join(format!("{gz_name}.tmp"));
        let mut out = private_file(&tmp)?;
        File::open(&gz)
            .and_then(|mut f| std::io::copy(&mut f, &mut out))
            .and_then(|_| out.sync_all())
            .map_err(io(&tmp))?;
        drop(out);
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        sync_dir(d)?;
        file = target;
    }
    // The list of what went where, durable before the segment leaves the directory. The location is
    // absolute: a path relative to where `archive` ran would mislead a reader running elsewhere.
    let file = std::fs::canonicalize(&file).unwrap_or(file);
    let list = dir.join(ARCHIVED_FILE);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&list)
        .map_err(io(&list))?;
    writeln!(f, "{} {} {}", seg.first_seq, end_seq, file.display()).map_err(io(&list))?;
    f.sync_all().map_err(io(&list))?;
    sync_dir(dir)?;
    if !seg.compressed {
        std::fs::remove_file(&seg.path).map_err(io(&seg.path))?;
    }
    if dest.is_some() {
        std::fs::remove_file(&gz).map_err(io(&gz))?;
    }
    sync_dir(&seg_dir)?;
    tracing::info!(
        evt = "audit_segment_archived",
        first_seq = seg.first_seq,
        end_seq,
        file = %file.display(),
        bytes = bytes.len(),
        compressed_bytes,
        "audit segment archived"
    );
    Ok(ArchivedSegment {
        first_seq: seg.first_seq,
        end_seq,
        file,
        bytes: bytes.len() as u64,
        compressed_bytes,
    })
}
