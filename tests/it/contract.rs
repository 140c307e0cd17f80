//! The store contract: every operation the application relies on, run on SQLite and on
//! PostgreSQL (a fresh database per test on the local server). A behaviour one backend
//! has and the other lacks fails here.

mod entities;
mod ledger;
mod reports;

use std::future::Future;

use crate::db::{Backend, TestDb};
use crate::factory::Factory;

/// Runs `test` on a fresh database of `backend`.
pub async fn on<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Factory) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    test(Factory::new(store, &db.url)).await;
    drop(db);
}

/// Declares each listed contract test once per backend: `sqlite::name` and `postgres::name`.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                crate::contract::on(crate::db::Backend::Sqlite, super::$name).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                crate::contract::on(crate::db::Backend::Postgres, super::$name).await;
            })*
        }
    };
}
pub(crate) use contract_tests;
