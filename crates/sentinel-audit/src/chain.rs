//! The hash chain of the JSON process logs, and its verifier. Pure: no I/O besides the reader the
//! verifier is handed.
//!
//! # What is hashed
//! Every log line is one compact JSON object on one line, and its LAST member is
//! `"chain":"<64 lowercase hex>"`. The bytes hashed for a line are the line exactly as written (no
//! re-serialisation, no trailing newline) with that member removed, which is a suffix strip:
//! `{"ts":…,"evt":"x","chain":"ab…"}` is hashed as `{"ts":…,"evt":"x"}`. Then
//!
//! ```text
//! chain(line) = SHA-256(prev ‖ bytes(line))      prev = the previous line's chain value (32 raw bytes)
//! ```
//!
//! Lines are grouped in blocks of N (`logging.chain_every`, default 1000). Block `b` starts from
//!
//! ```text
//! seed(b) = SHA-256("sentinel log chain v1\n" ‖ b as u64 big-endian ‖ seal(b-1))    seal(-1) = 32 zero bytes
//! ```
//!
//! and ends with a checkpoint line, chained like any other:
//! `{"ts":…,"svc":"sentinel","lvl":"info","evt":"log_chain_checkpoint","trace":null,"block":b,"lines":n,
//! "head":"<hex: chain value of the block's last line before the checkpoint (the seed when n = 0)>",
//! "final":false,"seals_dropped":0,"chain":"<hex>"}`. The checkpoint line's own chain value is the block's
//! **seal**; the next block's seed is derived from it, so dropping a whole block, or a checkpoint,
//! shows. A clean shutdown seals the partial block with `"final":true` (an empty block when the last
//! line just filled one), so a verifier can tell a clean end from a cut. Every process run starts
//! again at block 0: the verifier accepts a run start anywhere and reports each run. A file must begin
//! with a run start ([`verify_log`]); a rotated file that continues another is checked with
//! [`verify_log_continued`], which takes its first line as given.
//!
//! Only lines that end in the `chain` member are chain lines. Anything else in the file (another
//! program's output, a line whose `chain` was stripped, a line cut in the middle) is counted and listed
//! as foreign, never skipped in silence; a chain line turned foreign breaks the chain at the next one.
//!
//! # What it proves, and what not
//! Nothing here is secret: anyone can verify a shipped log, and anyone who can rewrite the whole file
//! can also recompute a consistent chain. What makes rewriting show is anchoring: every seal is handed
//! out ([`BlockSeal`], through [`seal_channel`]) so the daemon can append it to the Merkle audit log as
//! an `AuditKind::LogChain` record (`content_hash` = the seal, `summary` = block and line count), whose
//! signed checkpoints are witnessed outside the host. Lines after the last checkpoint (a crashed run,
//! or a file cut short) are not sealed: the verifier reports them as an unsealed tail, not an error.
//! Likewise a whole run removed from between two others does not show in the file alone; the anchors
//! (and the audit log's `Started`/`Stopped` records) show it.
//!
//! # Speed
//! `cargo bench -p sentinel-audit --bench chain`: about 1.7 million lines/s appended and 1.2 million
//! lines/s verified (~300-byte lines) on the development machine.

use crate::merkle::Hash;
use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Lines per block when the configuration says nothing.
pub const DEFAULT_EVERY: u64 = 1000;
/// The `evt` of a checkpoint line.
pub const CHECKPOINT_EVT: &str = "log_chain_checkpoint";
const DOMAIN: &[u8] = b"sentinel log chain v1\n";
/// `,"chain":"` ‖ 64 hex ‖ `"}`.
const SUFFIX_LEN: usize = 10 + 64 + 2;
/// How many lines after a break the verifier looks at to tell reordering from insertion.
const WINDOW: usize = 64;
/// How far (in lines) the verifier looks ahead for the next checkpoint when explaining a break.
const LOOKAHEAD: usize = 1_000_000;

/// The seed of block `block` given the previous block's seal (zeros for block 0).
pub fn seed(block: u64, prev_seal: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(block.to_be_bytes());
    h.update(prev_seal);
    h.finalize().into()
}

/// The chain value of a line whose hashed bytes are `body`.
pub fn link(prev: &Hash, body: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(body);
    h.finalize().into()
}

