//! `sentinel backup DIR`: a consistent copy of the store and the audit log, taken while the daemon
//! runs, that `sentinel audit verify --data-dir DIR` accepts and a daemon can start from.
//!
//! # Why the order makes the copy consistent
//!
//! The daemon appends a record to the audit log (and waits for its `fsync`) before the store's index
//! row naming it (`log_seq`) is written; it signs a checkpoint of size `n` only once `n` records are
//! durable; and records, once written, are never rewritten. So the copy is taken in this order:
//!
//! 1. the **store**, with SQLite's `VACUUM INTO` ([`sentinel_store::backup_to`]): one snapshot of the
//!    database, on a read-only connection of its own, while the writer carries on. Every index row it
//!    holds names a record that was already in the log when the snapshot was taken;
//! 2. the **checkpoints** file, up to its last complete frame: every checkpoint copied covers records
//!    that were already in the segments when it was read;
//! 3. the **segments**, in order, each up to its last complete frame (a frame the writer is still
//!    writing is left out, never copied half). They are read after 1 and 2, so they hold at least
//!    every record the copied index refers to and every record the copied checkpoints cover: the copy
//!    of the store never points past the copy of the log, and every copied checkpoint verifies;
//! 4. the **stored hashes**, recomputed from the copied records (they are derived data; for segments
//!    archived out of the directory, the leaf hashes are taken from the original hashes file, as
//!    `verify` checks them), so they match the copied records exactly.
//!
//! The key files go first: `key.pub` and `key`, the **signing key** (0600): the backup can sign
//! checkpoints and must be kept as private as the data directory. The API's key-hashing secret
//! (`auth.secret`) is copied too: the store holds only HMACs of the API keys under it, so without it a
//! daemon started from the copy would accept none of them (and, since the store has keys, make no new
//! admin key). The plaintext admin key file (`admin.key`) is not copied. Everything is created 0600 (directories 0700) and synced; at the end
//! the copy is verified as `sentinel audit verify` would (against its own `key.pub`).

use super::audit::{audit_dir, bad, hex, read_fail, usage, Fail};
use super::Common;
use clap::Args;
use sentinel_audit::files::{self, ScanEnd, SegmentIndex};
use sentinel_audit::format::{self, HEADER_LEN};
use sentinel_audit::merkle::{self, CompactRange, Hash};
use sentinel_audit::note::Verifier;
use sentinel_audit::reader::{
    self, LogDir, StoredHashes, ARCHIVED_FILE, CHECKPOINTS_FILE, HASHES_FILE, KEY_PUB_FILE,
    SEGMENTS_DIR,
};
use sentinel_audit::verify::{self, VerifyOptions};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The store's file in a data directory.
const DB_FILE: &str = "sentinel.db";
/// The signing key's file in the audit directory.
const KEY_FILE: &str = "key";
/// The API's key-hashing secret in a data directory.
const AUTH_SECRET_FILE: &str = "auth.secret";

