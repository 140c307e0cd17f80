//! PostgreSQL backend: the pool, migrations embedded from migrations/postgres, admin-change
//! notification, and the organization/project/user queries (keys, budgets and the ledger
//! are in postgres/).

mod budgets;
mod keys;
mod leases;
mod records;
mod rollup;

pub use leases::{LeaseGrant, LeaseWindow};

use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{page, NewUser, Organization, Page, PageRequest, Patch, Project, StoreError, User};

/// The channel every admin write notifies with the new admin version.
pub const ADMIN_CHANNEL: &str = "tollgate_admin";

/// How long an unused pooled connection is kept: long enough to ride out a quiet spell,
/// short enough to give connections back to a server shared by several replicas.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The store shared by several replicas.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This process's identity in lease rows (a new one per start).
    replica_id: Uuid,
    /// Set once this replica took a lease; until then the ledger skips lease bookkeeping.
    leasing: Arc<AtomicBool>,
    /// Held by the ledger's transaction and by renewal, which both update several of this
    /// replica's lease rows: in one process they would otherwise lock them in different
    /// orders and deadlock (PostgreSQL breaks it after a second, stalling the ledger).
    lease_rows: Arc<tokio::sync::Mutex<()>>,
}

/// Maps constraint failures of a write to the API's errors, with SQLite's messages.
fn map_write_err(entity: &'static str, e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => {
                return StoreError::Conflict(format!("{entity} already exists"));
            }
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return StoreError::Conflict(format!(
                    "{entity} is referenced by other records (spend history is kept: archive it instead)"
                ));
            }
            _ => {}
        }
    }
    StoreError::Database(e)
}

/// Appends ` AND id > cursor` when there is one, then the order and the one-extra limit
/// that tells whether a next page exists.
fn push_page(q: &mut QueryBuilder<'_, Postgres>, id_col: &str, req: &PageRequest) {
    if let Some(cursor) = req.cursor {
        q.push(format!(" AND {id_col} > ")).push_bind(cursor);
    }
    q.push(format!(" ORDER BY {id_col} LIMIT ")).push_bind(i64::from(req.limit()) + 1);
}

fn organization(row: &PgRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        archived_at: row.try_get("archived_at")?,
    })
}

fn project(row: &PgRow) -> Result<Project, StoreError> {
    Ok(Project {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        archived_at: row.try_get("archived_at")?,
    })
}

fn user(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        external_id: row.try_get("external_id")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
        archived_at: row.try_get("archived_at")?,
    })
}

/// SQL fragment for an optional archive flag; binds `$3` (flag) and `$4` (now). Archiving
/// keeps the first archive time, unarchiving clears it, NULL leaves it alone.
const ARCHIVE_SQL: &str = "archived_at = CASE WHEN $3::boolean THEN coalesce(archived_at, $4::timestamptz)
    WHEN NOT $3::boolean THEN NULL ELSE archived_at END";

