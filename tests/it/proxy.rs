//! Routing, header rules, byte-for-byte bodies both ways, HTTP/2, streaming without
//! buffering, upstream errors passed through, and 413/502/504.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::sync::Notify;

use crate::support::*;

fn ok_json() -> Reply {
    Reply::json(200, r#"{"id":"chatcmpl-1","object":"chat.completion"}"#)
}

#[tokio::test]
async fn openai_default_route_swaps_key_and_forwards_everything_else() {
    let app = spawn_app(|_| ok_json()).await;
    let s = app.seed().await;
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"héllo"}]}"#;
    let req = Request::post(app.url("/v1/chat/completions?foo=1&bar=%20x"))
        .header("authorization", format!("Bearer {}", s.key))
        .header("content-type", "application/json")
        .header("openai-organization", "org-abc")
        .header("x-custom-thing", "kept")
        .header("x-tollgate-user", "should-not-leave")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, r#"{"id":"chatcmpl-1","object":"chat.completion"}"#);
    let request_id = got.headers.get("x-tollgate-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok());

    let seen = app.mock.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/v1/chat/completions?foo=1&bar=%20x");
    assert_eq!(seen.body, body.as_bytes());
    let h = &seen.headers;
    assert_eq!(h["authorization"], format!("Bearer {OPENAI_KEY}").as_str());
    assert_eq!(h["openai-organization"], "org-abc");
    assert_eq!(h["x-custom-thing"], "kept");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["host"], app.mock.addr.to_string().as_str());
    for gone in ["x-tollgate-user", "x-drop-me", "proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} was forwarded");
    }
    assert!(!format!("{h:?}").contains(&s.key), "the tollgate key reached the upstream");
}

