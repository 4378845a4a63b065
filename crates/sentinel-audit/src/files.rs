//! The write side's file helpers: scanning a segment's frames, the sparse `.idx` of a sealed segment,
//! the stored-hashes file read with `pread`, and `fsync` of a directory.
//!
//! A sealed segment's index (`<first seq>.idx`) is written once, when the segment is sealed (atomically:
//! a temporary file, `fsync`, rename, `fsync` of the directory):
//!
//! ```text
//! "SNTLIDX1" ‖ first_seq u64 ‖ records u64 ‖ segment bytes u64 ‖ (seq u64, offset u64)* ‖ crc32 u32
//! ```
//!
//! all little-endian, one `(seq, offset)` pair for every [`INDEX_EVERY`]-th record of the segment
//! (the first record included), the CRC-32 over everything before it. To read record `s`, find the
//! last pair with `seq ≤ s` and decode forward from its offset: at most `INDEX_EVERY` frames.

use crate::format::{self, FrameError};
use crate::merkle::{Hash, HashReader, MerkleError};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One index pair every this many records.
pub const INDEX_EVERY: u64 = 256;
/// The magic that starts a `.idx` file.
pub const INDEX_MAGIC: &[u8; 8] = b"SNTLIDX1";

/// The sparse index of a sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    /// The first record's sequence number.
    pub first_seq: u64,
    /// How many records the segment holds.
    pub records: u64,
    /// The segment's length in bytes.
    pub bytes: u64,
    /// `(seq, offset)` of every [`INDEX_EVERY`]-th record.
    pub entries: Vec<(u64, u64)>,
}

/// The index file name of the segment starting at `first_seq`.
pub fn index_name(first_seq: u64) -> String {
    format!("{first_seq:020}.idx")
}

impl SegmentIndex {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.entries.len() * 16 + 4);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&self.bytes.to_le_bytes());
        for (s, o) in &self.entries {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&o.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads a file written by [`Self::encode`].
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < 36 || !(b.len() - 36).is_multiple_of(16) {
            return Err(format!("{} bytes is not an index's length", b.len()));
        }
        if &b[..8] != INDEX_MAGIC {
            return Err("the file does not start with SNTLIDX1".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("checksum mismatch".into());
        }
        let u = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(x)
        };
        let entries = (32..body.len())
            .step_by(16)
            .map(|at| (u(at), u(at + 8)))
            .collect();
        Ok(SegmentIndex {
            first_seq: u(8),
            records: u(16),
            bytes: u(24),
            entries,
        })
    }

    /// Writes it next to its segment, atomically and durably.
    pub fn write(&self, seg_dir: &Path) -> std::io::Result<()> {
        let path = seg_dir.join(index_name(self.first_seq));
        let tmp = seg_dir.join(format!("{}.tmp", index_name(self.first_seq)));
        let mut f = File::create(&tmp)?;
        f.write_all(&self.encode())?;
        f.sync_data()?;
        fs::rename(&tmp, &path)?;
        sync_dir(seg_dir)
    }

    /// Reads the index of the segment starting at `first_seq`, if there is a good one.
    pub fn read(seg_dir: &Path, first_seq: u64) -> Result<Option<Self>, String> {
        match fs::read(seg_dir.join(index_name(first_seq))) {
            Ok(b) => {
                let idx = Self::decode(&b)?;
                if idx.first_seq != first_seq {
                    return Err(format!("it indexes segment {}", idx.first_seq));
                }
                Ok(Some(idx))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// `fsync` of a directory, so that files created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Where a scan of a segment stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// At the end of the bytes, after a whole frame.
    Clean,
    /// At a bad frame with nothing valid after it: what a crash during a write leaves.
    Tail {
        /// Where the bad bytes start.
        offset: u64,
        /// What was found there.
        error: FrameError,
    },
}

/// Why a scan was refused: damage that is not a torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Where the bad frame starts.
    pub offset: u64,
    /// The sequence number expected there.
    pub seq: u64,
    /// What is wrong.
    pub why: String,
}

/// What a scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The sequence number after the last good record.
    pub next_seq: u64,
    /// The byte length of the good part.
    pub good_len: u64,
    /// `(seq, offset)` of every [`INDEX_EVERY`]-th good record.
    pub entries: Vec<(u64, u64)>,
    /// How it ended.
    pub end: ScanEnd,
}

