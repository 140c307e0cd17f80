//! Budgets as a gate: refusal at each level with nothing sent upstream, the overspend
//! bound under 500 concurrent requests, invalidation on the very next request, calendar
//! windows with an injected clock, and reservations back to zero after settling.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::Request;
use http_body_util::{BodyExt, Full};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::metering::record_for;
use crate::support::*;

/// gpt-4o-mini answers with 1000 prompt and 100 completion tokens: $0.00021 each.
pub fn mini_reply(_: &Seen) -> Reply {
    Reply::json(
        200,
        json!({"id": "x", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18", "choices": [],
               "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}})
        .to_string(),
    )
}

pub const ACTUAL: &str = "0.00021";

/// A request body of exactly 1000 bytes with max_tokens 100, so the estimate
/// (1000 * 0.15 + 100 * 0.6) / 1e6 equals the actual cost above. It asks for the default
/// tier: without one the estimate covers the dearer Priority tier a Project may default to.
pub fn mini_body() -> String {
    mini_body_with(r#""service_tier":"default","#)
}

/// A 1000-byte gpt-4o-mini request with max_tokens 100 and `fields` (`"k":v,` each) added.
pub fn mini_body_with(fields: &str) -> String {
    let head = format!(
        r#"{{"model":"gpt-4o-mini",{fields}"max_tokens":100,"messages":[{{"role":"user","content":""#
    );
    let tail = r#""}]}"#;
    let pad = "a".repeat(1000 - head.len() - tail.len());
    let body = format!("{head}{pad}{tail}");
    assert_eq!(body.len(), 1000);
    body
}

pub async fn budget(
    app: &TestApp,
    scope: &str,
    scope_id: &str,
    limit: &str,
    period: &str,
    hard: bool,
) -> String {
    let got = app
        .admin(
            "POST",
            "/v1/budgets",
            Some(json!({"scope": scope, "scope_id": scope_id, "limit_usd": limit, "period": period, "hard": hard})),
        )
        .await;
    assert_eq!(got.status, 201, "{:?}", got.body);
    got.json()["id"].as_str().unwrap().to_owned()
}

async fn status(app: &TestApp, id: &str) -> Value {
    app.admin("GET", &format!("/v1/budgets/{id}"), None).await.json()
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn each_level_refuses_on_its_own_and_nothing_reaches_the_upstream() {
    let app = spawn_app(mini_reply).await;
    for scope in ["user", "project", "organization"] {
        let s = app.seed().await;
        let id = match scope {
            "user" => s.user_id.clone(),
            "project" => s.project_id.clone(),
            _ => s.org_id.clone(),
        };
        // Fits one request (estimate = actual = 0.00021), not two.
        let b = budget(&app, scope, &id, "0.0003", "daily", true).await;
        let before = app.mock.requests().len();
        let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await;
        assert_eq!(got.status, 200, "{scope}");
        let remaining = got.headers["x-tollgate-budget-remaining-usd"].to_str().unwrap();
        assert_eq!(remaining, "0.0003", "{scope}: remaining before this request");
        record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
        let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await;
        assert_eq!(got.status, 402, "{scope}");
        let j = got.json();
        assert_eq!(j["error"]["code"], "budget_exceeded");
        let message = j["error"]["message"].as_str().unwrap();
        for needle in [scope, b.as_str(), "limit $0.0003", "spent $0.00021", "estimate $0.00021", "resets at"]
        {
            assert!(message.contains(needle), "{scope}: '{needle}' missing from: {message}");
        }
        assert_eq!(app.mock.requests().len(), before + 1, "{scope}: a refused request reached the upstream");
        let st = status(&app, &b).await;
        assert_eq!(dec(&st["spent_usd"]), Decimal::from_str(ACTUAL).unwrap());
        assert_eq!(dec(&st["reserved_usd"]), Decimal::ZERO);
    }
    // The refusal uses the route's provider shape.
    let s = app.seed().await;
    budget(&app, "user", &s.user_id, "0.000001", "total", true).await;
    let req = Request::post(app.url("/anthropic/v1/messages"))
        .header("x-api-key", &s.key)
        .body(Full::new(Bytes::from_static(br#"{"model":"claude-sonnet-4-5","max_tokens":1000}"#)))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 402);
    assert_eq!(got.json()["type"], "error");
    assert_eq!(got.json()["error"]["type"], "budget_exceeded");
}

#[tokio::test]
async fn soft_budgets_never_refuse() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    budget(&app, "project", &s.project_id, "0.0001", "daily", false).await;
    for _ in 0..3 {
        let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await;
        assert_eq!(got.status, 200);
    }
}

#[tokio::test]
async fn five_hundred_concurrent_requests_never_overspend_a_hard_budget() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    // Room for exactly 50 requests at the actual (= estimated) cost.
    let limit = Decimal::from_str(ACTUAL).unwrap() * Decimal::from(50);
    let b = budget(&app, "project", &s.project_id, &limit.to_string(), "monthly", true).await;
    let url = app.url("/v1/chat/completions");
    let body = mini_body();
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let (url, key, body) = (url.clone(), s.key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let got = send(&client(), openai_post(&url, &key, &body)).await;
            (
                got.status.as_u16(),
                got.headers.get("x-tollgate-request-id").map(|v| v.to_str().unwrap().to_owned()),
            )
        }));
    }
    let mut admitted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, Some(id)) => admitted.push(id),
            (402, _) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(admitted.len() + refused, 500);
    assert_eq!(admitted.len(), 50, "estimates equal actual costs, so exactly 50 fit");
    for id in &admitted {
        record_for(&app, id).await;
    }
    let st = status(&app, &b).await;
    let spent = dec(&st["spent_usd"]);
    // Actual costs never exceeded their estimates here, so the bound is the limit itself.
    assert!(spent <= limit, "spent {spent} over limit {limit}");
    assert_eq!(spent, Decimal::from_str(ACTUAL).unwrap() * Decimal::from(admitted.len() as u64));
    assert_eq!(dec(&st["reserved_usd"]), Decimal::ZERO, "reservations left after settling");
    assert_eq!(app.mock.requests().len(), 50);
    // The spend report shows the budget's use.
    let report = app.admin("GET", &format!("/v1/spend?project_id={}", s.project_id), None).await.json();
    assert_eq!(report["budgets"][0]["id"], b.as_str());
    assert_eq!(dec(&report["budgets"][0]["spent_usd"]), spent);
    assert_eq!(dec(&report["budgets"][0]["remaining_usd"]), limit - spent);
}

#[tokio::test]
async fn limit_changes_and_deletes_apply_to_the_very_next_request() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let url = app.url("/v1/chat/completions");
    let b = budget(&app, "user", &s.user_id, "0.0001", "weekly", true).await;
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 402);
    let raised = app.admin("PATCH", &format!("/v1/budgets/{b}"), Some(json!({"limit_usd": "1"}))).await;
    assert_eq!(raised.status, 200);
    assert_eq!(raised.json()["limit_usd"], "1");
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 200);
    let lowered = app.admin("PATCH", &format!("/v1/budgets/{b}"), Some(json!({"limit_usd": "0.0002"}))).await;
    assert_eq!(lowered.status, 200);
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 402);
    let soft = app.admin("PATCH", &format!("/v1/budgets/{b}"), Some(json!({"hard": false}))).await;
    assert_eq!(soft.json()["hard"], false);
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 200);
    app.admin("PATCH", &format!("/v1/budgets/{b}"), Some(json!({"hard": true}))).await;
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 402);
    assert_eq!(app.admin("DELETE", &format!("/v1/budgets/{b}"), None).await.status, 200);
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 200);
    // A new budget applies at once too.
    budget(&app, "organization", &s.org_id, "0.0001", "total", true).await;
    assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 402);
}

