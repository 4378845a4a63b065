//! The on-disk format of the log.
//!
//! ```text
//! <data>/audit/segments/<first seq, 20 digits>.seg   records, append-only (".seg.gz" once archived)
//! <data>/audit/segments/<first seq>.idx               sparse index of a sealed segment
//! <data>/audit/hashes                                 stored Merkle hashes (32 bytes each, tlog order)
//! <data>/audit/checkpoints                            signed checkpoints, append-only
//! <data>/audit/key, key.pub                           the signing key (0600) and its verifier key
//! ```
//!
//! A segment starts with a 16-byte header, `SNTLAUD1` and the first record's sequence number (u64 LE),
//! then holds frames. A frame is `seq u64 LE ‖ len u32 LE ‖ crc u32 LE ‖ payload`, the CRC-32 (IEEE)
//! over `seq ‖ len ‖ payload`. A record's payload is its [`LogEntry`] as compact JSON, and its Merkle
//! leaf hash is SHA-256(0x00 ‖ payload). The checkpoints file is a header `SNTLCKP1` and 8 zero bytes,
//! then frames whose `seq` is the checkpoint's tree size and whose payload is the signed note.

use sentinel_core::{AuditKind, AuditRecord, Timestamp, TraceId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The magic that starts a segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"SNTLAUD1";
/// The magic that starts the checkpoints file.
pub const CHECKPOINTS_MAGIC: &[u8; 8] = b"SNTLCKP1";
/// Bytes before the first frame of a segment or of the checkpoints file.
pub const HEADER_LEN: usize = 16;
/// Bytes before a frame's payload.
pub const FRAME_HEAD: usize = 16;
/// The largest payload a frame may carry (a record is a few hundred bytes; this bounds what a corrupt
/// length can make a reader allocate).
pub const MAX_PAYLOAD: u32 = 1 << 20;

/// The audit directory under a data directory.
pub fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// The segment whose first record is `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first sequence number a segment file name (`….seg` or `….seg.gz`) names.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name
        .strip_suffix(".seg")
        .or_else(|| name.strip_suffix(".seg.gz"))?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// One record of the log, exactly as hashed: its sequence number is part of what is signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Its position in the log, from 0.
    pub seq: u64,
    /// When it was recorded.
    pub ts: Timestamp,
    /// What happened.
    pub kind: AuditKind,
    /// The id of the record it is about.
    pub subject_id: String,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// A short summary.
    pub summary: String,
    /// SHA-256 (hex) of what it is about, when there is something to hash.
    pub content_hash: Option<String>,
}

impl LogEntry {
    /// The entry for `r` at position `seq`.
    pub fn new(seq: u64, r: AuditRecord) -> Self {
        LogEntry {
            seq,
            ts: r.ts,
            kind: r.kind,
            subject_id: r.subject_id,
            trace_id: r.trace_id,
            summary: r.summary,
            content_hash: r.content_hash,
        }
    }

    /// The audit record it holds.
    pub fn record(&self) -> AuditRecord {
        AuditRecord {
            ts: self.ts,
            kind: self.kind,
            subject_id: self.subject_id.clone(),
            trace_id: self.trace_id.clone(),
            summary: self.summary.clone(),
            content_hash: self.content_hash.clone(),
        }
    }