/// Scans the frames of a segment (`buf`: the whole file, header included), calling `each(seq,
/// payload)` for every good record. Sequence numbers must run on from `first_seq` without a gap. A bad
/// frame followed by nothing that decodes as a later record is a torn tail ([`ScanEnd::Tail`]); a bad
/// frame or a gap with good records after it is an error (never truncate acknowledged records).
pub fn scan_segment(
    buf: &[u8],
    first_seq: u64,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<Scan, ScanError> {
    let head = format::parse_header(format::SEGMENT_MAGIC, buf).map_err(|e| ScanError {
        offset: 0,
        seq: first_seq,
        why: format!("bad header: {e}"),
    })?;
    if head != first_seq {
        return Err(ScanError {
            offset: 0,
            seq: first_seq,
            why: format!("the header says the first record is {head}"),
        });
    }
    let mut off = format::HEADER_LEN;
    let mut seq = first_seq;
    let mut entries = Vec::new();
    loop {
        match format::decode_frame(buf, off) {
            Ok(None) => {
                return Ok(Scan {
                    next_seq: seq,
                    good_len: off as u64,
                    entries,
                    end: ScanEnd::Clean,
                })
            }
            Ok(Some(f)) => {
                if f.seq != seq {
                    return Err(ScanError {
                        offset: off as u64,
                        seq,
                        why: format!("found record {} where {seq} belongs", f.seq),
                    });
                }
                if (seq - first_seq).is_multiple_of(INDEX_EVERY) {
                    entries.push((seq, off as u64));
                }
                each(seq, f.payload);
                seq += 1;
                off = f.end;
            }
            Err(error) => {
                if let Some(later) = find_later_frame(buf, off + 1, seq) {
                    return Err(ScanError {
                        offset: off as u64,
                        seq,
                        why: format!(
                            "{error}, with record {} intact at byte {} after it",
                            later.0, later.1
                        ),
                    });
                }
                return Ok(Scan {
                    next_seq: seq,
                    good_len: off as u64,
                    entries,
                    end: ScanEnd::Tail {
                        offset: off as u64,
                        error,
                    },
                });
            }
        }
    }
}

/// The first offset at or after `from` holding a whole, checksummed frame numbered `seq` or later.
fn find_later_frame(buf: &[u8], from: usize, seq: u64) -> Option<(u64, usize)> {
    let last = buf.len().checked_sub(format::FRAME_HEAD)?;
    (from..=last).find_map(|at| {
        let mut s = [0u8; 8];
        s.copy_from_slice(&buf[at..at + 8]);
        let s = u64::from_le_bytes(s);
        // A cheap filter first: only plausible sequence numbers are checked in full.
        if s < seq || s - seq > 1 << 32 {
            return None;
        }
        match format::decode_frame(buf, at) {
            Ok(Some(f)) => Some((f.seq, at)),
            _ => None,
        }
    })
}

/// The stored-hashes file, read with `pread` (32 bytes per hash, in [`crate::merkle`]'s order).
#[derive(Debug)]
pub struct HashFile {
    file: File,
    path: PathBuf,
}

impl HashFile {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(HashFile {
            file: File::open(path)?,
            path: path.to_owned(),
        })
    }

    /// Opens `path` for reading and writing, creating it.
    pub fn open_rw(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    }
}

impl HashReader for HashFile {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&i| {
                let mut h = [0u8; 32];
                self.file.read_exact_at(&mut h, i * 32).map_err(|e| {
                    MerkleError::Read(format!("{} hash {i}: {e}", self.path.display()))
                })?;
                Ok(h)
            })
            .collect()
    }
}

/// The hash bytes of `hashes`, back to back.
pub fn hash_bytes(hashes: &[Hash], out: &mut Vec<u8>) {
    out.reserve(hashes.len() * 32);
    for h in hashes {
        out.extend_from_slice(h);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_index_round_trips_and_a_changed_byte_is_refused() {
        let idx = SegmentIndex {
            first_seq: 512,
            records: 600,
            bytes: 123_456,
            entries: vec![(512, 16), (768, 60_000)],
        };
        let b = idx.encode();
        assert_eq!(SegmentIndex::decode(&b).unwrap(), idx);
        for at in 0..b.len() {
            let mut bad = b.clone();
            bad[at] ^= 1;
            assert!(SegmentIndex::decode(&bad).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn a_scan_truncates_only_a_tail_and_refuses_damage_before_good_records() {
        let mut seg = format::segment_header(10).to_vec();
        for s in 10..20u64 {
            format::encode_frame(s, format!("record {s}").as_bytes(), &mut seg);
        }
        let whole = seg.len();
        let scan = scan_segment(&seg, 10, |_, _| {}).unwrap();
        assert_eq!(
            (scan.next_seq, scan.good_len, scan.end),
            (20, whole as u64, ScanEnd::Clean)
        );

        let mut torn = seg.clone();
        format::encode_frame(20, b"record 20", &mut torn);
        torn.truncate(torn.len() - 3);
        let scan = scan_segment(&torn, 10, |_, _| {}).unwrap();
        assert_eq!((scan.next_seq, scan.good_len), (20, whole as u64));
        assert!(matches!(scan.end, ScanEnd::Tail { .. }));

        let mut mid = seg.clone();
        mid[40] ^= 0xff; // inside record 10's payload
        let e = scan_segment(&mid, 10, |_, _| {}).unwrap_err();
        assert_eq!((e.offset, e.seq), (16, 10));

        let mut gap = format::segment_header(10).to_vec();
        format::encode_frame(10, b"a", &mut gap);
        format::encode_frame(12, b"b", &mut gap);
        assert_eq!(scan_segment(&gap, 10, |_, _| {}).unwrap_err().seq, 11);
    }
}
