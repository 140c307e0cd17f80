//! Metering end to end: every corpus case replayed through the running proxy from the
//! mock upstream in random slices, the recorded tokens and cost compared exactly; one
//! record per request under every way a request can end; stream usage injection; gzip.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use rust_decimal::Decimal;
use serde_json::Value;
use tollgate::store::{CostRecord, RecordFilter, UsageSource};

use crate::support::*;

fn corpus_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/public")
}

/// Waits (bounded) for the request's cost record to be written, then returns it.
pub async fn record_for(app: &TestApp, request_id: &str) -> CostRecord {
    let store = &app.running.as_ref().unwrap().store;
    let filter =
        RecordFilter { request_id: Some(uuid::Uuid::parse_str(request_id).unwrap()), ..Default::default() };
    for _ in 0..500 {
        let page = store.list_cost_records(&filter, &Default::default()).await.unwrap();
        assert!(page.data.len() <= 1, "more than one record for {request_id}");
        if let Some(r) = page.data.into_iter().next() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no cost record for request {request_id}");
}

/// Deterministic pseudo-random slicing of a body.
fn slices(body: &[u8], seed: u64) -> Vec<Step> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x % 97) as usize;
        let end = (at + len).min(body.len());
        out.push(Step::Data(Bytes::copy_from_slice(&body[at..end])));
        at = end;
    }
    out
}

const CORPUS_PROVIDERS: &str = r#"
[[providers]]
name = "openai"
kind = "openai"
base_url = "MOCK"
api_key = "sk-up"
[[providers]]
name = "azure"
kind = "openai"
base_url = "MOCK"
api_key = "az-up"
auth_header = "api-key"
[[providers]]
name = "groq"
kind = "openai"
base_url = "MOCK"
api_key = "gsk-up"
[[providers]]
name = "deepseek"
kind = "openai"
base_url = "MOCK"
api_key = "ds-up"
[[providers]]
name = "mistral"
kind = "openai"
base_url = "MOCK"
api_key = "ms-up"
[[providers]]
name = "openrouter"
kind = "openai"
base_url = "MOCK"
api_key = "or-up"
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "MOCK"
api_key = "ant-up"
[[providers]]
name = "gemini"
kind = "gemini"
base_url = "MOCK"
api_key = "gm-up"
"#;

/// The reply the mock should give for the case being replayed.
type Current = Arc<Mutex<Option<Reply>>>;

