//! API keys at start-up: load the stored keys into [`Auth`], and on the very first start create the
//! admin key and note it in the audit trail (its id, name and role; never the key or its hash).

use crate::auth::{write_private, Auth, Principal, Role};
use anyhow::Context;
use sentinel_core::{Timestamp, TraceId};
use sentinel_pipeline::recorder::Recorder;
use sentinel_store::{ApiKeyRow, Store};
use std::path::Path;

/// The file the admin key is written to on first start.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Loads the API keys; on first start (no key at all) creates the admin key, prints it once, writes it
/// to `<data-dir>/admin.key` with mode 0600, and notes it in the audit trail (in `trace`), answering
/// once that record is committed.
pub async fn bootstrap_keys(
    store: &Store,
    auth: &Auth,
    data_dir: &Path,
    recorder: &Recorder,
    trace: &TraceId,
) -> anyhow::Result<()> {
    let mut rows = store.api_keys().await?;
    if rows.is_empty() {
        let key = Auth::generate_key();
        let row = ApiKeyRow {
            id: ulid::Ulid::new().to_string(),
            name: "admin".into(),
            role: Role::Admin.as_str().into(),
            hash: auth.hash(&key),
            created: Timestamp::now(),
        };
        let path = data_dir.join(ADMIN_KEY_FILE);
        let _ = std::fs::remove_file(&path);
        write_private(&path, format!("{key}\n").as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        store.insert_api_key(&row).await?;
        eprintln!(
            "Sentinel created an admin API key. It is shown only this once and saved to {} (mode 0600):\n\n    {key}\n",
            path.display()
        );
        tracing::info!(evt = "admin_key_created", key_id = %row.id, file = %path.display());
        recorder
            .key_created(trace, &row.id, &row.name, &row.role)
            .await
            .map_err(|e| anyhow::anyhow!("the admin key {} was created but {e}", row.id))?;
        rows.push(row);
    }
    for r in rows {
        let role = match r.role.parse::<Role>() {
            Ok(role) => role,
            Err(e) => {
                tracing::error!(evt = "api_key_skipped", key_id = %r.id, error = %e);
                continue;
            }
        };
        let p = Principal {
            key_id: r.id.clone(),
            name: r.name.clone(),
            role,
        };
        if !auth.insert(&r.hash, p) {
            tracing::error!(evt = "api_key_skipped", key_id = %r.id, error = "stored hash is not 64 hex digits");
        }
    }
    Ok(())
}