#[tokio::test]
async fn budget_input_is_validated() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let cases = [
        (json!({"scope": "team", "scope_id": s.user_id, "limit_usd": "1", "period": "daily"}), "scope"),
        (json!({"scope": "user", "scope_id": s.user_id, "limit_usd": "0", "period": "daily"}), "limit_usd"),
        (json!({"scope": "user", "scope_id": s.user_id, "limit_usd": "-5", "period": "daily"}), "limit_usd"),
        (json!({"scope": "user", "scope_id": s.user_id, "limit_usd": "ten", "period": "daily"}), "limit_usd"),
        (json!({"scope": "user", "scope_id": s.user_id, "limit_usd": "1", "period": "yearly"}), "period"),
        (
            json!({"scope": "user", "scope_id": s.user_id, "limit_usd": "1", "period": "daily", "hard": "yes"}),
            "hard",
        ),
    ];
    for (body, field) in cases {
        let got = app.admin("POST", "/v1/budgets", Some(body.clone())).await;
        assert_eq!(got.status, 400, "{body}");
        assert!(got.json().to_string().contains(field), "{body}: {:?}", got.body);
    }
    let missing =
        json!({"scope": "user", "scope_id": uuid::Uuid::new_v4(), "limit_usd": "1", "period": "daily"});
    assert_eq!(app.admin("POST", "/v1/budgets", Some(missing)).await.status, 404);
    let list = app.admin("GET", "/v1/budgets", None).await.json();
    assert_eq!(list["data"], json!([]), "a rejected budget was written");
    let b = budget(&app, "user", &s.user_id, "12.50", "daily", true).await;
    let st = status(&app, &b).await;
    assert_eq!(st["limit_usd"], "12.5");
    assert_eq!(st["remaining_usd"], "12.5");
    assert_eq!(st["spent_usd"], "0");
    let start = DateTime::parse_from_rfc3339(st["window_start"].as_str().unwrap()).unwrap();
    let end = DateTime::parse_from_rfc3339(st["window_end"].as_str().unwrap()).unwrap();
    assert_eq!(end - start, chrono::Duration::days(1));
}