/// A sealed block: what the daemon anchors in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSeal {
    /// Block number within the run (0-based).
    pub block: u64,
    /// Lines in the block, the checkpoint line not counted.
    pub lines: u64,
    /// Chain value of the block's last line before the checkpoint (the seed for an empty block).
    pub head: Hash,
    /// Chain value of the checkpoint line: covers the whole block. This is what gets anchored.
    pub seal: Hash,
    /// Sealed by a clean shutdown.
    pub last: bool,
}

/// The sending half of the seal hand-out: never blocks (the logger must not wait on anyone); a seal
/// that does not fit is counted, and the count is written in every later checkpoint line
/// (`seals_dropped`) so a gap in the anchors is visible in the log itself.
#[derive(Debug, Clone)]
pub struct SealSender {
    tx: tokio::sync::mpsc::Sender<BlockSeal>,
    dropped: Arc<AtomicU64>,
}

impl SealSender {
    /// Hands a seal out; false (and counted) when the receiver is full or gone.
    pub fn send(&self, s: BlockSeal) -> bool {
        match self.tx.try_send(s) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
    /// Seals that could not be handed out.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A bounded channel for seals. The daemon takes the receiver and appends one `AuditKind::LogChain`
/// record per seal.
pub fn seal_channel(capacity: usize) -> (SealSender, tokio::sync::mpsc::Receiver<BlockSeal>) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (
        SealSender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

/// Why a line could not be chained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The body is not one `{…}` object on one line.
    #[error("a chained line must be one JSON object on one line")]
    NotAnObject,
}

/// The writer's side: feed it each line's JSON (without `chain`), write what it returns, in order.
#[derive(Debug)]
pub struct ChainWriter {
    every: u64,
    block: u64,
    in_block: u64,
    prev: Hash,
    seals: Option<SealSender>,
}

impl ChainWriter {
    /// A chain sealing every `every` lines (0 is taken as 1).
    pub fn new(every: u64) -> Self {
        ChainWriter {
            every: every.max(1),
            block: 0,
            in_block: 0,
            prev: seed(0, &[0; 32]),
            seals: None,
        }
    }

    /// Hands every seal to `tx` as well as returning it.
    pub fn with_seals(mut self, tx: SealSender) -> Self {
        self.seals = Some(tx);
        self
    }

    /// Appends one line: `body` is a compact JSON object (`{…}`, no newline) without `chain`. Writes the
    /// chained line and its `\n` to `out`, and when the block is full, the checkpoint line after it
    /// (`ts` is the checkpoint line's time stamp). Returns the seal when a block was sealed.
    pub fn append(
        &mut self,
        body: &str,
        ts: &str,
        out: &mut String,
    ) -> Result<Option<BlockSeal>, AppendError> {
        if !(body.starts_with('{') && body.ends_with('}')) || body.contains('\n') {
            return Err(AppendError::NotAnObject);
        }
        self.prev = link(&self.prev, body.as_bytes());
        push_line(out, body, &self.prev);
        self.in_block += 1;
        if self.in_block >= self.every {
            return Ok(Some(self.seal_block(ts, false, out)));
        }
        Ok(None)
    }

    /// Seals the current block now (clean shutdown: `last` = true). An empty block is sealed only when
    /// `last` (so the clean end shows even when the previous line just filled a block).
    pub fn seal(&mut self, ts: &str, last: bool, out: &mut String) -> Option<BlockSeal> {
        (self.in_block > 0 || last).then(|| self.seal_block(ts, last, out))
    }

    fn seal_block(&mut self, ts: &str, last: bool, out: &mut String) -> BlockSeal {
        let head = self.prev;
        let dropped = self.seals.as_ref().map_or(0, SealSender::dropped);
        let ts = serde_json::Value::String(ts.to_owned()).to_string();
        let body = format!(
            "{{\"ts\":{ts},\"svc\":\"sentinel\",\"lvl\":\"info\",\"evt\":\"{CHECKPOINT_EVT}\",\"trace\":null,\
             \"block\":{},\"lines\":{},\"head\":\"{}\",\"final\":{last},\"seals_dropped\":{dropped}}}",
            self.block,
            self.in_block,
            hex::encode(head)
        );
        let sealed = link(&self.prev, body.as_bytes());
        push_line(out, &body, &sealed);
        let s = BlockSeal {
            block: self.block,
            lines: self.in_block,
            head,
            seal: sealed,
            last,
        };
        if let Some(tx) = &self.seals {
            tx.send(s);
        }
        self.block += 1;
        self.in_block = 0;
        self.prev = seed(self.block, &sealed);
        s
    }
}

fn push_line(out: &mut String, body: &str, chain: &Hash) {
    // `body` ends in '}': the member goes in before it, last.
    let open = &body[..body.len() - 1];
    out.push_str(open);
    if open.len() > 1 {
        out.push(',');
    }
    out.push_str("\"chain\":\"");
    out.push_str(&hex::encode(chain));
    out.push_str("\"}\n");
}

/// Splits a raw line (no `\n`) into its hashed bytes and chain value; None when it is not a chain line.
pub fn split_line(line: &[u8]) -> Option<(Vec<u8>, Hash)> {
    let n = line.len();
    if n < SUFFIX_LEN || !line.ends_with(b"\"}") {
        return None;
    }
    let hex_part = &line[n - 66..n - 2];
    let key = &line[n - 75..n - 66];
    if key != b"\"chain\":\"" {
        return None;
    }
    let mut chain = [0u8; 32];
    // Lowercase only: the writer never writes anything else, and one spelling keeps the bytes unique.
    if hex_part.iter().any(|c| c.is_ascii_uppercase())
        || hex::decode_to_slice(hex_part, &mut chain).is_err()
    {
        return None;
    }
    let mut body = match line[n - 76] {
        b',' => line[..n - 76].to_vec(),
        b'{' if n == SUFFIX_LEN => b"{".to_vec(),
        _ => return None,
    };
    if body.first() != Some(&b'{') {
        return None;
    }
    body.push(b'}');
    Some((body, chain))
}

/// What a checkpoint line says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checkpoint {
    block: u64,
    lines: u64,
    head: String,
    last: bool,
}

fn checkpoint_of(body: &[u8]) -> Option<Checkpoint> {
    // Cheap filter before parsing: most lines are not checkpoints.
    let needle = CHECKPOINT_EVT.as_bytes();
    if !body.windows(needle.len()).any(|w| w == needle) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v.get("evt")?.as_str()? != CHECKPOINT_EVT {
        return None;
    }
    Some(Checkpoint {
        block: v.get("block")?.as_u64()?,
        lines: v.get("lines")?.as_u64()?,
        head: v.get("head")?.as_str()?.to_owned(),
        last: v.get("final").and_then(|f| f.as_bool()).unwrap_or(false),
    })
}

/// One process run found in the file (each run starts again at block 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// 1-based line number of the run's first line.
    pub first_line: u64,
    /// Blocks sealed by a checkpoint line.
    pub sealed_blocks: u64,
    /// Chained lines in the run, checkpoints included.
    pub lines: u64,
    /// Lines after the run's last checkpoint: chained correctly but not sealed (a crash, or a file cut
    /// short). Not an error; they are simply not protected against truncation.
    pub unsealed_tail: u64,
    /// The run ended with a `final` checkpoint (clean shutdown).
    pub clean_end: bool,
    /// Every sealed block, in order (what the audit log anchors).
    pub seals: Vec<BlockSeal>,
    /// The run began before this file (a rotated log, verified with [`verify_log_continued`]): its
    /// first line is taken as given, and lines before it cannot be checked.
    pub continued: bool,
}

