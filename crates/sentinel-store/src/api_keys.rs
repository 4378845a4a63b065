//! API keys as stored: an id, a name, a role, when it expires, and the hash of the secret, never the
//! secret itself.
//!
//! Hashing and comparing are the caller's job (the API crate); this module only keeps rows and marks
//! them revoked. Revoked keys stay in the table for the record: [`Store::api_keys`] leaves them out,
//! [`Store::api_keys_all`] and [`Store::api_keys_page`] show them with the time of revocation. Every
//! call runs on SQLite and PostgreSQL alike.

use crate::backend::{on_backend, Tx};
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
    /// When it stops working (`None`: never).
    #[serde(default)]
    pub expires: Option<Timestamp>,
    /// When it was revoked (`None`: it was not).
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
}

type Row = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
);

const COLUMNS: &str = "id, name, role, hash, created, expires, revoked, revoked_at";

fn from_row((id, name, role, hash, created, expires, revoked, revoked_at): Row) -> ApiKeyRow {
    ApiKeyRow {
        id,
        name,
        role,
        hash,
        created: Timestamp::from_millis(created),
        expires: expires.map(Timestamp::from_millis),
        // A key revoked before revocation times were kept shows the epoch rather than nothing.
        revoked_at: match (revoked, revoked_at) {
            (0, _) => None,
            (_, at) => Some(Timestamp::from_millis(at.unwrap_or(0))),
        },
    }
}

impl Store {
    /// Stores a new key; fails with [`StoreError::Db`] if the id or hash is already taken.
    pub async fn insert_api_key(&self, k: &ApiKeyRow) -> Result<(), StoreError> {
        let sql = self.sql(
            "INSERT INTO api_keys (id, name, role, hash, created, expires) VALUES (?, ?, ?, ?, ?, ?)",
        );
        on_backend!(self, |pool| {
            sqlx::query(&sql)
                .bind(&k.id)
                .bind(&k.name)
                .bind(&k.role)
                .bind(&k.hash)
                .bind(k.created.as_millis())
                .bind(k.expires.map(|t| t.as_millis()))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every key not revoked, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE revoked = 0 ORDER BY created ASC, id ASC"
        );
        let rows = on_backend!(self, |pool| {
            sqlx::query_as::<_, Row>(&sql).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Every key, revoked ones included (so a revoked key presented later is known as revoked).
    pub async fn api_keys_all(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created ASC, id ASC");
        let rows = on_backend!(self, |pool| {
            sqlx::query_as::<_, Row>(&sql).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Up to `limit` keys (revoked ones included) with ids after `after`, by id; and whether more
    /// follow.
    pub async fn api_keys_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<ApiKeyRow>, bool), StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id > ? ORDER BY id ASC LIMIT ?");
        let sql = self.sql(&sql);
        let rows = on_backend!(self, |pool| {
            sqlx::query_as::<_, Row>(&sql)
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let more = rows.len() > limit as usize;
        Ok((
            rows.into_iter()
                .take(limit as usize)
                .map(from_row)
                .collect(),
            more,
        ))
    }

    /// Revokes a key (noting when); `false` when there is no such key or it was already revoked.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let done = tx
            .execute(
                "UPDATE api_keys SET revoked = 1, revoked_at = ? WHERE id = ? AND revoked = 0",
                vec![Timestamp::now().as_millis().into(), id.into()],
            )
            .await?;
        tx.commit().await?;
        Ok(done > 0)
    }

    /// Revokes a key unless it is the last active admin key (not revoked, not expired): one
    /// transaction that no other write to the keys can interleave with, so two admins revoking each
    /// other at once cannot both succeed and leave none.
    pub async fn revoke_api_key_keeping_an_admin(&self, id: &str) -> Result<Revoke, StoreError> {
        let now = Timestamp::now().as_millis();
        let mut tx = Tx::begin(self).await?;
        tx.serialise_writes_to("api_keys").await?;
        let done = tx
            .execute(
                "UPDATE api_keys SET revoked = 1, revoked_at = ?1 WHERE id = ?2 AND revoked = 0 \
                 AND (role <> 'admin' OR EXISTS (SELECT 1 FROM api_keys WHERE role = 'admin' \
                 AND revoked = 0 AND id <> ?2 AND (expires IS NULL OR expires > ?1)))",
                vec![now.into(), id.into()],
            )
            .await?;
        let active = if done > 0 {
            0
        } else {
            tx.fetch_i64(
                "SELECT COUNT(*) FROM api_keys WHERE id = ? AND revoked = 0",
                vec![id.into()],
            )
            .await?
        };
        tx.commit().await?;
        Ok(if done > 0 {
            Revoke::Done
        } else if active > 0 {
            Revoke::LastAdmin
        } else {
            Revoke::NotFound
        })
    }
}

/// What [`Store::revoke_api_key_keeping_an_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// The key is revoked.
    Done,
    /// No such key, or it was already revoked.
    NotFound,
    /// Refused: it is the last active admin key.
    LastAdmin,
}
