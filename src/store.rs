//! The storage seam: typed records and the operations the proxy, the admin API and the
//! CLI need, served by SQLite (`store/sqlite.rs`, the embedded default) or PostgreSQL
//! (`store/postgres.rs`, shared by replicas) behind one [`Store`].

mod model;
mod postgres;
pub mod rollup;
mod sqlite;
mod windows;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

pub use model::*;
pub use postgres::{LeaseGrant, LeaseWindow, PgStore, ADMIN_CHANNEL};
pub use rollup::DayRow;
pub use sqlite::SqliteStore;
pub use windows::{window_costs, WindowMove, Written};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("unsupported database url '{0}' (expected sqlite://PATH or postgres://USER@HOST/DB)")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the database failed (or refused) the operation, as opposed to answering it
    /// (a missing row, a conflict, invalid input): what `tollgate_store_errors_total` counts.
    pub fn is_failure(&self) -> bool {
        matches!(self, StoreError::Database(_) | StoreError::Migrate(_))
    }

    /// Whether the data itself was refused (a constraint it breaks, a value its column
    /// cannot hold): the same records would be refused again. Anything else (the database
    /// busy, locked, read-only, unreachable, failing over, out of space, or refusing
    /// connections) may pass later, so the ledger retries instead of setting records aside.
    pub fn refuses_data(&self) -> bool {
        match self {
            StoreError::Conflict(_) | StoreError::Invalid(_) => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    postgres_refuses_data(pg.code())
                } else {
                    db.code().as_deref().and_then(|c| c.parse::<i32>().ok()).is_some_and(sqlite_refuses_data)
                }
            }
            StoreError::Database(sqlx::Error::Encode(_)) => true,
            _ => false,
        }
    }
}

/// SQLite result codes (primary code in the low byte) that refuse the data: TOOBIG,
/// CONSTRAINT, MISMATCH.
fn sqlite_refuses_data(code: i32) -> bool {
    matches!(code & 0xff, 18..=20)
}

/// PostgreSQL SQLSTATE classes that refuse the data: data exceptions (22) and integrity
/// constraint violations (23: a foreign key, a check).
fn postgres_refuses_data(sqlstate: &str) -> bool {
    sqlstate.starts_with("22") || sqlstate.starts_with("23")
}

/// How long a replica holds a pending webhook delivery it fired or claimed (renewed by
/// every attempt it records); past it, another replica or a restart takes it over.
pub const DELIVERY_CLAIM: Duration = Duration::from_secs(600);

/// Connection pool settings of either backend.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Connections the pool may open.
    pub max_connections: u32,
    /// How long an operation waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl PoolSettings {
    /// `max_connections` with the default acquire timeout (5 s).
    pub fn with_max(max_connections: u32) -> PoolSettings {
        PoolSettings { max_connections, acquire_timeout: Duration::from_secs(5) }
    }
}

/// The store the application talks to: SQLite or PostgreSQL behind one set of methods.
/// Callers cannot see which; what only PostgreSQL does (LISTEN, leases) goes through
/// [`Store::postgres`].
#[derive(Debug, Clone)]
pub struct Store(Backend, Arc<Failures>);