/// The result of verifying an intact log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainReport {
    /// Lines in the file.
    pub total_lines: u64,
    /// Chained lines (checkpoints included).
    pub chain_lines: u64,
    /// Lines that are not chain lines (something else wrote to the file, or a line lost its `chain`).
    pub foreign_lines: u64,
    /// The first few foreign line numbers (1-based).
    pub foreign_examples: Vec<u64>,
    /// The runs, in file order.
    pub runs: Vec<RunReport>,
}

impl ChainReport {
    /// Lines after the last checkpoint of the last run.
    pub fn unsealed_tail(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.unsealed_tail)
    }
}

/// What is wrong at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line's content does not match its chain value (the line was changed).
    Edited,
    /// Lines are missing just before this one.
    Removed {
        /// How many, when the block's checkpoint tells.
        count: Option<u64>,
    },
    /// Lines up to `last` (inclusive) do not belong to the chain (added).
    Inserted {
        /// Last inserted line (1-based).
        last: u64,
    },
    /// The line is out of order: its predecessor is line `after`.
    Reordered {
        /// The line it should follow (1-based).
        after: u64,
    },
    /// Whole blocks are missing: the next block found is `found`, `expected` was due.
    BlocksMissing {
        /// The block that should come next.
        expected: u64,
        /// The block found.
        found: u64,
    },
    /// The line does not follow the one before it, and nothing later tells why (no checkpoint after).
    Broken,
    /// A checkpoint line whose chain is right but whose fields are not.
    BadCheckpoint(String),
    /// The file's first chained line does not start a run.
    NotARunStart,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Edited => write!(f, "edited: the line does not match its chain value"),
            Problem::Removed { count: Some(n) } => write!(f, "{n} line(s) removed just before it"),
            Problem::Removed { count: None } => write!(f, "line(s) removed just before it"),
            Problem::Inserted { last } => write!(f, "inserted: lines up to {last} are not part of the chain"),
            Problem::Reordered { after } => write!(f, "reordered: it belongs after line {after}"),
            Problem::BlocksMissing { expected, found } => write!(
                f,
                "block(s) {expected}..={} missing: the next block is {found}",
                found.saturating_sub(1)
            ),
            Problem::Broken => write!(
                f,
                "does not follow the line before it (edited, or lines removed or inserted; no checkpoint after it tells which)"
            ),
            Problem::BadCheckpoint(why) => write!(f, "bad checkpoint line: {why}"),
            Problem::NotARunStart => write!(
                f,
                "the first chained line does not start a run: lines before it were removed, or the file \
                 continues a rotated one (check that with --continued)"
            ),
        }
    }
}

