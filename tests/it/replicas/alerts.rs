//! Alerts across replicas: when all three push a budget across its thresholds together,
//! each threshold fires one alert row and one webhook POST.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::json;

use super::{eventually, Replica};
use crate::budgets::{mini_body, mini_reply, ACTUAL};
use crate::db::{Backend, TestDb};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_crossed_by_every_replica_fires_once() {
    let mock = Mock::start(mini_reply).await;
    let receiver = Mock::start(|_| Reply::json(200, "{}")).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut r = Vec::new();
    for _ in 0..3 {
        r.push(Replica::start(&db.url, &mock.url(), "").await);
    }
    let s = seed_at(r[0].admin).await;
    let limit = ACTUAL.parse::<Decimal>().unwrap() * Decimal::from(100);
    // A soft budget: every request is served, the spend goes past 50% and 100% at once.
    let budget = r[0]
        .admin(
            "POST",
            "/v1/budgets",
            Some(json!({"scope": "project", "scope_id": s.project_id, "limit_usd": limit.to_string(),
                        "period": "monthly", "hard": false})),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for percent in [50, 100] {
        let config = json!({"budget_id": budget, "threshold_percent": percent,
                            "webhook_url": format!("{}/hook", receiver.url())});
        assert_eq!(r[1].admin("POST", "/v1/alert-configs", Some(config)).await.status, 201);
    }
    let client = client();
    let mut burst = Vec::new();
    for i in 0..150 {
        let (client, key, url) = (client.clone(), s.key.clone(), r[i % 3].url("/v1/chat/completions"));
        burst.push(tokio::spawn(
            async move { send(&client, openai_post(&url, &key, &mini_body())).await.status },
        ));
    }
    for task in burst {
        assert_eq!(task.await.unwrap(), 200);
    }
    eventually(Duration::from_secs(10), "two webhooks", || async { receiver.requests().len() >= 2 }).await;
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let posts = receiver.requests();
    assert_eq!(posts.len(), 2, "one POST per threshold");
    let mut thresholds: Vec<u64> = posts
        .iter()
        .map(|p| {
            serde_json::from_slice::<serde_json::Value>(&p.body).unwrap()["threshold_percent"]
                .as_u64()
                .unwrap()
        })
        .collect();
    thresholds.sort();
    assert_eq!(thresholds, [50, 100]);
    let alerts = r[2].admin("GET", &format!("/v1/alerts?budget_id={budget}"), None).await.json();
    let alerts = alerts["data"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(alerts.iter().all(|a| a["delivery_status"] == "delivered"), "{alerts:?}");
}