#[tokio::test]
async fn anthropic_accepts_x_api_key_and_bearer_and_sends_x_api_key() {
    let app = spawn_app(|_| Reply::json(200, r#"{"type":"message"}"#)).await;
    let s = app.seed().await;
    for (header, value) in [("x-api-key", s.key.clone()), ("authorization", format!("Bearer {}", s.key))] {
        let req = Request::post(app.url("/anthropic/v1/messages"))
            .header(header, value)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "prompt-caching-2024-07-31")
            .body(Full::new(Bytes::from_static(b"{\"model\":\"claude-3-5-haiku-latest\"}")))
            .unwrap();
        let got = send(&client(), req).await;
        assert_eq!(got.status, 200, "{header}: {:?}", got.body);
        let seen = app.mock.last();
        assert_eq!(seen.uri, "/v1/messages");
        assert_eq!(seen.headers["x-api-key"], ANTHROPIC_KEY);
        assert!(seen.headers.get("authorization").is_none());
        assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
        assert_eq!(seen.headers["anthropic-beta"], "prompt-caching-2024-07-31");
    }
}

#[tokio::test]
async fn gemini_key_query_parameter_is_replaced_by_the_header() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let s = app.seed().await;
    let url = app
        .url(&format!("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={}", s.key));
    let req = Request::post(url).body(Full::new(Bytes::from_static(b"{}"))).unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    let seen = app.mock.last();
    assert_eq!(seen.uri, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(seen.headers["x-goog-api-key"], GEMINI_KEY);

    let req = Request::post(app.url("/gemini/v1beta/models/gemini-2.5-flash:generateContent"))
        .header("x-goog-api-key", &s.key)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(send(&client(), req).await.status, 200);
    assert_eq!(app.mock.last().headers["x-goog-api-key"], GEMINI_KEY);
}

#[tokio::test]
async fn azure_style_base_url_keeps_deployment_path_and_api_version() {
    let app = spawn_app(|_| ok_json()).await;
    let s = app.seed().await;
    let got = send(&client(), openai_post(&app.url("/azure/chat/completions"), &s.key, "{}")).await;
    assert_eq!(got.status, 200);
    let seen = app.mock.last();
    assert_eq!(seen.uri, "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21");
    assert_eq!(seen.headers["api-key"], "az-upstream");
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn unmetered_paths_are_forwarded_after_authentication() {
    let app = spawn_app(|_| Reply::json(200, r#"{"object":"list","data":[]}"#)).await;
    let s = app.seed().await;
    let req = Request::get(app.url("/v1/models"))
        .header("authorization", format!("Bearer {}", s.key))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200);
    assert_eq!(app.mock.last().method, "GET");
    assert_eq!(app.mock.last().uri, "/v1/models");
}

#[tokio::test]
async fn large_binary_bodies_are_byte_identical_both_ways() {
    // 3 MiB of every byte value, upstream echoes it back in uneven chunks.
    let payload: Vec<u8> =
        (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let payload = Bytes::from(payload);
    let echo = payload.clone();
    let app = spawn_app(move |_| {
        let mut steps = Vec::new();
        let mut at = 0;
        let mut size = 1;
        while at < echo.len() {
            let end = (at + size).min(echo.len());
            steps.push(Step::Data(echo.slice(at..end)));
            at = end;
            size = size * 7 % 65_521 + 1;
        }
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            steps,
            head_delay: Duration::ZERO,
        }
    })
    .await;
    let s = app.seed().await;
    let req = Request::post(app.url("/v1/files"))
        .header("authorization", format!("Bearer {}", s.key))
        .header("content-type", "application/octet-stream")
        .body(Full::new(payload.clone()))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200);
    assert!(got.body == payload, "response body differs");
    assert!(app.mock.last().body == payload, "request body differs");
}

#[tokio::test]
async fn sse_stream_reaches_the_client_byte_identical_over_http2() {
    let events = [
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"lo \u{00e9}\"}}]}\r\n\r\n",
        ": comment\n\n",
        "data: [DONE]\n\n",
    ];
    let full_body: String = events.concat();
    let bytes = Bytes::from(full_body.clone());
    // Split at awkward places, including inside the two-byte 'é'.
    let cut = full_body.find('\u{00e9}').unwrap() + 1;
    let app = spawn_app(move |_| {
        Reply::sse(vec![
            Step::Data(bytes.slice(..7)),
            Step::Data(bytes.slice(7..cut)),
            Step::Data(bytes.slice(cut..cut + 3)),
            Step::Data(bytes.slice(cut + 3..)),
        ])
    })
    .await;
    let s = app.seed().await;
    for c in [client(), h2_client()] {
        let got = send(&c, openai_post(&app.url("/v1/chat/completions"), &s.key, r#"{"stream":true}"#)).await;
        assert_eq!(got.status, 200, "{:?}", got.body);
        assert_eq!(got.headers["content-type"], "text/event-stream");
        assert_eq!(got.body, full_body.as_bytes());
    }
    // The h2 client was served as HTTP/2 by tollgate, and tollgate spoke HTTP/1.1 upstream.
    assert_eq!(app.mock.last().version, http::Version::HTTP_11);
}

#[tokio::test]
async fn stream_is_not_buffered_first_event_arrives_before_second_is_sent() {
    let release = Arc::new(Notify::new());
    let r2 = Arc::clone(&release);
    let app = spawn_app(move |_| {
        Reply::sse(vec![
            Step::Data(Bytes::from_static(b"data: {\"n\":1}\n\n")),
            Step::Sleep(Duration::from_millis(500)),
            // The second event is only sent once the client has confirmed the first.
            Step::WaitFor(Arc::clone(&r2)),
            Step::Data(Bytes::from_static(b"data: {\"n\":2}\n\n")),
        ])
    })
    .await;
    let s = app.seed().await;
    let response =
        client().request(openai_post(&app.url("/v1/chat/completions"), &s.key, "{}")).await.unwrap();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event did not arrive before the second was sent: the stream is buffered")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: {\"n\":1}\n\n");
    release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "data: {\"n\":2}\n\n");
}

#[tokio::test]
async fn upstream_error_responses_pass_through_untouched() {
    let body = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    let app = spawn_app(move |_| {
        let mut r = Reply::json(429, body);
        r.headers.push(("retry-after".into(), "7".into()));
        r.headers.push(("x-ratelimit-remaining-requests".into(), "0".into()));
        r
    })
    .await;
    let s = app.seed().await;
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, "{}")).await;
    assert_eq!(got.status, 429);
    assert_eq!(got.body, body);
    assert_eq!(got.headers["retry-after"], "7");
    assert_eq!(got.headers["x-ratelimit-remaining-requests"], "0");
    assert!(got.headers.contains_key("x-tollgate-request-id"));
}

#[tokio::test]
async fn oversized_bodies_get_413_declared_or_streamed() {
    let mock = Mock::start(|_| ok_json()).await;
    let mut app = spawn_app_with_server_extra(mock, "max_request_bytes = 1024").await;
    let s = app.seed().await;
    let big = "x".repeat(2048);
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, &big)).await;
    assert_eq!(got.status, 413);
    assert_eq!(got.json()["error"]["code"], "request_too_large");
    assert!(app.mock.requests().is_empty(), "an oversized request reached the upstream");

    // Same limit when the body arrives chunked without a length.
    let (tx, body) = chunked_body();
    let req = Request::post(app.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", s.key))
        .body(body)
        .unwrap();
    let c: hyper_util::client::legacy::Client<_, http_body_util::StreamBody<_>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let sender = tokio::spawn(async move {
        for _ in 0..4 {
            if tx.send(Ok(http_body::Frame::data(Bytes::from(vec![b'y'; 700])))).await.is_err() {
                break;
            }
        }
    });
    let response = c.request(req).await.unwrap();
    assert_eq!(response.status(), 413);
    let _ = sender.await;
    // Under the limit still works.
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, "{}")).await;
    assert_eq!(got.status, 200);
    app.shutdown().await;
}

