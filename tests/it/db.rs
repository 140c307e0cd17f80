//! Fresh databases for tests: a temp SQLite file, or a database of its own on the local
//! PostgreSQL server (created per test, dropped when the handle goes away), so every
//! test sees an empty, migrated schema and tests never share state.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use tollgate::store::{self, PoolSettings, Store};
use uuid::Uuid;

/// The server the PostgreSQL tests use.
pub fn server_url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database; removed on drop.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/tollgate.db", dir.path().display());
                TestDb { url, _dir: Some(dir), pg_name: None }
            }
            Backend::Postgres => {
                let (url, name) = create_pg_database().await;
                TestDb { url, _dir: None, pg_name: Some(name) }
            }
        }
    }

    /// Opens (and migrates) the store on this database.
    pub async fn store(&self) -> Store {
        store::open(&self.url, PoolSettings::with_max(4)).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(mut conn) = admin_connection().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

async fn admin_connection() -> Result<sqlx::PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(&server_url())?.connect().await
}

/// Creates `tg_t{unix seconds}_{random}` and returns its URL. Databases that an aborted
/// test run left behind (older than two hours) are dropped on the way.
async fn create_pg_database() -> (String, String) {
    let mut conn =
        admin_connection().await.expect("PostgreSQL for the tests (see README: TOLLGATE_TEST_POSTGRES)");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'tg\\_t%'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for old in stale {
        let born = old.trim_start_matches("tg_t").split('_').next().and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|b| b + 7200 < now) {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)")).execute(&mut conn).await;
        }
    }
    let name = format!("tg_t{now}_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
    let base = server_url();
    let url = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |s| s + 2) => {
            let (head, tail) = base.split_at(slash);
            let query = tail.find('?').map(|q| &tail[q..]).unwrap_or("");
            format!("{head}/{name}{query}")
        }
        _ => format!("{base}/{name}"),
    };
    (url, name)
}

/// A pool on a test database, for checks the store API does not offer.
pub async fn pg_pool(url: &str) -> sqlx::PgPool {
    PgPoolOptions::new().max_connections(2).connect(url).await.unwrap()
}