impl PgStore {
    /// Opens a pool on the database at `url` (nothing is created or migrated here).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .idle_timeout(Some(IDLE_TIMEOUT))
            .connect_with(options)
            .await?;
        Ok(PgStore {
            pool,
            replica_id: Uuid::new_v4(),
            leasing: Arc::new(AtomicBool::new(false)),
            lease_rows: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Applies pending migrations from migrations/postgres.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    /// Records that an admin write happened and tells listening replicas the new version;
    /// one statement, so a notification always carries a version that was committed.
    async fn bump_admin_version(&self) -> Result<(), StoreError> {
        sqlx::query(
            "WITH v AS (UPDATE admin_changes SET version = version + 1 WHERE id = 1 RETURNING version)
             SELECT pg_notify($1, version::text) FROM v",
        )
        .bind(ADMIN_CHANNEL)
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

    /// Creates an organization (names are unique).
    pub async fn create_organization(&self, name: &str) -> Result<Organization, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(Utc::now())
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("organization", e))?;
        self.bump_admin_version().await?;
        self.get_organization(id).await
    }

    /// One organization.
    pub async fn get_organization(&self, id: Uuid) -> Result<Organization, StoreError> {
        self.fetch_by_id("organizations", "organization", id, organization).await
    }

    /// A page of organizations by id.
    pub async fn list_organizations(&self, req: &PageRequest) -> Result<Page<Organization>, StoreError> {
        self.list_of("organizations", None, req, organization, |o| o.id).await
    }

    /// Renames or (un)archives an organization.
    pub async fn update_organization(&self, id: Uuid, patch: &Patch) -> Result<Organization, StoreError> {
        self.patch_row("organizations", "organization", id, patch).await?;
        self.get_organization(id).await
    }

    /// Deletes an organization with its configuration; a conflict when it has history.
    pub async fn delete_organization(&self, id: Uuid) -> Result<(), StoreError> {
        self.delete("organizations", "organization", id).await
    }

    /// Creates a project in an existing organization.
    pub async fn create_project(&self, organization_id: Uuid, name: &str) -> Result<Project, StoreError> {
        self.get_organization(organization_id).await?;
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO projects (id, organization_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(organization_id)
            .bind(name)
            .bind(Utc::now())
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("project", e))?;
        self.bump_admin_version().await?;
        self.get_project(id).await
    }

    /// One project.
    pub async fn get_project(&self, id: Uuid) -> Result<Project, StoreError> {
        self.fetch_by_id("projects", "project", id, project).await
    }

    /// A page of projects, optionally of one organization.
    pub async fn list_projects(
        &self,
        organization_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<Project>, StoreError> {
        self.list_of("projects", Some(("organization_id", organization_id)), req, project, |p| p.id).await
    }

    /// Renames or (un)archives a project.
    pub async fn update_project(&self, id: Uuid, patch: &Patch) -> Result<Project, StoreError> {
        self.patch_row("projects", "project", id, patch).await?;
        self.get_project(id).await
    }

    /// Deletes a project with its configuration; a conflict when it has history.
    pub async fn delete_project(&self, id: Uuid) -> Result<(), StoreError> {
        self.delete("projects", "project", id).await
    }

    /// Creates a user in an existing organization.
    pub async fn create_user(&self, new: &NewUser) -> Result<User, StoreError> {
        self.get_organization(new.organization_id).await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, organization_id, external_id, email, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(new.organization_id)
        .bind(&new.external_id)
        .bind(new.email.as_deref())
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map_err(|e| map_write_err("user", e))?;
        self.bump_admin_version().await?;
        self.get_user(id).await
    }

    /// One user.
    pub async fn get_user(&self, id: Uuid) -> Result<User, StoreError> {
        self.fetch_by_id("users", "user", id, user).await
    }

    /// A page of users, optionally of one organization.
    pub async fn list_users(
        &self,
        organization_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<User>, StoreError> {
        self.list_of("users", Some(("organization_id", organization_id)), req, user, |u| u.id).await
    }

    /// Changes a user's email or archive flag.
    pub async fn update_user(&self, id: Uuid, patch: &Patch) -> Result<User, StoreError> {
        self.patch_row("users", "user", id, patch).await?;
        self.get_user(id).await
    }

    /// Deletes a user with its configuration; a conflict when it has history.
    pub async fn delete_user(&self, id: Uuid) -> Result<(), StoreError> {
        self.delete("users", "user", id).await
    }

    /// One row by id, mapped.
    async fn fetch_by_id<T>(
        &self,
        table: &str,
        entity: &'static str,
        id: Uuid,
        map: fn(&PgRow) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let row = sqlx::query(&format!("SELECT * FROM {table} WHERE id = $1"))
            .bind(id)
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
        map: fn(&PgRow) -> Result<T, StoreError>,
        id_of: fn(&T) -> Uuid,
    ) -> Result<Page<T>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT * FROM {table} WHERE TRUE"));
        // Only a present filter becomes a predicate: `$1 IS NULL OR col = $1` would leave
        // a generic plan unable to use the column's index.
        if let Some((column, Some(value))) = filter {
            q.push(format!(" AND {column} = ")).push_bind(value);
        }
        push_page(&mut q, "id", req);
        let rows = q.build().fetch_all(&self.pool).await?;
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
        let users = table == "users";
        let set = if users {
            "email = CASE WHEN $1::boolean THEN $2::text ELSE email END"
        } else {
            "name = CASE WHEN $1::boolean THEN $2::text ELSE name END"
        };
        let value = if users { patch.email.clone().flatten() } else { patch.name.clone() };
        let changes = if users { patch.email.is_some() } else { patch.name.is_some() };
        let done = sqlx::query(&format!("UPDATE {table} SET {set}, {ARCHIVE_SQL} WHERE id = $5"))
            .bind(changes)
            .bind(value)
            .bind(patch.archived)
            .bind(Utc::now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err(entity, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(entity));
        }
        self.bump_admin_version().await
    }

    async fn delete(&self, table: &str, entity: &'static str, id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // A lease creates its window's row before any spend: a window that never counted a
        // request is not history and must not keep its owner (or the owner's projects and
        // users, for an organization) from being deleted, as it would not on SQLite.
        let owned = match table {
            "organizations" => {
                "w.organization_id = $1 OR w.project_id IN (SELECT id FROM projects WHERE organization_id = $1)
                 OR w.user_id IN (SELECT id FROM users WHERE organization_id = $1)"
            }
            "projects" => "w.project_id = $1",
            _ => "w.user_id = $1",
        };
        sqlx::query(&format!("DELETE FROM ai_spend_windows w WHERE w.requests = 0 AND ({owned})"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_write_err(entity, e))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(entity));
        }
        tx.commit().await?;
        self.bump_admin_version().await
    }
}

/// Reads a NUMERIC column as a normalized decimal, the form the SQLite side stores.
fn decimal_col(row: &PgRow, col: &str) -> Result<rust_decimal::Decimal, StoreError> {
    Ok(row.try_get::<rust_decimal::Decimal, _>(col)?.normalize())
}

/// Reads an INTEGER column that holds a non-negative count.
fn u32_col(row: &PgRow, col: &str) -> Result<u32, StoreError> {
    Ok(u32::try_from(row.try_get::<i32, _>(col)?).unwrap_or(0))
}

/// Binds a u32 to an INTEGER column; out-of-range values saturate (and then fail the
/// column's CHECK, as they would on SQLite).
fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
