//! `sentinel audit verify|show|tail|archive`: the audit log read straight from its files; and
//! `sentinel audit verify-logs`, which checks the hash chain of a JSON process log file
//! (`logging.chain_every`).
//!
//! Nothing here asks the daemon: the commands work while it runs, when it is stopped, and on a copy of
//! the data directory, and a compromised daemon cannot answer for them. The work is done by
//! `sentinel-audit` (reader, verify, merkle proofs, archive); this file resolves the directory and the
//! verifier key, and turns results into text, JSON and exit codes.
//!
//! Exit codes: 0 success; 1 the log (or a record, checkpoint or proof) is bad, or what was asked for
//! is not there; 2 a usage, configuration or I/O error.

use super::Common;
use clap::{Args, Subcommand};
use sentinel_audit::archive::{self, ArchiveError};
use sentinel_audit::chain::{verify_log, verify_log_continued, ChainError, ChainReport};
use sentinel_audit::format::{self, FrameError, LogEntry, HEADER_LEN};
use sentinel_audit::merkle::{self, Hash};
use sentinel_audit::note::{Checkpoint, Verifier};
use sentinel_audit::reader::{self, LogDir, ReadError, KEY_PUB_FILE, SEGMENTS_DIR};
use sentinel_audit::verify::{self, Report, VerifyError, VerifyOptions};
use sentinel_core::Timestamp;
use serde_json::{json, Value};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `sentinel audit` arguments.
#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute and check the whole audit log offline: every record, stored hash and checkpoint.
    ///
    /// Exit 0 when it verifies (with a summary), 1 naming the first bad record or checkpoint, 2 on a
    /// usage or I/O error. Without --key the verifier key is read from the log's own directory, which
    /// proves only that the log agrees with itself: pass the key noted elsewhere (the daemon logs it
    /// when it starts) to detect a replaced key and re-signed checkpoints.
    Verify {
        /// The verifier key: a file holding it, or the key text (`<name>+<id>+<base64>`).
        #[arg(long, value_name = "FILE_OR_TEXT")]
        key: Option<String>,
        /// Threads that check entries and hash leaves (default: the cores, up to 8).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// A checkpoint saved earlier (the signed note from `GET /v1/audit/checkpoint` or the
        /// checkpoints file), repeatable: its signature must verify with the verifier key, the log
        /// must hold its size, and the root of the log's records at that size must be its root. A
        /// log rolled back to an older copy, truncated or rewritten (even with every checkpoint
        /// signed again) fails naming the file.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        /// Also check the store against the log: every audit index row must be its log record,
        /// and every alert, investigation and plan row must hash to what the log noted (an action
        /// row to one of the states the log recorded for it).
        #[arg(long)]
        store: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one record and its leaf hash; with --proof, its inclusion proof against the latest
    /// checkpoint, checked here.
    Show {
        /// The record's sequence number.
        seq: u64,
        /// Also print and check the inclusion proof against the latest checkpoint.
        #[arg(long)]
        proof: bool,
        /// The verifier key for the checkpoint (a file or the key text; default: the log's key.pub).
        #[arg(long, value_name = "FILE_OR_TEXT")]
        key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the last records, one line each (seq, time, kind, trace, summary); -f follows new ones.
    Tail {
        /// How many records.
        #[arg(short = 'n', long = "lines", default_value_t = 10, value_name = "N")]
        n: usize,
        /// Keep printing records as they are appended, until Ctrl-C or SIGTERM.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Compress old sealed segments (or move them to --to); checkpoints and `verify` keep working.
    ///
    /// Only whole segments whose records are all below --before and covered by a checkpoint go. The
    /// stored hashes stay, so consistency proofs and `verify` keep working; records moved with --to
    /// are no longer read (no `show` or inclusion proof of them: the API answers 410).
    Archive {
        /// Archive segments holding only records below this sequence number.
        #[arg(long, value_name = "SEQ")]
        before: u64,
        /// Move the compressed segments to this directory instead of keeping them in the log.
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// Check the hash chain of a JSON log file written by Sentinel: exit 0 when no chained line was
    /// removed, edited, inserted or reordered; 1 naming the first bad line (or when the file has no
    /// chained line at all); 2 when the file cannot be read.
    ///
    /// Lines after the last checkpoint are reported as an unsealed tail (a crash or a file cut short
    /// cannot be told from a truncation there); lines that are not chain lines are counted and listed.
    VerifyLogs {
        /// The log file ("-" for standard input).
        file: PathBuf,
        /// Also print every block's seal (what the audit log anchors as `log_chain` records).
        #[arg(long)]
        seals: bool,
        /// The file may begin in the middle of a run (it continues a rotated file): its first chained
        /// line is taken as given. Without it, a file must start where a run starts.
        #[arg(long)]
        continued: bool,
        /// Also check the file against the audit log (of --data-dir or the configuration): every
        /// block seal the audit log anchored (`log_chain` records) must be in the file, so a whole
        /// run or sealed block removed from it shows. With --continued, anchors older than the
        /// first one the file holds are not looked for (they were in an earlier file).
        #[arg(long)]
        anchors: bool,
    },
}

/// A failure with its exit code: 1 (the log is bad, or not what was asked) or 2 (usage, I/O).
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) code: u8,
    pub(crate) msg: String,
}

pub(crate) fn bad(msg: impl Into<String>) -> Fail {
    Fail {
        code: 1,
        msg: msg.into(),
    }
}

pub(crate) fn usage(msg: impl Into<String>) -> Fail {
    Fail {
        code: 2,
        msg: msg.into(),
    }
}

/// A read error's exit code: 2 when a file could not be read, 1 when it holds something else.
pub(crate) fn read_fail(e: ReadError) -> Fail {
    match e {
        ReadError::Io { .. } => usage(e.to_string()),
        _ => bad(e.to_string()),
    }
}

/// Runs an `audit` subcommand.
pub fn run(a: AuditArgs) -> ExitCode {
    if let AuditCommand::VerifyLogs {
        file,
        seals,
        continued,
        anchors,
    } = &a.command
    {
        // A file on its own: no configuration or data directory involved, unless --anchors.
        let dir = match anchors {
            true => match audit_dir(&a.common) {
                Ok(d) => Some(d),
                Err(f) => {
                    eprintln!("sentinel audit verify-logs: {}", f.msg);
                    return ExitCode::from(f.code);
                }
            },
            false => None,
        };
        return verify_logs(file, *seals, *continued, dir.as_deref());
    }
    let name = match &a.command {
        AuditCommand::Verify { .. } => "verify",
        AuditCommand::Show { .. } => "show",
        AuditCommand::Tail { .. } => "tail",
        AuditCommand::Archive { .. } => "archive",
        AuditCommand::VerifyLogs { .. } => "verify-logs",
    };
    let done = audit_dir(&a.common).and_then(|dir| match a.command {
        AuditCommand::Verify {
            key,
            threads,
            checkpoints,
            store,
            json,
        } => run_verify(&dir, key.as_deref(), threads, &checkpoints, store, json),
        AuditCommand::Show {
            seq,
            proof,
            key,
            json,
        } => show(&dir, seq, proof, key.as_deref(), json),
        AuditCommand::Tail { n, follow } => tail(&dir, n, follow),
        AuditCommand::Archive { before, to } => run_archive(&dir, before, to.as_deref()),
        AuditCommand::VerifyLogs { .. } => Ok(()), // answered above
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("sentinel audit {name}: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

/// The audit directory of the configured (or `--data-dir`) data directory.
pub(crate) fn audit_dir(common: &Common) -> Result<PathBuf, Fail> {
    let cfg = common.load().map_err(usage)?;
    Ok(format::audit_dir(&cfg.data_dir))
}

/// Prints to stdout; a closed pipe is not an error worth more than stopping.
fn out(text: &str) -> Result<(), Fail> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .map_err(|e| usage(format!("cannot write the output: {e}")))
}

/// Where the verifier key came from.
enum KeySource {
    /// `--key` (a file or the text).
    Given,
    /// The log's own `key.pub`.
    LogDir(PathBuf),
}

const SAME_DIR_WARNING: &str = "the verifier key was read from the log's own directory: this proves \
only that the log agrees with itself, since whoever could rewrite the log could replace the key too. \
Pass --key with the key noted elsewhere (the daemon logs it when it opens the log, evt=audit_log_open) \
to detect a replaced key.";

/// The verifier key: `--key` (a file holding it, or the text), else the log's `key.pub` (warned).
fn load_key(key: Option<&str>, dir: &Path) -> Result<(Verifier, KeySource), Fail> {
    match key {
        Some(k) => {
            let p = Path::new(k);
            let text = if p.is_file() {
                std::fs::read_to_string(p)
                    .map_err(|e| usage(format!("--key {}: {e}", p.display())))?
            } else {
                k.to_owned()
            };
            let v = Verifier::parse(&text).map_err(|e| {
                usage(format!(
                    "--key {k:?}: neither a readable file nor a verifier key: {e}"
                ))
            })?;
            Ok((v, KeySource::Given))
        }
        None => {
            let path = dir.join(KEY_PUB_FILE);
            if !dir.is_dir() {
                return Err(usage(format!(
                    "no audit log in {}: point --data-dir (or the configuration's data_dir) at \
                     the directory that holds audit/",
                    dir.display()
                )));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            let v = Verifier::parse(&text)
                .map_err(|e| bad(format!("{}: not a verifier key: {e}", path.display())))?;
            eprintln!("warning: {SAME_DIR_WARNING}");
            Ok((v, KeySource::LogDir(path)))
        }
    }
}

/// When `--key` was given and the log's `key.pub` is another key: say so.
fn key_pub_differs(dir: &Path, v: &Verifier) -> Option<String> {
    let path = dir.join(KEY_PUB_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    match Verifier::parse(&text) {
        Ok(k) if &k == v => None,
        Ok(k) => Some(format!(
            "{} holds another key ({}) than --key: it was replaced",
            path.display(),
            k.to_text()
        )),
        Err(e) => Some(format!("{}: not a verifier key: {e}", path.display())),
    }
}

pub(crate) fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn time_text(ms: u64) -> String {
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX)).to_rfc3339()
}

fn root_b64(c: &Checkpoint) -> String {
    // The note's third line is the root in base64, as the checkpoint text shows it.
    c.body().lines().nth(2).unwrap_or_default().to_owned()
}

fn checkpoint_json(c: &Checkpoint) -> Value {
    json!({
        "origin": c.origin,
        "size": c.size,
        "root": hex(&c.root),
        "root_base64": root_b64(c),
        "time_ms": c.time_ms,
        "time": time_text(c.time_ms),
    })
}

/// The saved checkpoints of `--checkpoint`, each signed by `verifier` (else exit 1 naming the file).
fn load_pinned(files: &[PathBuf], verifier: &Verifier) -> Result<Vec<Checkpoint>, Fail> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .map_err(|e| usage(format!("--checkpoint {}: {e}", f.display())))?;
            match verifier.verify(&text) {
                Ok(s) => Ok(s.checkpoint),
                Err(e) => Err(bad(format!(
                    "saved checkpoint {}: {e} (verifier key {}): the log's key was replaced, or \
                     the checkpoint is of another log",
                    f.display(),
                    verifier.to_text()
                ))),
            }
        })
        .collect()
}

fn run_verify(
    dir: &Path,
    key: Option<&str>,
    threads: Option<usize>,
    pinned_files: &[PathBuf],
    check_store: bool,
    json_out: bool,
) -> Result<(), Fail> {
    if threads == Some(0) {
        return Err(usage("--threads must be at least 1"));
    }
    let (verifier, source) = load_key(key, dir)?;
    let pinned = load_pinned(pinned_files, &verifier)?;
    let mut warnings: Vec<String> = Vec::new();
    match &source {
        KeySource::LogDir(p) => warnings.push(format!("verifier key read from {}", p.display())),
        KeySource::Given => warnings.extend(key_pub_differs(dir, &verifier)),
    }
    // The store's index bound first: the log read after it must hold every row up to it.
    let bound = match check_store {
        true => Some(super::audit_store::index_bound(dir)?),
        false => None,
    };
    let opts = VerifyOptions {
        threads,
        pinned,
        ..VerifyOptions::default()
    };
    match verify::verify(dir, &verifier, &opts) {
        Ok(report) => {
            warnings.extend(report_warnings(&report));
            let store = match bound {
                Some(b) => Some(super::audit_store::check(dir, report.records, b)?),
                None => None,
            };
            if let Some(s) = &store {
                if let (n, Some(first)) = s.index_missing {
                    warnings.push(format!(
                        "the store's audit index lacks {n} record(s) of the log, the first {first} \
                         (the daemon adds them again when it starts)"
                    ));
                }
                if let (n, Some(first)) = s.rows_missing {
                    warnings.push(format!(
                        "{n} record(s) of the log note a row the store does not hold, the first \
                         {first} (a crash between the log and the store, or a deleted row)"
                    ));
                }
            }
            let saved: Vec<String> = pinned_files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            if json_out {
                let mut v = report_json(dir, &verifier, &report, &warnings);
                v["saved_checkpoints"] = json!(saved);
                if let Some(s) = &store {
                    v["store"] = json!({
                        "index_rows": s.index_rows,
                        "index_archived": s.index_archived,
                        "index_missing": s.index_missing.0,
                        "rows_checked": s.rows_checked,
                        "actions_checked": s.actions_checked,
                        "rows_missing": s.rows_missing.0,
                    });
                }
                out(&format!("{}\n", pretty(&v)))
            } else {
                let mut text = report_text(dir, &verifier, &report, &warnings);
                if !saved.is_empty() {
                    text.push_str(&format!(
                        "  saved:         {} checkpoint(s) consistent with the log ({})\n",
                        saved.len(),
                        saved.join(", ")
                    ));
                }
                if let Some(s) = &store {
                    text.push_str(&format!(
                        "  store:         {} index row(s) match the log ({} archived, not compared); \
                         {} alert/investigation/plan row(s) and {} action(s) match their content \
                         hash\n",
                        s.index_rows, s.index_archived, s.rows_checked, s.actions_checked
                    ));
                }
                out(&text)
            }
        }
        Err(e) => {
            let pinned_file = match &e {
                VerifyError::Pinned { index, .. } => pinned_files.get(*index),
                _ => None,
            };
            let code = match &e {
                // A file missing from a log directory that is there: the log is incomplete.
                VerifyError::Read(ReadError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && dir.is_dir() =>
                {
                    1
                }
                VerifyError::Read(ReadError::Io { .. }) => 2,
                _ => 1,
            };
            if json_out {
                let mut v = json!({
                    "ok": false,
                    "dir": dir.display().to_string(),
                    "key": verifier.to_text(),
                    "error": e.to_string(),
                    "warnings": warnings,
                });
                match &e {
                    VerifyError::Record { seq, place, .. } => {
                        v["record"] = json!(seq);
                        if let Some(p) = place {
                            v["segment"] = json!(p.segment);
                            v["offset"] = json!(p.offset);
                        }
                    }
                    VerifyError::Checkpoint { index, size, .. } => {
                        v["checkpoint"] = json!({"index": index, "size": size});
                    }
                    VerifyError::Hashes { index, record, .. } => {
                        v["record"] = json!(record);
                        v["stored_hash"] = json!(index);
                    }
                    VerifyError::Pinned { size, .. } => {
                        v["saved_checkpoint"] = json!({
                            "file": pinned_file.map(|f| f.display().to_string()),
                            "size": size,
                        });
                    }
                    _ => {}
                }
                out(&format!("{}\n", pretty(&v)))?;
            } else {
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
            }
            let what = match pinned_file {
                Some(f) => format!("{e} [{}]", f.display()),
                None => e.to_string(),
            };
            Err(Fail {
                code,
                msg: format!("audit log {} FAILED verification: {what}", dir.display()),
            })
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn report_warnings(r: &Report) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(t) = &r.torn_tail {
        w.push(format!(
            "{} ends in {} torn bytes at byte {} (a write in progress, or a crash: the daemon \
             truncates it when it opens the log)",
            t.file, t.bytes, t.offset
        ));
    }
    if let Some(t) = &r.torn_checkpoint {
        w.push(format!(
            "{} ends in {} torn bytes at byte {} (a checkpoint being written, or a crash)",
            t.file, t.bytes, t.offset
        ));
    }
    if let Some(s) = r.hashes_differ_from {
        w.push(format!(
            "the stored hashes differ from the records from record {s} on, after the latest \
             checkpoint: what a crash leaves (the daemon rebuilds them), but no signature covers \
             these records yet, so an edit there would look the same"
        ));
    } else if r.stored_hashes != r.expected_hashes {
        w.push(format!(
            "the hashes file holds {} hashes, the records call for {} (derived data: the daemon \
             rebuilds it when it opens the log)",
            r.stored_hashes, r.expected_hashes
        ));
    }
    for p in &r.shadowed {
        w.push(format!(
            "{} ignored: the plain segment is still there (an interrupted archive; run `sentinel \
             audit archive` again)",
            p.display()
        ));
    }
    w
}

fn report_text(dir: &Path, v: &Verifier, r: &Report, warnings: &[String]) -> String {
    let mut s = format!("audit log {}: OK\n", dir.display());
    s.push_str(&format!(
        "  records:       {} ({} read from {} segment(s), {} compressed)\n",
        r.records, r.records_read, r.segments, r.compressed_segments
    ));
    s.push_str(&format!(
        "  checkpoints:   {} (every signature checked with {})\n",
        r.checkpoints,
        v.to_text()
    ));
    match &r.latest {
        Some(c) => s.push_str(&format!(
            "  latest:        size {}, root {} (hex {}), time {}\n",
            c.size,
            root_b64(c),
            hex(&c.root),
            time_text(c.time_ms)
        )),
        None => s.push_str("  latest:        none\n"),
    }
    let nc = &r.not_checkpointed;
    if nc.is_empty() {
        s.push_str("  not yet checkpointed: none\n");
    } else {
        s.push_str(&format!(
            "  not yet checkpointed: {} record(s), {}..{} (checked, but no signature covers them yet)\n",
            nc.end - nc.start,
            nc.start,
            nc.end
        ));
    }
    if r.archived_elsewhere.is_empty() {
        s.push_str("  archived elsewhere: none\n");
    } else {
        let ranges: Vec<String> = r
            .archived_elsewhere
            .iter()
            .map(|a| format!("{}..{}", a.start, a.end))
            .collect();
        s.push_str(&format!(
            "  archived elsewhere: {} (checked through the stored hashes)\n",
            ranges.join(", ")
        ));
    }
    for w in warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
    s
}

fn report_json(dir: &Path, v: &Verifier, r: &Report, warnings: &[String]) -> Value {
    json!({
        "ok": true,
        "dir": dir.display().to_string(),
        "key": v.to_text(),
        "records": r.records,
        "records_read": r.records_read,
        "segments": r.segments,
        "compressed_segments": r.compressed_segments,
        "checkpoints": r.checkpoints,
        "latest_checkpoint": r.latest.as_ref().map(checkpoint_json),
        "not_checkpointed": {"from": r.not_checkpointed.start, "to": r.not_checkpointed.end},
        "archived_elsewhere": r.archived_elsewhere.iter()
            .map(|a| json!({"from": a.start, "to": a.end})).collect::<Vec<_>>(),
        "torn_tail": r.torn_tail.as_ref()
            .map(|t| json!({"file": t.file, "offset": t.offset, "bytes": t.bytes})),
        "torn_checkpoint": r.torn_checkpoint.as_ref()
            .map(|t| json!({"file": t.file, "offset": t.offset, "bytes": t.bytes})),
        "stored_hashes": r.stored_hashes,
        "expected_hashes": r.expected_hashes,
        "hashes_differ_from": r.hashes_differ_from,
        "shadowed": r.shadowed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "warnings": warnings,
    })
}

fn show(dir: &Path, seq: u64, proof: bool, key: Option<&str>, json_out: bool) -> Result<(), Fail> {
    let log = LogDir::open(dir).map_err(read_fail)?;
    let Some(rec) = log.record(seq).map_err(read_fail)? else {
        let archived = log.archived().map_err(read_fail)?;
        return Err(
            match archived
                .iter()
                .find(|a| a.first_seq <= seq && seq < a.end_seq)
            {
                Some(a) => bad(format!(
                    "record {seq} was archived out of the directory, to {}",
                    a.location.display()
                )),
                None => bad(format!("no record {seq} in {}", dir.display())),
            },
        );
    };
    let leaf = merkle::leaf_hash(&rec.payload);
    let mut v = json!({
        "seq": rec.seq,
        "segment": rec.segment,
        "offset": rec.offset,
        "leaf_hash": hex(&leaf),
        "entry": rec.entry,
    });
    let mut text = format!(
        "record {} ({} at byte {})\nleaf hash: {}\n{}\n",
        rec.seq,
        rec.segment,
        rec.offset,
        hex(&leaf),
        // In the log's own field order.
        serde_json::to_string_pretty(&rec.entry).unwrap_or_else(|_| v["entry"].to_string())
    );
    if proof {
        let (verifier, _) = load_key(key, dir)?;
        let cps = log.checkpoints().map_err(read_fail)?;
        let Some(frame) = cps.frames.last() else {
            return Err(bad(format!("{}: no checkpoint yet", dir.display())));
        };
        let note = std::str::from_utf8(&frame.text).map_err(|_| {
            bad(format!(
                "checkpoint {} (size {}): the note is not text",
                frame.index, frame.size
            ))
        })?;
        let signed = verifier.verify(note).map_err(|e| {
            bad(format!(
                "checkpoint {} (size {}) does not verify with {}: {e}",
                frame.index,
                frame.size,
                verifier.to_text()
            ))
        })?;
        let cp = &signed.checkpoint;
        if cp.size <= seq {
            out(&if json_out {
                format!("{}\n", pretty(&v))
            } else {
                text
            })?;
            return Err(bad(format!(
                "record {seq} is not covered by a checkpoint yet (the latest, {}, has size {}); \
                 try again after the next one",
                frame.index, cp.size
            )));
        }
        let hashes = log.stored_hashes().map_err(read_fail)?;
        let path = merkle::inclusion_proof(seq, cp.size, &hashes)
            .map_err(|e| bad(format!("cannot make the inclusion proof: {e}")))?;
        let checked = merkle::verify_inclusion(seq, cp.size, &leaf, &path, &cp.root);
        v["tree_size"] = json!(cp.size);
        v["proof"] = json!(path.iter().map(hex).collect::<Vec<_>>());
        v["checkpoint_index"] = json!(frame.index);
        v["checkpoint"] = json!(signed.text);
        v["key"] = json!(verifier.to_text());
        v["verified"] = json!(checked.is_ok());
        text.push_str(&format!(
            "inclusion proof in the tree of {} records ({} hashes):\n",
            cp.size,
            path.len()
        ));
        for h in &path {
            text.push_str(&format!("  {}\n", hex(h)));
        }
        text.push_str(&format!(
            "checkpoint {} (size {}):\n{}",
            frame.index, cp.size, signed.text
        ));
        if let Err(e) = checked {
            if json_out {
                out(&format!("{}\n", pretty(&v)))?;
            } else {
                out(&text)?;
            }
            return Err(bad(format!(
                "the proof of record {seq} does NOT verify against checkpoint {} (size {}): {e}",
                frame.index, cp.size
            )));
        }
        text.push_str(&format!(
            "proof verifies against checkpoint {} (size {}) signed by {}\n",
            frame.index,
            cp.size,
            verifier.to_text()
        ));
    }
    if json_out {
        out(&format!("{}\n", pretty(&v)))
    } else {
        out(&text)
    }
}

/// One line of `tail`.
fn tail_line(seq: u64, payload: &[u8]) -> String {
    match LogEntry::from_payload(payload) {
        Ok(e) => format!(
            "{seq}\t{}\t{}\t{}\t{}\n",
            e.ts,
            e.kind.as_str(),
            e.trace_id,
            e.summary.replace(['\n', '\t'], " ")
        ),
        Err(e) => format!("{seq}\t(not a log entry: {e})\n"),
    }
}

/// The whole frames of a segment's bytes from a position, and where reading stopped.
struct Frames {
    /// `(seq, payload)` of each.
    found: Vec<(u64, Vec<u8>)>,
    /// The byte after the last whole frame.
    end: usize,
    /// What stopped reading before the end of the bytes (a torn or damaged frame).
    err: Option<FrameError>,
}

fn frames_from(bytes: &[u8], pos: usize) -> Frames {
    let mut found = Vec::new();
    let mut at = pos;
    loop {
        match format::decode_frame(bytes, at) {
            Ok(None) => {
                return Frames {
                    found,
                    end: at,
                    err: None,
                }
            }
            Ok(Some(f)) => {
                found.push((f.seq, f.payload.to_vec()));
                at = f.end;
            }
            Err(e) => {
                return Frames {
                    found,
                    end: at,
                    err: Some(e),
                }
            }
        }
    }
}

/// Where `tail -f` reads next.
struct Follow {
    seg_dir: PathBuf,
    /// The segment being read (`None` before the log has one).
    path: Option<PathBuf>,
    /// The byte after the last whole frame read from it.
    pos: u64,
    /// The record expected next.
    next_seq: u64,
    /// Polls that found the same damaged (not torn) frame at `pos`.
    stuck: u32,
}

fn tail(dir: &Path, n: usize, follow: bool) -> Result<(), Fail> {
    let log = LogDir::open(dir).map_err(read_fail)?;
    let segs = log.segments();
    // The last n records, reading segments from the end.
    let mut last: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut state = Follow {
        seg_dir: dir.join(SEGMENTS_DIR),
        path: None,
        pos: HEADER_LEN as u64,
        next_seq: 0,
        stuck: 0,
    };
    for (i, seg) in segs.iter().enumerate().rev() {
        let bytes = seg.load().map_err(read_fail)?;
        let newest = i + 1 == segs.len();
        if bytes.len() < HEADER_LEN && newest {
            // Being created: nothing in it yet.
            state.path = Some(seg.path.clone());
            state.next_seq = seg.first_seq;
            continue;
        }
        reader::segment_first_seq(seg, &bytes).map_err(read_fail)?;
        let Frames {
            found: frames,
            end,
            err,
        } = frames_from(&bytes, HEADER_LEN);
        if let Some(e) = err.filter(|e| !(newest && reader::is_torn(&bytes, end, e))) {
            return Err(bad(format!(
                "{}: {e} (run `sentinel audit verify`)",
                seg.name()
            )));
        }
        if newest {
            state.path = (!seg.compressed).then(|| seg.path.clone());
            state.pos = end as u64;
            state.next_seq = frames.last().map_or(seg.first_seq, |f| f.0 + 1);
        }
        let mut frames = frames;
        frames.append(&mut last);
        last = frames;
        if last.len() >= n {
            break;
        }
    }
    // With -f, the signals are watched before anything is printed: a Ctrl-C that follows the first
    // lines stops it cleanly.
    let watch = match follow {
        true => Some(Signals::watch()?),
        false => None,
    };
    let skip = last.len().saturating_sub(n);
    let text: String = last[skip..].iter().map(|(s, p)| tail_line(*s, p)).collect();
    if out(&text).is_err() {
        return Ok(());
    }
    let Some(Signals {
        rt,
        mut term,
        mut int,
    }) = watch
    else {
        return Ok(());
    };
    rt.block_on(async {
        loop {
            let lines = state.poll()?;
            if !lines.is_empty() && out(&lines).is_err() {
                return Ok(()); // the reader went away
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
            }
        }
    })
}

/// SIGTERM and SIGINT, caught (a runtime to wait on them in).
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> Result<Self, Fail> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = super::small_runtime().map_err(|e| usage(format!("cannot start: {e}")))?;
        let guard = rt.enter();
        let term = signal(SignalKind::terminate())
            .map_err(|e| usage(format!("cannot watch SIGTERM: {e}")))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| usage(format!("cannot watch SIGINT: {e}")))?;
        drop(guard);
        Ok(Signals { rt, term, int })
    }
}

impl Follow {
    /// Reads what was appended since the last poll: the rest of the current segment, then any
    /// segment that starts where it ends. A frame the writer has not finished is left for later.
    fn poll(&mut self) -> Result<String, Fail> {
        let mut lines = String::new();
        loop {
            let next = self.seg_dir.join(format::segment_name(self.next_seq));
            let rolled = next.exists() && self.path.as_ref() != Some(&next);
            if let Some(path) = self.path.clone() {
                // When the next segment exists this one is sealed: whatever it holds is complete.
                lines.push_str(&self.read_current(&path)?);
            }
            if !rolled {
                return Ok(lines);
            }
            // Re-checked: reading the current segment may have moved next_seq.
            let next = self.seg_dir.join(format::segment_name(self.next_seq));
            if !next.exists() || self.path.as_ref() == Some(&next) {
                continue;
            }
            let head = read_from(&next, 0)?;
            if head.len() < HEADER_LEN {
                return Ok(lines); // being created
            }
            let first = format::parse_header(format::SEGMENT_MAGIC, &head)
                .map_err(|e| bad(format!("{}: bad segment header: {e}", next.display())))?;
            if first != self.next_seq {
                return Err(bad(format!(
                    "{}: the header says the first record is {first}",
                    next.display()
                )));
            }
            self.path = Some(next);
            self.pos = HEADER_LEN as u64;
            self.stuck = 0;
        }
    }

    fn read_current(&mut self, path: &Path) -> Result<String, Fail> {
        let bytes = match read_from(path, self.pos) {
            Ok(b) => b,
            // Archived or replaced under us: only the next segment can follow.
            Err(_) if !path.exists() => return Ok(String::new()),
            Err(e) => return Err(e),
        };
        let Frames {
            found: frames,
            end,
            err,
        } = frames_from(&bytes, 0);
        let mut lines = String::new();
        for (seq, payload) in &frames {
            if *seq != self.next_seq {
                eprintln!(
                    "warning: record {seq} where {} was expected (run `sentinel audit verify`)",
                    self.next_seq
                );
            }
            lines.push_str(&tail_line(*seq, payload));
            self.next_seq = seq + 1;
        }
        if !frames.is_empty() {
            self.stuck = 0;
        }
        self.pos += end as u64;
        if let Some(e) = err {
            // A torn frame is a write in progress: "not yet". Damage that stays is reported.
            if !reader::is_torn(&bytes, end, &e) {
                self.stuck += 1;
                if self.stuck >= 25 {
                    return Err(bad(format!(
                        "{} at byte {}: {e} (run `sentinel audit verify`)",
                        path.display(),
                        self.pos
                    )));
                }
            }
        }
        Ok(lines)
    }
}

/// The bytes of `path` from `offset` to its current end.
fn read_from(path: &Path, offset: u64) -> Result<Vec<u8>, Fail> {
    let fail = |e: std::io::Error| usage(format!("cannot read {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(fail)?;
    f.seek(SeekFrom::Start(offset)).map_err(fail)?;
    let mut b = Vec::new();
    f.read_to_end(&mut b).map_err(fail)?;
    Ok(b)
}

fn run_archive(dir: &Path, before: u64, to: Option<&Path>) -> Result<(), Fail> {
    let report = archive::archive(dir, before, to).map_err(|e| match e {
        ArchiveError::Read(r) => read_fail(r),
        ArchiveError::Io { .. } => usage(e.to_string()),
        other => bad(other.to_string()),
    })?;
    let mut s = String::new();
    if report.archived.is_empty() {
        s.push_str(&format!(
            "nothing to archive: no sealed segment holds only records below {} (the smaller of \
             --before and the latest checkpoint's size)\n",
            report.limit
        ));
    }
    for a in &report.archived {
        s.push_str(&format!(
            "records {}..{}: {} bytes -> {} bytes compressed, now {}\n",
            a.first_seq,
            a.end_seq,
            a.bytes,
            a.compressed_bytes,
            a.file.display()
        ));
    }
    if !report.archived.is_empty() {
        let (raw, gz) = report
            .archived
            .iter()
            .fold((0, 0), |(r, g), a| (r + a.bytes, g + a.compressed_bytes));
        s.push_str(&format!(
            "{} segment(s) archived ({raw} -> {gz} bytes); checkpoints and the stored hashes stay, \
             so `sentinel audit verify` and consistency proofs keep working (records moved with \
             --to are no longer served, nor their inclusion proofs)\n",
            report.archived.len()
        ));
    }
    out(&s)
}

/// The block seals the audit log in `dir` anchored (`log_chain` records): (record seq, seal hex).
fn anchored_seals(dir: &Path) -> Result<Vec<(u64, String)>, Fail> {
    let log = LogDir::open(dir).map_err(read_fail)?;
    let mut out = Vec::new();
    for r in log.records(0) {
        let r = r.map_err(read_fail)?;
        if r.entry.kind == sentinel_core::AuditKind::LogChain {
            if let Some(h) = r.entry.content_hash {
                out.push((r.seq, h));
            }
        }
    }
    Ok(out)
}

/// The first anchored seal the file lacks (with --continued: after the first one it holds).
fn missing_anchor<'a>(
    anchors: &'a [(u64, String)],
    r: &ChainReport,
    continued: bool,
) -> Option<&'a (u64, String)> {
    let in_file: std::collections::HashSet<String> = r
        .runs
        .iter()
        .flat_map(|run| run.seals.iter().map(|s| hex_of(&s.seal)))
        .collect();
    let start = match continued {
        true => anchors
            .iter()
            .position(|(_, h)| in_file.contains(h))
            .unwrap_or(anchors.len()),
        false => 0,
    };
    anchors[start..].iter().find(|(_, h)| !in_file.contains(h))
}

fn verify_logs(file: &PathBuf, seals: bool, continued: bool, anchors: Option<&Path>) -> ExitCode {
    let anchored = match anchors.map(anchored_seals).transpose() {
        Ok(a) => a,
        Err(f) => {
            eprintln!("sentinel audit verify-logs: {}", f.msg);
            return ExitCode::from(f.code);
        }
    };
    let check = |r: &mut dyn std::io::BufRead| match continued {
        true => verify_log_continued(r),
        false => verify_log(r),
    };
    let result = if file.as_os_str() == "-" {
        check(&mut std::io::stdin().lock())
    } else {
        match std::fs::File::open(file) {
            Ok(f) => check(&mut BufReader::new(f)),
            Err(e) => {
                eprintln!("cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(r) if r.chain_lines == 0 => {
            print_foreign(&r);
            println!(
                "{}: FAILED: no chained line in {} line(s) (logging.chain_every = 0, or every `chain` was removed)",
                file.display(),
                r.total_lines
            );
            ExitCode::FAILURE
        }
        Ok(r) => {
            println!(
                "{}: intact: {} chained line(s) in {} run(s), {} sealed block(s)",
                file.display(),
                r.chain_lines,
                r.runs.len(),
                r.runs.iter().map(|r| r.sealed_blocks).sum::<u64>()
            );
            for (i, run) in r.runs.iter().enumerate() {
                let end = match (run.clean_end, run.unsealed_tail) {
                    (true, _) => "clean shutdown".to_owned(),
                    (false, 0) => "no final checkpoint (crashed or still running)".to_owned(),
                    (false, k) => format!(
                        "unsealed tail of {k} line(s) (after the last checkpoint: a truncation there does not show)"
                    ),
                };
                println!(
                    "run {} from line {}{}: {} line(s), {} block(s), {end}",
                    i + 1,
                    run.first_line,
                    if run.continued {
                        " (continues an earlier file: its first line is taken as given)"
                    } else {
                        ""
                    },
                    run.lines,
                    run.sealed_blocks
                );
                if seals {
                    for s in &run.seals {
                        println!(
                            "  block {} lines {} seal {}{}",
                            s.block,
                            s.lines,
                            hex_of(&s.seal),
                            if s.last { " (final)" } else { "" }
                        );
                    }
                }
            }
            print_foreign(&r);
            if let (Some(a), Some(dir)) = (&anchored, anchors) {
                if let Some((seq, seal)) = missing_anchor(a, &r, continued) {
                    println!(
                        "{}: FAILED: audit record {seq} in {} anchors block seal {seal}, which is \
                         not in the file: lines (a whole run or sealed block) were removed",
                        file.display(),
                        dir.display()
                    );
                    return ExitCode::FAILURE;
                }
                println!(
                    "every block seal the audit log anchored ({}) is in the file",
                    a.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(ChainError::Bad { line, problem }) => {
            println!("{}: FAILED at line {line}: {problem}", file.display());

            ExitCode::FAILURE
        }
        Err(e @ ChainError::Io(_)) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

fn print_foreign(r: &ChainReport) {
    if r.foreign_lines > 0 {
        let first: Vec<String> = r.foreign_examples.iter().map(u64::to_string).collect();
        println!(
            "{} line(s) are not chain lines (not covered by the chain; first: {})",
            r.foreign_lines,
            first.join(", ")
        );
    }
}

fn hex_of(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
