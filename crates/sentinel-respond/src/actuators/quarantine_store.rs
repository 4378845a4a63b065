//! The quarantine directory on disk: manifests, moving a file in, and restoring it byte for byte.
//!
//! Blocking file-system code, run by the actuator on tokio's blocking pool. It never decides *whether* a
//! path may be quarantined (that is `quarantine_rules`); it only moves what it is handed, and it never
//! overwrites anything at a restore target.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `EXDEV`: rename across file systems.
const EXDEV: i32 = 18;

/// What was quarantined and how to put it back. Stored as `<dir>/<id>.json` and as the revert token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unique id; the quarantined copy is `<dir>/<id>`.
    pub id: String,
    /// Where the file was (canonical).
    pub original_path: PathBuf,
    /// Where the file is now.
    pub stored_as: PathBuf,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime_secs: i64,
    /// Modification time, nanoseconds part.
    pub mtime_nanos: u32,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// When it was quarantined, seconds since the epoch.
    pub quarantined_at: u64,
}

impl Manifest {
    /// The manifest's own file name inside the quarantine directory.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.id)
    }

    fn mtime(&self) -> SystemTime {
        let nanos = Duration::new(0, self.mtime_nanos);
        if self.mtime_secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.mtime_secs.unsigned_abs()) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(self.mtime_secs.unsigned_abs()) + nanos
        }
    }
}

/// SHA-256 of everything readable from `r`, and the byte count.
fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// SHA-256 of a file's content.
pub(crate) fn hash_file(p: &Path) -> io::Result<String> {
    hash_reader(File::open(p)?).map(|(h, _)| h)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically: a temporary sibling, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fsync_dir(dir)
}

fn write_manifest(dir: &Path, m: &Manifest) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(m).map_err(io::Error::other)?;
    write_atomic(&dir.join(m.file_name()), &bytes)
}

/// Creates the quarantine directory (0700, root-owned) if needed and returns its canonical path.
pub(crate) fn prepare_dir(dir: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            return Err(io::Error::other(format!(
                "`{}` exists and is not a directory",
                dir.display()
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir)?,
        Err(e) => return Err(e),
    }
    std::os::unix::fs::chown(dir, Some(0), Some(0))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    fs::canonicalize(dir)
}

/// Copies `from` into a new file `to` (which must not exist), fsyncs it and returns the copy's hash.
fn copy_new(from: &Path, to: &Path) -> io::Result<(String, u64)> {
    let mut src = File::open(from)?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = src.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        dst.write_all(&buf[..k])?;
        n += k as u64;
    }
    dst.sync_all()?;
    Ok((hex::encode(h.finalize()), n))
}

/// Moves the (already screened, canonical) file at `path` into `dir` and records it.
pub(crate) fn quarantine(dir: &Path, path: &Path, id: String) -> io::Result<Manifest> {
    let f = File::open(path)?;
    let meta = f.metadata()?;
    let (sha256, size) = hash_reader(&f)?;
    let stored_as = dir.join(&id);
    let mut m = Manifest {
        id,
        original_path: path.to_path_buf(),
        stored_as: stored_as.clone(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size,
        mtime_secs: meta.mtime(),
        mtime_nanos: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
        sha256,
        quarantined_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    // The manifest goes first: after a crash, a manifest without a stored copy means "never moved".
    write_manifest(dir, &m)?;
    let lstat = fs::symlink_metadata(path)?;
    if lstat.dev() != meta.dev() || lstat.ino() != meta.ino() {
        let _ = fs::remove_file(dir.join(m.file_name()));
        return Err(io::Error::other(
            "the file was replaced while it was being examined",
        ));
    }
    match fs::rename(path, &stored_as) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EXDEV) => {
            let mut partial = stored_as.as_os_str().to_owned();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            copy_new(path, &partial)?;
            fs::rename(&partial, &stored_as)?;
            fsync_dir(dir)?;
            fs::remove_file(path)?;
        }
        Err(e) => {
            let _ = fs::remove_file(dir.join(m.file_name()));
            return Err(e);
        }
    }
    if let Some(parent) = path.parent() {
        let _ = fsync_dir(parent);
    }
    let stored = File::open(&stored_as)?;
    std::os::unix::fs::fchown(&stored, Some(0), Some(0))?;
    stored.set_permissions(fs::Permissions::from_mode(0o600))?;
    stored.sync_all()?;
    // What is kept is what is recorded: if the file changed between hashing and moving, record the copy.
    let (after, after_size) = hash_reader(&stored)?;
    if after != m.sha256 || after_size != m.size {
        m.sha256 = after;
        m.size = after_size;
        write_manifest(dir, &m)?;
    }
    fsync_dir(dir)?;
    Ok(m)
}

