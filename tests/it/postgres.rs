//! The PostgreSQL migration set on a real server: it applies, and it enforces the same
//! rules as SQLite's (same-organization keys, RESTRICT on spend history, cascades of
//! configuration, one alert per config per window). The PostgreSQL backend itself comes
//! with the replicas issue; this keeps both migration folders honest until then.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

fn url() -> String {
    std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema on the test server, dropped by the caller.
async fn fresh_schema() -> (PgPool, PgPool, String) {
    let admin =
        PgPoolOptions::new().max_connections(1).connect(&url()).await.expect("PostgreSQL on 127.0.0.1:5432");
    let schema = format!("tg_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    let options = PgConnectOptions::from_str(&url()).unwrap().options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new().max_connections(2).connect_with(options).await.unwrap();
    (admin, pool, schema)
}

#[test]
fn both_backends_have_the_same_migration_files() {
    let names = |dir: &str| {
        let mut v: Vec<String> =
            std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
        v.sort();
        v
    };
    assert_eq!(names("migrations/sqlite"), names("migrations/postgres"));
}

#[tokio::test]
async fn postgres_migrations_apply_and_enforce_the_same_rules() {
    let (admin, pool, schema) = fresh_schema().await;
    sqlx::migrate!("./migrations/postgres").run(&pool).await.unwrap();
    let exec = |sql: String| {
        let pool = pool.clone();
        async move { sqlx::query(&sql).execute(&pool).await }
    };
    let (o1, o2, p1, p2, u1, k1) =
        (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for (id, name) in [(o1, "a"), (o2, "b")] {
        exec(format!("INSERT INTO organizations VALUES ('{id}', '{name}', now(), NULL)")).await.unwrap();
    }
    exec(format!("INSERT INTO projects VALUES ('{p1}', '{o1}', 'web', now(), NULL)")).await.unwrap();
    exec(format!("INSERT INTO projects VALUES ('{p2}', '{o2}', 'web', now(), NULL)")).await.unwrap();
    exec(format!("INSERT INTO users VALUES ('{u1}', '{o1}', 'alice', NULL, now(), NULL)")).await.unwrap();
    // A key binding a user to another organization's project is refused by the schema.
    let cross = exec(format!(
        "INSERT INTO api_keys VALUES ('{}', '{o1}', '{p2}', '{u1}', NULL, 'h0', 'tg_x', now(), NULL, NULL)",
        Uuid::new_v4()
    ))
    .await;
    assert!(cross.is_err(), "cross-organization key accepted");
    exec(format!(
        "INSERT INTO api_keys VALUES ('{k1}', '{o1}', '{p1}', '{u1}', NULL, 'h1', 'tg_y', now(), NULL, NULL)"
    ))
    .await
    .unwrap();
    // Budgets and alert configs cascade; alerts are unique per config and window.
    let (b, c) = (Uuid::new_v4(), Uuid::new_v4());
    exec(format!("INSERT INTO ai_project_budgets VALUES ('{b}', '{p1}', 10.5, 'daily', true, now(), now())"))
        .await
        .unwrap();
    assert!(exec(format!(
        "INSERT INTO ai_user_budgets VALUES ('{}', '{u1}', 0, 'daily', true, now(), now())",
        Uuid::new_v4()
    ))
    .await
    .is_err());
    exec(format!(
        "INSERT INTO ai_budget_alert_configs (id, project_budget_id, threshold_percent, created_at) VALUES ('{c}', '{b}', 80, now())"
    ))
    .await
    .unwrap();
    let alert = |id: Uuid| {
        format!("INSERT INTO ai_budget_alerts (id, alert_config_id, window_start, threshold_percent, limit_usd, spent_usd, created_at, delivery_status) VALUES ('{id}', '{c}', '2026-11-30T00:00:00Z', 80, 10.5, 9, now(), 'no_webhook')")
    };
    exec(alert(Uuid::new_v4())).await.unwrap();
    assert!(exec(alert(Uuid::new_v4())).await.is_err(), "second alert in the same window accepted");
    // Spend history RESTRICTs deleting its owner; exact decimal money survives.
    exec(format!(
        "INSERT INTO ai_cost_records VALUES ('{}', '{}', now(), '{o1}', '{p1}', '{u1}', '{k1}', 'openai', 'gpt-4o', '/v1/chat/completions', 1, 0, 0, 1, 0, 0.0000063, 200, 5, false, 'reported', true)",
        Uuid::new_v4(),
        Uuid::new_v4()
    ))
    .await
    .unwrap();
    assert!(
        exec(format!("DELETE FROM users WHERE id = '{u1}'")).await.is_err(),
        "history deleted with its user"
    );
    let total: String = sqlx::query_scalar("SELECT (sum(cost_usd) * 3)::text FROM ai_cost_records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, "0.0000189");
    // Without history, deleting the project cascades its budget and alert config.
    exec(format!("DELETE FROM projects WHERE id = '{p2}'")).await.unwrap();
    exec("DELETE FROM ai_budget_alerts".into()).await.unwrap();
    exec(format!("DELETE FROM ai_project_budgets WHERE id = '{b}'")).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ai_budget_alert_configs").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
    pool.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
}
