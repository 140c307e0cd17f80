//! Graceful shutdown: a stream in flight when the signal comes finishes; new
//! connections are refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use tokio::sync::Notify;

use crate::support::*;

#[tokio::test]
async fn in_flight_stream_finishes_after_shutdown_starts() {
    let started = Arc::new(Notify::new());
    let s2 = Arc::clone(&started);
    let mut app = spawn_app(move |_| {
        Reply::sse(vec![
            Step::Data(Bytes::from_static(b"data: 1\n\n")),
            Step::Signal(Arc::clone(&s2)),
            Step::Sleep(Duration::from_millis(300)),
            Step::Data(Bytes::from_static(b"data: 2\n\n")),
            Step::Sleep(Duration::from_millis(300)),
            Step::Data(Bytes::from_static(b"data: [DONE]\n\n")),
        ])
    })
    .await;
    let s = app.seed().await;
    let response =
        client().request(openai_post(&app.url("/v1/chat/completions"), &s.key, "{}")).await.unwrap();
    assert_eq!(response.status(), 200);
    started.notified().await;
    let running = app.running.take().unwrap();
    let proxy = app.proxy;
    let shutdown = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The listener is closed: a new connection is refused.
    assert!(tokio::net::TcpStream::connect(proxy).await.is_err(), "still accepting after shutdown began");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "data: 1\n\ndata: 2\n\ndata: [DONE]\n\n");
    tokio::time::timeout(Duration::from_secs(5), shutdown).await.unwrap().unwrap();
}

#[tokio::test]
async fn sigterm_lets_the_stream_finish_flushes_the_ledger_and_exits_zero() {
    use tokio::io::AsyncReadExt;
    let mock = Mock::start(|_| {
        Reply::sse(vec![
            Step::Data(Bytes::from_static(b"data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"delta\":{}}]}\n\n")),
            Step::Sleep(Duration::from_millis(400)),
            Step::Data(Bytes::from_static(b"data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")),
        ])
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = |_: ()| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (proxy_port, admin_port) = (port(()), port(()));
    let db = format!("sqlite://{}/tg.db", dir.path().display());
    let cfg = dir.path().join("tollgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{proxy_port}\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\
             [database]\nurl = \"{db}\"\n[[providers]]\nname = \"openai\"\nkind = \"openai\"\n\
             base_url = \"{}\"\napi_key = \"sk-up\"\n",
            mock.url()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_tollgate");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin).arg("--config").arg(&cfg).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().split('\t').next().unwrap().trim().to_owned()
    };
    let org = cli(&["organization", "create", "acme"]);
    let project = cli(&["project", "create", "--org", &org, "web"]);
    let user = cli(&["user", "create", "--org", &org, "alice"]);
    let key = cli(&["key", "create", "--user", &user, "--project", &project]);
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{proxy_port}/v1/chat/completions");
    let response = loop {
        match client().request(openai_post(&url, &key, r#"{"model":"gpt-4o-mini","stream":true}"#)).await {
            Ok(r) => break r,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"), "stream cut by shutdown");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).await.unwrap();
    assert!(!log.contains(&key), "the tollgate key reached the log");
    let store = tollgate::store::open(&db, tollgate::store::PoolSettings::with_max(1)).await.unwrap();
    let records = store.list_cost_records(&Default::default(), &Default::default()).await.unwrap().data;
    assert_eq!(records.len(), 1, "the in-flight request's record was flushed before exit");
    assert_eq!((records[0].input_tokens, records[0].output_tokens), (Some(9), Some(3)));
}

#[tokio::test]
async fn streams_still_open_after_the_grace_period_are_cut_and_recorded() {
    let mock = Mock::start(|_| {
        Reply::sse(vec![
            Step::Data(Bytes::from_static(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5-20251001\",\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n")),
            Step::Sleep(Duration::from_secs(60)),
        ])
    })
    .await;
    let mut app = spawn_app_with_server_extra(mock, "shutdown_grace_ms = 200").await;
    let s = app.seed().await;
    let req = http::Request::post(app.url("/anthropic/v1/messages"))
        .header("x-api-key", &s.key)
        .body(http_body_util::Full::new(Bytes::from_static(br#"{"model":"claude-haiku-4-5","stream":true}"#)))
        .unwrap();
    let response = client().request(req).await.unwrap();
    let id = response.headers()["x-tollgate-request-id"].to_str().unwrap().to_owned();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    let store = app.running.as_ref().unwrap().store.clone();
    let started = std::time::Instant::now();
    app.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown waited for the stream");
    let filter = tollgate::store::RecordFilter {
        request_id: Some(uuid::Uuid::parse_str(&id).unwrap()),
        ..Default::default()
    };
    let records = store.list_cost_records(&filter, &Default::default()).await.unwrap().data;
    assert_eq!(records.len(), 1, "the cut stream's record was written before shutdown returned");
    assert_eq!(records[0].usage_source, tollgate::store::UsageSource::Partial);
    assert_eq!(records[0].input_tokens, Some(40));
}

#[tokio::test]
async fn a_connection_that_never_sent_a_byte_does_not_hold_up_shutdown() {
    let mut app = spawn_app(|_| Reply::json(200, "{}")).await;
    // Clients' pools open connections they may never use.
    let _silent = tokio::net::TcpStream::connect(app.proxy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let running = app.running.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.shutdown()).await.expect("shutdown held up");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}