/// How a restore ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restore {
    /// The file was put back.
    Restored,
    /// The identical file was already at its path.
    AlreadyThere,
}

/// Why a restore did not happen.
#[derive(Debug)]
pub(crate) enum RestoreError {
    /// A different file occupies the original path; nothing was touched.
    Occupied(String),
    /// The stored copy is missing or no longer matches the manifest.
    Integrity(String),
    /// The file system failed.
    Io(io::Error),
}

impl From<io::Error> for RestoreError {
    fn from(e: io::Error) -> Self {
        RestoreError::Io(e)
    }
}

fn apply_metadata(f: &File, m: &Manifest) -> io::Result<()> {
    // chown first: it clears set-id bits, which the chmod then puts back.
    std::os::unix::fs::fchown(f, Some(m.uid), Some(m.gid))?;
    f.set_permissions(fs::Permissions::from_mode(m.mode))?;
    f.set_times(FileTimes::new().set_modified(m.mtime()))?;
    f.sync_all()
}

/// Puts a quarantined file back, never replacing anything at its path.
pub(crate) fn restore(dir: &Path, m: &Manifest) -> Result<Restore, RestoreError> {
    let target = &m.original_path;
    let stored = &m.stored_as;
    let stored_exists = fs::symlink_metadata(stored).is_ok();
    match fs::symlink_metadata(target) {
        Ok(meta) => {
            let same = meta.is_file() && hash_file(target).ok().as_deref() == Some(&m.sha256);
            if !same {
                return Err(RestoreError::Occupied(format!(
                    "a different file now occupies `{}`; the quarantined copy is kept at `{}`",
                    target.display(),
                    stored.display()
                )));
            }
            // A restore interrupted after the link: finish it.
            if stored_exists {
                fs::remove_file(stored)?;
            }
            remove_manifest(dir, m)?;
            return Ok(Restore::AlreadyThere);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    if !stored_exists {
        return Err(RestoreError::Integrity(format!(
            "the quarantined copy `{}` is missing and `{}` is empty",
            stored.display(),
            target.display()
        )));
    }
    let have = hash_file(stored)?;
    if have != m.sha256 {
        return Err(RestoreError::Integrity(format!(
            "the quarantined copy `{}` no longer matches its recorded SHA-256 ({} != {})",
            stored.display(),
            have,
            m.sha256
        )));
    }
    apply_metadata(&File::open(stored)?, m)?;
    // hard_link fails if anything exists at the target: an atomic "create, never replace".
    match fs::hard_link(stored, target) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EXDEV) => {
            let parent = target.parent().unwrap_or(Path::new("/"));
            let tmp = parent.join(format!(".sentinel-restore-{}", m.id));
            let _ = fs::remove_file(&tmp);
            let (sum, _) = copy_new(stored, &tmp)?;
            let linked = if sum == m.sha256 {
                apply_metadata(&File::open(&tmp)?, m).and_then(|()| fs::hard_link(&tmp, target))
            } else {
                Err(io::Error::other(
                    "the copy does not match the recorded SHA-256",
                ))
            };
            let _ = fs::remove_file(&tmp);
            linked.map_err(|e| occupied_or_io(e, m))?;
        }
        Err(e) => return Err(occupied_or_io(e, m)),
    }
    if let Some(parent) = target.parent() {
        fsync_dir(parent)?;
    }
    fs::remove_file(stored)?;
    remove_manifest(dir, m)?;
    Ok(Restore::Restored)
}

fn occupied_or_io(e: io::Error, m: &Manifest) -> RestoreError {
    if e.kind() == io::ErrorKind::AlreadyExists {
        RestoreError::Occupied(format!(
            "a file appeared at `{}` during the restore; the quarantined copy is kept at `{}`",
            m.original_path.display(),
            m.stored_as.display()
        ))
    } else {
        RestoreError::Io(e)
    }
}

fn remove_manifest(dir: &Path, m: &Manifest) -> io::Result<()> {
    match fs::remove_file(dir.join(m.file_name())) {
        Ok(()) => fsync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every manifest in `dir`, oldest first; unreadable ones are returned as errors by name.
pub(crate) fn manifests(dir: &Path) -> io::Result<(Vec<Manifest>, Vec<String>)> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|e| e.to_string()))
        {
            Ok(m) => good.push(m),
            Err(e) => bad.push(format!("{}: {e}", path.display())),
        }
    }
    good.sort_by(|a: &Manifest, b: &Manifest| a.id.cmp(&b.id));
    Ok((good, bad))
}
