//! API keys as stored: an id, a name, a role and the hash of the secret, never the secret itself.
//!
//! Hashing and comparing are the caller's job (the API crate); this module only keeps rows and marks
//! them revoked. Revoked keys stay in the table for the record but are never listed.

use crate::error::StoreError;
use crate::store::Store;
use sentinel_core::Timestamp;
use serde::{Deserialize, Serialize};

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    /// Stable id, shown to operators.
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// The role it grants.
    pub role: String,
    /// Hex hash of the secret, computed by the caller; unique.
    pub hash: String,
    /// When it was made.
    pub created: Timestamp,
}

impl Store {
    /// Stores a new key; fails with [`StoreError::Db`] if the id or hash is already taken.
    pub async fn insert_api_key(&self, k: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (id, name, role, hash, created) VALUES (?, ?, ?, ?, ?)")
            .bind(&k.id)
            .bind(&k.name)
            .bind(&k.role)
            .bind(&k.hash)
            .bind(k.created.as_millis())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every key not revoked, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query_as::<_, (String, String, String, String, i64)>(
            "SELECT id, name, role, hash, created FROM api_keys WHERE revoked = 0 \
             ORDER BY created ASC, id ASC",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, role, hash, created)| ApiKeyRow {
                id,
                name,
                role,
                hash,
                created: Timestamp::from_millis(created),
            })
            .collect())
    }

    /// Revokes a key; `false` when there is no such key or it was already revoked.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked = 1 WHERE id = ? AND revoked = 0")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