/// Why a log does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The file could not be read.
    #[error("cannot read the log: {0}")]
    Io(#[from] std::io::Error),
    /// The first bad line (1-based) and what is wrong with it.
    #[error("line {line}: {problem}")]
    Bad {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        problem: Problem,
    },
}

/// A chain line read from the file.
struct Line {
    no: u64,
    body: Vec<u8>,
    chain: Hash,
    checkpoint: Option<Checkpoint>,
}

/// Reads lines, counting foreign ones.
struct Lines<R> {
    r: R,
    no: u64,
    report_foreign: bool,
    foreign: u64,
    foreign_examples: Vec<u64>,
}

impl<R: BufRead> Lines<R> {
    fn next_chain(&mut self) -> Result<Option<Line>, std::io::Error> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if self.r.read_until(b'\n', &mut buf)? == 0 {
                return Ok(None);
            }
            self.no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            match split_line(&buf) {
                Some((body, chain)) => {
                    let checkpoint = checkpoint_of(&body);
                    return Ok(Some(Line {
                        no: self.no,
                        body,
                        chain,
                        checkpoint,
                    }));
                }
                None => {
                    if self.report_foreign {
                        self.foreign += 1;
                        if self.foreign_examples.len() < 20 {
                            self.foreign_examples.push(self.no);
                        }
                    }
                }
            }
        }
    }
}

/// Where the verifier is in a run.
struct State {
    block: u64,
    /// False at the start of a continued run, until its first checkpoint says which block it is.
    block_known: bool,
    in_block: u64,
    prev: Hash,
    run: RunReport,
}

impl State {
    fn new(first_line: u64) -> Self {
        State {
            block: 0,
            block_known: true,
            in_block: 0,
            prev: seed(0, &[0; 32]),
            run: RunReport {
                first_line,
                sealed_blocks: 0,
                lines: 0,
                unsealed_tail: 0,
                clean_end: false,
                seals: Vec::new(),
                continued: false,
            },
        }
    }

    /// A run that began in an earlier file: `line` is taken as given.
    fn continued(line: &Line) -> Self {
        let mut s = State::new(line.no);
        s.run.continued = true;
        s.run.lines = 1;
        match &line.checkpoint {
            Some(cp) => {
                s.block = cp.block + 1;
                s.prev = seed(s.block, &line.chain);
            }
            None => {
                s.block_known = false;
                s.in_block = 1;
                s.run.unsealed_tail = 1;
                s.prev = line.chain;
            }
        }
        s
    }
}

