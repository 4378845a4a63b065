//! The log's signing key on disk: `<audit>/key` (the private key in the note format, mode 0600) and
//! `<audit>/key.pub` (its verifier key), created together on first open.

use crate::note::{Signer, Verifier};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why the key could not be loaded or created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("audit key {path}: {why}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        why: String,
    },
    /// The key file holds something that is not a key.
    #[error("audit key {path}: {why}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The key file belongs to another user, who can read the signing key.
    #[error(
        "audit key {path} is owned by uid {owner}, not by this process (uid {uid}): that user can \
         read the signing key and forge checkpoints; give it to uid {uid} (chown) or make a new log"
    )]
    Owner {
        /// The file.
        path: String,
        /// Its owner's uid.
        owner: u32,
        /// This process's uid.
        uid: u32,
    },
    /// The key is named for another log.
    #[error("audit key {path} is named {found:?}, not the configured origin {origin:?}: refusing to sign with it")]
    WrongName {
        /// The file.
        path: String,
        /// The key's name.
        found: String,
        /// The configured origin.
        origin: String,
    },
}

fn io(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Loads `<dir>/key` (and checks `<dir>/key.pub` against it), or creates both with a new key named
/// `origin` when neither exists. A key named otherwise is an error, never replaced. Answers the
/// signer and whether it was created now.
pub fn load_or_create(dir: &Path, origin: &str) -> Result<(Signer, bool), KeyError> {
    let key_path = dir.join("key");
    let pub_path = dir.join("key.pub");
    match fs::read_to_string(&key_path) {
        Ok(text) => {
            let signer = Signer::parse(&text).map_err(|e| KeyError::Malformed {
                path: key_path.display().to_string(),
                why: e.to_string(),
            })?;
            if signer.name() != origin {
                return Err(KeyError::WrongName {
                    path: key_path.display().to_string(),
                    found: signer.name().to_owned(),
                    origin: origin.to_owned(),
                });
            }
            let meta = fs::metadata(&key_path).map_err(|e| io(&key_path, e))?;
            // The process's own uid is the owner of /proc/self (Linux).
            if let Ok(me) = fs::metadata("/proc/self") {
                use std::os::unix::fs::MetadataExt;
                if meta.uid() != me.uid() {
                    return Err(KeyError::Owner {
                        path: key_path.display().to_string(),
                        owner: meta.uid(),
                        uid: me.uid(),
                    });
                }
            }
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    evt = "audit_key_mode",
                    path = %key_path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the audit signing key is readable by others; setting it to 0600"
                );
                fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| io(&key_path, e))?;
            }
            let want = signer.verifier();
            match fs::read_to_string(&pub_path) {
                Ok(p) => {
                    let found = Verifier::parse(&p).map_err(|e| KeyError::Malformed {
                        path: pub_path.display().to_string(),
                        why: e.to_string(),
                    })?;
                    if found != want {
                        return Err(KeyError::Malformed {
                            path: pub_path.display().to_string(),
                            why: "it is not the public half of the key file".into(),
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    write_new(&pub_path, &format!("{}\n", want.to_text()), 0o644)?;
                    sync_dir(dir)?;
                }
                Err(e) => return Err(io(&pub_path, e)),
            }
            Ok((signer, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = Signer::generate(origin).map_err(|e| KeyError::Malformed {
                path: key_path.display().to_string(),
                why: e.to_string(),
            })?;
            // The public half first: a crash between the two leaves no private key without it, and a
            // stale key.pub is replaced because no key file means no log was ever signed.
            let _ = fs::remove_file(&pub_path);
            write_new(
                &pub_path,
                &format!("{}\n", signer.verifier().to_text()),
                0o644,
            )?;
            write_new(&key_path, &format!("{}\n", signer.to_private_text()), 0o600)?;
            sync_dir(dir)?;
            tracing::info!(evt = "audit_key_created", path = %key_path.display(), key = %signer.verifier().to_text());
            Ok((signer, true))
        }
        Err(e) => Err(io(&key_path, e)),
    }
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}