/// A clock the test moves.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn at(s: &str) -> Arc<ManualClock> {
        Arc::new(ManualClock(Mutex::new(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))))
    }
    pub fn set(&self, s: &str) {
        *self.0.lock().unwrap() = DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    }
}

impl tollgate::budget::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[tokio::test]
async fn windows_roll_over_on_the_utc_calendar() {
    let clock = ManualClock::at("2026-11-29T23:59:00Z"); // a Sunday, last day of a week
    let app = spawn_app_with_clock(Mock::start(mini_reply).await, clock.clone()).await;
    let url = app.url("/v1/chat/completions");
    for (period, next) in [
        ("daily", "2026-11-30T00:00:01Z"),
        ("weekly", "2026-11-30T00:00:01Z"),
        ("monthly", "2026-12-01T00:00:01Z"),
    ] {
        clock.set("2026-11-29T23:59:00Z");
        let s = app.seed().await;
        let b = budget(&app, "user", &s.user_id, "0.0003", period, true).await;
        let got = send(&client(), openai_post(&url, &s.key, &mini_body())).await;
        assert_eq!(got.status, 200, "{period}");
        record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
        assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 402, "{period}");
        if period == "monthly" {
            // Still November on Monday: the monthly window has not rolled over.
            clock.set("2026-11-30T00:00:01Z");
            assert_eq!(send(&client(), openai_post(&url, &s.key, &mini_body())).await.status, 402);
        }
        clock.set(next);
        let got = send(&client(), openai_post(&url, &s.key, &mini_body())).await;
        assert_eq!(got.status, 200, "{period}: a new window starts from zero");
        let st = status(&app, &b).await;
        assert_eq!(st["reserved_usd"], "0");
        assert_eq!(st["window_start"].as_str().unwrap()[..10], next[..10], "{period}");
    }
}

