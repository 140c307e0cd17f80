//! The journal under the running proxy: with the database away, metered requests keep
//! being served and recorded on disk; at the journal's size limit they are refused with
//! 503 `store_unavailable` (and not sent upstream) rather than served unrecorded; once
//! the database is back every served request has its record, once.

use std::time::Duration;

use sqlx::Connection;
use tollgate::store::{PageRequest, RecordFilter};

use crate::support::{client, openai_post, send, spawn_app_with, Mock, Reply};

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_away_requests_are_served_until_the_journal_is_full_then_refused() {
    let mock = Mock::start(|_| Reply::json(200, ANSWER)).await;
    let mut app = spawn_app_with(mock, "[ledger]\njournal_max_bytes = 1048576\n").await;
    let seeded = app.seed().await;
    // The database's write lock held elsewhere: the ledger cannot write a thing.
    let mut outage = sqlx::SqliteConnection::connect(&app.db_url()).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut outage).await.unwrap();
    let http = client();
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let mut served = 0;
    let refused = loop {
        let got = send(&http, openai_post(&app.url("/v1/chat/completions"), &seeded.key, body)).await;
        if got.status != 200 {
            break got;
        }
        served += 1;
        assert!(served < 5000, "the journal never filled up");
    };
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "store_unavailable");
    assert!(served > 300, "served {served} before the journal filled");
    // The refused request never left tollgate.
    assert_eq!(app.mock.seen.lock().unwrap().len(), served);
    let ledger = app.running.as_ref().unwrap().ledger.clone();
    assert_eq!(ledger.depth(), served as u64);

    sqlx::query("ROLLBACK").execute(&mut outage).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), ledger.flush()).await.expect("caught up");
    let store = app.running.as_ref().unwrap().store.clone();
    let records = store
        .list_cost_records(&RecordFilter::default(), &PageRequest { cursor: None, limit: 1000 })
        .await
        .unwrap();
    let mut count = records.data.len();
    let mut cursor = records.next_cursor;
    while let Some(c) = cursor {
        let page = PageRequest { cursor: Some(c.parse().unwrap()), limit: 1000 };
        let more = store.list_cost_records(&RecordFilter::default(), &page).await.unwrap();
        count += more.data.len();
        cursor = more.next_cursor;
    }
    assert_eq!(count, served);
    // The stored segments are let go, so the proxy serves again.
    let got = send(&http, openai_post(&app.url("/v1/chat/completions"), &seeded.key, body)).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert!(ledger.journal_bytes() < 1 << 20);
    app.shutdown().await;
}