/// Verifies a log read from `r`, on its raw bytes. Ok with a report when every chained line is where
/// and as it was written (lines after the last checkpoint are reported as an unsealed tail); otherwise
/// the first bad line and why. The file must start where a run starts: a file whose first lines
/// were removed fails (for a rotated file that continues another, see [`verify_log_continued`]).
pub fn verify_log<R: BufRead>(r: R) -> Result<ChainReport, ChainError> {
    verify(r, false)
}

/// Like [`verify_log`], for a file that may begin in the middle of a run (log rotation): its first
/// chained line is taken as given (reported as [`RunReport::continued`]); everything after it is
/// checked. Lines removed from the very start of such a file cannot show.
pub fn verify_log_continued<R: BufRead>(r: R) -> Result<ChainReport, ChainError> {
    verify(r, true)
}

fn verify<R: BufRead>(r: R, continued: bool) -> Result<ChainReport, ChainError> {
    let mut lines = Lines {
        r,
        no: 0,
        report_foreign: true,
        foreign: 0,
        foreign_examples: Vec::new(),
    };
    let mut report = ChainReport::default();
    let mut st: Option<State> = None;
    let genesis = seed(0, &[0; 32]);
    while let Some(line) = lines.next_chain()? {
        report.chain_lines += 1;
        if st.is_none() && link(&genesis, &line.body) != line.chain {
            if !continued {
                return Err(ChainError::Bad {
                    line: line.no,
                    problem: Problem::NotARunStart,
                });
            }
            st = Some(State::continued(&line));
            continue;
        }
        let s = st.get_or_insert_with(|| State::new(line.no));
        if link(&s.prev, &line.body) != line.chain {
            if link(&genesis, &line.body) == line.chain {
                // A new run starts here (the process restarted).
                if let Some(done) = st.take() {
                    report.runs.push(done.run);
                }
                st = Some(State::new(line.no));
            } else {
                let problem = diagnose(s, &line, &mut lines)?;
                return Err(ChainError::Bad {
                    line: line.no,
                    problem,
                });
            }
        }
        let Some(s) = st.as_mut() else { continue };
        s.run.lines += 1;
        match &line.checkpoint {
            Some(cp) => {
                if !s.block_known {
                    // The first checkpoint of a continued run: it tells the block; the lines before
                    // this file cannot be counted.
                    s.block = cp.block;
                    s.block_known = true;
                    s.in_block = cp.lines.max(s.in_block);
                }
                let why = if cp.block != s.block {
                    Some(format!(
                        "says block {}, this is block {}",
                        cp.block, s.block
                    ))
                } else if cp.lines != s.in_block {
                    Some(format!(
                        "says {} lines, the block has {}",
                        cp.lines, s.in_block
                    ))
                } else if cp.head != hex::encode(s.prev) {
                    Some("its head is not the block's last chain value".to_owned())
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(ChainError::Bad {
                        line: line.no,
                        problem: Problem::BadCheckpoint(why),
                    });
                }
                s.run.seals.push(BlockSeal {
                    block: s.block,
                    lines: s.in_block,
                    head: s.prev,
                    seal: line.chain,
                    last: cp.last,
                });
                s.run.sealed_blocks += 1;
                s.run.unsealed_tail = 0;
                s.run.clean_end = cp.last;
                s.block += 1;
                s.in_block = 0;
                s.prev = seed(s.block, &line.chain);
            }
            None => {
                s.in_block += 1;
                s.run.unsealed_tail += 1;
                s.run.clean_end = false;
                s.prev = line.chain;
            }
        }
    }
    if let Some(done) = st {
        report.runs.push(done.run);
    }
    report.total_lines = lines.no;
    report.foreign_lines = lines.foreign;
    report.foreign_examples = lines.foreign_examples;
    Ok(report)
}

