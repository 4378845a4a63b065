//! A builder that writes a valid log directory directly with the format, the Merkle code and the
//! signer (no running writer): for the tests and benchmarks of the offline side.

use crate::format::{self, LogEntry};
use crate::merkle::{CompactRange, Hash};
use crate::note::{Checkpoint, SignedCheckpoint, Signer, Verifier};
use crate::reader::{CHECKPOINTS_FILE, HASHES_FILE, KEY_PUB_FILE, SEGMENTS_DIR};
use sentinel_core::{AuditKind, Timestamp};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The entry the builder writes at `seq` (deterministic).
pub fn test_entry(seq: u64) -> LogEntry {
    const KINDS: [AuditKind; 4] = [
        AuditKind::AlertRaised,
        AuditKind::InvestigationConcluded,
        AuditKind::PlanDecided,
        AuditKind::ActionChanged,
    ];
    LogEntry {
        seq,
        ts: Timestamp::from_millis(1_764_476_400_000 + seq as i64),
        kind: KINDS[(seq % 4) as usize],
        subject_id: format!("01JDQ{seq:021}"),
        trace_id: serde_json::from_value(serde_json::Value::String(format!(
            "01JDT{:021}",
            seq / 3
        )))
        .unwrap_or_default(),
        summary: format!(
            "enforce [block_ip]: ssh brute force from 192.0.2.{}",
            seq % 250
        ),
        content_hash: (!seq.is_multiple_of(5))
            .then(|| hex::encode(crate::merkle::leaf_hash(&seq.to_le_bytes()))),
    }
}

/// Writes a log directory: `segments/`, `hashes`, `checkpoints`, `key`, `key.pub`.
#[derive(Debug, Clone)]
pub struct TestLog {
    origin: String,
    seed: [u8; 32],
    segment_records: u64,
    checkpoint_every: u64,
    final_checkpoint: bool,
    start_ms: u64,
}

impl Default for TestLog {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`TestLog::write`] wrote.
#[derive(Debug)]
pub struct BuiltLog {
    /// The audit directory.
    pub dir: PathBuf,
    /// How many records.
    pub records: u64,
    /// The key that signed the checkpoints.
    pub signer: Signer,
    /// The checkpoints, in file order.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// Every record's leaf hash.
    pub leaves: Vec<Hash>,
}

impl BuiltLog {
    /// The verifier of the log's key.
    pub fn verifier(&self) -> Verifier {
        self.signer.verifier()
    }
}

impl TestLog {
    /// Origin `sentinel/test`, a fixed key, 100 records a segment, a checkpoint at size 0, every 50
    /// records and at the end.
    pub fn new() -> Self {
        TestLog {
            origin: "sentinel/test".into(),
            seed: [7u8; 32],
            segment_records: 100,
            checkpoint_every: 50,
            final_checkpoint: true,
            start_ms: 1_764_476_400_000,
        }
    }

    /// Records per segment.
    pub fn segment_records(mut self, n: u64) -> Self {
        self.segment_records = n.max(1);
        self
    }

    /// A checkpoint every `n` records (0: only at size 0 and at the end).
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = n;
        self
    }

    /// Whether the last records get a checkpoint (else they stay "not yet checkpointed").
    pub fn final_checkpoint(mut self, yes: bool) -> Self {
        self.final_checkpoint = yes;
        self
    }

    /// The signing key's seed.
    pub fn seed(mut self, seed: [u8; 32]) -> Self {
        self.seed = seed;
        self
    }

    /// Writes `n` records under `data_dir/audit` and answers what it wrote.
    pub fn write(&self, data_dir: &Path, n: u64) -> io::Result<BuiltLog> {
        let dir = format::audit_dir(data_dir);
        let seg_dir = dir.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&seg_dir)?;
        let signer = Signer::from_seed(&self.origin, self.seed)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        std::fs::write(dir.join("key"), signer.to_private_text())?;
        std::fs::write(dir.join(KEY_PUB_FILE), signer.verifier().to_text())?;

        let mut hashes =
            io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join(HASHES_FILE))?);
        let mut cps_bytes = format::checkpoints_header().to_vec();
        let mut checkpoints = Vec::new();
        let mut range = CompactRange::new();
        let mut leaves = Vec::with_capacity(n as usize);
        let mut stored = Vec::new();
        let mut seg: Option<io::BufWriter<std::fs::File>> = None;
        let mut frame = Vec::new();
        let mut checkpoint = |range: &CompactRange, cps_bytes: &mut Vec<u8>| {
            let size = range.size();
            let signed = signer.sign(&Checkpoint {
                origin: self.origin.clone(),
                size,
                root: range.root(),
                time_ms: self.start_ms + size,
            });
            format::encode_frame(size, signed.text.as_bytes(), cps_bytes);
            checkpoints.push(signed);
        };
        checkpoint(&range, &mut cps_bytes);
        for seq in 0..n {
            if seq.is_multiple_of(self.segment_records) {
                if let Some(mut s) = seg.take() {
                    s.flush()?;
                }
                let mut f = io::BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(seg_dir.join(format::segment_name(seq)))?,
                );
                f.write_all(&format::segment_header(seq))?;
                seg = Some(f);
            }
            let payload = test_entry(seq).to_payload();
            frame.clear();
            format::encode_frame(seq, &payload, &mut frame);
            if let Some(s) = seg.as_mut() {
                s.write_all(&frame)?;
            }
            let leaf = crate::merkle::leaf_hash(&payload);
            leaves.push(leaf);
            stored.clear();
            range.push_into(leaf, &mut stored);
            for h in &stored {
                hashes.write_all(h)?;
            }
            if self.checkpoint_every > 0 && (seq + 1).is_multiple_of(self.checkpoint_every) {
                checkpoint(&range, &mut cps_bytes);
            }
        }
        if let Some(mut s) = seg.take() {
            s.flush()?;
        }
        if n == 0 {
            std::fs::write(
                seg_dir.join(format::segment_name(0)),
                format::segment_header(0),
            )?;
        }
        let last_at = checkpoints_last_size(&cps_bytes);
        if self.final_checkpoint && last_at != Some(n) {
            checkpoint(&range, &mut cps_bytes);
        }
        hashes.flush()?;
        std::fs::write(dir.join(CHECKPOINTS_FILE), &cps_bytes)?;
        Ok(BuiltLog {
            dir,
            records: n,
            signer,
            checkpoints,
            leaves,
        })
    }
}

fn checkpoints_last_size(bytes: &[u8]) -> Option<u64> {
    crate::reader::parse_checkpoints(bytes)
        .ok()
        .and_then(|c| c.frames.last().map(|f| f.size))
}