#[tokio::test]
async fn every_corpus_case_is_metered_exactly_through_the_proxy() {
    let current: Current = Arc::new(Mutex::new(None));
    let c2 = Arc::clone(&current);
    let mock = Mock::start(move |_| c2.lock().unwrap().clone().unwrap()).await;
    let app = spawn_app_with_providers(mock, CORPUS_PROVIDERS).await;
    let s = app.seed().await;
    let mut cases: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".expected.json").map(str::to_owned))
        .collect();
    cases.sort();
    assert!(cases.len() >= 29, "corpus not found");
    for (n, case) in cases.iter().enumerate() {
        let read = |ext: &str| std::fs::read(corpus_dir().join(format!("{case}.{ext}"))).unwrap();
        let expected: Value = serde_json::from_slice(&read("expected.json")).unwrap();
        let request: Value = serde_json::from_slice(&read("request.json")).unwrap();
        let body = read("response");
        let mut headers: Vec<(String, String)> = expected["response_headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap().to_owned()))
            .collect();
        headers.retain(|(k, _)| k != "content-length");
        *current.lock().unwrap() = Some(Reply {
            status: expected["http_status"].as_u64().unwrap() as u16,
            headers,
            steps: slices(&body, n as u64 + 17),
            head_delay: Duration::ZERO,
        });
        let provider = match expected["provider"].as_str().unwrap() {
            "azure_openai" => "azure",
            other => other,
        };
        let path = format!("/{provider}{}", request["path"].as_str().unwrap());
        let mut req = Request::builder().method(request["method"].as_str().unwrap()).uri(app.url(&path));
        for (k, v) in request["headers"].as_object().unwrap() {
            let lower = k.to_lowercase();
            if !["authorization", "x-api-key", "api-key", "x-goog-api-key"].contains(&lower.as_str()) {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        req = match provider {
            "anthropic" => req.header("x-api-key", &s.key),
            "gemini" => req.header("x-goog-api-key", &s.key),
            _ => req.header("authorization", format!("Bearer {}", s.key)),
        };
        let req_body = serde_json::to_vec(&request["body"]).unwrap();
        let got = send(&client(), req.body(Full::new(Bytes::from(req_body))).unwrap()).await;
        assert_eq!(got.status.as_u16() as u64, expected["http_status"].as_u64().unwrap(), "{case}");
        let stream_without_usage_injected = provider == "openai"
            && expected["stream"] == true
            && request["body"]["stream_options"]["include_usage"] != true;
        if !stream_without_usage_injected {
            assert!(got.body == body, "{case}: client body differs from upstream body");
        }
        let request_id = got.headers["x-tollgate-request-id"].to_str().unwrap();
        let record = record_for(&app, request_id).await;
        check_record(case, &expected, &record);
    }
}

/// The billed dimensions beyond tokens: a field the case carries must be recorded exactly;
/// an absent count means "not applicable", recorded as null or 0.
fn check_dimensions(case: &str, expected: &Value, r: &CostRecord) {
    for (field, got) in [
        ("audio_input_tokens", r.audio_input_tokens),
        ("audio_output_tokens", r.audio_output_tokens),
        ("web_search_requests", r.web_search_requests),
        ("web_fetch_requests", r.web_fetch_requests),
    ] {
        match expected.get(field).and_then(Value::as_u64) {
            Some(want) => assert_eq!(got, Some(want), "{case}: {field}"),
            None => assert!(got.unwrap_or(0) == 0, "{case}: {field} = {got:?}, the case has none"),
        }
    }
    for (field, got) in [("service_tier", &r.service_tier), ("inference_geo", &r.inference_geo)] {
        if let Some(want) = expected.get(field).and_then(Value::as_str) {
            assert_eq!(got.as_deref(), Some(want), "{case}: {field}");
        }
    }
}

fn check_record(case: &str, expected: &Value, r: &CostRecord) {
    let reported = expected["usage_reported"].as_bool().unwrap();
    let complete = expected["usage_complete"].as_bool().unwrap();
    let status = expected["http_status"].as_u64().unwrap();
    assert_eq!(u64::from(r.status_code), status, "{case}: status_code");
    if let Some(model) = expected["model"].as_str() {
        assert_eq!(r.model.as_deref(), Some(model), "{case}: model");
    }
    if reported {
        let want = if complete { UsageSource::Reported } else { UsageSource::Partial };
        assert_eq!(r.usage_source, want, "{case}: usage_source");
        for (field, got) in [
            ("input_tokens", r.input_tokens),
            ("cached_input_tokens", r.cached_input_tokens),
            ("cache_write_tokens", r.cache_write_tokens),
            ("output_tokens", r.output_tokens),
            ("reasoning_tokens", r.reasoning_tokens),
        ] {
            assert_eq!(got, expected[field].as_u64(), "{case}: {field}");
        }
        check_dimensions(case, expected, r);
    } else if (200..300).contains(&status) {
        assert_eq!(r.usage_source, UsageSource::Estimated, "{case}: nothing reported on a 2xx");
        assert!(r.input_tokens.unwrap() > 0, "{case}: the estimate counts the request");
    } else {
        assert_eq!(r.usage_source, UsageSource::None, "{case}: error response");
        assert_eq!(r.input_tokens, None, "{case}");
        assert_eq!(r.cost_usd, Decimal::ZERO, "{case}");
    }
    match expected["reference_cost_usd"].as_f64() {
        Some(reference) => {
            let reference = Decimal::from_str(&format!("{reference}")).unwrap();
            assert!(r.priced, "{case}: not priced");
            assert_eq!(r.cost_usd, reference, "{case}: cost");
        }
        None if reported && expected["pricing_key"].is_null() => assert!(!r.priced, "{case}: priced"),
        None => {}
    }
}

#[tokio::test]
async fn one_record_for_upstream_errors_transport_failures_and_unmetered_paths_none() {
    let app = spawn_app(|seen| {
        if seen.uri.contains("fail") {
            Reply::json(500, r#"{"error":{"message":"boom","type":"server_error"}}"#)
        } else {
            Reply::json(200, r#"{"object":"list","data":[]}"#)
        }
    })
    .await;
    let s = app.seed().await;
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions?fail=1"), &s.key, body)).await;
    assert_eq!(got.status, 500);
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!((r.status_code, r.usage_source, r.cost_usd), (500, UsageSource::None, Decimal::ZERO));
    assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(r.endpoint, "/v1/chat/completions");

    // GET of a list endpoint is forwarded but not metered: no record.
    let req = Request::get(app.url("/v1/models"))
        .header("authorization", format!("Bearer {}", s.key))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(&client(), req).await;
    app.running.as_ref().unwrap().ledger.flush().await;
    let store = &app.running.as_ref().unwrap().store;
    let id = uuid::Uuid::parse_str(got.headers["x-tollgate-request-id"].to_str().unwrap()).unwrap();
    let filter = RecordFilter { request_id: Some(id), ..Default::default() };
    assert!(store.list_cost_records(&filter, &Default::default()).await.unwrap().data.is_empty());
}

#[tokio::test]
async fn unreachable_upstream_still_records_the_attempt() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mock = Mock::start(|_| Reply::json(200, "{}")).await;
    let providers = format!(
        "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{port}\"\napi_key = \"k\"\n"
    );
    let app = spawn_app_with_providers(mock, &providers).await;
    let s = app.seed().await;
    let got =
        send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, r#"{"model":"gpt-4o"}"#)).await;
    assert_eq!(got.status, 502);
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!((r.status_code, r.usage_source), (502, UsageSource::None));
}

#[tokio::test]
async fn a_request_sent_but_never_answered_is_recorded_as_estimated_not_free() {
    // The provider got the request and went silent: it may well bill it.
    let app = spawn_app(|_| {
        let mut r = Reply::json(200, "{}");
        r.head_delay = std::time::Duration::from_secs(10);
        r
    })
    .await;
    let s = app.seed().await;
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"think for a long time"}]}"#;
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, body)).await;
    assert_eq!(got.status, 504);
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!((r.status_code, r.usage_source), (504, UsageSource::Estimated));
    assert_eq!(r.input_tokens, Some((body.len() as u64).div_ceil(4)));
    assert!(r.cost_usd > Decimal::ZERO && r.priced, "{r:?}");
}

