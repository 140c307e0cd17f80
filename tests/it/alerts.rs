//! Alerts: a concurrent burst across 50/80/100% fires exactly one row and one webhook
//! per threshold; failing webhooks are retried with their status stored; pending
//! deliveries resume after a restart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

use crate::budgets::{budget, mini_body, mini_reply, ACTUAL};
use crate::support::*;

async fn alert_config(app: &TestApp, budget_id: &str, percent: u32, webhook: Option<String>) -> String {
    let got = app
        .admin(
            "POST",
            "/v1/alert-configs",
            Some(json!({"budget_id": budget_id, "threshold_percent": percent, "webhook_url": webhook})),
        )
        .await;
    assert_eq!(got.status, 201, "{:?}", got.body);
    got.json()["id"].as_str().unwrap().to_owned()
}

/// Polls the alerts of a budget until `done` holds (bounded in time, not in polls: on
/// two loaded cores a poll can take long).
async fn alerts_until(app: &TestApp, budget_id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut list = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let got = app.admin("GET", &format!("/v1/alerts?budget_id={budget_id}"), None).await.json();
        list = got["data"].as_array().unwrap().clone();
        if done(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("alerts never reached the expected state: {list:?}");
}

#[tokio::test]
async fn a_burst_across_three_thresholds_fires_each_exactly_once() {
    let receiver = Mock::start(|_| Reply::json(200, "{}")).await;
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let limit = Decimal::from_str(ACTUAL).unwrap() * Decimal::from(10);
    let b = budget(&app, "project", &s.project_id, &limit.to_string(), "daily", false).await;
    for p in [50, 80, 100] {
        alert_config(&app, &b, p, Some(format!("{}/hook", receiver.url()))).await;
    }
    let url = app.url("/v1/chat/completions");
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (url, key) = (url.clone(), s.key.clone());
        tasks.push(tokio::spawn(async move {
            send(&client(), openai_post(&url, &key, &mini_body())).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let alerts =
        alerts_until(&app, &b, |l| l.len() == 3 && l.iter().all(|a| a["delivery_status"] == "delivered"))
            .await;
    let mut thresholds: Vec<u64> = alerts.iter().map(|a| a["threshold_percent"].as_u64().unwrap()).collect();
    thresholds.sort();
    assert_eq!(thresholds, vec![50, 80, 100]);
    let posts = receiver.requests();
    assert_eq!(posts.len(), 3, "one webhook per threshold");
    for post in posts {
        assert_eq!(post.method, "POST");
        assert_eq!(post.uri, "/hook");
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(body["budget_id"], b.as_str());
        assert_eq!(body["scope"], "project");
        assert_eq!(body["scope_id"], s.project_id.as_str());
        assert_eq!(body["limit_usd"], limit.normalize().to_string());
        let spent = Decimal::from_str(body["spent_usd"].as_str().unwrap()).unwrap();
        let threshold =
            limit * Decimal::from(body["threshold_percent"].as_u64().unwrap()) / Decimal::ONE_HUNDRED;
        assert!(spent >= threshold, "alert fired below its threshold");
        assert!(body["window_start"].is_string() && body["time"].is_string());
    }
    // More spend in the same window does not fire again.
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 200);
    let again = app.admin("GET", &format!("/v1/alerts?budget_id={b}"), None).await.json();
    assert_eq!(again["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn failing_webhooks_are_retried_and_their_status_stored() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = Arc::clone(&calls);
    let flaky = Mock::start(move |_| {
        if c2.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::json(500, "{}")
        } else {
            Reply::json(200, "{}")
        }
    })
    .await;
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let b1 = budget(&app, "user", &s.user_id, "0.0001", "daily", false).await;
    let b2 = budget(&app, "organization", &s.org_id, "0.0001", "daily", false).await;
    alert_config(&app, &b1, 100, Some(format!("{}/hook", flaky.url()))).await;
    alert_config(&app, &b2, 100, Some(format!("http://127.0.0.1:{down}/hook"))).await;
    assert_eq!(
        send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await.status,
        200
    );
    let ok = alerts_until(&app, &b1, |l| l.len() == 1 && l[0]["delivery_status"] == "delivered").await;
    assert_eq!(ok[0]["attempts"], 3);
    assert!(ok[0]["delivered_at"].is_string());
    let failed = alerts_until(&app, &b2, |l| l.len() == 1 && l[0]["delivery_status"] == "failed").await;
    assert_eq!(failed[0]["attempts"], 4, "max_attempts in the test config");
    assert!(failed[0]["last_error"].as_str().unwrap().contains("request failed"));
}

#[tokio::test]
async fn pending_deliveries_resume_after_a_restart() {
    let receiver = Mock::start(|_| Reply::json(200, "{}")).await;
    let mut app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let b = budget(&app, "user", &s.user_id, "1", "daily", false).await;
    let config_id = alert_config(&app, &b, 50, Some(format!("{}/hook", receiver.url()))).await;
    // An alert that was recorded but not delivered when the process stopped.
    let store = app.running.as_ref().unwrap().store.clone();
    let config = store.get_alert_config(uuid::Uuid::parse_str(&config_id).unwrap()).await.unwrap();
    let alert = store
        .insert_alert(&config, chrono::Utc::now(), Decimal::ONE, Decimal::from_str("0.6").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alert.delivery_status, "pending");
    assert!(receiver.requests().is_empty());
    // The process holding its delivery died; by the time a new one starts, the claim ran out.
    app.shutdown().await;
    let pool = sqlx::SqlitePool::connect(&app.db_url()).await.unwrap();
    sqlx::query("UPDATE ai_budget_alerts SET claimed_until = '2000-01-01T00:00:00.000000Z'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    app.restart().await;
    let delivered = alerts_until(&app, &b, |l| l.len() == 1 && l[0]["delivery_status"] == "delivered").await;
    assert_eq!(delivered[0]["id"], alert.id.to_string().as_str());
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn alert_config_input_is_validated() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let b = budget(&app, "user", &s.user_id, "1", "daily", true).await;
    for (body, field) in [
        (json!({"budget_id": b, "threshold_percent": 0}), "threshold_percent"),
        (json!({"budget_id": b, "threshold_percent": 1001}), "threshold_percent"),
        (json!({"budget_id": b, "threshold_percent": "80"}), "threshold_percent"),
        (json!({"budget_id": b, "threshold_percent": 80, "webhook_url": "ftp://x"}), "webhook_url"),
    ] {
        let got = app.admin("POST", "/v1/alert-configs", Some(body.clone())).await;
        assert_eq!(got.status, 400, "{body}");
        assert!(got.json().to_string().contains(field));
    }
    let missing = json!({"budget_id": uuid::Uuid::new_v4(), "threshold_percent": 80});
    assert_eq!(app.admin("POST", "/v1/alert-configs", Some(missing)).await.status, 404);
    let id = alert_config(&app, &b, 80, None).await;
    let list = app.admin("GET", &format!("/v1/alert-configs?budget_id={b}"), None).await.json();
    assert_eq!(list["data"][0]["id"], id.as_str());
    assert_eq!(app.admin("DELETE", &format!("/v1/alert-configs/{id}"), None).await.status, 200);
    // Deleting the budget cascades to its alert configs.
    alert_config(&app, &b, 90, None).await;
    assert_eq!(app.admin("DELETE", &format!("/v1/budgets/{b}"), None).await.status, 200);
    let list = app.admin("GET", "/v1/alert-configs", None).await.json();
    assert_eq!(list["data"], json!([]));
}
