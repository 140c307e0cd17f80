//! `GET /metrics` after real traffic through the proxy: requests, tokens and cost agree
//! with the cost records series by series, budget refusals are counted by scope, the model
//! label stays bounded whatever names clients invent, store failures are counted by
//! operation, leases per scope on PostgreSQL, and who may scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::budgets::{mini_body, mini_reply};
use crate::db::{Backend, TestDb};
use crate::metering::record_for;
use crate::replicas::{eventually, hard_budget, Replica};
use crate::support::*;

/// One sample of a scrape: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            samples.push(Sample { name: name.to_owned(), labels, value: value.parse().unwrap() });
        }
        Scrape { text, samples }
    }

    /// Samples of `name` carrying every label of `filter`.
    fn matching<'a>(&'a self, name: &'a str, filter: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name && filter.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the samples of `name` carrying every label of `filter` (0 when none).
    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.matching(name, filter).map(|s| s.value).sum()
    }

    /// The one sample with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self.matching(name, labels).filter(|s| s.labels.len() == labels.len()).collect();
        assert_eq!(found.len(), 1, "{name}{labels:?} in\n{}", self.text);
        found[0].value
    }

    /// The values a label takes across the samples of `name`.
    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.matching(name, &[]).filter_map(|s| s.labels.get(label).cloned()).collect()
    }
}

/// GET /metrics on `admin`, with the admin token or without.
async fn get_metrics(admin: std::net::SocketAddr, token: Option<&str>) -> Got {
    let mut req = Request::get(format!("http://{admin}/metrics"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    send(&client(), req.body(Full::new(Bytes::new())).unwrap()).await
}

/// Scrapes an app whose admin listener is on loopback (no token needed).
async fn scrape(admin: std::net::SocketAddr) -> Scrape {
    let got = get_metrics(admin, None).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    Scrape::parse(String::from_utf8(got.body.to_vec()).unwrap())
}

/// Chat completions with usage (cached and reasoning tokens too) for the model asked,
/// streamed when asked; a 500 for `?fail`, a list for anything else.
fn usage_upstream(seen: &Seen) -> Reply {
    if seen.uri.contains("fail") {
        return Reply::json(500, r#"{"error":{"message":"boom","type":"server_error"}}"#);
    }
    if !seen.uri.contains("chat/completions") {
        return Reply::json(200, r#"{"object":"list","data":[]}"#);
    }
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    let model = body["model"].as_str().unwrap();
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 200}, "completion_tokens_details": {"reasoning_tokens": 40}});
    if body["stream"] == true {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]});
        let last = json!({"id": "c", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage});
        let text = format!("data: {chunk}\n\ndata: {last}\n\ndata: [DONE]\n\n");
        return Reply::sse(vec![Step::Data(Bytes::from(text))]);
    }
    Reply::json(
        200,
        json!({"id": "x", "object": "chat.completion", "model": model, "choices": [], "usage": usage})
            .to_string(),
    )
}

/// The label the price list gives the test's models (any other name is its own label).
fn model_label(model: &str) -> &str {
    if model.starts_with("gpt-4o-mini") {
        "gpt-4o-mini"
    } else if model.starts_with("gpt-4o") {
        "gpt-4o"
    } else {
        model
    }
}