fn openai_like_stream(seen: &Seen) -> Reply {
    let body: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
    let usage = body["stream_options"]["include_usage"] == true;
    let u = if usage { ",\"usage\":null" } else { "" };
    let mut text = String::new();
    for (i, word) in ["Hel", "lo", " wor", "ld"].iter().enumerate() {
        let finish = if i == 3 { "\"stop\"" } else { "null" };
        text.push_str(&format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":{finish}}}]{u},\"obfuscation\":\"ab\"}}\n\n"
        ));
    }
    if usage {
        text.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":4,\"total_tokens\":1004,\"prompt_tokens_details\":{\"cached_tokens\":200}},\"obfuscation\":\"cd\"}\n\n");
    }
    text.push_str("data: [DONE]\n\n");
    Reply::sse(slices(text.as_bytes(), 5))
}

#[tokio::test]
async fn injected_usage_is_metered_and_hidden_from_the_client() {
    let app = spawn_app(openai_like_stream).await;
    let s = app.seed().await;
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    // What the upstream gives a client that did not ask for usage:
    let direct = send(
        &client(),
        Request::post(format!("{}/v1/chat/completions", app.mock.url()))
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await;
    let mut request = openai_post(&app.url("/v1/chat/completions"), &s.key, body);
    request.headers_mut().insert("accept-encoding", http::HeaderValue::from_static("gzip, br"));
    let got = send(&client(), request).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&got.body),
        String::from_utf8_lossy(&direct.body),
        "the client must see exactly what it asked for"
    );
    let forwarded: Value = serde_json::from_slice(&app.mock.last().body).unwrap();
    assert_eq!(forwarded["stream_options"]["include_usage"], true);
    // A stream tollgate rewrites must come back in clear (a compressed one would carry
    // the usage chunk to the client).
    assert!(app.mock.last().headers.get("accept-encoding").is_none(), "accept-encoding forwarded");
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!(r.usage_source, UsageSource::Reported);
    assert_eq!((r.input_tokens, r.cached_input_tokens, r.output_tokens), (Some(1000), Some(200), Some(4)));
    // gpt-4o-mini: (800 * 0.15 + 200 * 0.075 + 4 * 0.6) / 1e6
    assert_eq!(r.cost_usd, Decimal::from_str("0.0001374").unwrap());

    // A client that asked for usage gets it, untouched.
    let asked = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}"#;
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, asked)).await;
    assert!(String::from_utf8_lossy(&got.body).contains("\"prompt_tokens\":1000"));
    assert!(String::from_utf8_lossy(&got.body).contains("\"usage\":null"));
    assert_eq!(app.mock.last().body, asked.as_bytes(), "a body with the option is forwarded byte for byte");
}