/// Failed operations by name since the store was opened (`tollgate_store_errors_total`).
#[derive(Debug, Default)]
struct Failures(Mutex<BTreeMap<&'static str, u64>>);

impl Failures {
    fn count(&self, op: &'static str) {
        *crate::sync::lock(&self.0).entry(op).or_default() += 1;
    }

    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        crate::sync::lock(&self.0).iter().map(|(op, n)| (*op, *n)).collect()
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Opens the database named by `url` (`sqlite:` or `postgres:`/`postgresql:`) and brings
/// its schema up to date.
pub async fn open(url: &str, pool: PoolSettings) -> Result<Store, StoreError> {
    let store = if url.starts_with("sqlite:") {
        Store(Backend::Sqlite(SqliteStore::connect(url, pool.max_connections).await?), Arc::default())
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let pg = PgStore::connect(url, pool.max_connections, pool.acquire_timeout).await?;
        Store(Backend::Postgres(pg), Arc::default())
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    };
    store.migrate().await?;
    let filled = store.backfill_rollups().await?;
    if filled > 0 {
        tracing::info!(records = filled, "filled the spend rollups from existing cost records");
    }
    Ok(store)
}

/// The database file of a `sqlite:` URL (none for another backend or an in-memory one).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    if !url.starts_with("sqlite:") {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let file = options.get_filename();
    (file != std::path::Path::new(":memory:")).then(|| file.to_path_buf())
}

impl Store {
    /// The PostgreSQL backend, for what only it does (LISTEN, leases).
    pub fn postgres(&self) -> Option<&PgStore> {
        match &self.0 {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// Passes `result` on, counting it under `op` when the database failed it; for the
    /// operations called on a backend directly (leases).
    pub fn counted<T>(&self, op: &'static str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            if e.is_failure() {
                self.1.count(op);
            }
        }
        result
    }

    /// How many times each operation failed since the store was opened.
    pub fn failures(&self) -> Vec<(&'static str, u64)> {
        self.1.snapshot()
    }
}

impl Store {
    /// Spend grouped as asked, with exact sums: whole hours from the hourly rollup, the
    /// partial hours at the ends of the range from the records (see [`rollup::split`]).
    pub async fn spend(&self, filter: &RecordFilter, group_by: GroupBy) -> Result<Vec<SpendRow>, StoreError> {
        Ok(self.spend_rows(filter, group_by, false).await?.into_iter().map(|r| r.row).collect())
    }

    /// The same sums per day (UTC) and group, in day then group order: one pass over the
    /// same rows as [`Store::spend`] (the dashboard's chart and table come from it).
    pub async fn spend_by_day(
        &self,
        filter: &RecordFilter,
        group_by: GroupBy,
    ) -> Result<Vec<DayRow>, StoreError> {
        self.spend_rows(filter, group_by, true).await
    }

    async fn spend_rows(
        &self,
        filter: &RecordFilter,
        group_by: GroupBy,
        by_day: bool,
    ) -> Result<Vec<DayRow>, StoreError> {
        let mut groups = std::collections::BTreeMap::new();
        for (part, source) in rollup::split(filter) {
            let rows = match &self.0 {
                Backend::Sqlite(s) => s.spend_from(&part, group_by, by_day, source).await,
                Backend::Postgres(s) => s.spend_from(&part, group_by, by_day, source).await,
            };
            let rows = self.counted("spend", rows)?;
            rollup::merge(&mut groups, rows);
        }
        Ok(groups
            .into_iter()
            .map(|((day, _), mut row)| {
                row.cost_usd = row.cost_usd.normalize();
                DayRow { day, row }
            })
            .collect())
    }
}

/// Forwards each listed operation to whichever backend the store holds, counting its
/// failures under its name.
macro_rules! delegate {
    ($( $(#[$meta:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$meta])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    let result = match &self.0 {
                        Backend::Sqlite(s) => s.$name($($arg),*).await,
                        Backend::Postgres(s) => s.$name($($arg),*).await,
                    };
                    self.counted(stringify!($name), result)
                }
            )*
        }
    };
}