const KINDS: [(&str, &str); 5] = [
    ("input", "input_tokens"),
    ("cached_input", "cached_input_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("output", "output_tokens"),
    ("reasoning", "reasoning_tokens"),
];

#[tokio::test]
async fn counts_and_sums_agree_with_the_cost_records_series_by_series() {
    let app = spawn_app(usage_upstream).await;
    let s = app.seed().await;
    let chat = app.url("/v1/chat/completions");
    let mut bodies = Vec::new();
    for (model, times) in [("gpt-4o", 3), ("gpt-4o-mini-2024-07-18", 2), ("my-finetune", 1)] {
        for _ in 0..times {
            bodies.push((chat.clone(), json!({"model": model, "messages": []}).to_string()));
        }
    }
    let stream = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}});
    bodies.push((chat.clone(), stream.to_string()));
    bodies.push((app.url("/v1/chat/completions?fail=1"), json!({"model": "gpt-4o"}).to_string()));
    for (url, body) in &bodies {
        let got = send(&client(), openai_post(url, &s.key, body)).await;
        record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    }
    // Two requests without a cost record: refused (wrong key), and not metered (a GET).
    let refused = send(&client(), openai_post(&chat, "tg_wrong", &bodies[0].1)).await;
    assert_eq!(refused.status, 401);
    let list = Request::get(app.url("/v1/models"))
        .header("authorization", format!("Bearer {}", s.key))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), list).await.status, 200);
    app.running.as_ref().unwrap().ledger.flush().await;

    let records = app.admin("GET", "/v1/cost-records?limit=100", None).await.json()["data"].clone();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), bodies.len());
    let m = scrape(app.admin).await;

    // Per (model label, status): the request count; per model label: tokens and cost.
    let mut requests: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut tokens: BTreeMap<(String, &str), f64> = BTreeMap::new();
    let mut cost: BTreeMap<String, Decimal> = BTreeMap::new();
    for r in records {
        let label = model_label(r["model"].as_str().unwrap()).to_owned();
        *requests.entry((label.clone(), r["status_code"].to_string())).or_default() += 1.0;
        for (kind, column) in KINDS {
            *tokens.entry((label.clone(), kind)).or_default() += r[column].as_u64().unwrap_or(0) as f64;
        }
        *cost.entry(label).or_default() += Decimal::from_str(r["cost_usd"].as_str().unwrap()).unwrap();
    }
    assert_eq!(requests.len(), 4, "{requests:?}");
    for ((model, status), n) in &requests {
        let labels = [("provider", "openai"), ("model", model.as_str()), ("status", status.as_str())];
        assert_eq!(m.get("tollgate_requests_total", &labels), *n, "{labels:?}");
    }
    for ((model, kind), n) in &tokens {
        let labels = [("provider", "openai"), ("model", model.as_str()), ("kind", *kind)];
        assert_eq!(m.get("tollgate_tokens_total", &labels), *n, "{labels:?}");
    }
    assert!(
        tokens[&("gpt-4o".to_owned(), "reasoning")] > 0.0
            && tokens[&("gpt-4o".to_owned(), "cached_input")] > 0.0
    );
    for (model, usd) in &cost {
        let shown = m.get("tollgate_cost_usd_total", &[("provider", "openai"), ("model", model.as_str())]);
        assert_eq!(shown, usd.to_f64().unwrap(), "{model}: the exact sum, rounded once");
    }
    assert!(cost["gpt-4o"] > Decimal::ZERO);
    // The requests without a record: no model known, their own status.
    assert_eq!(
        m.get("tollgate_requests_total", &[("provider", "openai"), ("model", "none"), ("status", "401")]),
        1.0
    );
    assert_eq!(
        m.get("tollgate_requests_total", &[("provider", "openai"), ("model", "none"), ("status", "200")]),
        1.0
    );
    assert_eq!(m.sum("tollgate_requests_total", &[]), (records.len() + 2) as f64);

    let unpriced = records.iter().filter(|r| r["priced"] == false).count();
    assert_eq!(unpriced, 1);
    assert_eq!(m.get("tollgate_unpriced_requests_total", &[("model", "my-finetune")]), 1.0);
    assert_eq!(m.sum("tollgate_unpriced_requests_total", &[]), unpriced as f64);

    // Every forwarded request waited on the upstream once; every request had overhead.
    assert_eq!(m.get("tollgate_upstream_duration_seconds_count", &[]), (records.len() + 1) as f64);
    assert!(m.get("tollgate_upstream_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(m.get("tollgate_overhead_seconds_count", &[]), (records.len() + 2) as f64);
    let within_a_second = m.get("tollgate_overhead_seconds_bucket", &[("le", "1")]);
    assert_eq!(within_a_second, (records.len() + 2) as f64);

    assert_eq!(m.get("tollgate_records_written_total", &[]), records.len() as f64);
    assert_eq!(m.get("tollgate_record_queue_depth", &[]), 0.0);
    assert!(m.get("tollgate_journal_bytes", &[]) > 0.0);
    for scope in ["organization", "project", "user"] {
        assert_eq!(m.get("tollgate_budget_rejections_total", &[("scope", scope)]), 0.0);
    }
    // SQLite: no leases, so no lease series; no store operation failed.
    assert_eq!(m.matching("tollgate_budget_leases", &[]).count(), 0);
    assert_eq!(m.sum("tollgate_store_errors_total", &[]), 0.0);
    // Secrets never reach the text: not the client's key, the provider's or the admin's.
    for secret in [s.key.as_str(), OPENAI_KEY, ADMIN_TOKEN] {
        assert!(!m.text.contains(secret), "{secret} in the scrape");
    }
}

#[tokio::test]
async fn budget_refusals_are_counted_by_the_scope_that_refused() {
    let app = spawn_app(mini_reply).await;
    let (a, b) = (app.seed().await, app.seed().await);
    for (scope, id) in [("project", &a.project_id), ("user", &b.user_id)] {
        let budget =
            json!({"scope": scope, "scope_id": id, "limit_usd": "0.0001", "period": "monthly", "hard": true});
        assert_eq!(app.admin("POST", "/v1/budgets", Some(budget)).await.status, 201);
    }
    let chat = app.url("/v1/chat/completions");
    for key in [&a.key, &a.key, &b.key] {
        let got = send(&client(), openai_post(&chat, key, &mini_body())).await;
        assert_eq!(got.status, 402, "{:?}", got.body);
    }
    let m = scrape(app.admin).await;
    assert_eq!(m.get("tollgate_budget_rejections_total", &[("scope", "project")]), 2.0);
    assert_eq!(m.get("tollgate_budget_rejections_total", &[("scope", "user")]), 1.0);
    assert_eq!(m.get("tollgate_budget_rejections_total", &[("scope", "organization")]), 0.0);
    let refused = [("provider", "openai"), ("model", "gpt-4o-mini"), ("status", "402")];
    assert_eq!(m.get("tollgate_requests_total", &refused), 3.0);
    assert_eq!(m.get("tollgate_upstream_duration_seconds_count", &[]), 0.0, "nothing was forwarded");
}

#[tokio::test]
async fn invented_model_names_cannot_grow_the_label_set() {
    let app = spawn_app(usage_upstream).await;
    let s = app.seed().await;
    let chat = app.url("/v1/chat/completions");
    let invented = 105;
    for i in 0..invented {
        let body = json!({"model": format!("invented-{i}"), "messages": []}).to_string();
        let got = send(&client(), openai_post(&chat, &s.key, &body)).await;
        assert_eq!(got.status, 200);
        record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    }
    // A priced model under names nobody listed: the price list's name, no slot taken.
    for model in ["gpt-4o-2024-08-06", "gpt-4o-not-a-real-snapshot"] {
        let body = json!({"model": model, "messages": []}).to_string();
        let got = send(&client(), openai_post(&chat, &s.key, &body)).await;
        record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    }
    let m = scrape(app.admin).await;
    let models = m.label_values("tollgate_requests_total", "model");
    let own: Vec<_> = models.iter().filter(|m| m.starts_with("invented-")).collect();
    assert_eq!(own.len(), 100, "{models:?}");
    assert!(models.contains("other") && models.contains("gpt-4o"), "{models:?}");
    assert_eq!(models.len(), 102, "{models:?}");
    let other = [("provider", "openai"), ("model", "other"), ("status", "200")];
    assert_eq!(m.get("tollgate_requests_total", &other), (invented - 100) as f64);
    assert_eq!(
        m.get("tollgate_requests_total", &[("provider", "openai"), ("model", "gpt-4o"), ("status", "200")]),
        2.0
    );
    assert_eq!(m.get("tollgate_unpriced_requests_total", &[("model", "other")]), (invented - 100) as f64);
    assert_eq!(m.sum("tollgate_unpriced_requests_total", &[]), invented as f64);
    assert_eq!(m.label_values("tollgate_tokens_total", "model"), models);
}

#[tokio::test]
async fn loopback_scrapes_need_no_token_elsewhere_the_admin_token() {
    let app = spawn_app(usage_upstream).await;
    let got = get_metrics(app.admin, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert!(String::from_utf8_lossy(&got.body).contains("# TYPE tollgate_overhead_seconds histogram"));
    let post = Request::post(format!("http://{}/metrics", app.admin)).body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send(&client(), post).await.status, 405);

    // Bound to every address (not loopback): a scrape needs the admin token.
    let open = spawn_app_with_admin_listen(Mock::start(usage_upstream).await, "0.0.0.0:0").await;
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], open.admin.port()));
    assert_eq!(get_metrics(local, None).await.status, 401);
    assert_eq!(get_metrics(local, Some("not-the-token")).await.status, 401);
    let got = get_metrics(local, Some(ADMIN_TOKEN)).await;
    assert_eq!(got.status, 200);
    assert!(String::from_utf8_lossy(&got.body).contains("tollgate_budget_rejections_total"));
}

