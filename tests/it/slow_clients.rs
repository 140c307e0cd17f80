//! Clients that hold connections without doing their part: a thousand that send a few
//! bytes and stall, one that stops reading a stream, one that pauses an upload, and
//! connections left idle. Each is closed within its configured timeout, reservations
//! come back, and everyone else keeps being served.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::budgets::budget;
use crate::support::{
    client, h2_client, openai_post, send, spawn_app_with_server_extra, Mock, Reply, Step, TestApp,
};

fn ok_json() -> Reply {
    Reply::json(
        200,
        r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
    )
}

/// Reads until the peer closes (or errors); `None` if it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut got)).await {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_connections_are_closed_and_others_are_served_meanwhile() {
    let app = spawn_app_with_server_extra(Mock::start(|_| ok_json()).await, "head_timeout_ms = 1000").await;
    let s = app.seed().await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..1000 {
        let mut conn = TcpStream::connect(app.proxy).await.unwrap();
        // Ten bytes of a request line, or of the HTTP/2 preface, then nothing.
        let start: &[u8] = if i % 2 == 0 { b"POST /v1/c" } else { b"PRI * HTTP" };
        conn.write_all(start).await.unwrap();
        stalled.push(conn);
    }
    // Meanwhile real requests are served, promptly.
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    for _ in 0..20 {
        let t = Instant::now();
        let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, body)).await;
        assert_eq!(got.status, 200);
        assert!(t.elapsed() < Duration::from_millis(500), "a request took {:?}", t.elapsed());
    }
    for (i, conn) in stalled.iter_mut().enumerate() {
        let left = Duration::from_secs(10).saturating_sub(started.elapsed());
        assert!(closed_within(conn, left).await.is_some(), "connection {i} still open after 10 s");
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the head timeout");
}

/// An SSE stream far larger than the socket buffers between tollgate and the client.
fn huge_stream() -> Reply {
    let content = "x".repeat(60_000);
    let event = format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}}}}]}}\n\n"
    );
    let event = Bytes::from(event);
    Reply::sse((0..2000).map(|_| Step::Data(event.clone())).collect())
}

async fn reserved(app: &TestApp, budget_id: &str) -> String {
    let st: Value = app.admin("GET", &format!("/v1/budgets/{budget_id}"), None).await.json();
    st["reserved_usd"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_stream_is_cut_and_its_reservation_returns() {
    let app =
        spawn_app_with_server_extra(Mock::start(|_| huge_stream()).await, "send_timeout_ms = 500").await;
    let s = app.seed().await;
    let b = budget(&app, "user", &s.user_id, "100", "daily", true).await;
    let mut conn = TcpStream::connect(app.proxy).await.unwrap();
    let body = r#"{"model":"gpt-4o-mini","stream":true,"max_tokens":1000,"messages":[]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        s.key,
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let n = conn.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));
    let request_id = String::from_utf8_lossy(&head[..n])
        .lines()
        .find_map(|l| l.strip_prefix("x-tollgate-request-id: ").map(str::to_owned))
        .unwrap();
    // The client reads nothing more; its request holds a reservation meanwhile.
    assert_ne!(reserved(&app, &b).await, "0");
    let cut = Instant::now();
    wait_until(Duration::from_secs(10), "reservation returned", || async { reserved(&app, &b).await == "0" })
        .await;
    assert!(cut.elapsed() >= Duration::from_millis(400), "cut before the send timeout");
    let ledger = app.running.as_ref().unwrap().ledger.clone();
    ledger.flush().await;
    let got = app.admin("GET", &format!("/v1/cost-records?request_id={request_id}"), None).await.json();
    let record = &got["data"][0];
    assert_eq!(record["streamed"], true, "{got}");
    assert!(record["output_tokens"].as_u64().unwrap() > 0, "{record}");
    assert_ne!(record["usage_source"], "reported", "{record}");
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmetered_upload_that_pauses_past_the_body_timeout_is_cut() {
    let app = spawn_app_with_server_extra(Mock::start(|_| ok_json()).await, "body_timeout_ms = 300").await;
    let s = app.seed().await;
    let mut conn = TcpStream::connect(app.proxy).await.unwrap();
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\nfirst bytes",
        s.key
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let answer = closed_within(&mut conn, Duration::from_secs(5)).await.expect("still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 5"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_keepalive_timeout() {
    let app =
        spawn_app_with_server_extra(Mock::start(|_| ok_json()).await, "keepalive_timeout_ms = 400").await;
    let s = app.seed().await;
    // HTTP/1.1: served, then left open with nothing in flight.
    let mut h1 = TcpStream::connect(app.proxy).await.unwrap();
    let request = format!("GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n", s.key);
    h1.write_all(request.as_bytes()).await.unwrap();
    // HTTP/2: the preface and an empty SETTINGS frame, then nothing.
    let mut h2 = TcpStream::connect(app.proxy).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    let started = Instant::now();
    let answer =
        closed_within(&mut h1, Duration::from_secs(5)).await.expect("HTTP/1.1 connection still open");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    let frames = closed_within(&mut h2, Duration::from_secs(5)).await.expect("HTTP/2 connection still open");
    // A GOAWAY frame (type 7) was sent before the close.
    assert!(frames.windows(4).any(|w| w[3] == 7 && w[0] == 0), "no GOAWAY in {frames:?}");
    assert!(started.elapsed() >= Duration::from_millis(350), "closed before the keepalive timeout");
    // A connection busy with a long request is not idle: a slow answer still arrives.
    let slow = Mock::start(|_| Reply { head_delay: Duration::from_millis(1200), ..ok_json() }).await;
    let app = spawn_app_with_server_extra(slow, "keepalive_timeout_ms = 400").await;
    let s = app.seed().await;
    let body = r#"{"model":"gpt-4o-mini","messages":[]}"#;
    for c in [client(), h2_client()] {
        assert_eq!(send(&c, openai_post(&app.url("/v1/chat/completions"), &s.key, body)).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_the_client_stops_reading_is_cut_and_its_reservation_returns() {
    let app =
        spawn_app_with_server_extra(Mock::start(|_| huge_stream()).await, "send_timeout_ms = 500").await;
    let s = app.seed().await;
    let b = budget(&app, "user", &s.user_id, "100", "daily", true).await;
    let body = r#"{"model":"gpt-4o-mini","stream":true,"max_tokens":1000,"messages":[]}"#;
    let response =
        h2_client().request(openai_post(&app.url("/v1/chat/completions"), &s.key, body)).await.unwrap();
    assert_eq!(response.status(), 200);
    // The body is never read: HTTP/2 flow control stops the stream, no write blocks.
    let _unread = response.into_body();
    assert_ne!(reserved(&app, &b).await, "0");
    let cut = Instant::now();
    wait_until(Duration::from_secs(10), "reservation returned", || async { reserved(&app, &b).await == "0" })
        .await;
    assert!(cut.elapsed() >= Duration::from_millis(300), "cut before the send timeout");
}
