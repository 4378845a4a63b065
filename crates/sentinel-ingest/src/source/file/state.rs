//! The tail checkpoint: per file, where reading stopped and how to recognise the file again.
//!
//! Written as JSON through a temporary file and a rename, so a crash leaves the old or the new checkpoint,
//! never half of one. It must not decide where to resume: the tailer compares inode, device and first-line
//! hash and decides.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// The path the file was found at.
    pub path: String,
    /// Inode number.
    pub inode: u64,
    /// Device number.
    pub dev: u64,
    /// Bytes consumed, always just after a newline.
    pub offset: u64,
    /// Hex SHA-256 of the first line (at most the first 4 KiB of it), if the file had one.
    pub first_line_hash: Option<String>,
}

/// The whole checkpoint file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailCheckpoint {
    /// Format version (1).
    pub version: u32,
    /// Every file being read.
    pub files: Vec<FileCheckpoint>,
}

impl TailCheckpoint {
    /// Loads a checkpoint; a missing file is an empty checkpoint.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomic(path, &bytes)
    }
}

/// Writes `bytes` to `path` through `path.tmp` and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        // Offsets and paths are private like the rest of the data directory.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_state_golden_roundtrip() {
        let golden = r#"{
  "version": 1,
  "files": [
    {
      "path": "/var/log/auth.log",
      "inode": 42,
      "dev": 2049,
      "offset": 1234,
      "first_line_hash": "ab12"
    }
  ]
}"#;
        let cp: TailCheckpoint = serde_json::from_str(golden).unwrap();
        assert_eq!(cp.files[0].offset, 1234);
        assert_eq!(serde_json::to_string_pretty(&cp).unwrap(), golden);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        cp.store(&p).unwrap();
        assert_eq!(TailCheckpoint::load(&p).unwrap(), cp);
        assert_eq!(
            TailCheckpoint::load(&dir.path().join("none")).unwrap(),
            TailCheckpoint::default()
        );
    }
}