delegate! {
    /// Applies pending migrations of this backend's set.
    fn migrate(&self) -> ();
    /// Fills the hourly and daily rollups from existing records if the database predates
    /// them; returns how many records it read.
    fn backfill_rollups(&self) -> u64;
    /// The admin write counter; a change means cached identities may be stale.
    fn admin_version(&self) -> i64;
    /// Cheap liveness check for `/readyz`.
    fn ping(&self) -> ();

    /// Creates an organization (names are unique).
    fn create_organization(&self, name: &str) -> Organization;
    /// One organization.
    fn get_organization(&self, id: Uuid) -> Organization;
    /// A page of organizations by id.
    fn list_organizations(&self, req: &PageRequest) -> Page<Organization>;
    /// Renames or (un)archives an organization.
    fn update_organization(&self, id: Uuid, patch: &Patch) -> Organization;
    /// Deletes an organization with its configuration; a conflict when it has history.
    fn delete_organization(&self, id: Uuid) -> ();

    /// Creates a project in an existing organization.
    fn create_project(&self, organization_id: Uuid, name: &str) -> Project;
    /// One project.
    fn get_project(&self, id: Uuid) -> Project;
    /// A page of projects, optionally of one organization.
    fn list_projects(&self, organization_id: Option<Uuid>, req: &PageRequest) -> Page<Project>;
    /// Renames or (un)archives a project.
    fn update_project(&self, id: Uuid, patch: &Patch) -> Project;
    /// Deletes a project with its configuration; a conflict when it has history.
    fn delete_project(&self, id: Uuid) -> ();

    /// Creates a user in an existing organization.
    fn create_user(&self, new: &NewUser) -> User;
    /// One user.
    fn get_user(&self, id: Uuid) -> User;
    /// A page of users, optionally of one organization.
    fn list_users(&self, organization_id: Option<Uuid>, req: &PageRequest) -> Page<User>;
    /// Changes a user's email or archive flag.
    fn update_user(&self, id: Uuid, patch: &Patch) -> User;
    /// Deletes a user with its configuration; a conflict when it has history.
    fn delete_user(&self, id: Uuid) -> ();

    /// Stores a key; its user and project must share an organization.
    fn create_key(&self, new: &NewKey) -> ApiKey;
    /// One key (never its plaintext).
    fn get_key(&self, id: Uuid) -> ApiKey;
    /// A page of keys, optionally of one user.
    fn list_keys(&self, user_id: Option<Uuid>, req: &PageRequest) -> Page<ApiKey>;
    /// Marks a key revoked (the first revocation time is kept).
    fn revoke_key(&self, id: Uuid) -> ApiKey;
    /// Resolves a presented key's hash to its caller.
    fn identity_by_key_hash(&self, hash: &[u8; 32]) -> Option<Identity>;
    /// Resolves sidecar attribution headers to a caller.
    fn identity_by_headers(&self, user: &str, project_id: Uuid) -> Option<Identity>;

    /// Creates a budget in its level's table.
    fn create_budget(&self, scope: Scope, scope_id: Uuid, limit_usd: rust_decimal::Decimal, period: crate::window::Period, hard: bool) -> Budget;
    /// One budget, whatever its level.
    fn get_budget(&self, id: Uuid) -> Budget;
    /// A page of budgets, optionally of one scope entity.
    fn list_budgets(&self, scope_id: Option<Uuid>, req: &PageRequest) -> Page<Budget>;
    /// Every budget of one scope entity.
    fn budgets_of(&self, scope: Scope, scope_id: Uuid) -> Vec<Budget>;
    /// Changes a budget's limit, period or hardness.
    fn update_budget(&self, id: Uuid, patch: &BudgetPatch) -> Budget;
    /// Deletes a budget with its alert configs; returns what was deleted.
    fn delete_budget(&self, id: Uuid) -> Budget;
    /// Adds a threshold to a budget.
    fn create_alert_config(&self, budget_id: Uuid, threshold_percent: u32, webhook_url: Option<&str>, enabled: bool) -> AlertConfig;
    /// One alert config.
    fn get_alert_config(&self, id: Uuid) -> AlertConfig;
    /// Alert configs, of one budget or all.
    fn list_alert_configs(&self, budget_id: Option<Uuid>) -> Vec<AlertConfig>;
    /// Deletes an alert config.
    fn delete_alert_config(&self, id: Uuid) -> ();
    /// Records a fired alert; `None` when it already fired in this window.
    fn insert_alert(&self, config: &AlertConfig, window_start: DateTime<Utc>, limit_usd: rust_decimal::Decimal, spent_usd: rust_decimal::Decimal) -> Option<Alert>;
    /// One fired alert.
    fn get_alert(&self, id: Uuid) -> Alert;
    /// Fired alerts, of one budget or all.
    fn list_alerts(&self, budget_id: Option<Uuid>, req: &PageRequest) -> Page<Alert>;
    /// The newest alerts of some alert configs, newest first.
    fn latest_alerts(&self, config_ids: &[Uuid], limit: u32) -> Vec<Alert>;
    /// Alerts whose webhook is not delivered yet.
    fn pending_alerts(&self) -> Vec<Alert>;
    /// Takes over pending deliveries nobody holds (the one that fired them stopped):
    /// each is returned to one caller only, and held for [`DELIVERY_CLAIM`].
    fn claim_pending_alerts(&self) -> Vec<Alert>;
    /// Gives up claims on pending deliveries (this process stops delivering them).
    fn release_alert_claims(&self, ids: &[Uuid]) -> ();
    /// Stores the outcome of a delivery attempt.
    fn record_delivery(&self, id: Uuid, status: &str, attempts: u32, error: Option<&str>) -> ();

    /// Inserts a batch of cost records (idempotent by request id) and moves their spend
    /// windows in the same transaction; returns how many were new.
    fn insert_cost_records(&self, batch: &[CostRecord]) -> Written;
    /// Settled spend of one scope in one window.
    fn window_spend(&self, scope_id: Uuid, period: crate::window::Period, window_start: DateTime<Utc>) -> rust_decimal::Decimal;
    /// Cost records matching a filter, paged by id.
    fn list_cost_records(&self, filter: &RecordFilter, page: &PageRequest) -> Page<CostRecord>;
    /// The newest cost records matching a filter, newest first.
    fn latest_cost_records(&self, filter: &RecordFilter, limit: u32) -> Vec<CostRecord>;
}

/// Drops any password from a database URL before it is shown.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Formats a timestamp the way it is stored: fixed width, so text order is time order.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a stored timestamp.
pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Invalid(format!("bad timestamp in database: {s}")))
}

/// A page of `rows` (queried with one extra row): the first `limit`, and the cursor for
/// the next page when there was more.
pub(crate) fn page<T>(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> Uuid) -> Page<T> {
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| id(r).to_string())
    } else {
        None
    };
    Page { data: rows, next_cursor }
}

/// A token count as the databases' signed 64-bit integers store it.
pub(crate) fn to_i64(n: Option<u64>) -> Option<i64> {
    n.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}