/// Explains why `bad` does not follow the state `s`, reading on as far as needed.
fn diagnose<R: BufRead>(
    s: &State,
    bad: &Line,
    lines: &mut Lines<R>,
) -> Result<Problem, std::io::Error> {
    lines.report_foreign = false;
    // The lines after the bad one, up to the next checkpoint (within the look-ahead).
    // The first lines after the bad one (to tell reordering from insertion), and how far the next
    // checkpoint is (lines after the bad one, the checkpoint included).
    let mut ahead: Vec<Line> = Vec::new();
    let mut checkpoint: Option<(usize, Checkpoint)> = bad.checkpoint.clone().map(|c| (0, c));
    let mut seen = 0usize;
    while checkpoint.is_none() && seen < LOOKAHEAD {
        let Some(l) = lines.next_chain()? else { break };
        seen += 1;
        if let Some(cp) = l.checkpoint.clone() {
            checkpoint = Some((seen, cp));
        }
        if ahead.len() < WINDOW {
            ahead.push(l);
        }
    }
    let window: Vec<&Line> = ahead.iter().collect();
    // A later line continues from the last good one: the lines in between are out of place.
    if let Some(j) = window
        .iter()
        .position(|l| link(&s.prev, &l.body) == l.chain)
    {
        let after = window
            .iter()
            .find(|l| link(&l.chain, &bad.body) == bad.chain)
            .map(|l| l.no);
        return Ok(match after {
            Some(after) => Problem::Reordered { after },
            None => Problem::Inserted {
                last: window[j].no - 1,
            },
        });
    }
    let Some((content_to_cp, cp)) = checkpoint else {
        return Ok(Problem::Broken);
    };
    if !s.block_known {
        // The block's start is in an earlier file: its line count cannot tell.
        return Ok(Problem::Broken);
    }
    if cp.block != s.block {
        return Ok(match s.in_block {
            0 if cp.block > s.block => Problem::BlocksMissing {
                expected: s.block,
                found: cp.block,
            },
            _ => Problem::Removed { count: None },
        });
    }
    // Content lines the block has in the file, against what its checkpoint says.
    let have = match bad.checkpoint {
        Some(_) => s.in_block,
        // The bad line itself, and the lines after it before the checkpoint.
        None => s.in_block + content_to_cp as u64,
    };
    Ok(match have.cmp(&cp.lines) {
        std::cmp::Ordering::Less => Problem::Removed {
            count: Some(cp.lines - have),
        },
        std::cmp::Ordering::Equal => Problem::Edited,
        std::cmp::Ordering::Greater => Problem::Inserted { last: bad.no },
    })
}

