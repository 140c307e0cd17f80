//! Ledger throughput: how many cost records per second the batched writer puts into
//! SQLite (records and spend-window counters in the same transactions).
//!
//! `cargo run --release --example ledger_bench -- [RECORDS]` (default 200000).

use std::time::Instant;

use chrono::Utc;
use rust_decimal::Decimal;
use tollgate::ledger::Ledger;
use tollgate::store::{self, CostRecord, NewKey, NewUser, UsageSource};
use uuid::Uuid;

// The same allocator as the tollgate binary, so the numbers match what it would do.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200_000);
    let dir = tempfile_dir()?;
    let url = format!("sqlite://{}/bench.db", dir.display());
    let store = store::open(&url, 4).await?;
    let org = store.create_organization("bench").await?;
    let project = store.create_project(org.id, "p").await?;
    let mut users = Vec::new();
    for i in 0..8 {
        let user = store
            .create_user(&NewUser { organization_id: org.id, external_id: format!("u{i}"), email: None })
            .await?;
        let key = tollgate::identity::generate_key();
        let key = store
            .create_key(&NewKey {
                user_id: user.id,
                project_id: project.id,
                name: None,
                expires_at: None,
                key_hash: key.hash,
                prefix: key.prefix,
            })
            .await?;
        users.push((user.id, key.id));
    }
    let (ledger, _task) = Ledger::start(store.clone(), 65_536);
    let started = Instant::now();
    for i in 0..n {
        let (user_id, key_id) = users[i % users.len()];
        ledger.record(CostRecord {
            id: Uuid::now_v7(),
            request_id: Uuid::now_v7(),
            created_at: Utc::now(),
            organization_id: org.id,
            project_id: project.id,
            user_id,
            api_key_id: Some(key_id),
            provider: "openai".into(),
            model: Some("gpt-4o-mini-2024-07-18".into()),
            endpoint: "/v1/chat/completions".into(),
            input_tokens: Some(1200),
            cached_input_tokens: Some(0),
            cache_write_tokens: Some(0),
            output_tokens: Some(300),
            reasoning_tokens: Some(0),
            cost_usd: Decimal::new(36, 5),
            status_code: 200,
            latency_ms: 420,
            streamed: true,
            usage_source: UsageSource::Reported,
            priced: true,
        });
        // Let the writer run while we produce, as request tasks would.
        if i % 1024 == 0 {
            tokio::task::yield_now().await;
        }
    }
    ledger.flush().await;
    let secs = started.elapsed().as_secs_f64();
    let spent =
        store.window_spend(project.id, tollgate::window::Period::Total, chrono::DateTime::UNIX_EPOCH).await?;
    println!("records        {n}");
    println!("seconds        {secs:.3}");
    println!("records/s      {:.0}", n as f64 / secs);
    println!("project total  {spent} USD (expected {})", Decimal::new(36, 5) * Decimal::from(n));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tollgate-ledger-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