#[tokio::test]
async fn a_request_spanning_midnight_is_charged_to_the_window_it_started_in() {
    let clock = ManualClock::at("2026-11-30T23:59:59Z");
    let release = Arc::new(tokio::sync::Notify::new());
    let r2 = Arc::clone(&release);
    let mock = Mock::start(move |_| {
        Reply::sse(vec![
            Step::Data(Bytes::from_static(b"data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n")),
            Step::WaitFor(Arc::clone(&r2)),
            Step::Data(Bytes::from_static(b"data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":100}}\n\ndata: [DONE]\n\n")),
        ])
    })
    .await;
    let app = spawn_app_with_clock(mock, clock.clone()).await;
    let s = app.seed().await;
    let b = budget(&app, "user", &s.user_id, "1", "daily", true).await;
    let body =
        r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":100}"#;
    let response =
        client().request(openai_post(&app.url("/v1/chat/completions"), &s.key, body)).await.unwrap();
    let id = response.headers()["x-tollgate-request-id"].to_str().unwrap().to_owned();
    let mut stream = response.into_body();
    stream.frame().await.unwrap().unwrap();
    clock.set("2026-12-01T00:00:05Z"); // midnight passes mid-stream
    release.notify_one();
    let _ = stream.collect().await.unwrap();
    let r = record_for(&app, &id).await;
    assert_eq!(r.created_at.to_rfc3339(), "2026-11-30T23:59:59+00:00");
    assert_eq!(r.cost_usd, Decimal::from_str(ACTUAL).unwrap());
    let today = status(&app, &b).await;
    assert_eq!(today["window_start"], "2026-12-01T00:00:00Z");
    assert_eq!(today["spent_usd"], "0", "the new day's window is untouched");
    assert_eq!(today["reserved_usd"], "0");
    let store = &app.running.as_ref().unwrap().store;
    let user = uuid::Uuid::parse_str(&s.user_id).unwrap();
    let yesterday = tollgate::window::Period::Daily.start(r.created_at);
    assert_eq!(
        store.window_spend(user, tollgate::window::Period::Daily, yesterday).await.unwrap(),
        r.cost_usd
    );
}

#[tokio::test]
async fn spent_mode_admits_while_spent_plus_reserved_is_below_the_limit() {
    let app = spawn_app_with(Mock::start(mini_reply).await, "[budgets]\nadmission = \"spent\"\n").await;
    let s = app.seed().await;
    let url = app.url("/v1/chat/completions");
    budget(&app, "user", &s.user_id, "0.0003", "daily", true).await;
    for expected in [200, 200, 402] {
        let got = send(&client(), openai_post(&url, &s.key, &mini_body())).await;
        assert_eq!(got.status, expected);
        if let Some(id) = got.headers.get("x-tollgate-request-id").filter(|_| expected == 200) {
            record_for(&app, id.to_str().unwrap()).await;
        }
    }
}

