//! Leases across replicas: three processes and 600 concurrent requests never spend past
//! one shared hard budget, and a replica killed with SIGKILL while holding a slice only
//! keeps it until the lease's TTL.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

use super::{eventually, hard_budget, Replica};
use crate::budgets::{mini_body, mini_reply, ACTUAL};
use crate::db::{pg_pool, Backend, TestDb};
use crate::support::*;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Sends the standard request (its estimate equals its actual cost, `ACTUAL`) to
/// `replica`; returns the status.
async fn spend_one(client: &TestClient, replica: &Replica, key: &str) -> u16 {
    let got = send(client, openai_post(&replica.url("/v1/chat/completions"), key, &mini_body())).await;
    assert!(got.status == 200 || got.status == 402, "{}: {:?}", got.status, got.body);
    got.status.as_u16()
}

/// Live leases of every replica on the database.
async fn live_leases(url: &str) -> Decimal {
    let pool = pg_pool(url).await;
    let held: Decimal = sqlx::query_scalar(
        "SELECT coalesce(sum(amount_usd), 0) FROM ai_budget_leases WHERE expires_at > now()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    held
}

/// Settled spend of a project's monthly window, and its cost records' sum.
async fn settled(url: &str, project_id: &str) -> (Decimal, Decimal, i64) {
    let pool = pg_pool(url).await;
    let project = uuid::Uuid::parse_str(project_id).unwrap();
    let window: Decimal = sqlx::query_scalar(
        "SELECT coalesce(sum(spent_usd), 0) FROM ai_spend_windows WHERE scope_id = $1 AND period = 'monthly'",
    )
    .bind(project)
    .fetch_one(&pool)
    .await
    .unwrap();
    let (records, count): (Decimal, i64) = sqlx::query_as(
        "SELECT coalesce(sum(cost_usd), 0), count(*) FROM ai_cost_records WHERE project_id = $1",
    )
    .bind(project)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (window, records, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_never_spend_past_one_shared_budget() {
    let mock = Mock::start(mini_reply).await;
    let db = TestDb::new(Backend::Postgres).await;
    let timing = "lease_ttl_ms = 5000\nlease_idle_ms = 400";
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Replica::start(&db.url, &mock.url(), timing).await);
    }
    let s = seed_at(replicas[0].admin).await;
    // Room for exactly 60 requests (each request's actual cost equals its estimate, so the
    // documented bound on the overshoot is zero here).
    let limit = dec(ACTUAL) * Decimal::from(60);
    let budget = hard_budget(&replicas[1], "project", &s.project_id, &limit.to_string()).await;

    let client = client();
    let mut burst = Vec::new();
    for i in 0..600 {
        let (client, key) = (client.clone(), s.key.clone());
        let replica = (replicas[i % 3].proxy, i % 3);
        burst.push(tokio::spawn(async move {
            let url = format!("http://{}/v1/chat/completions", replica.0);
            let got = send(&client, openai_post(&url, &key, &mini_body())).await;
            (got.status.as_u16(), replica.1)
        }));
    }
    let mut admitted = [0u32; 3];
    for task in burst {
        let (status, replica) = task.await.unwrap();
        assert!(status == 200 || status == 402, "status {status}");
        if status == 200 {
            admitted[replica] += 1;
        }
    }
    let burst_admitted: u32 = admitted.iter().sum();
    assert!(burst_admitted <= 60, "admitted {burst_admitted} ({admitted:?}) past a budget for 60");
    assert!(burst_admitted >= 30, "leases starved the replicas: {admitted:?}");

    // Idle slices go back: nothing is held any more, every replica sees no reservation.
    eventually(Duration::from_secs(10), "leases returned", || async { live_leases(&db.url).await.is_zero() })
        .await;
    for r in &replicas {
        let status = r.admin("GET", &format!("/v1/budgets/{budget}"), None).await.json();
        assert_eq!(status["reserved_usd"], "0", "{status}");
    }
    // What the burst left unused is not lost: one replica can now spend it to the cent.
    let mut topped_up = 0;
    while spend_one(&client, &replicas[2], &s.key).await == 200 {
        topped_up += 1;
        assert!(burst_admitted + topped_up <= 60, "past the limit while topping up");
    }
    assert_eq!(burst_admitted + topped_up, 60, "the burst admitted {admitted:?}, then {topped_up}");
    eventually(Duration::from_secs(10), "records written", || async {
        settled(&db.url, &s.project_id).await.2 == 60
    })
    .await;
    let (window, records, _) = settled(&db.url, &s.project_id).await;
    assert_eq!((window, records), (limit, limit), "spend equals the limit exactly, counted once");
    eventually(Duration::from_secs(10), "leases returned", || async { live_leases(&db.url).await.is_zero() })
        .await;
    let status: Value = replicas[0].admin("GET", &format!("/v1/budgets/{budget}"), None).await.json();
    assert_eq!(status["spent_usd"], limit.normalize().to_string(), "{status}");
    assert_eq!(status["remaining_usd"], "0", "{status}");
    // A replica that stops gives its leases back (rows gone, not left to expire).
    let topper = &mut replicas[2];
    assert_eq!(spend_one(&client, topper, &s.key).await, 402);
    topper.stop().await;
    let pool = pg_pool(&db.url).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM ai_budget_leases WHERE replica_id = $1::uuid")
        .bind(&topper.replica_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "lease rows left behind by a clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_slice_comes_back_after_its_ttl() {
    let mock = Mock::start(mini_reply).await;
    let db = TestDb::new(Backend::Postgres).await;
    // No idle return: only the TTL can free a dead replica's slice.
    let timing = "lease_ttl_ms = 1500\nlease_idle_ms = 600000";
    let mut doomed = Replica::start(&db.url, &mock.url(), timing).await;
    let survivor = Replica::start(&db.url, &mock.url(), timing).await;
    let s = seed_at(doomed.admin).await;
    let limit = dec(ACTUAL) * Decimal::from(10);
    hard_budget(&doomed, "project", &s.project_id, &limit.to_string()).await;
    let client = client();
    // One request leases a slice: itself plus a quarter of the rest in whole requests (2).
    assert_eq!(spend_one(&client, &doomed, &s.key).await, 200);
    eventually(Duration::from_secs(5), "the first record written", || async {
        settled(&db.url, &s.project_id).await.2 == 1
    })
    .await;
    // Usually 2 requests' worth; 3 when the replica's start-up invalidation (its LISTEN
    // subscribing) lands during the first admission and the slice is granted again.
    let held = live_leases(&db.url).await;
    let held_requests = held / dec(ACTUAL);
    assert!(
        held_requests.fract().is_zero() && (dec("2")..=dec("3")).contains(&held_requests),
        "the slice left after the first request: {held}"
    );
    let held_requests = held_requests.to_string().parse::<usize>().unwrap();
    doomed.kill9().await;

    // The dead replica's slice still counts: 10 - 1 spent - what it holds is the room.
    let room = 9 - held_requests;
    let mut before_ttl = 0;
    while spend_one(&client, &survivor, &s.key).await == 200 {
        before_ttl += 1;
        assert!(before_ttl <= room, "spent a dead replica's live lease");
    }
    assert_eq!(before_ttl, room);
    // After the TTL the slice is free again: the survivor spends the rest, exactly.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let mut after_ttl = 0;
    while spend_one(&client, &survivor, &s.key).await == 200 {
        after_ttl += 1;
        assert!(after_ttl <= held_requests, "past the limit after the TTL");
    }
    assert_eq!(after_ttl, held_requests);
    eventually(Duration::from_secs(5), "records written", || async {
        settled(&db.url, &s.project_id).await.2 == 10
    })
    .await;
    let (window, records, _) = settled(&db.url, &s.project_id).await;
    assert_eq!((window, records), (limit, limit), "nothing double-counted, nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_held_through_an_admin_write_still_admits_what_it_covers() {
    let mock = Mock::start(mini_reply).await;
    let db = TestDb::new(Backend::Postgres).await;
    let timing = "lease_ttl_ms = 5000\nlease_idle_ms = 600000";
    let holder = Replica::start(&db.url, &mock.url(), timing).await;
    let other = Replica::start(&db.url, &mock.url(), timing).await;
    let s = seed_at(holder.admin).await;
    let limit = dec(ACTUAL) * Decimal::from(10);
    hard_budget(&holder, "project", &s.project_id, &limit.to_string()).await;
    let client = client();
    // The holder leases 3 requests and spends 1; the other replica takes all the rest.
    assert_eq!(spend_one(&client, &holder, &s.key).await, 200);
    eventually(Duration::from_secs(5), "the first record written", || async {
        settled(&db.url, &s.project_id).await.2 == 1
    })
    .await;
    let mut others = 0;
    while spend_one(&client, &other, &s.key).await == 200 {
        others += 1;
    }
    assert_eq!(others, 7);
    // Any admin write makes every lease stale; the holder's 2 requests are still its own.
    assert_eq!(
        holder
            .admin("POST", "/v1/organizations", Some(serde_json::json!({"name": "unrelated"})))
            .await
            .status,
        201
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(spend_one(&client, &holder, &s.key).await, 200, "refused a request its slice covers");
    assert_eq!(spend_one(&client, &holder, &s.key).await, 200);
    assert_eq!(spend_one(&client, &holder, &s.key).await, 402);
}