/// `sentinel backup` arguments.
#[derive(Args)]
pub struct BackupArgs {
    /// Where to write the copy: a directory that does not exist yet or is empty. It becomes a data
    /// directory (`sentinel.db`, `audit/`, `auth.secret`) holding the audit SIGNING KEY and the API key
    /// secret: keep it private. Start a daemon from it with `sentinel run --data-dir DIR`.
    dir: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Runs `sentinel backup`.
pub fn run(a: BackupArgs) -> ExitCode {
    match backup(&a) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("sentinel backup: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}

fn io_fail(path: &Path) -> impl Fn(std::io::Error) -> Fail + '_ {
    move |e| usage(format!("{}: {e}", path.display()))
}

fn backup(a: &BackupArgs) -> Result<String, Fail> {
    let src_audit = audit_dir(&a.common)?;
    let data_dir = src_audit
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let dest = &a.dir;
    prepare_dest(dest)?;
    fill(dest, &data_dir, &src_audit).map_err(|mut f| {
        f.msg.push_str(&format!(
            " (the incomplete copy in {} should be removed)",
            dest.display()
        ));
        f
    })
}

/// Copies into the prepared `dest`: the store, then the audit log.
fn fill(dest: &Path, data_dir: &Path, src_audit: &Path) -> Result<String, Fail> {
    let mut text = format!("backup of {} to {}\n", data_dir.display(), dest.display());

    // 1. The store: one snapshot, before anything of the log is read.
    let src_db = data_dir.join(DB_FILE);
    let rt = super::small_runtime().map_err(|e| usage(format!("cannot start: {e}")))?;
    let store_copy = if src_db.exists() {
        let dest_db = dest.join(DB_FILE);
        let copied = rt
            .block_on(sentinel_store::backup_to(&src_db, &dest_db))
            .map_err(|e| usage(format!("store: {e}")))?;
        Some((dest_db, copied))
    } else {
        text.push_str(&format!(
            "  store: none at {} (not copied; a PostgreSQL store, store.url, is backed up with pg_dump)\n",
            src_db.display()
        ));
        None
    };

    // The API's key-hashing secret, so the stored API keys work in a daemon started from the copy.
    let secret = data_dir.join(AUTH_SECRET_FILE);
    match fs::read(&secret) {
        Ok(bytes) => {
            write_new(&dest.join(AUTH_SECRET_FILE), &bytes)?;
            text.push_str(&format!(
                "  api: {AUTH_SECRET_FILE} (0600: the API keys stored in the copy keep working; \
                 admin.key is not copied)\n"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => text.push_str(&format!(
            "  api: no {AUTH_SECRET_FILE} at {} (not copied)\n",
            secret.display()
        )),
        Err(e) => return Err(io_fail(&secret)(e)),
    }

    // 2-4. The audit log.
    let log = if src_audit.is_dir() {
        Some(copy_audit(src_audit, &dest.join("audit"))?)
    } else {
        text.push_str(&format!(
            "  audit log: none at {} (not copied)\n",
            src_audit.display()
        ));
        None
    };
    sync_dir(dest)?;

    if let Some((dest_db, copied)) = &store_copy {
        let index = match copied.max_audit_log_seq {
            Some(m) => format!("its audit index refers to records up to {m}"),
            None => "its audit index refers to no log record".into(),
        };
        text.push_str(&format!(
            "  store: {} ({} bytes), {index}\n",
            dest_db.display(),
            copied.bytes
        ));
        let records = log.as_ref().map_or(0, |l| l.records);
        if let Some(m) = copied.max_audit_log_seq.filter(|&m| m >= records) {
            return Err(bad(format!(
                "the copied store refers to audit record {m}, but the copied log holds {records} \
                 records (was the daemon writing the log elsewhere?)"
            )));
        }
    }
    if let Some(l) = &log {
        text.push_str(&format!(
            "  audit log: {} records in {} segment(s) ({} compressed), {} checkpoint(s), latest \
             checkpoint size {} root {}\n",
            l.records,
            l.segments,
            l.compressed,
            l.checkpoints,
            l.latest.map_or("-".into(), |(s, _)| s.to_string()),
            l.latest.map_or("-".into(), |(_, r)| hex(&r)),
        ));
        if l.signing_key {
            text.push_str(
                "  keys: key.pub and key (the audit SIGNING KEY, 0600: keep the backup private)\n",
            );
        } else {
            text.push_str("  keys: key.pub (no signing key found to copy)\n");
        }
        text.push_str(&format!(
            "  the copy verifies: {} records, {} checkpoints (against its own key.pub {})\n",
            l.verified.0, l.verified.1, l.key
        ));
    }
    Ok(text)
}

/// Creates `dest` 0700, or accepts an existing empty directory (restricted to 0700).
fn prepare_dest(dest: &Path) -> Result<(), Fail> {
    // A symlink could point the copy (keys included) somewhere its name does not say.
    if fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(usage(format!(
            "{} is a symbolic link: give the real directory",
            dest.display()
        )));
    }
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(usage(format!(
                    "{} is not empty: give a new or empty directory",
                    dest.display()
                )));
            }
            fs::set_permissions(dest, fs::Permissions::from_mode(0o700)).map_err(io_fail(dest))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dest)
                .map_err(io_fail(dest))?;
        }
        Err(e) => return Err(io_fail(dest)(e)),
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), Fail> {
    files::sync_dir(dir).map_err(io_fail(dir))
}

/// Writes `bytes` to a new file `path`, 0600, synced.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), Fail> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_fail(path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_fail(path))
}

