//! Private data: the data directory is the owner's alone. It is created 0700, every directory under
//! it is kept at 0700 and every file at 0600, whatever the umask Sentinel was started with; anything
//! found wider at start-up is tightened, with a WARNING naming it.
//!
//! Two belts: the daemon's umask is set to 0o077 before anything is created (so files made by any
//! library, SQLite's `-wal` and `-shm` included, start private), and the places that create files in
//! the data directory give explicit modes. This module does not decide what is stored, only who may
//! read it.

use anyhow::Context;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every directory under the data directory (and of the directory itself).
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file under the data directory.
pub const FILE_MODE: u32 = 0o600;

/// Sets the process umask to 0o077: whatever is created from now on is readable by its owner only.
pub fn restrict_umask() {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if old.bits() & 0o077 != 0o077 {
        tracing::debug!(
            evt = "umask_restricted",
            was = format!("{:03o}", old.bits())
        );
    }
}

/// Creates the data directory 0700 (with its missing parents), or tightens an existing one, then
/// tightens everything already in it. Each path found wider is logged as a WARNING.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let tightened = tighten_tree(dir)
        .with_context(|| format!("cannot restrict the data directory {}", dir.display()))?;
    if tightened > 0 {
        tracing::warn!(
            evt = "data_dir_tightened",
            dir = %dir.display(),
            paths = tightened,
            note = "the data directory holds secrets and must be private; its modes were restricted",
        );
    }
    Ok(())
}

/// Walks `dir` (not following symbolic links) and restricts every directory to 0700 and every file to
/// 0600. Returns how many paths were changed.
pub fn tighten_tree(dir: &Path) -> std::io::Result<usize> {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // The data directory itself may be a symlink to the real one: its target's mode is what
        // counts (a symlink's own mode is always 0777). Inside, symlinks are not followed.
        changed += usize::from(tighten(&d, DIR_MODE, d == dir)?);
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                changed += usize::from(tighten(&entry.path(), FILE_MODE, false)?);
            }
        }
    }
    Ok(changed)
}

/// Restricts one path to `mode` if it grants anything to group or others; says whether it did.
fn tighten(path: &Path, mode: u32, follow: bool) -> std::io::Result<bool> {
    let meta = if follow {
        fs::metadata(path)?
    } else {
        fs::symlink_metadata(path)?
    };
    let old = meta.permissions().mode() & 0o7777;
    if old & !mode == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    tracing::warn!(
        evt = "private_mode_restored",
        path = %path.display(),
        was = format!("{old:04o}"),
        now = format!("{mode:04o}"),
    );
    Ok(true)
}

/// Writes a whole file readable by its owner only (0600), replacing what was there.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    // An existing file keeps its mode on open: restrict it.
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_tree_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("data");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("a"), "x").unwrap();
        fs::write(d.join("sub/b"), "y").unwrap();
        for (p, m) in [("", 0o755), ("sub", 0o777), ("a", 0o644), ("sub/b", 0o666)] {
            fs::set_permissions(d.join(p), fs::Permissions::from_mode(m)).unwrap();
        }
        prepare_data_dir(&d).unwrap();
        for (p, m) in [("", 0o700), ("sub", 0o700), ("a", 0o600), ("sub/b", 0o600)] {
            let got = fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o7777;
            assert_eq!(got, m, "{p}: {got:o}");
        }
        assert_eq!(
            tighten_tree(&d).unwrap(),
            0,
            "a second pass changes nothing"
        );
        write_private(&d.join("a"), b"z").unwrap();
        assert_eq!(fs::read(d.join("a")).unwrap(), b"z");
    }

    #[test]
    fn a_symlinked_data_dir_is_tightened_once() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("a"), "x").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(real.join("a"), fs::Permissions::from_mode(0o666)).unwrap();
        let link = tmp.path().join("data");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(tighten_tree(&link).unwrap(), 2);
        assert_eq!(
            fs::metadata(&real).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        // The link's own mode (always 0777) is not mistaken for a wide directory at every start.
        assert_eq!(
            tighten_tree(&link).unwrap(),
            0,
            "a second pass changes nothing"
        );
    }
}
