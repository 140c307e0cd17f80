//! 401 and 403 in each provider's shape, revocation and archiving taking effect on the
//! very next request, expiry, and headers mode.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::json;

use crate::support::*;

fn ok() -> Reply {
    Reply::json(200, "{}")
}

#[tokio::test]
async fn missing_or_unknown_key_is_401_in_each_provider_shape() {
    let app = spawn_app(|_| ok()).await;
    app.seed().await;
    let unknown = format!("tg_{}", "Z".repeat(40));
    // OpenAI shape
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &unknown, "{}")).await;
    assert_eq!(got.status, 401);
    let j = got.json();
    assert_eq!(j["error"]["code"], "invalid_api_key");
    assert_eq!(j["error"]["type"], "invalid_api_key");
    assert!(j["error"]["param"].is_null());
    // Anthropic shape, no key at all
    let req = Request::post(app.url("/anthropic/v1/messages")).body(Full::new(Bytes::new())).unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 401);
    assert_eq!(
        got.json(),
        json!({"type":"error","error":{"type":"invalid_api_key","message":"missing or unknown tollgate key"}})
    );
    // Gemini shape; a provider key instead of a tollgate key is refused too
    let req = Request::post(app.url("/gemini/v1beta/models/x:generateContent?key=AIzaSyReal"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json()["error"]["status"], "invalid_api_key");
    assert_eq!(got.json()["error"]["code"], 401);
    assert!(app.mock.requests().is_empty(), "an unauthenticated request reached the upstream");
}

#[tokio::test]
async fn revoking_a_key_takes_effect_on_the_very_next_request() {
    let app = spawn_app(|_| ok()).await;
    let s = app.seed().await;
    let url = app.url("/v1/chat/completions");
    // Warm the cache.
    assert_eq!(send(&client(), openai_post(&url, &s.key, "{}")).await.status, 200);
    let revoked = app.admin("DELETE", &format!("/v1/keys/{}", s.key_id), None).await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.json()["revoked_at"].is_string());
    let got = send(&client(), openai_post(&url, &s.key, "{}")).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.json()["error"]["code"], "key_revoked");
    assert_eq!(app.mock.requests().len(), 1);
}

#[tokio::test]
async fn archiving_user_project_or_organization_refuses_the_next_request() {
    let app = spawn_app(|_| ok()).await;
    let url = app.url("/v1/chat/completions");
    for target in ["users", "projects", "organizations"] {
        let s = app.seed().await;
        assert_eq!(send(&client(), openai_post(&url, &s.key, "{}")).await.status, 200);
        let id = match target {
            "users" => &s.user_id,
            "projects" => &s.project_id,
            _ => &s.org_id,
        };
        let patched =
            app.admin("PATCH", &format!("/v1/{target}/{id}"), Some(json!({"archived": true}))).await;
        assert_eq!(patched.status, 200, "{:?}", patched.body);
        assert!(patched.json()["archived_at"].is_string());
        let got = send(&client(), openai_post(&url, &s.key, "{}")).await;
        assert_eq!(got.status, 403, "after archiving {target}");
        // Unarchiving lets it through again, also immediately.
        let patched =
            app.admin("PATCH", &format!("/v1/{target}/{id}"), Some(json!({"archived": false}))).await;
        assert_eq!(patched.status, 200);
        assert_eq!(send(&client(), openai_post(&url, &s.key, "{}")).await.status, 200, "{target}");
    }
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let app = spawn_app(|_| ok()).await;
    let s = app.seed().await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let key = app
        .admin(
            "POST",
            "/v1/keys",
            Some(json!({"user_id": s.user_id, "project_id": s.project_id, "expires_at": soon})),
        )
        .await;
    assert_eq!(key.status, 201, "{:?}", key.body);
    let key = key.json()["key"].as_str().unwrap().to_owned();
    let url = app.url("/v1/chat/completions");
    assert_eq!(send(&client(), openai_post(&url, &key, "{}")).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let got = send(&client(), openai_post(&url, &key, "{}")).await;
    assert_eq!(got.status, 403);
    assert!(got.json()["error"]["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn headers_mode_attributes_by_user_and_project_and_passes_client_key_when_unconfigured() {
    let mock = Mock::start(|_| ok()).await;
    let extra = "[[providers]]\nname = \"passthrough\"\nkind = \"openai\"\nbase_url = \"URL\"\n"
        .replace("URL", &mock.url());
    let app = spawn_app_with(mock, &format!("[auth]\nmode = \"headers\"\n{extra}")).await;
    let s = app.seed().await;
    let send_with = |path: &str, user: Option<&str>, project: Option<&str>| {
        let mut req = Request::post(app.url(path)).header("authorization", "Bearer sk-client-own");
        if let Some(u) = user {
            req = req.header("x-tollgate-user", u);
        }
        if let Some(p) = project {
            req = req.header("x-tollgate-project", p);
        }
        req.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
    };
    // external id and id both identify the user
    for user in ["alice", s.user_id.as_str()] {
        let got = send(&client(), send_with("/v1/chat/completions", Some(user), Some(&s.project_id))).await;
        assert_eq!(got.status, 200, "{user}");
        let seen = app.mock.last();
        assert_eq!(seen.headers["authorization"], format!("Bearer {OPENAI_KEY}").as_str());
        assert!(seen.headers.get("x-tollgate-user").is_none());
    }
    // provider without a configured key: the client's own key passes through
    let got = send(&client(), send_with("/passthrough/v1/models", Some("alice"), Some(&s.project_id))).await;
    assert_eq!(got.status, 200);
    assert_eq!(app.mock.last().headers["authorization"], "Bearer sk-client-own");
    // missing or unknown attribution is 401
    let got = send(&client(), send_with("/v1/chat/completions", None, Some(&s.project_id))).await;
    assert_eq!(got.status, 401);
    let got = send(&client(), send_with("/v1/chat/completions", Some("mallory"), Some(&s.project_id))).await;
    assert_eq!(got.status, 401);
}

#[tokio::test]
async fn cli_writes_reach_a_running_server_within_its_poll_interval() {
    let app = spawn_app(|_| ok()).await;
    let s = app.seed().await;
    let url = app.url("/v1/chat/completions");
    assert_eq!(send(&client(), openai_post(&url, &s.key, "{}")).await.status, 200);
    let cfg = app._dir.path().join("cli.toml");
    std::fs::write(&cfg, format!("[database]\nurl = \"{}\"\n", app.db_url())).unwrap();
    // Async, so the in-process server keeps running while the CLI works on its database.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["key", "revoke", &s.key_id])
        .env("TOLLGATE_CONFIG", &cfg)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = std::time::Instant::now();
    loop {
        let status = send(&client(), openai_post(&url, &s.key, "{}")).await.status;
        if status == 403 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "revocation by the CLI never took effect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