/// What [`copy_audit`] copied.
struct LogCopy {
    records: u64,
    segments: usize,
    compressed: usize,
    checkpoints: usize,
    latest: Option<(u64, Hash)>,
    signing_key: bool,
    key: String,
    /// (records, checkpoints) the copy verified with.
    verified: (u64, usize),
}

/// Copies the audit directory `src` to `dst` (see the module comment for the order).
fn copy_audit(src: &Path, dst: &Path) -> Result<LogCopy, Fail> {
    let mkdir = |d: &Path| {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(d)
            .map_err(io_fail(d))
    };
    mkdir(dst)?;
    mkdir(&dst.join(SEGMENTS_DIR))?;

    // Keys.
    let key_pub = src.join(KEY_PUB_FILE);
    let key_text = fs::read(&key_pub).map_err(io_fail(&key_pub))?;
    let verifier = Verifier::parse(&String::from_utf8_lossy(&key_text))
        .map_err(|e| bad(format!("{}: not a verifier key: {e}", key_pub.display())))?;
    write_new(&dst.join(KEY_PUB_FILE), &key_text)?;
    let signing_key = match fs::read(src.join(KEY_FILE)) {
        Ok(k) => {
            write_new(&dst.join(KEY_FILE), &k)?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_fail(&src.join(KEY_FILE))(e)),
    };

    // Checkpoints, up to the last complete frame.
    let cp_path = src.join(CHECKPOINTS_FILE);
    let cp_bytes = fs::read(&cp_path).map_err(io_fail(&cp_path))?;
    let cps = reader::parse_checkpoints(&cp_bytes)
        .map_err(|why| bad(format!("{}: {why}", cp_path.display())))?;
    if let Some(c) = &cps.corrupt {
        return Err(bad(format!(
            "{}: checkpoint {} at byte {} is damaged: {} (run `sentinel audit verify`)",
            cp_path.display(),
            c.index,
            c.offset,
            c.why
        )));
    }
    let cp_end = cps.frames.last().map_or(HEADER_LEN, |f| {
        f.offset as usize + format::FRAME_HEAD + f.text.len()
    });
    write_new(&dst.join(CHECKPOINTS_FILE), &cp_bytes[..cp_end])?;
    let checkpointed = cps.frames.last().map_or(0, |f| f.size);

    // The list of segments archived out of the directory, up to its last whole line.
    let archived_path = src.join(ARCHIVED_FILE);
    match fs::read(&archived_path) {
        Ok(b) => {
            let end = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
            write_new(&dst.join(ARCHIVED_FILE), &b[..end])?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_fail(&archived_path)(e)),
    }

    // Segments, in order, each up to its last complete frame; the stored hashes recomputed.
    let log = LogDir::open(src).map_err(read_fail)?;
    let hashes_path = dst.join(HASHES_FILE);
    let hashes_file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&hashes_path)
        .map_err(io_fail(&hashes_path))?;
    let mut hashes = BufWriter::with_capacity(1 << 20, hashes_file);
    let mut range = CompactRange::new();
    let mut stored: Vec<Hash> = Vec::new();
    let mut original: Option<StoredHashes> = None;
    let (mut segments, mut compressed) = (0, 0);
    let segs = log.segments();
    for (i, seg) in segs.iter().enumerate() {
        let newest = i + 1 == segs.len();
        let raw = match fs::read(&seg.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(usage(format!(
                    "{} went away during the copy (archived meanwhile?): run the backup again \
                     into an empty directory",
                    seg.path.display()
                )))
            }
            Err(e) => return Err(io_fail(&seg.path)(e)),
        };
        if newest && !seg.compressed && raw.len() < HEADER_LEN {
            continue; // being created: nothing in it yet
        }
        // Records archived out of the directory before this segment: their leaf hashes come from
        // the original hashes file (which `verify` checks them against).
        if seg.first_seq > range.size() {
            let orig = match &original {
                Some(o) => o,
                None => {
                    original.insert(StoredHashes::open(&src.join(HASHES_FILE)).map_err(read_fail)?)
                }
            };
            for seq in range.size()..seg.first_seq {
                let leaf = orig.get(merkle::stored_hash_index(0, seq)).map_err(|e| {
                    bad(format!("record {seq}, archived out of the directory: {e}"))
                })?;
                push(&mut range, leaf, &mut stored, &mut hashes, &hashes_path)?;
            }
        } else if seg.first_seq < range.size() {
            return Err(bad(format!(
                "{} starts at record {}, but the segment before it ends at {} (run `sentinel audit \
                 verify`)",
                seg.name(),
                seg.first_seq,
                range.size()
            )));
        }
        let plain = if seg.compressed {
            seg.load().map_err(read_fail)?
        } else {
            Vec::new()
        };
        let bytes: &[u8] = if seg.compressed { &plain } else { &raw };
        let mut leaves: Vec<Hash> = Vec::new();
        let scan = files::scan_segment(bytes, seg.first_seq, |_, payload| {
            leaves.push(merkle::leaf_hash(payload));
        })
        .map_err(|e| {
            bad(format!(
                "{} at byte {} (record {}): {} (run `sentinel audit verify`)",
                seg.name(),
                e.offset,
                e.seq,
                e.why
            ))
        })?;
        if scan.end != ScanEnd::Clean && (!newest || seg.compressed) {
            return Err(bad(format!(
                "{}: a sealed segment that ends in a damaged frame at byte {} (run `sentinel audit \
                 verify`)",
                seg.name(),
                scan.good_len
            )));
        }
        let name = seg
            .path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format::segment_name(seg.first_seq)));
        let target = dst.join(SEGMENTS_DIR).join(name);
        if seg.compressed {
            write_new(&target, &raw)?;
            compressed += 1;
        } else {
            let good = usize::try_from(scan.good_len).unwrap_or(raw.len());
            write_new(&target, &raw[..good])?;
            copy_index(src, dst, seg.first_seq, &scan)?;
        }
        segments += 1;
        for leaf in leaves {
            push(&mut range, leaf, &mut stored, &mut hashes, &hashes_path)?;
        }
    }
    let file = hashes
        .into_inner()
        .map_err(|e| io_fail(&hashes_path)(e.into_error()))?;
    file.sync_all().map_err(io_fail(&hashes_path))?;
    drop(file);
    let records = range.size();
    if checkpointed > records {
        // Cannot happen when the daemon writes as documented (checkpoints only cover durable
        // records, and they were read first); refuse a copy that would not verify.
        return Err(bad(format!(
            "the copied checkpoints cover {checkpointed} records but only {records} were found"
        )));
    }
    sync_dir(&dst.join(SEGMENTS_DIR))?;
    sync_dir(dst)?;

    // Verify the copy as `sentinel audit verify --data-dir DIR` will.
    let report = verify::verify(dst, &verifier, &VerifyOptions::default())
        .map_err(|e| bad(format!("the copy does not verify: {e}")))?;
    Ok(LogCopy {
        records,
        segments,
        compressed,
        checkpoints: report.checkpoints,
        latest: report.latest.as_ref().map(|c| (c.size, c.root)),
        signing_key,
        key: verifier.to_text(),
        verified: (report.records, report.checkpoints),
    })
}

/// Appends one record's leaf to the tree and its stored hashes to the hashes file.
fn push(
    range: &mut CompactRange,
    leaf: Hash,
    stored: &mut Vec<Hash>,
    out: &mut BufWriter<File>,
    path: &Path,
) -> Result<(), Fail> {
    stored.clear();
    range.push_into(leaf, stored);
    for h in stored.iter() {
        out.write_all(h).map_err(io_fail(path))?;
    }
    Ok(())
}

/// Copies a sealed segment's `.idx` when it describes exactly the bytes copied (it is derived: the
/// daemon rebuilds a missing one).
fn copy_index(src: &Path, dst: &Path, first_seq: u64, scan: &files::Scan) -> Result<(), Fail> {
    let Ok(Some(idx)) = SegmentIndex::read(&src.join(SEGMENTS_DIR), first_seq) else {
        return Ok(());
    };
    if idx.bytes != scan.good_len || idx.first_seq + idx.records != scan.next_seq {
        return Ok(());
    }
    write_new(
        &dst.join(SEGMENTS_DIR).join(files::index_name(first_seq)),
        &idx.encode(),
    )
}
