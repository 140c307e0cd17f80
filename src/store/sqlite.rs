//! SQLite backend: WAL, `foreign_keys=ON` on every connection, migrations embedded from
//! migrations/sqlite, and the identity queries (the ledger's queries are in sqlite/records.rs).

mod budgets;
mod keys;
mod records;
mod rollup;

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{page, parse_ts, ts, NewUser, Organization, Page, PageRequest, Patch, Project, StoreError, User};

/// The embedded store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection of its own for the ledger's inserts: as the only writer of the cost
    /// tables, its page cache stays valid between batches (a pooled connection's cache is
    /// dropped whenever another connection wrote, and the pages are read back in).
    ledger: SqlitePool,
}

fn map_write_err(entity: &'static str, e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        // A RESTRICT refusal reports SQLITE_CONSTRAINT_TRIGGER (1811), not the FK code.
        if db.code().as_deref() == Some("1811") || db.message().contains("FOREIGN KEY constraint failed") {
            return StoreError::Conflict(format!(
                "{entity} is referenced by other records (spend history is kept: archive it instead)"
            ));
        }
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return StoreError::Conflict(format!("{entity} already exists"))
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return StoreError::Conflict(format!(
                    "{entity} is referenced by other records (spend history is kept: archive it instead)"
                ))
            }
            _ => {}
        }
    }
    StoreError::Database(e)
}

fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid, StoreError> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|_| StoreError::Invalid(format!("bad uuid in column {col}")))
}

fn opt_uuid_col(row: &SqliteRow, col: &str) -> Result<Option<Uuid>, StoreError> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|_| StoreError::Invalid(format!("bad uuid in column {col}"))))
        .transpose()
}

fn opt_ts_col(row: &SqliteRow, col: &str) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
    let s: Option<String> = row.try_get(col)?;
    s.as_deref().map(parse_ts).transpose()
}

fn ts_col(row: &SqliteRow, col: &str) -> Result<chrono::DateTime<Utc>, StoreError> {
    let s: String = row.try_get(col)?;
    parse_ts(&s)
}

fn organization(row: &SqliteRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: uuid_col(row, "id")?,
        name: row.try_get("name")?,
        created_at: ts_col(row, "created_at")?,
        archived_at: opt_ts_col(row, "archived_at")?,
    })
}

fn project(row: &SqliteRow) -> Result<Project, StoreError> {
    Ok(Project {
        id: uuid_col(row, "id")?,
        organization_id: uuid_col(row, "organization_id")?,
        name: row.try_get("name")?,
        created_at: ts_col(row, "created_at")?,
        archived_at: opt_ts_col(row, "archived_at")?,
    })
}

fn user(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: uuid_col(row, "id")?,
        organization_id: uuid_col(row, "organization_id")?,
        external_id: row.try_get("external_id")?,
        email: row.try_get("email")?,
        created_at: ts_col(row, "created_at")?,
        archived_at: opt_ts_col(row, "archived_at")?,
    })
}

/// SQL fragment for an optional archive flag; binds: flag, now, flag. Archiving keeps the
/// first archive time, unarchiving clears it, NULL leaves it alone.
const ARCHIVE_SQL: &str =
    "archived_at = CASE WHEN ? = 1 THEN coalesce(archived_at, ?) WHEN ? = 0 THEN NULL ELSE archived_at END";

/// Page cache of the ledger's connection, as SQLite's `cache_size` (negative: KiB).
const LEDGER_CACHE_KIB: &str = "-16384";

