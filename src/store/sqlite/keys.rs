//! Tollgate keys and the identity lookups the proxy authenticates with, on SQLite.

use chrono::Utc;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::{map_write_err, opt_ts_col, ts_col, uuid_col, SqliteStore};
use crate::store::{ts, ApiKey, Identity, NewKey, Page, PageRequest, StoreError};

fn api_key(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: uuid_col(row, "id")?,
        organization_id: uuid_col(row, "organization_id")?,
        project_id: uuid_col(row, "project_id")?,
        user_id: uuid_col(row, "user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: ts_col(row, "created_at")?,
        expires_at: opt_ts_col(row, "expires_at")?,
        revoked_at: opt_ts_col(row, "revoked_at")?,
    })
}

fn identity(row: &SqliteRow) -> Result<Identity, StoreError> {
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
    let api_key_id: Option<String> = row.try_get("key_id")?;
    Ok(Identity {
        organization_id: uuid_col(row, "organization_id")?,
        project_id: uuid_col(row, "project_id")?,
        user_id: uuid_col(row, "user_id")?,
        api_key_id: api_key_id.and_then(|s| Uuid::parse_str(&s).ok()),
        key_hash,
        expires_at: opt_ts_col(row, "expires_at")?,
        revoked: opt_ts_col(row, "revoked_at")?.is_some(),
        archived: row.try_get::<i64, _>("archived")? != 0,
    })
}

impl SqliteStore {
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(user.organization_id.to_string())
        .bind(new.project_id.to_string())
        .bind(new.user_id.to_string())
        .bind(new.name.as_deref())
        .bind(hex::encode(new.key_hash))
        .bind(&new.prefix)
        .bind(ts(Utc::now()))
        .bind(new.expires_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(|e| map_write_err("key", e))?;
        self.bump_admin_version().await?;
        self.get_key(id).await
    }

    pub async fn get_key(&self, id: Uuid) -> Result<ApiKey, StoreError> {
        self.fetch_by_id("api_keys", "key", id, api_key).await
    }

    pub async fn list_keys(
        &self,
        user_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        self.list_of("api_keys", Some(("user_id", user_id)), req, api_key, |k| k.id).await
    }

    /// Marks a key revoked (idempotent: the first revocation time is kept).
    pub async fn revoke_key(&self, id: Uuid) -> Result<ApiKey, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?")
            .bind(ts(Utc::now()))
            .bind(id.to_string())
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
             WHERE k.key_hash = ?",
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
        let row = sqlx::query(
            "SELECT NULL AS key_id, p.organization_id, p.id AS project_id, u.id AS user_id, NULL AS key_hash,
                    NULL AS expires_at, NULL AS revoked_at,
                    (u.archived_at IS NOT NULL OR p.archived_at IS NOT NULL OR o.archived_at IS NOT NULL) AS archived
             FROM projects p
             JOIN organizations o ON o.id = p.organization_id
             JOIN users u ON u.organization_id = p.organization_id AND (u.id = ? OR u.external_id = ?)
             WHERE p.id = ?
             ORDER BY (u.id = ?) DESC LIMIT 1",
        )
        .bind(user)
        .bind(user)
        .bind(project_id.to_string())
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(identity).transpose()
    }
}
