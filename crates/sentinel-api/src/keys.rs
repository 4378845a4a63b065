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
///
/// `secret_is_new`: the key-hashing secret was made by this start. Keys stored under an earlier one
/// can never match again (the secret was lost, or the store was copied without it), so rather than
/// start with no usable key, a new admin key is made as on a first start and the loss is said loudly.
pub async fn bootstrap_keys(
    store: &Store,
    auth: &Auth,
    data_dir: &Path,
    recorder: &Recorder,
    trace: &TraceId,
    secret_is_new: bool,
) -> anyhow::Result<()> {
    let rows = store.api_keys().await?;
    let orphaned = if secret_is_new { rows.len() } else { 0 };
    if orphaned > 0 {
        eprintln!(
            "WARNING: {} was missing and a new one was made: the {orphaned} API key(s) stored before \
             no longer match any key. A new admin key follows; restore the old auth.secret instead to \
             keep the old keys.",
            data_dir.join("auth.secret").display()
        );
        tracing::warn!(
            evt = "api_keys_unusable",
            keys = orphaned,
            msg = "auth.secret was missing and a new one was made: the stored API keys no longer match; a new admin key is made",
        );
    }
    if rows.is_empty() || orphaned > 0 {
        let key = Auth::generate_key();
        let row = ApiKeyRow {
            id: ulid::Ulid::new().to_string(),
            name: "admin".into(),
            role: Role::Admin.as_str().into(),
            hash: auth.hash(&key),
            created: Timestamp::now(),
            expires: None,
            revoked_at: None,
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
    }
    // Revoked keys too: one presented later is refused as revoked (and counted so), not as unknown.
    for r in store.api_keys_all().await? {
        register(auth, &r);
    }
    Ok(())
}

/// Puts a stored key into the registry (skipping, with an error logged, a row that cannot be used).
pub fn register(auth: &Auth, r: &ApiKeyRow) {
    let role = match r.role.parse::<Role>() {
        Ok(role) => role,
        Err(e) => {
            tracing::error!(evt = "api_key_skipped", key_id = %r.id, error = %e);
            return;
        }
    };
    let p = Principal {
        key_id: r.id.clone(),
        name: r.name.clone(),
        role,
    };
    if !auth.insert_key(&r.hash, p, r.expires, r.revoked_at.is_some()) {
        tracing::error!(evt = "api_key_skipped", key_id = %r.id, error = "stored hash is not 64 hex digits");
    }
}