impl SqliteStore {
    /// Opens (creating if missing) the database file with the pragmas tollgate relies on.
    pub async fn connect(url: &str, max_connections: u32) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool =
            SqlitePoolOptions::new().max_connections(max_connections).connect_with(options.clone()).await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let ledger = if in_memory {
            pool.clone()
        } else {
            // The right edges of the ledger's indexes and the window rows fit in 16 MiB.
            // A multi-row INSERT copies each page it touches to a statement journal (so a
            // failing row can be undone); in memory that is a copy, not a temp-file write.
            let options = options.pragma("cache_size", LEDGER_CACHE_KIB).pragma("temp_store", "memory");
            SqlitePoolOptions::new().max_connections(1).connect_with(options).await?
        };
        Ok(SqliteStore { pool, ledger })
    }

    /// Applies pending migrations from migrations/sqlite.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    /// Records that an admin write happened, for servers polling [`Self::admin_version`].
    async fn bump_admin_version(&self) -> Result<(), StoreError> {
        sqlx::query("UPDATE admin_changes SET version = version + 1 WHERE id = 1")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The admin write counter; a change means cached identities may be stale.
    pub async fn admin_version(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT version FROM admin_changes WHERE id = 1").fetch_one(&self.pool).await?)
    }

    /// Cheap liveness check for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_organization(&self, name: &str) -> Result<Organization, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("organization", e))?;
        self.bump_admin_version().await?;
        self.get_organization(id).await
    }

    pub async fn get_organization(&self, id: Uuid) -> Result<Organization, StoreError> {
        self.fetch_by_id("organizations", "organization", id, organization).await
    }

    pub async fn list_organizations(&self, req: &PageRequest) -> Result<Page<Organization>, StoreError> {
        self.list_of("organizations", None, req, organization, |o| o.id).await
    }

    pub async fn update_organization(&self, id: Uuid, patch: &Patch) -> Result<Organization, StoreError> {
        self.patch_row("organizations", "organization", id, patch).await?;
        self.get_organization(id).await
    }

    pub async fn delete_organization(&self, id: Uuid) -> Result<(), StoreError> {
        self.delete("organizations", "organization", id).await
    }

    pub async fn create_project(&self, organization_id: Uuid, name: &str) -> Result<Project, StoreError> {
        self.get_organization(organization_id).await?;
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO projects (id, organization_id, name, created_at) VALUES (?, ?, ?, ?)")
            .bind(id.to_string())
            .bind(organization_id.to_string())
            .bind(name)
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("project", e))?;
        self.bump_admin_version().await?;
        self.get_project(id).await
    }

    pub async fn get_project(&self, id: Uuid) -> Result<Project, StoreError> {
        self.fetch_by_id("projects", "project", id, project).await
    }

    pub async fn list_projects(
        &self,
        organization_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<Project>, StoreError> {
        self.list_of("projects", Some(("organization_id", organization_id)), req, project, |p| p.id).await
    }

    pub async fn update_project(&self, id: Uuid, patch: &Patch) -> Result<Project, StoreError> {
        self.patch_row("projects", "project", id, patch).await?;
        self.get_project(id).await
    }

    pub async fn delete_project(&self, id: Uuid) -> Result<(), StoreError> {
        self.delete("projects", "project", id).await
    }

    pub async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        self.get_organization(new.organization_id).await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, organization_id, external_id, email, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(new.organization_id.to_string())
        .bind(&new.external_id)
        .bind(new.email.as_deref())
        .bind(ts(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| map_write_err("user", e))?;
        self.bump_admin_version().await?;
        self.get_user(id).await
    }

    pub async fn get_user(&self, id: Uuid) -> Result<User, StoreError> {
        self.fetch_by_id("users", "user", id, user).await
    }

    pub async fn list_users(
        &self,
        organization_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        self.list_of("users", Some(("organization_id", organization_id)), req, user, |u| u.id).await
    }

    pub async fn update_user(&self, id: Uuid, patch: &Patch) -> Result<User, StoreError> {
        self.patch_row("users", "user", id, patch).await?;
        self.get_user(id).await
    }

    pub async fn delete_user(&self, id: Uuid) -> Result<(), StoreError> {
        self.delete("users", "user", id).await
    }

    /// One row by id, mapped.
    async fn fetch_by_id<T>(
        &self,
        table: &str,
        entity: &'static str,
        id: Uuid,
        map: fn(&SqliteRow) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let row = sqlx::query(&format!("SELECT * FROM {table} WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound(entity))?;
        map(&row)
    }

    /// A page of a table by id, optionally filtered on one column.
    async fn list_of<T>(
        &self,
        table: &str,
        filter: Option<(&str, Option<Uuid>)>,
        req: &PageRequest,
        map: fn(&SqliteRow) -> Result<T, StoreError>,
        id_of: fn(&T) -> Uuid,
    ) -> Result<Page<T>, StoreError> {
        let (column, value) = filter.unwrap_or(("id", None));
        let rows = sqlx::query(&format!(
            "SELECT * FROM {table} WHERE id > ? AND (? IS NULL OR {column} = ?) ORDER BY id LIMIT ?"
        ))
        .bind(req.cursor.map(|c| c.to_string()).unwrap_or_default())
        .bind(value.map(|v| v.to_string()))
        .bind(value.map(|v| v.to_string()))
        .bind(i64::from(req.limit()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(map).collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, req.limit(), id_of))
    }

    /// Applies a patch: `name` (organizations, projects) or `email` (users), and the
    /// archive flag.
    async fn patch_row(
        &self,
        table: &str,
        entity: &'static str,
        id: Uuid,
        patch: &Patch,
    ) -> Result<(), StoreError> {
        let set = if table == "users" {
            "email = CASE WHEN ? THEN ? ELSE email END"
        } else {
            "name = CASE WHEN ? THEN ? ELSE name END"
        };
        let value = if table == "users" { patch.email.clone().flatten() } else { patch.name.clone() };
        let changes = if table == "users" { patch.email.is_some() } else { patch.name.is_some() };
        let done = sqlx::query(&format!("UPDATE {table} SET {set}, {ARCHIVE_SQL} WHERE id = ?"))
            .bind(changes)
            .bind(value)
            .bind(patch.archived.map(i64::from))
            .bind(ts(Utc::now()))
            .bind(patch.archived.map(i64::from))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err(entity, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(entity));
        }
        self.bump_admin_version().await
    }

    async fn delete(&self, table: &str, entity: &'static str, id: Uuid) -> Result<(), StoreError> {
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = ?"))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err(entity, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(entity));
        }
        self.bump_admin_version().await
    }
}