#[tokio::test]
async fn an_encoded_path_cannot_slip_past_a_hard_budget() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    budget(&app, "user", &s.user_id, "0.000001", "total", true).await;
    let req = Request::post(app.url("/gemini/v1beta/models/gemini-2.5-pro%3AgenerateContent"))
        .header("x-goog-api-key", &s.key)
        .body(Full::new(Bytes::from_static(br#"{"generationConfig":{"maxOutputTokens":100}}"#)))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 402);
    assert!(app.mock.requests().is_empty());
}

#[tokio::test]
async fn a_budget_created_right_after_spending_counts_spend_not_yet_written() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await;
    assert_eq!(got.status, 200);
    // At once, while the ledger may still hold the record: a budget that fits one request.
    let b = budget(&app, "user", &s.user_id, "0.0003", "daily", true).await;
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await;
    assert_eq!(got.status, 402, "the first request's spend was missed");
    assert_eq!(dec(&status(&app, &b).await["spent_usd"]), Decimal::from_str(ACTUAL).unwrap());
}

#[tokio::test]
async fn an_exhausted_budget_cannot_be_bypassed_through_an_unmetered_endpoint() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    budget(&app, "user", &s.user_id, ACTUAL, "daily", true).await;
    let images = |key: &str| {
        openai_post(&app.url("/v1/images/generations"), key, r#"{"model":"gpt-image-1","prompt":"a gate"}"#)
    };
    // Room left: an unmetered POST passes (nothing to price, nothing reserved).
    assert_eq!(send(&client(), images(&s.key)).await.status, 200);
    // One metered request spends the budget exactly: at the limit, the POST is refused
    // and never reaches the upstream; a GET of the model list still passes.
    let chat = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await;
    assert_eq!(chat.status, 200);
    let seen = app.mock.requests().len();
    let refused = send(&client(), images(&s.key)).await;
    assert_eq!(refused.status, 402, "{:?}", refused.body);
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("budget exceeded"));
    assert_eq!(app.mock.requests().len(), seen, "the refused request reached the upstream");
    let models = Request::get(app.url("/v1/models"))
        .header("authorization", format!("Bearer {}", s.key))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), models).await.status, 200);
}

#[tokio::test]
async fn requests_for_an_unpriceable_model_reserve_the_highest_price_of_their_kind() {
    let app = spawn_app(|seen| {
        // Every answer's body takes 8 s after its head, so all the requests are in flight
        // at once, however slowly the 200 connections open.
        let mut reply = mini_reply(seen);
        reply.steps.insert(0, Step::Sleep(std::time::Duration::from_secs(8)));
        reply
    })
    .await;
    let s = app.seed().await;
    let id = budget(&app, "user", &s.user_id, "0.000000001", "daily", true).await;
    let body =
        r#"{"model":"ft:my-tuned-model","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
    let url = app.url("/v1/chat/completions");
    // Its estimate is not zero: the refusal says what it is.
    let refused = send(&client(), openai_post(&url, &s.key, body)).await;
    assert_eq!(refused.status, 402);
    let message = refused.json()["error"]["message"].as_str().unwrap().to_owned();
    let estimate = message.split("estimate $").nth(1).and_then(|m| m.split(';').next()).unwrap();
    let estimate = Decimal::from_str(estimate).unwrap();
    assert!(estimate > Decimal::ZERO, "{message}");
    // Refused before anything was sent upstream.
    assert!(app.mock.requests().is_empty());
    let limit = estimate * Decimal::from(10);
    let patch = json!({"limit_usd": limit.to_string()});
    assert_eq!(app.admin("PATCH", &format!("/v1/budgets/{id}"), Some(patch)).await.status, 200);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (client, key, url) = (client(), s.key.clone(), url.clone());
        tasks.push(tokio::spawn(async move { send(&client, openai_post(&url, &key, body)).await.status }));
    }
    let mut admitted = 0;
    for task in tasks {
        let status = task.await.unwrap();
        assert!(status == 200 || status == 402, "{status}");
        admitted += usize::from(status == 200);
    }
    assert!(admitted <= 10, "{admitted} unpriceable requests admitted against a budget for 10");
    assert!(admitted >= 1);
}

/// The estimate a hard budget refused a request with, from the refusal's message.
fn refused_estimate(got: &Got) -> Decimal {
    assert_eq!(got.status, 402, "{:?}", got.body);
    let message = got.json()["error"]["message"].as_str().unwrap().to_owned();
    let estimate = message.split("estimate $").nth(1).and_then(|m| m.split(';').next()).unwrap();
    Decimal::from_str(estimate).unwrap()
}

