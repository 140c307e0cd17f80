//! Admin writes made on one replica reach the others through NOTIFY/LISTEN within a
//! second: a raised limit admits, a lowered one refuses, a revoked key is refused; and a
//! replica whose LISTEN connection was killed still converges.

use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::json;

use super::{hard_budget, Replica};
use crate::budgets::{mini_body, mini_reply, ACTUAL};
use crate::db::{pg_pool, Backend, TestDb};
use crate::support::*;

/// Sends the standard request to `replica` until `status` comes back; returns how long
/// that took, panicking after `limit`.
async fn until_status(replica: &Replica, key: &str, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = send(&client(), openai_post(&replica.url("/v1/chat/completions"), key, &mini_body())).await;
        if got.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {} after {limit:?}, not {status}: {:?}",
            got.status,
            got.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_on_one_replica_reach_the_others_within_a_second() {
    let mock = Mock::start(mini_reply).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut r = Vec::new();
    for _ in 0..3 {
        r.push(Replica::start(&db.url, &mock.url(), "").await);
    }
    let s = seed_at(r[0].admin).await;
    let actual: Decimal = ACTUAL.parse().unwrap();
    let budget = hard_budget(&r[0], "project", &s.project_id, &(actual * Decimal::TWO).to_string()).await;
    let second = Duration::from_secs(1);
    // Replica 2 spends the budget and is refused.
    until_status(&r[1], &s.key, 200, second).await;
    until_status(&r[1], &s.key, 200, second).await;
    until_status(&r[1], &s.key, 402, second).await;

    // A limit raised on replica 1 admits on replica 2 within a second.
    let raised = json!({"limit_usd": (actual * Decimal::from(6)).to_string()});
    assert_eq!(r[0].admin("PATCH", &format!("/v1/budgets/{budget}"), Some(raised)).await.status, 200);
    let took = until_status(&r[1], &s.key, 200, second).await;
    eprintln!("raised limit reached replica 2 in {took:?}");

    // A limit lowered on replica 1 to what is spent refuses on replica 3 at once (without
    // the notification it would lease against the old limit it has cached).
    until_status(&r[2], &s.key, 200, second).await;
    let lowered = json!({"limit_usd": (actual * Decimal::from(4)).to_string()});
    assert_eq!(r[0].admin("PATCH", &format!("/v1/budgets/{budget}"), Some(lowered)).await.status, 200);
    let took = until_status(&r[2], &s.key, 402, second).await;
    eprintln!("lowered limit reached replica 3 in {took:?}");
    assert_eq!(r[0].admin("DELETE", &format!("/v1/budgets/{budget}"), None).await.status, 200);

    // A key revoked on replica 1 is refused by replica 3, which had it cached.
    until_status(&r[2], &s.key, 200, second).await;
    assert_eq!(r[0].admin("DELETE", &format!("/v1/keys/{}", s.key_id), None).await.status, 200);
    let took = until_status(&r[2], &s.key, 403, second).await;
    eprintln!("revoked key reached replica 3 in {took:?}");

    // Replica 2 loses its LISTEN connection; it still hears about the next revocation.
    let other = admin_at(
        r[0].admin,
        "POST",
        "/v1/keys",
        Some(json!({"user_id": s.user_id, "project_id": s.project_id})),
    )
    .await
    .json();
    let (other_id, other_key) = (other["id"].as_str().unwrap(), other["key"].as_str().unwrap());
    until_status(&r[1], other_key, 200, second).await;
    let pool = pg_pool(&db.url).await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(format!("tollgate-listen-{}", r[1].replica_id))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "replica 2's LISTEN connection");
    assert_eq!(r[0].admin("DELETE", &format!("/v1/keys/{other_id}"), None).await.status, 200);
    let took = until_status(&r[1], other_key, 403, Duration::from_secs(3)).await;
    eprintln!("revocation after a lost LISTEN connection reached replica 2 in {took:?}");
    assert!(r[1].log.lock().unwrap().contains("LISTEN connection"), "the drop was noticed and logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_write_on_postgres_reaches_a_running_replica_by_notify() {
    let mock = Mock::start(mini_reply).await;
    let db = TestDb::new(Backend::Postgres).await;
    let replica = Replica::start(&db.url, &mock.url(), "").await;
    let s = seed_at(replica.admin).await;
    until_status(&replica, &s.key, 200, Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.toml");
    std::fs::write(&cfg, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["key", "revoke", &s.key_id])
        .env("TOLLGATE_CONFIG", &cfg)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // No polling on PostgreSQL: the notification makes it well under the second.
    let took = until_status(&replica, &s.key, 403, Duration::from_millis(500)).await;
    eprintln!("a CLI revocation reached the replica in {took:?}");
}
