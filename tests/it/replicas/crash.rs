//! SIGKILL mid-traffic loses no cost record: every request the upstream received has
//! exactly one record after a restart; the answered ones as the provider reported them,
//! the interrupted ones `estimated` (status 0).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tollgate::store::{self, PageRequest, PoolSettings, RecordFilter, UsageSource};

use super::{eventually, Replica};
use crate::support::{client, openai_post, seed_at, Mock, Reply, Step};

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#;
const FIRST_CHUNK: &str = "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_200_requests_in_flight_loses_no_record() {
    // 100 streams that send one chunk and hang, 50 answers that hang before their head,
    // 50 answered at once.
    let never = Arc::new(Notify::new());
    let hold = Arc::clone(&never);
    let mock = Mock::start(move |seen| {
        let body = String::from_utf8_lossy(&seen.body);
        if body.contains("\"stream\":true") {
            Reply::sse(vec![Step::Data(Bytes::from(FIRST_CHUNK)), Step::WaitFor(Arc::clone(&hold))])
        } else if body.contains("slow") {
            Reply { head_delay: Duration::from_secs(600), ..Reply::json(200, ANSWER) }
        } else {
            Reply::json(200, ANSWER)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/tollgate.db", dir.path().display());
    let mut process = Replica::start_in(dir.path(), &db, &mock.url(), "").await;
    let seeded = seed_at(process.admin).await;
    let http = client();
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let streaming = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (model, stream) = match i % 4 {
            0 | 1 => ("gpt-4o-mini", true),
            2 => ("gpt-4o-mini-slow", false),
            _ => ("gpt-4o-mini", false),
        };
        let body = format!(
            r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"n{i}"}}]}}"#
        );
        let req = openai_post(&process.url("/v1/chat/completions"), &seeded.key, &body);
        let http = http.clone();
        let (answered, streaming) = (Arc::clone(&answered), Arc::clone(&streaming));
        tasks.push(tokio::spawn(async move {
            let Ok(response) = http.request(req).await else { return };
            let id = response.headers()["x-tollgate-request-id"].to_str().unwrap().to_owned();
            let mut body = response.into_body();
            if stream {
                // Hold the stream open once its first chunk is here.
                let _first = body.frame().await;
                streaming.lock().unwrap().push(id);
                let _ = body.collect().await;
            } else if body.collect().await.is_ok() {
                answered.lock().unwrap().push(id);
            }
        }));
    }
    eventually(Duration::from_secs(30), "upstream got every request and answered what it answers", || {
        let (seen, answered, streaming) = (
            mock.seen.lock().unwrap().len(),
            answered.lock().unwrap().len(),
            streaming.lock().unwrap().len(),
        );
        async move { seen == 200 && answered == 50 && streaming == 100 }
    })
    .await;
    // The answered requests settle as their bodies end; give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.kill9().await;
    for task in tasks {
        let _ = task.await;
    }

    let mut process = Replica::start_in(dir.path(), &db, &mock.url(), "").await;
    let store = store::open(&db, PoolSettings::with_max(2)).await.unwrap();
    let filter = RecordFilter::default();
    let records =
        store.list_cost_records(&filter, &PageRequest { cursor: None, limit: 1000 }).await.unwrap().data;
    assert_eq!(records.len(), 200, "one record per request the upstream received");
    let mut ids: Vec<_> = records.iter().map(|r| r.request_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    for id in answered.lock().unwrap().iter() {
        let r = records.iter().find(|r| r.request_id.to_string() == *id).unwrap();
        assert_eq!(r.usage_source, UsageSource::Reported, "{r:?}");
        assert_eq!((r.input_tokens, r.output_tokens), (Some(11), Some(7)));
        assert_eq!(r.status_code, 200);
    }
    for id in streaming.lock().unwrap().iter() {
        let r = records.iter().find(|r| r.request_id.to_string() == *id).unwrap();
        assert_eq!(r.usage_source, UsageSource::Estimated, "{r:?}");
        assert_eq!(r.status_code, 0);
        assert!(r.streamed);
        assert!(r.cost_usd > rust_decimal::Decimal::ZERO, "priced from the request: {r:?}");
    }
    let estimated = records.iter().filter(|r| r.usage_source == UsageSource::Estimated).count();
    assert_eq!(estimated, 150);
    // The journal is emptied into the store: only the new process's segment is left.
    let segments = tollgate::journal::segments(&dir.path().join("journal")).unwrap();
    assert_eq!(segments.len(), 1, "{segments:?}");
    process.stop().await;
    never.notify_waiters();
}