type ChunkTx = tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, std::convert::Infallible>>;

type ChunkBody = http_body_util::StreamBody<
    tokio_stream_shim::ReceiverStream<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
>;

fn chunked_body() -> (ChunkTx, ChunkBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, http_body_util::StreamBody::new(tokio_stream_shim::ReceiverStream(rx)))
}

/// A minimal `Stream` over an mpsc receiver (avoids a tokio-stream dependency).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_core::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[tokio::test]
async fn unreachable_upstream_is_502_in_the_provider_shape() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mock = Mock::start(|_| ok_json()).await;
    let extra = format!(
        "[[providers]]\nname = \"dead\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{port}\"\napi_key = \"k\"\n"
    );
    let app = spawn_app_with(mock, &extra).await;
    let s = app.seed().await;
    let req = Request::post(app.url("/dead/v1/messages"))
        .header("x-api-key", &s.key)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 502);
    let j = got.json();
    assert_eq!(j["type"], "error");
    assert_eq!(j["error"]["type"], "upstream_unavailable");
}

#[tokio::test]
async fn silent_upstream_is_504() {
    let app = spawn_app(|_| {
        let mut r = Reply::json(200, "{}");
        r.head_delay = Duration::from_secs(10);
        r
    })
    .await;
    let s = app.seed().await;
    let req = Request::post(app.url("/gemini/v1beta/models/gemini-2.5-flash:generateContent"))
        .header("x-goog-api-key", &s.key)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 504);
    let j = got.json();
    assert_eq!(j["error"]["status"], "upstream_timeout");
    assert_eq!(j["error"]["code"], 504);
}

#[tokio::test]
async fn malformed_http_gets_a_400_and_the_server_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(|_| ok_json()).await;
    let s = app.seed().await;
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad\x01Name: y\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(app.proxy).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 400"), "{raw:?} -> {text}");
    }
    assert!(app.mock.requests().is_empty());
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, "{}")).await;
    assert_eq!(got.status, 200);
}

#[tokio::test]
async fn unmetered_deny_and_unknown_model_reject_refuse_before_the_upstream() {
    let mock = Mock::start(|_| ok_json()).await;
    let app = spawn_app_with(mock, "[pricing]\nunknown_model = \"reject\"\n").await;
    let s = app.seed().await;
    let got =
        send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, r#"{"model":"my-own-llm"}"#))
            .await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["error"]["code"], "unknown_model");
    let got = send(
        &client(),
        openai_post(&app.url("/v1/chat/completions"), &s.key, r#"{"model":"gpt-4o-2024-08-06"}"#),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(app.mock.requests().len(), 1);

    let mock = Mock::start(|_| ok_json()).await;
    let app = spawn_app_with_server_extra(mock, "unmetered = \"deny\"").await;
    let s = app.seed().await;
    let req = Request::get(app.url("/anthropic/v1/models"))
        .header("x-api-key", &s.key)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["error"]["type"], "not_found");
    let got =
        send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, r#"{"model":"gpt-4o"}"#)).await;
    assert_eq!(got.status, 200);
    assert_eq!(app.mock.requests().len(), 1, "only the metered request went upstream");
}

#[tokio::test]
async fn a_client_that_stalls_in_the_http2_preface_is_closed_after_the_head_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with_server_extra(Mock::start(|_| ok_json()).await, "head_timeout_ms = 300").await;
    let started = std::time::Instant::now();
    let mut stalled = tokio::net::TcpStream::connect(app.proxy).await.unwrap();
    stalled.write_all(b"PRI").await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "still open after 5 s: {read:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Clients that do send a request are served as before, over HTTP/1.1 and HTTP/2.
    let s = app.seed().await;
    for client in [client(), h2_client()] {
        assert_eq!(send(&client, openai_post(&app.url("/v1/models"), &s.key, "")).await.status, 200);
    }
}

#[tokio::test]
async fn past_the_connection_limit_a_client_waits_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with_server_extra(Mock::start(|_| ok_json()).await, "max_connections = 1").await;
    let s = app.seed().await;
    let holder = tokio::net::TcpStream::connect(app.proxy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut waiting = tokio::net::TcpStream::connect(app.proxy).await.unwrap();
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
        s.key
    );
    waiting.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read_to_end(&mut answer)).await;
    assert!(early.is_err(), "served past the limit: {}", String::from_utf8_lossy(&answer));
    drop(holder);
    tokio::time::timeout(Duration::from_secs(5), waiting.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408_and_nothing_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with_server_extra(Mock::start(|_| ok_json()).await, "body_timeout_ms = 300").await;
    let s = app.seed().await;
    let mut stalled = tokio::net::TcpStream::connect(app.proxy).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":",
        s.key
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(app.mock.requests().is_empty(), "a half-received request reached the upstream");
}