#[tokio::test]
async fn failed_store_operations_are_counted_by_operation() {
    let app = spawn_app(usage_upstream).await;
    let pool = sqlx::SqlitePool::connect(&app.db_url()).await.unwrap();
    sqlx::query("ALTER TABLE ai_budget_alert_configs RENAME TO moved_away").execute(&pool).await.unwrap();
    pool.close().await;
    for _ in 0..2 {
        assert_eq!(app.admin("GET", "/v1/alert-configs", None).await.status, 500);
    }
    // An answer is not a failure: an unknown id is a 404, not a store error.
    let missing = format!("/v1/organizations/{}", uuid::Uuid::new_v4());
    assert_eq!(app.admin("GET", &missing, None).await.status, 404);
    let m = scrape(app.admin).await;
    assert_eq!(m.get("tollgate_store_errors_total", &[("op", "list_alert_configs")]), 2.0);
    assert_eq!(m.sum("tollgate_store_errors_total", &[]), 2.0, "{}", m.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_shows_its_live_leases_per_scope_on_postgres() {
    let mock = Mock::start(mini_reply).await;
    let db = TestDb::new(Backend::Postgres).await;
    let replica = Replica::start(&db.url, &mock.url(), "lease_ttl_ms = 5000\nlease_idle_ms = 2000").await;
    let s = seed_at(replica.admin).await;
    hard_budget(&replica, "project", &s.project_id, "1").await;
    let leases = |scope: &'static str| {
        let admin = replica.admin;
        async move { scrape(admin).await.get("tollgate_budget_leases", &[("scope", scope)]) }
    };
    assert_eq!(leases("project").await, 0.0);
    let got = send(&client(), openai_post(&replica.url("/v1/chat/completions"), &s.key, &mini_body())).await;
    assert_eq!(got.status, 200);
    assert_eq!(leases("project").await, 1.0, "a lease taken to admit the request");
    assert_eq!((leases("user").await, leases("organization").await), (0.0, 0.0));
    // Idle, the slice goes back to the database: no live lease any more.
    eventually(Duration::from_secs(10), "the idle lease returned", || async {
        leases("project").await == 0.0
    })
    .await;
}

/// Sends a metered request over a raw connection, pausing `pause` halfway through its
/// body; returns the response's status line.
async fn post_slowly(proxy: std::net::SocketAddr, key: &str, body: &str, pause: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    conn.write_all(format!("{head}{first}").as_bytes()).await.unwrap();
    tokio::time::sleep(pause).await;
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn overhead_leaves_out_waiting_for_the_upstream_and_for_the_client() {
    let app = spawn_app(|seen: &Seen| {
        let mut reply = usage_upstream(seen);
        if String::from_utf8_lossy(&seen.body).contains("slow-upstream") {
            reply.head_delay = Duration::from_millis(300);
        }
        reply
    })
    .await;
    let s = app.seed().await;
    let slow_upstream = json!({"model": "gpt-4o", "user": "slow-upstream"}).to_string();
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &slow_upstream)).await;
    assert_eq!(got.status, 200);
    let slow_client = json!({"model": "gpt-4o", "user": "slow-client"}).to_string();
    let status = post_slowly(app.proxy, &s.key, &slow_client, Duration::from_millis(300)).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let m = scrape(app.admin).await;
    assert_eq!(m.get("tollgate_upstream_duration_seconds_count", &[]), 2.0);
    assert_eq!(
        m.get("tollgate_upstream_duration_seconds_bucket", &[("le", "0.25")]),
        1.0,
        "one waited 300 ms"
    );
    assert!(m.get("tollgate_upstream_duration_seconds_sum", &[]) >= 0.3);
    // Both took over 300 ms end to end, none of it tollgate's own.
    assert_eq!(m.get("tollgate_overhead_seconds_count", &[]), 2.0);
    assert_eq!(m.get("tollgate_overhead_seconds_bucket", &[("le", "0.25")]), 2.0, "{}", m.text);
}
