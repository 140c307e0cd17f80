//! Tollgate keys and the identity lookups the proxy authenticates with, on PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::{map_write_err, PgStore};
use crate::store::{ApiKey, Identity, NewKey, Page, PageRequest, StoreError};

fn api_key(row: &PgRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn identity(row: &PgRow) -> Result<Identity, StoreError> {
    let key_hash: Option<String> = row.try_get("key_hash")?;
    let key_hash = match key_hash {
        Some(h) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(&h, &mut out)
                .map_err(|_| StoreError::Invalid("bad key hash in database".into()))?;
            Some(out)
        }
        None => None,
    };
    let revoked_at: Option<DateTime<Utc>> = row.try_get("revoked_at")?;
    Ok(Identity {
        organization_id: row.try_get("organization_id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        api_key_id: row.try_get("key_id")?,
        key_hash,
        expires_at: row.try_get("expires_at")?,
        revoked: revoked_at.is_some(),
        archived: row.try_get("archived")?,
    })
}

impl PgStore {
    /// Stores a new key; the user and project must exist and share an organization.
    pub async fn create_key(&self, new: &NewKey) -> Result<ApiKey, StoreError> {
        let user = self.get_user(new.user_id).await?;
        let project = self.get_project(new.project_id).await?;
        if user.organization_id != project.organization_id {
            return Err(StoreError::Invalid(
                "user_id and project_id belong to different organizations".into(),
            ));
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO api_keys (id, organization_id, project_id, user_id, name, key_hash, prefix, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(user.organization_id)
        .bind(new.project_id)
        .bind(new.user_id)
        .bind(new.name.as_deref())
        .bind(hex::encode(new.key_hash))
        .bind(&new.prefix)
        .bind(Utc::now())
        .bind(new.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_write_err("key", e))?;
        self.bump_admin_version().await?;
        self.get_key(id).await
    }

    /// One key (never its plaintext).
    pub async fn get_key(&self, id: Uuid) -> Result<ApiKey, StoreError> {
        self.fetch_by_id("api_keys", "key", id, api_key).await
    }

    /// A page of keys, optionally of one user.
    pub async fn list_keys(
        &self,
        user_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        self.list_of("api_keys", Some(("user_id", user_id)), req, api_key, |k| k.id).await
    }

    /// Marks a key revoked (idempotent: the first revocation time is kept).
    pub async fn revoke_key(&self, id: Uuid) -> Result<ApiKey, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2")
            .bind(Utc::now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("key"));
        }
        self.bump_admin_version().await?;
        self.get_key(id).await
    }

    /// Resolves a presented key's hash to the caller it identifies, if any.
    pub async fn identity_by_key_hash(&self, hash: &[u8; 32]) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query(
            "SELECT k.id AS key_id, k.organization_id, k.project_id, k.user_id, k.key_hash,
                    k.expires_at, k.revoked_at,
                    (u.archived_at IS NOT NULL OR p.archived_at IS NOT NULL OR o.archived_at IS NOT NULL) AS archived
             FROM api_keys k
             JOIN users u ON u.id = k.user_id
             JOIN projects p ON p.id = k.project_id
             JOIN organizations o ON o.id = k.organization_id
             WHERE k.key_hash = $1",
        )
        .bind(hex::encode(hash))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(identity).transpose()
    }

    /// Resolves `x-tollgate-user` (id or external id) and `x-tollgate-project` (id) in headers mode.
    pub async fn identity_by_headers(
        &self,
        user: &str,
        project_id: Uuid,
    ) -> Result<Option<Identity>, StoreError> {
        // SQLite compares the header with the id's text, so only the canonical spelling
        // (lowercase, hyphenated) of an id matches it; other spellings are external ids.
        let user_id = Uuid::parse_str(user).ok().filter(|id| id.to_string() == user);
        let row = sqlx::query(
            "SELECT NULL::uuid AS key_id, p.organization_id, p.id AS project_id, u.id AS user_id,
                    NULL::text AS key_hash, NULL::timestamptz AS expires_at, NULL::timestamptz AS revoked_at,
                    (u.archived_at IS NOT NULL OR p.archived_at IS NOT NULL OR o.archived_at IS NOT NULL) AS archived
             FROM projects p
             JOIN organizations o ON o.id = p.organization_id
             JOIN users u ON u.organization_id = p.organization_id AND (u.id = $1 OR u.external_id = $2)
             WHERE p.id = $3
             ORDER BY (u.id = $1) IS TRUE DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(user)
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(identity).transpose()
    }
}