// Unit tests only (compiled under cfg(test)): unwrap and panic are how they fail.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn log(n: usize, every: u64, shutdown: bool) -> Vec<String> {
        let mut w = ChainWriter::new(every);
        let mut out = String::new();
        for i in 0..n {
            let body = format!("{{\"ts\":\"t{i}\",\"svc\":\"sentinel\",\"evt\":\"e\",\"i\":{i}}}");
            w.append(&body, "tc", &mut out).unwrap();
        }
        if shutdown {
            w.seal("tend", true, &mut out);
        }
        out.lines().map(str::to_owned).collect()
    }

    fn verify(lines: &[String]) -> Result<ChainReport, ChainError> {
        let mut text = lines.join("\n");
        text.push('\n');
        verify_log(text.as_bytes())
    }

    fn bad_line(r: Result<ChainReport, ChainError>) -> (u64, Problem) {
        match r {
            Err(ChainError::Bad { line, problem }) => (line, problem),
            other => panic!("expected a bad line, got {other:?}"),
        }
    }

    #[test]
    fn chain_is_the_last_member_and_removing_it_gives_the_hashed_bytes() {
        let l = log(1, 10, false);
        let line = &l[0];
        assert!(line
            .starts_with("{\"ts\":\"t0\",\"svc\":\"sentinel\",\"evt\":\"e\",\"i\":0,\"chain\":\""));
        let (body, chain) = split_line(line.as_bytes()).unwrap();
        assert_eq!(
            body,
            b"{\"ts\":\"t0\",\"svc\":\"sentinel\",\"evt\":\"e\",\"i\":0}"
        );
        // Independently: SHA-256(seed(0) ‖ body), seed(0) = SHA-256(domain ‖ 0u64 BE ‖ 32 zeros).
        let mut s = Sha256::new();
        s.update(b"sentinel log chain v1\n");
        s.update([0u8; 8]);
        s.update([0u8; 32]);
        let seed0: [u8; 32] = s.finalize().into();
        let mut h = Sha256::new();
        h.update(seed0);
        h.update(&body);
        assert_eq!(chain, <[u8; 32]>::from(h.finalize()));
        // Still valid JSON, `chain` last.
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["chain"].as_str().unwrap(), hex::encode(chain));
    }

    #[test]
    fn a_rotated_file_verifies_only_as_continued_and_is_still_checked() {
        let l = log(35, 10, true);
        // Cut at a line in the middle of block 1, and at a block's start.
        for start in [14, 22] {
            let rest = &l[start..];
            assert_eq!(bad_line(verify(rest)), (1, Problem::NotARunStart));
            let mut text = rest.join("\n");
            text.push('\n');
            let r = verify_log_continued(text.as_bytes()).unwrap();
            assert!(r.runs[0].continued);
            assert!(r.runs[0].clean_end);
            assert_eq!(r.runs[0].seals.last().unwrap().block, 3);
            assert_eq!(r.chain_lines, rest.len() as u64);
            // Still checked after its first line.
            let mut cut = rest.to_vec();
            cut.remove(3);
            let mut text = cut.join("\n");
            text.push('\n');
            assert!(matches!(
                verify_log_continued(text.as_bytes()),
                Err(ChainError::Bad { line: 4, .. })
            ));
        }
        // A file that starts a run verifies the same either way.
        let mut text = l.join("\n");
        text.push('\n');
        assert!(!verify_log_continued(text.as_bytes()).unwrap().runs[0].continued);
    }

    #[test]
    fn intact_log_verifies_with_blocks_checkpoints_and_tail() {
        let l = log(25, 10, false);
        // 2 full blocks (10 + checkpoint each) + 5 unsealed.
        assert_eq!(l.len(), 27);
        let r = verify(&l).unwrap();
        assert_eq!(r.chain_lines, 27);
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.runs[0].sealed_blocks, 2);
        assert_eq!(r.unsealed_tail(), 5);
        assert!(!r.runs[0].clean_end);
        // The shutdown lands right after a full block: an empty final block marks the clean end.
        let l = log(20, 10, true);
        let r = verify(&l).unwrap();
        assert_eq!(r.runs[0].sealed_blocks, 3);
        assert_eq!(r.runs[0].seals[2].lines, 0);
        assert!(r.runs[0].clean_end);
        let l = log(25, 10, true);
        let r = verify(&l).unwrap();
        assert_eq!(r.runs[0].sealed_blocks, 3);
        assert_eq!(r.unsealed_tail(), 0);
        assert!(r.runs[0].clean_end);
        assert_eq!(r.runs[0].seals[2].lines, 5);
    }

    #[test]
    fn seals_are_handed_out_and_overflow_is_counted_in_the_log() {
        let (tx, mut rx) = seal_channel(1);
        let mut w = ChainWriter::new(2).with_seals(tx.clone());
        let mut out = String::new();
        let mut returned = Vec::new();
        for i in 0..6 {
            if let Some(s) = w.append(&format!("{{\"i\":{i}}}"), "t", &mut out).unwrap() {
                returned.push(s);
            }
        }
        assert_eq!(returned.len(), 3);
        assert_eq!(rx.try_recv().unwrap(), returned[0]);
        assert_eq!(tx.dropped(), 2);
        assert!(out.contains("\"seals_dropped\":1"));
        let lines: Vec<String> = out.lines().map(str::to_owned).collect();
        let r = verify(&lines).unwrap();
        assert_eq!(r.runs[0].seals, returned);
    }

    #[test]
    fn a_flipped_byte_is_an_edit_named_by_line() {
        let mut l = log(25, 10, true);
        l[13] = l[13].replace("\"i\":12", "\"i\":92");
        assert_eq!(bad_line(verify(&l)), (14, Problem::Edited));
        // Also in the unsealed tail (nothing after tells which; still named).
        let mut l = log(25, 10, false);
        l[24] = l[24].replace("\"t22\"", "\"t2X\"");
        let (line, _) = bad_line(verify(&l));
        assert_eq!(line, 25);
    }

    #[test]
    fn a_deleted_line_is_named() {
        let mut l = log(25, 10, true);
        l.remove(4);
        assert_eq!(
            bad_line(verify(&l)),
            (5, Problem::Removed { count: Some(1) })
        );
        // The first line.
        let mut l = log(25, 10, true);
        l.remove(0);
        assert_eq!(bad_line(verify(&l)), (1, Problem::NotARunStart));
        // The checkpoint line itself.
        let mut l = log(25, 10, true);
        l.remove(10);
        assert_eq!(bad_line(verify(&l)).0, 11);
    }

    #[test]
    fn an_inserted_line_is_named() {
        let mut l = log(25, 10, true);
        let forged = log(1, 10, false)[0].replace("\"i\":0", "\"i\":77");
        l.insert(3, forged);
        assert_eq!(bad_line(verify(&l)), (4, Problem::Inserted { last: 4 }));
        // A copy of an existing line.
        let mut l = log(25, 10, true);
        let copy = l[7].clone();
        l.insert(2, copy);
        assert_eq!(bad_line(verify(&l)).0, 3);
    }

    #[test]
    fn swapped_lines_are_reordered() {
        let mut l = log(25, 10, true);
        l.swap(5, 6);
        assert_eq!(bad_line(verify(&l)), (6, Problem::Reordered { after: 7 }));
    }

    #[test]
    fn a_dropped_block_is_named() {
        let mut l = log(35, 10, true);
        l.drain(11..22);
        assert_eq!(
            bad_line(verify(&l)),
            (
                12,
                Problem::BlocksMissing {
                    expected: 1,
                    found: 2
                }
            )
        );
    }

    #[test]
    fn truncation_after_a_checkpoint_or_mid_block_is_an_unsealed_tail() {
        let l = log(35, 10, true);
        let r = verify(&l[..28]).unwrap();
        assert_eq!(r.runs[0].sealed_blocks, 2);
        assert_eq!(r.unsealed_tail(), 6);
        assert!(!r.runs[0].clean_end);
        // A line cut in the middle (no newline, no chain): reported as foreign, not silently dropped.
        let mut text = l[..5].join("\n");
        text.push('\n');
        text.push_str(&l[5][..30]);
        let r = verify_log(text.as_bytes()).unwrap();
        assert_eq!(r.foreign_lines, 1);
        assert_eq!(r.foreign_examples, vec![6]);
        assert_eq!(r.unsealed_tail(), 5);
    }

    #[test]
    fn foreign_lines_are_counted_and_runs_restart() {
        let mut l = log(12, 10, true);
        l.insert(3, "panicked at something".into());
        l.insert(0, "{\"not\":\"chained\"}".into());
        let mut second = log(4, 10, false);
        l.append(&mut second);
        let r = verify(&l).unwrap();
        assert_eq!(r.foreign_lines, 2);
        assert_eq!(r.foreign_examples, vec![1, 5]);
        assert_eq!(r.runs.len(), 2);
        assert!(r.runs[0].clean_end);
        assert_eq!(r.runs[1].first_line, 17);
        assert_eq!(r.unsealed_tail(), 4);
    }

    #[test]
    fn a_rewritten_checkpoint_count_is_refused() {
        // Recompute a consistent chain over a checkpoint that lies about its count: still refused.
        let l = log(5, 10, true);
        let (body, _) = split_line(l[5].as_bytes()).unwrap();
        let lie = String::from_utf8(body)
            .unwrap()
            .replace("\"lines\":5", "\"lines\":4");
        let (prev_body, prev_chain) = split_line(l[4].as_bytes()).unwrap();
        let _ = prev_body;
        let mut out = String::new();
        push_line(&mut out, &lie, &link(&prev_chain, lie.as_bytes()));
        let mut l2 = l[..5].to_vec();
        l2.push(out.trim_end().to_owned());
        assert!(matches!(
            bad_line(verify(&l2)),
            (6, Problem::BadCheckpoint(_))
        ));
    }

    #[test]
    fn non_objects_are_refused_by_the_writer() {
        let mut w = ChainWriter::new(10);
        let mut out = String::new();
        assert!(w.append("[1]", "t", &mut out).is_err());
        assert!(w.append("{\"a\":1}\n{", "t", &mut out).is_err());
        assert!(out.is_empty());
    }
}
