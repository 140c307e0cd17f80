//! The read side: cost records with filters and cursor pagination, spend grouped every
//! way with exact sums, and `tollgate spend` printing the same as a table.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::metering::record_for;
use crate::support::*;

/// Upstream answering chat completions with usage that depends on the model.
fn usage_reply(seen: &Seen) -> Reply {
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    let model = body["model"].as_str().unwrap().to_owned();
    Reply::json(
        200,
        json!({"id": "x", "object": "chat.completion", "model": model, "choices": [],
               "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}})
        .to_string(),
    )
}

#[tokio::test]
async fn cost_records_and_spend_reports_agree_to_the_last_digit() {
    let app = spawn_app(usage_reply).await;
    let a = app.seed().await;
    let b = app.seed().await;
    let mut ids = Vec::new();
    for (key, model, times) in [(&a.key, "gpt-4o", 3), (&a.key, "gpt-4o-mini", 2), (&b.key, "gpt-4o-mini", 1)]
    {
        for _ in 0..times {
            let body = json!({"model": model, "messages": []}).to_string();
            let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), key, &body)).await;
            assert_eq!(got.status, 200);
            let id = got.headers["x-tollgate-request-id"].to_str().unwrap().to_owned();
            record_for(&app, &id).await;
            ids.push(id);
        }
    }
    // gpt-4o: (1000*2.5 + 100*10)/1e6 = 0.0035; gpt-4o-mini: (1000*0.15 + 100*0.6)/1e6 = 0.00021
    let spend = app.admin("GET", "/v1/spend?group_by=model", None).await.json();
    assert_eq!(
        spend["data"],
        json!([
            {"group": "gpt-4o", "requests": 3, "input_tokens": 3000, "output_tokens": 300, "cost_usd": "0.0105"},
            {"group": "gpt-4o-mini", "requests": 3, "input_tokens": 3000, "output_tokens": 300, "cost_usd": "0.00063"}
        ])
    );
    let by_user =
        app.admin("GET", &format!("/v1/spend?group_by=user&organization_id={}", a.org_id), None).await.json();
    assert_eq!(by_user["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_user["data"][0]["group"], a.user_id.as_str());
    assert_eq!(by_user["data"][0]["cost_usd"], "0.01092");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let by_day = app.admin("GET", "/v1/spend?group_by=day", None).await.json();
    assert_eq!(by_day["data"][0]["group"], today.as_str());
    assert_eq!(by_day["data"][0]["requests"], 6);
    let future = app.admin("GET", "/v1/spend?group_by=day&from=2999-01-01", None).await.json();
    assert_eq!(future["data"], json!([]));

    // Records: filtered, paged by cursor, column names as in SPEC §6.
    let mut seen = Vec::new();
    let mut path = format!("/v1/cost-records?user_id={}&limit=2", a.user_id);
    loop {
        let page = app.admin("GET", &path, None).await.json();
        for r in page["data"].as_array().unwrap() {
            assert_eq!(r["user_id"], a.user_id.as_str());
            assert!(r["cost_usd"].is_string());
            assert!(r["input_tokens"].is_u64());
            // The billed dimensions beyond tokens are always there, null when not reported.
            for key in [
                "service_tier",
                "inference_geo",
                "audio_input_tokens",
                "audio_output_tokens",
                "web_search_requests",
                "web_fetch_requests",
            ] {
                assert!(r.as_object().unwrap().contains_key(key), "{key} missing from {r}");
            }
            assert_eq!(r["web_search_requests"], Value::Null);
            seen.push(r["request_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/cost-records?user_id={}&limit=2&cursor={c}", a.user_id),
            None => break,
        }
    }
    assert_eq!(seen, ids[..5].to_vec());
    let one = app.admin("GET", &format!("/v1/cost-records?request_id={}", ids[5]), None).await.json();
    assert_eq!(one["data"][0]["model"], "gpt-4o-mini");
    assert_eq!(
        Decimal::from_str(one["data"][0]["cost_usd"].as_str().unwrap()).unwrap(),
        Decimal::from_str("0.00021").unwrap()
    );

    for bad in [
        "/v1/spend?group_by=color",
        "/v1/spend?from=yesterday",
        "/v1/cost-records?user_id=x",
        "/v1/spend?from=2026-02-01&to=2026-01-01",
    ] {
        let got = app.admin("GET", bad, None).await;
        assert_eq!(got.status, 400, "{bad}");
    }

    // The CLI prints the same numbers.
    // Async, so the in-process server keeps running while the CLI works on its database.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["spend", "--group-by", "model"])
        .env("TOLLGATE_CONFIG", write_cli_config(&app))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gpt-4o-mini") && text.contains("0.00063") && text.contains("0.0105"), "{text}");
    assert!(text.lines().last().unwrap().contains("0.01113"), "{text}");
}

fn write_cli_config(app: &TestApp) -> std::path::PathBuf {
    let path = app._dir.path().join("cli.toml");
    std::fs::write(&path, format!("[database]\nurl = \"{}\"\n", app.db_url())).unwrap();
    path
}
