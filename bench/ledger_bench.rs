//! Ledger throughput: how many cost records per second the batched writer puts into
//! the database (records and spend-window counters in the same transactions).
//!
//! `cargo run --release --example ledger_bench -- [RECORDS] [RATE]` (default 200000, as
//! fast as possible). With RATE (records per second) records arrive at that pace, as
//! from steady traffic, and the CPU time per record is what to watch. Records go
//! through the journal, as in `serve` (append, read back, write). A fresh SQLite file
//! by default; `LEDGER_BENCH_URL=postgres://...` writes into that (empty) database.

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
    let rate: Option<u64> = std::env::args().nth(2).map(|a| a.parse()).transpose()?;
    let dir = tempfile_dir()?;
    let url =
        std::env::var("LEDGER_BENCH_URL").unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.display()));
    let store = store::open(&url, store::PoolSettings::with_max(4)).await?;
    let org = store.create_organization(&format!("ledger-bench-{}", Uuid::now_v7())).await?;
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
    // The journal as `serve` runs it: appended per record, group fsync every 5 ms.
    let journal = tollgate::journal::JournalSettings {
        dir: dir.join("journal"),
        max_bytes: 1 << 34,
        fsync: std::time::Duration::from_millis(5),
    };
    let prices = tollgate::pricing::PriceList::shipped()?;
    let unsettled = Box::new(move |a: &tollgate::journal::Admitted| {
        tollgate::proxy::metering::unsettled_record(a, &prices)
    });
    let (ledger, _task) = Ledger::open(store.clone(), &journal, unsettled, None).await?;
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
            service_tier: Some("default".into()),
            inference_geo: None,
            audio_input_tokens: Some(0),
            audio_output_tokens: Some(0),
            web_search_requests: None,
            web_fetch_requests: None,
        });
        match rate {
            // One record every 1/RATE s, sent in 1 ms groups.
            Some(rate) if (i as u64 + 1).is_multiple_of(rate.div_ceil(1000)) => {
                let due = started + std::time::Duration::from_secs_f64((i + 1) as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            Some(_) => {}
            // Let the writer run while we produce, as request tasks would.
            None if i % 1024 == 0 => tokio::task::yield_now().await,
            None => {}
        }
    }
    ledger.flush().await;
    let secs = started.elapsed().as_secs_f64();
    let spent =
        store.window_spend(project.id, tollgate::window::Period::Total, chrono::DateTime::UNIX_EPOCH).await?;
    println!("records        {n}");
    println!("seconds        {secs:.3}");
    println!("records/s      {:.0}", n as f64 / secs);
    if let Some(cpu) = cpu_seconds() {
        println!("cpu us/record  {:.1} (whole process, producer included)", cpu / n as f64 * 1e6);
    }
    println!("project total  {spent} USD (expected {})", Decimal::new(36, 5) * Decimal::from(n));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// CPU time (user + system) this process used so far, from /proc (Linux only).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tollgate-ledger-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
