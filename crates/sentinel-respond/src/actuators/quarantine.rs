//! File quarantine: moves a suspicious regular file into a root-only directory and puts it back on revert.
//!
//! It owns the quarantine directory and nothing else: it only ever moves files that pass every rule in
//! `quarantine_rules` (under a configured root, no symlinks, no system or home directories, regular files
//! only), and a revert never overwrites a file that has since appeared at the original path. What was moved
//! is recorded twice: in a JSON manifest per item inside the quarantine directory (what `observe` reads, and
//! what survives a restart) and in the [`Applied`] token (all `revert` needs).

use super::quarantine_rules::{screen, screen_restore_target};
pub use super::quarantine_store::Manifest;
use super::quarantine_store::{self, Restore, RestoreError};
use async_trait::async_trait;
use sentinel_core::params::QuarantinePath;
use sentinel_core::{
    ActError, ActionId, ActionKind, ActionSpec, Actuator, Applied, Preview, Subject,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where quarantined files go, and which trees files may be taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineConfig {
    /// The quarantine directory; created 0700 and root-owned.
    pub dir: PathBuf,
    /// Files outside every root are refused.
    pub roots: Vec<PathBuf>,
}

impl QuarantineConfig {
    /// Checks the configuration without touching the file system; reports every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if !self.dir.is_absolute() {
            errs.push(format!(
                "quarantine dir `{}` must be an absolute path",
                self.dir.display()
            ));
        }
        if self.roots.is_empty() {
            errs.push("quarantine needs at least one root to take files from".into());
        }
        for r in &self.roots {
            if !r.is_absolute() {
                errs.push(format!(
                    "quarantine root `{}` must be an absolute path",
                    r.display()
                ));
            } else if r == Path::new("/") {
                errs.push(
                    "quarantine root `/` is too broad; name the trees files may come from".into(),
                );
            }
            if self.dir.starts_with(r) {
                errs.push(format!(
                    "quarantine dir `{}` must not be inside the root `{}`",
                    self.dir.display(),
                    r.display()
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// The [`ActionKind::QuarantineFile`] actuator.
#[derive(Debug, Clone)]
pub struct QuarantineFile {
    dir: PathBuf,
    roots: Vec<PathBuf>,
}

fn backend(what: &str, e: impl std::fmt::Display) -> ActError {
    ActError::Backend(format!("{what}: {e}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ActError> + Send + 'static,
) -> Result<T, ActError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| backend("quarantine task", e))?
}

impl QuarantineFile {
    /// Validates `cfg`, creates the quarantine directory (0700, root-owned) and resolves the roots.
    pub fn new(cfg: QuarantineConfig) -> Result<Self, ActError> {
        cfg.validate()
            .map_err(|e| ActError::Refused(e.join("; ")))?;
        let dir = quarantine_store::prepare_dir(&cfg.dir)
            .map_err(|e| backend(&format!("quarantine dir `{}`", cfg.dir.display()), e))?;
        let roots = cfg
            .roots
            .iter()
            .map(|r| {
                std::fs::canonicalize(r)
                    .map_err(|e| backend(&format!("quarantine root `{}`", r.display()), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { dir, roots })
    }

    /// The actuator for a role that only plans: nothing is created or changed, the roots may be empty
    /// (then every file is refused), and paths that do not exist yet are used as written.
    pub fn planner(cfg: QuarantineConfig) -> Self {
        let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        Self {
            dir: resolve(&cfg.dir),
            roots: cfg.roots.iter().map(|r| resolve(r)).collect(),
        }
    }

    /// What quarantining the (checked, canonical) file `c` does, in order: the same list for `plan()`
    /// and for `apply()`, which runs it as one step. `<id>` is the entry's name, generated when it runs
    /// and kept in the revert token.
    fn operations(&self, c: &Path) -> Vec<String> {
        let c = c.display();
        let q = self.dir.display();
        vec![
            format!("sha256 {c}; record path, mode, uid/gid, size, mtime"),
            format!("write {q}/<id>.json (manifest; tmp + fsync + rename)"),
            format!("rename {c} {q}/<id> (copy + fsync + unlink across file systems)"),
            format!("chown 0:0 {q}/<id>; chmod 0600 {q}/<id>"),
        ]
    }

    /// The (canonical) quarantine directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks `path` against every rule and returns its canonical form; changes nothing.
    pub fn check(&self, path: &Path) -> Result<PathBuf, ActError> {
        screen(path, &self.roots, &self.dir)
    }

    fn path_of(&self, a: &ActionSpec) -> Result<PathBuf, ActError> {
        let p = match (&a.kind, &a.subject) {
            (ActionKind::QuarantineFile, Subject::File(p)) => p
                .parse::<QuarantinePath>()
                .map_err(|e| ActError::Refused(format!("subject: {e}")))?,
            (kind, subject) => {
                return Err(ActError::Refused(format!(
                    "{kind} does not apply to {subject}"
                )))
            }
        };
        if self.roots.is_empty() {
            return Err(ActError::Refused(
                "subject: no quarantine roots are configured (respond.quarantine_roots); no file may be quarantined".into(),
            ));
        }
        Ok(p.as_path().to_path_buf())
    }

    fn manifest_of(&self, t: &Applied) -> Result<Manifest, ActError> {
        if t.kind != ActionKind::QuarantineFile {
            return Err(ActError::BadToken(format!(
                "a {} token given to the quarantine",
                t.kind
            )));
        }
        let m: Manifest = serde_json::from_value(t.token.clone())
            .map_err(|e| ActError::BadToken(e.to_string()))?;
        // A token may only point into our own directory, at an entry named by its id.
        let id_ok = !m.id.is_empty()
            && m.id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok || m.stored_as != self.dir.join(&m.id) {
            return Err(ActError::BadToken(format!(
                "stored copy `{}` is not an entry of the quarantine directory `{}`",
                m.stored_as.display(),
                self.dir.display()
            )));
        }
        Ok(m)
    }
}

fn applied(m: &Manifest, operations: Vec<String>) -> Result<Applied, ActError> {
    Ok(Applied {
        kind: ActionKind::QuarantineFile,
        subject: Subject::File(m.original_path.display().to_string()),
        token: serde_json::to_value(m).map_err(|e| backend("manifest", e))?,
        operations,
    })
}

#[async_trait]
impl Actuator for QuarantineFile {
    fn kind(&self) -> ActionKind {
        ActionKind::QuarantineFile
    }

    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
        let path = self.path_of(a)?;
        let this = self.clone();
        let canonical = blocking(move || this.check(&path)).await?;
        Ok(Preview {
            kind: ActionKind::QuarantineFile,
            operations: self.operations(&canonical),
        })
    }

    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
        let path = self.path_of(a)?;
        let this = self.clone();
        let (m, canonical) = blocking(move || {
            let canonical = this.check(&path)?;
            let m =
                quarantine_store::quarantine(&this.dir, &canonical, ActionId::new().to_string())
                    .map_err(|e| backend(&format!("quarantining `{}`", canonical.display()), e))?;
            Ok((m, canonical))
        })
        .await?;
        applied(&m, self.operations(&canonical))
    }

    async fn revert(&self, t: &Applied) -> Result<(), ActError> {
        let m = self.manifest_of(t)?;
        let this = self.clone();
        let outcome = blocking(move || {
            screen_restore_target(&m.original_path, &this.roots)?;
            quarantine_store::restore(&this.dir, &m).map_err(|e| match e {
                RestoreError::Occupied(s) => ActError::Refused(s),
                RestoreError::Integrity(s) => ActError::Backend(s),
                RestoreError::Io(e) => {
                    backend(&format!("restoring `{}`", m.original_path.display()), e)
                }
            })
        })
        .await?;
        match outcome {
            Restore::Restored | Restore::AlreadyThere => Ok(()),
        }
    }

    async fn observe(&self) -> Result<Vec<Applied>, ActError> {
        let dir = self.dir.clone();
        let (good, bad) = blocking(move || {
            quarantine_store::manifests(&dir).map_err(|e| backend("reading manifests", e))
        })
        .await?;
        if !bad.is_empty() {
            return Err(ActError::Backend(format!(
                "unreadable quarantine manifests: {}",
                bad.join("; ")
            )));
        }
        good.iter().map(|m| applied(m, Vec::new())).collect()
    }
}
