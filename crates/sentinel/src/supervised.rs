//! The supervisor run by Sentinel itself: inside the daemon when `sentinel.yml` has a `supervise:`
//! section (its children then show in `GET /v1/system/heartbeat`), and as `sentinel supervise` with
//! its own `supervise.yml`. This module owns the wiring only (start, the heartbeat hook, the status
//! file a standalone supervisor keeps, stop); restarts, probes and crash notices are the
//! `sentinel-supervise` crate's.

use anyhow::Context;
use sentinel_api::JsonHook;
use sentinel_core::{Notifier, Timestamp};
use sentinel_supervise::{ChildStatus, StatusHandle, SuperviseConfig, Supervisor};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// The file a standalone supervisor keeps its children's status in (`<data_dir>/status.json`).
pub const STATUS_FILE: &str = "status.json";

/// Starts the supervisor when `cfg` is given, with `notifier` for its crash notices, and answers it
/// with the heartbeat's `children` hook. `None` (nothing started) without a configuration.
pub async fn start(
    cfg: Option<SuperviseConfig>,
    notifier: Arc<dyn Notifier>,
) -> anyhow::Result<Option<(Supervisor, JsonHook)>> {
    let Some(cfg) = cfg else {
        return Ok(None);
    };
    let n = cfg.children.len();
    let sup = Supervisor::start(cfg, notifier)
        .await
        .context("cannot start the supervisor")?;
    let hook = children_hook(sup.status_handle());
    tracing::info!(
        evt = "supervise_ready",
        children = n,
        names = ?sup.status().iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
    );
    Ok(Some((sup, hook)))
}

/// The heartbeat's `children`: every child's status as JSON (cheap: it copies the status slots).
pub fn children_hook(handle: StatusHandle) -> JsonHook {
    Arc::new(move || serde_json::to_value(handle.status()).unwrap_or_else(|_| json!([])))
}

/// Stops the supervisor (children in reverse start order; crash notices already raised are handed
/// to the notifier before this returns). Nothing to do for `None`.
pub async fn stop(sup: Option<Supervisor>) {
    if let Some(sup) = sup {
        tracing::info!(evt = "supervise_stopping");
        sup.stop().await;
        tracing::info!(evt = "supervise_stopped");
    }
}

/// What `status.json` holds: the supervisor's pid and state (`running`, `stopping`, `stopped`),
/// when it was written, and each child's status (`next_restart_in_ms` as of `written_at`).
pub fn status_document(state: &str, started_at: Timestamp, children: &[ChildStatus]) -> Value {
    json!({
        "pid": std::process::id(),
        "state": state,
        "started_at": started_at,
        "written_at": Timestamp::now(),
        "children": children,
    })
}

/// Writes `status.json` in `dir` atomically (a private temporary file renamed over it): a reader
/// sees the old document or the new one, never half of one. The temporary file is made new
/// (`O_CREAT|O_EXCL`, which follows no symbolic link): a link planted at its name is removed, never
/// written through (the supervisor may run as root).
pub fn write_status(dir: &Path, doc: &Value) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{STATUS_FILE}.tmp"));
    let mut text = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    text.push(b'\n');
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::private::FILE_MODE)
        .open(&tmp)?;
    f.write_all(&text)?;
    drop(f);
    std::fs::rename(&tmp, dir.join(STATUS_FILE))
}

/// A status document without what changes on its own (the restart countdown), to tell a state
/// change from the passing of time.
pub fn fingerprint(children: &[ChildStatus]) -> Vec<ChildStatus> {
    children
        .iter()
        .cloned()
        .map(|mut c| {
            c.next_restart_in_ms = None;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_status_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let doc = status_document("running", Timestamp::now(), &[]);
        write_status(dir.path(), &doc).unwrap();
        let read: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATUS_FILE)).unwrap()).unwrap();
        assert_eq!(read["state"], "running");
        assert_eq!(read["pid"], std::process::id());
        assert!(!dir.path().join("status.json.tmp").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(STATUS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// A symbolic link planted at the temporary file's name is not written through.
    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("status.json.tmp")).unwrap();
        let doc = status_document("running", Timestamp::now(), &[]);
        write_status(dir.path(), &doc).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let read: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATUS_FILE)).unwrap()).unwrap();
        assert_eq!(read["state"], "running");
        assert!(!std::fs::symlink_metadata(dir.path().join(STATUS_FILE))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