    /// The payload: compact JSON in field order.
    pub fn to_payload(&self) -> Vec<u8> {
        // Serialising plain strings, numbers and enums cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a payload.
    pub fn from_payload(p: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(p)
    }
}

/// The 16-byte header of a segment.
pub fn segment_header(first_seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// The 16-byte header of the checkpoints file.
pub fn checkpoints_header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(CHECKPOINTS_MAGIC);
    h
}

/// Reads a header: the first sequence number after `magic`.
pub fn parse_header(magic: &[u8; 8], bytes: &[u8]) -> Result<u64, FrameError> {
    let Some(head) = bytes.get(..HEADER_LEN) else {
        return Err(FrameError::Torn { offset: 0 });
    };
    if &head[..8] != magic {
        return Err(FrameError::Corrupt {
            offset: 0,
            why: format!(
                "the file does not start with {}",
                String::from_utf8_lossy(magic)
            ),
        });
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&head[8..]);
    Ok(u64::from_le_bytes(n))
}

fn crc(seq: u64, len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one frame to `out`.
pub fn encode_frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc(seq, len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside a frame: what a crash during a write leaves.
    #[error("incomplete frame at byte {offset}")]
    Torn {
        /// Where the frame starts.
        offset: usize,
    },
    /// A whole frame whose length or checksum is wrong.
    #[error("corrupt frame at byte {offset}: {why}")]
    Corrupt {
        /// Where the frame starts.
        offset: usize,
        /// What is wrong.
        why: String,
    },
}

/// One frame read from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Its payload.
    pub payload: &'a [u8],
    /// Where it starts.
    pub offset: usize,
    /// Where the next frame starts.
    pub end: usize,
}

/// Reads the frame at `offset` of `buf`; `None` at the end of the buffer.
pub fn decode_frame(buf: &[u8], offset: usize) -> Result<Option<Frame<'_>>, FrameError> {
    if offset == buf.len() {
        return Ok(None);
    }
    let Some(head) = buf.get(offset..offset + FRAME_HEAD) else {
        return Err(FrameError::Torn { offset });
    };
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[..8]);
    let seq = u64::from_le_bytes(seq);
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let want = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    if len > MAX_PAYLOAD {
        // A length this large is garbage, torn or not: a crash cannot write one.
        return Err(FrameError::Corrupt {
            offset,
            why: format!("length {len} is over the limit {MAX_PAYLOAD}"),
        });
    }
    let start = offset + FRAME_HEAD;
    let end = start + len as usize;
    let Some(payload) = buf.get(start..end) else {
        return Err(FrameError::Torn { offset });
    };
    if crc(seq, len, payload) != want {
        return Err(FrameError::Corrupt {
            offset,
            why: "checksum mismatch".into(),
        });
    }
    Ok(Some(Frame {
        seq,
        payload,
        offset,
        end,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn entry() -> LogEntry {
        LogEntry {
            seq: 7,
            ts: Timestamp::from_millis(1_764_476_400_123),
            kind: AuditKind::PlanDecided,
            subject_id: "01JDQ0000000000000000000PL".into(),
            trace_id: serde_json::from_str("\"01JDQ0000000000000000000TR\"").unwrap(),
            summary: "enforce [block_ip]: ssh brute force".into(),
            content_hash: Some("ab".repeat(32)),
        }
    }

    /// The segment format is fixed: a change breaks this on purpose (old logs must stay readable).
    /// The expected bytes, CRC and leaf hash were computed independently with Python (struct, zlib, hashlib).
    #[test]
    fn golden_segment_bytes() {
        let e = entry();
        let payload = e.to_payload();
        assert_eq!(
            String::from_utf8(payload.clone()).unwrap(),
            "{\"seq\":7,\"ts\":\"2025-11-30T04:20:00.123Z\",\"kind\":\"plan_decided\",\
             \"subject_id\":\"01JDQ0000000000000000000PL\",\"trace_id\":\"01JDQ0000000000000000000TR\",\
             \"summary\":\"enforce [block_ip]: ssh brute force\",\"content_hash\":\"abababababababababababababababababababababababababababababababab\"}"
        );
        let mut seg = segment_header(7).to_vec();
        encode_frame(7, &payload, &mut seg);
        assert_eq!(
            hex::encode(&seg[..32]),
            "534e544c4155443107000000000000000700000000000000130100007811fb2f"
        );
        assert_eq!(
            hex::encode(crate::merkle::leaf_hash(&payload)),
            "4e57241a62eeeb367fc7206ec737755c44b1d344a80981b43cf9769d6d0c009d"
        );
        assert_eq!(parse_header(SEGMENT_MAGIC, &seg).unwrap(), 7);
        let f = decode_frame(&seg, HEADER_LEN).unwrap().unwrap();
        assert_eq!((f.seq, f.payload, f.end), (7, &payload[..], seg.len()));
        assert_eq!(LogEntry::from_payload(f.payload).unwrap(), e);
    }

    #[test]
    fn a_cut_frame_is_torn_and_a_changed_one_corrupt() {
        let payload = entry().to_payload();
        let mut buf = Vec::new();
        encode_frame(7, &payload, &mut buf);
        for cut in 1..buf.len() {
            assert_eq!(
                decode_frame(&buf[..cut], 0),
                Err(FrameError::Torn { offset: 0 }),
                "cut at {cut}"
            );
        }
        for at in 0..buf.len() {
            if (8..12).contains(&at) {
                continue; // the length: a changed length reads as torn or corrupt, both refused
            }
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert!(
                matches!(decode_frame(&bad, 0), Err(FrameError::Corrupt { .. })),
                "flip at {at}"
            );
        }
        assert_eq!(decode_frame(&buf, buf.len()), Ok(None));
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("00000000000000000042.seg.gz"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.seg"), None);
    }
}
