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