#[tokio::test]
async fn a_priority_request_reserves_at_priority_rates() {
    // The upstream serves every request at Priority and takes a while to finish the body.
    let app = spawn_app(|_| {
        let mut reply = Reply::json(
            200,
            json!({"object": "chat.completion", "model": "gpt-4o-mini-2024-07-18", "service_tier": "priority",
                   "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 100}})
            .to_string(),
        );
        reply.steps.insert(0, Step::Sleep(std::time::Duration::from_secs(3)));
        reply
    })
    .await;
    let s = app.seed().await;
    let url = app.url("/v1/chat/completions");
    // gpt-4o-mini: base 0.15 / 0.6, Priority 0.25 / 1.0; 1000 bytes in, 100 tokens out.
    let (base, priority) = (Decimal::from_str(ACTUAL).unwrap(), Decimal::from_str("0.00035").unwrap());
    let tiny = budget(&app, "user", &s.user_id, "0.000001", "daily", true).await;
    for (fields, want) in [
        (r#""service_tier":"priority","#, priority),
        (r#""service_tier":"fast","#, priority),
        (r#""service_tier":"auto","#, priority),
        ("", priority),
        (r#""service_tier":"default","#, base),
        (r#""service_tier":"flex","#, base),
    ] {
        let got = send(&client(), openai_post(&url, &s.key, &mini_body_with(fields))).await;
        assert_eq!(refused_estimate(&got), want, "{fields}");
    }
    assert!(app.mock.requests().is_empty());

    // Room for one request: while it runs, its reservation is the Priority estimate, and
    // the cost it settles at is the Priority price the response reports.
    let patch = json!({"limit_usd": "0.0005"});
    assert_eq!(app.admin("PATCH", &format!("/v1/budgets/{tiny}"), Some(patch)).await.status, 200);
    let body = mini_body_with(r#""service_tier":"priority","#);
    let (c, key, u) = (client(), s.key.clone(), url.clone());
    let in_flight = tokio::spawn(async move { send(&c, openai_post(&u, &key, &body)).await });
    let mut reserved = Decimal::ZERO;
    for _ in 0..250 {
        reserved = dec(&status(&app, &tiny).await["reserved_usd"]);
        if !reserved.is_zero() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(reserved, priority, "the reservation of a Priority request");
    // Meanwhile a second one does not fit beside it.
    let second =
        send(&client(), openai_post(&url, &s.key, &mini_body_with(r#""service_tier":"priority","#))).await;
    assert_eq!(refused_estimate(&second), priority);
    let got = in_flight.await.unwrap();
    assert_eq!(got.status, 200);
    let record = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!((record.service_tier.as_deref(), record.cost_usd), (Some("priority"), priority));
    let st = status(&app, &tiny).await;
    assert_eq!((dec(&st["spent_usd"]), dec(&st["reserved_usd"])), (priority, Decimal::ZERO));
}

#[tokio::test]
async fn a_counter_that_missed_a_record_catches_up_at_its_windows_next_write() {
    let app = spawn_app(mini_reply).await;
    let s = app.seed().await;
    let b = budget(&app, "user", &s.user_id, "1", "daily", true).await;
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &mini_body())).await;
    assert_eq!(got.status, 200);
    let running = app.running.as_ref().unwrap();
    running.ledger.flush().await;
    // A record this counter never saw settle: what a load racing a settle leaves out.
    let request_id = got.headers["x-tollgate-request-id"].to_str().unwrap().parse().unwrap();
    let filter = tollgate::store::RecordFilter { request_id: Some(request_id), ..Default::default() };
    let page = tollgate::store::PageRequest { cursor: None, limit: 1 };
    let mut missed = running.store.list_cost_records(&filter, &page).await.unwrap().data.remove(0);
    missed.id = uuid::Uuid::now_v7();
    missed.request_id = uuid::Uuid::now_v7();
    missed.cost_usd = Decimal::from_str("0.25").unwrap();
    running.ledger.record(missed);
    running.ledger.flush().await;
    let mut spent = Decimal::ZERO;
    for _ in 0..100 {
        spent = dec(&status(&app, &b).await["spent_usd"]);
        if spent == Decimal::from_str("0.25021").unwrap() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(spent, Decimal::from_str("0.25021").unwrap());
}