#[tokio::test]
async fn gzip_responses_are_metered_and_forwarded_compressed() {
    use std::io::Write;
    let plain = std::fs::read(corpus_dir().join("anthropic_stream_basic.response")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let compressed = Bytes::from(gz.finish().unwrap());
    let c2 = compressed.clone();
    let app = spawn_app(move |_| {
        let mut r = Reply::sse(slices(&c2, 9));
        r.headers.push(("content-encoding".into(), "gzip".into()));
        r
    })
    .await;
    let s = app.seed().await;
    let req = Request::post(app.url("/anthropic/v1/messages"))
        .header("x-api-key", &s.key)
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::from_static(br#"{"model":"claude-sonnet-4-5","stream":true}"#)))
        .unwrap();
    let got = send(&client(), req).await;
    assert!(got.body == compressed, "compressed bytes must reach the client unchanged");
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    let expected: Value = serde_json::from_slice(
        &std::fs::read(corpus_dir().join("anthropic_stream_basic.expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.usage_source, UsageSource::Reported);
    assert_eq!(r.input_tokens, expected["input_tokens"].as_u64());
    assert_eq!(r.output_tokens, expected["output_tokens"].as_u64());
}

#[tokio::test]
async fn client_disconnect_mid_stream_records_what_was_reported() {
    let app = spawn_app(|_| {
        Reply::sse(vec![
            Step::Data(Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"usage\":{\"input_tokens\":50,\"output_tokens\":1}}}\n\n")),
            Step::Data(Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n")),
            Step::Sleep(Duration::from_secs(30)),
            Step::Data(Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")),
        ])
    })
    .await;
    let s = app.seed().await;
    let req = Request::post(app.url("/anthropic/v1/messages"))
        .header("x-api-key", &s.key)
        .body(Full::new(Bytes::from_static(br#"{"model":"claude-sonnet-4-5","stream":true}"#)))
        .unwrap();
    let response = client().request(req).await.unwrap();
    let request_id = response.headers()["x-tollgate-request-id"].to_str().unwrap().to_owned();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some());
    drop(body); // the client goes away mid-stream
    let r = record_for(&app, &request_id).await;
    assert_eq!(r.usage_source, UsageSource::Partial);
    assert_eq!((r.input_tokens, r.output_tokens), (Some(50), Some(1)));
    assert!(r.priced && r.cost_usd > Decimal::ZERO);
}

#[tokio::test]
async fn shutdown_flushes_the_record_of_a_stream_in_flight() {
    let mut app = spawn_app(openai_like_stream).await;
    let s = app.seed().await;
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}"#;
    let response =
        client().request(openai_post(&app.url("/v1/chat/completions"), &s.key, body)).await.unwrap();
    let request_id = response.headers()["x-tollgate-request-id"].to_str().unwrap().to_owned();
    let store = app.running.as_ref().unwrap().store.clone();
    let reader = tokio::spawn(async move { response.into_body().collect().await.unwrap().to_bytes() });
    app.shutdown().await;
    let _ = reader.await;
    let filter =
        RecordFilter { request_id: Some(uuid::Uuid::parse_str(&request_id).unwrap()), ..Default::default() };
    let records = store.list_cost_records(&filter, &Default::default()).await.unwrap().data;
    assert_eq!(records.len(), 1, "the record must be written before shutdown returns");
    assert_eq!(records[0].output_tokens, Some(4));
}

#[tokio::test]
async fn an_upstream_that_goes_quiet_is_cut_after_the_idle_timeout_and_still_recorded() {
    let mock = Mock::start(|_| {
        Reply::sse(vec![
            Step::Data(Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5-20251001\",\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n")),
            Step::Sleep(Duration::from_secs(30)),
        ])
    })
    .await;
    let app = spawn_app_with_server_extra(mock, "idle_timeout_ms = 300").await;
    let s = app.seed().await;
    let req = Request::post(app.url("/anthropic/v1/messages"))
        .header("x-api-key", &s.key)
        .body(Full::new(Bytes::from_static(br#"{"model":"claude-haiku-4-5","stream":true}"#)))
        .unwrap();
    let response = client().request(req).await.unwrap();
    let id = response.headers()["x-tollgate-request-id"].to_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect()).await.unwrap();
    assert!(result.is_err(), "the body should end with an error, not look complete");
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = record_for(&app, &id).await;
    assert_eq!(r.usage_source, UsageSource::Partial);
    assert_eq!(r.input_tokens, Some(20));
}

#[tokio::test]
async fn config_price_overrides_and_provider_restricted_entries_apply() {
    let extra = r#"
[[providers]]
name = "groq"
kind = "openai"
base_url = "MOCK"
api_key = "g"
[[pricing.models]]
name = "gpt-4o-mini"
input = "1"
output = "2"
[[pricing.models]]
name = "llama-3.3-70b-versatile"
provider = "groq"
input = "0.59"
output = "0.79"
"#;
    let mock = Mock::start(|seen: &Seen| {
        let model = if seen.uri.starts_with("/groq") || seen.body.windows(5).any(|w| w == b"llama") {
            "llama-3.3-70b-versatile"
        } else {
            "gpt-4o-mini-2024-07-18"
        };
        Reply::json(
            200,
            format!(
                r#"{{"model":"{model}","usage":{{"prompt_tokens":1000000,"completion_tokens":1000000}}}}"#
            ),
        )
    })
    .await;
    let extra = extra.replace("MOCK", &mock.url());
    let app = spawn_app_with(mock, &extra).await;
    let s = app.seed().await;
    let got =
        send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, r#"{"model":"gpt-4o-mini"}"#))
            .await;
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!(r.cost_usd, Decimal::from(3), "override: 1M input at $1 + 1M output at $2");
    let body = r#"{"model":"llama-3.3-70b-versatile"}"#;
    let got = send(&client(), openai_post(&app.url("/groq/v1/chat/completions"), &s.key, body)).await;
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!(r.cost_usd, Decimal::from_str("1.38").unwrap());
    // The groq-only entry does not price the same model on another provider.
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, body)).await;
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert!(!r.priced);
    assert_eq!(r.cost_usd, Decimal::ZERO);
}

#[tokio::test]
async fn a_client_gone_before_the_response_head_still_leaves_one_record() {
    let app = spawn_app(|_| {
        let mut r =
            Reply::json(200, r#"{"model":"gpt-4o-mini","usage":{"prompt_tokens":5,"completion_tokens":5}}"#);
        r.head_delay = Duration::from_millis(1500);
        r
    })
    .await;
    let s = app.seed().await;
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a long question"}]}"#;
    let request = client().request(openai_post(&app.url("/v1/chat/completions"), &s.key, body));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), request).await.is_err(),
        "should still be waiting"
    );
    // The request id never reached the client; find the record by user.
    let store = app.running.as_ref().unwrap().store.clone();
    let filter =
        RecordFilter { user_id: Some(uuid::Uuid::parse_str(&s.user_id).unwrap()), ..Default::default() };
    let mut records = Vec::new();
    for _ in 0..300 {
        records = store.list_cost_records(&filter, &Default::default()).await.unwrap().data;
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(records.len(), 1, "a forwarded request must leave exactly one record");
    let r = &records[0];
    assert_eq!((r.status_code, r.usage_source), (499, UsageSource::Estimated));
    assert_eq!(r.input_tokens, Some(body.len().div_ceil(4) as u64));
    assert!(r.priced && r.cost_usd > Decimal::ZERO);
}

#[tokio::test]
async fn encoded_and_openai_compatible_gemini_paths_are_metered_too() {
    let app = spawn_app(|seen: &Seen| {
        if seen.uri.contains("openai") {
            Reply::json(200, r#"{"model":"gemini-2.5-flash","usage":{"prompt_tokens":10,"completion_tokens":2}}"#)
        } else {
            Reply::json(200, r#"{"modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":3}}"#)
        }
    })
    .await;
    let s = app.seed().await;
    let req = Request::post(app.url("/gemini/v1beta/models/gemini-2.5-flash%3AgenerateContent"))
        .header("x-goog-api-key", &s.key)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(app.mock.last().uri, "/v1beta/models/gemini-2.5-flash%3AgenerateContent", "forwarded as sent");
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!((r.input_tokens, r.output_tokens), (Some(7), Some(3)));
    // Gemini's OpenAI-compatible endpoint, called the way the OpenAI SDK calls it.
    let got = send(
        &client(),
        openai_post(
            &app.url("/gemini/v1beta/openai/chat/completions"),
            &s.key,
            r#"{"model":"gemini-2.5-flash"}"#,
        ),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(app.mock.last().headers["x-goog-api-key"], GEMINI_KEY);
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!((r.input_tokens, r.output_tokens), (Some(10), Some(2)));
    assert!(r.priced);
}

#[tokio::test]
async fn a_provider_default_model_prices_requests_that_name_none() {
    let mock =
        Mock::start(|_| Reply::json(200, r#"{"usage":{"prompt_tokens":1000000,"completion_tokens":0}}"#))
            .await;
    let providers = "[[providers]]\nname = \"azure\"\nkind = \"openai\"\nbase_url = \"MOCK/openai/deployments/prod?api-version=2024-10-21\"\napi_key = \"az\"\nauth_header = \"api-key\"\ndefault_model = \"gpt-4o\"\n";
    let app = spawn_app_with_providers(mock, providers).await;
    let s = app.seed().await;
    let req = Request::post(app.url("/azure/chat/completions"))
        .header("api-key", &s.key)
        .body(Full::new(Bytes::from_static(br#"{"messages":[]}"#)))
        .unwrap();
    let got = send(&client(), req).await;
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!(r.model.as_deref(), Some("gpt-4o"));
    assert_eq!(r.cost_usd, Decimal::from_str("2.5").unwrap());
}

#[tokio::test]
async fn a_background_responses_call_is_recorded_at_its_upper_bound_not_its_queued_stub() {
    let queued = r#"{"id":"resp_1","object":"response","status":"queued","background":true,"model":"gpt-4o-mini","output":[],"usage":null}"#;
    let app = spawn_app(move |_| Reply::json(200, queued)).await;
    let s = app.seed().await;
    let body =
        r#"{"model":"gpt-4o-mini","background":true,"max_output_tokens":500,"input":"write a long essay"}"#;
    let got = send(&client(), openai_post(&app.url("/v1/responses"), &s.key, body)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, queued.as_bytes(), "the reply passes through untouched");
    let r = record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    assert_eq!(r.usage_source, UsageSource::Estimated);
    assert_eq!(r.input_tokens, Some(body.len() as u64));
    assert_eq!(r.output_tokens, Some(500));
    // gpt-4o-mini: $0.15 in, $0.60 out per million tokens.
    let expected = (Decimal::from(body.len() as u64) * Decimal::from_str("0.15").unwrap()
        + Decimal::from(500) * Decimal::from_str("0.60").unwrap())
        / Decimal::from(1_000_000);
    assert_eq!(r.cost_usd, expected.normalize());
}
