//! The ledger on its own, on both backends: records pass through the journal into the
//! store exactly once, window counters equal the sum of the records, a restart writes
//! what a crash left in the journal (unsettled requests as estimated), and a database
//! that is away leaves records in the journal, not lost, until it is back. (The store's
//! side of it is in contract/ledger.rs.)

use std::time::Duration;

use chrono::Utc;
use rust_decimal::Decimal;
use sqlx::Connection;
use tollgate::journal::{self, Admitted, Entry, Journal, JournalSettings};
use tollgate::ledger::{Ledger, Moved};
use tollgate::pricing::PriceList;
use tollgate::store::{GroupBy, PageRequest, RecordFilter, Store, UsageSource};
use tollgate::window::Period;
use uuid::Uuid;

use crate::db::{Backend, TestDb};
use crate::factory::{cost_record, Factory, Owner};

fn settings(dir: &std::path::Path) -> JournalSettings {
    JournalSettings { dir: dir.join("journal"), max_bytes: 1 << 30, fsync: Duration::from_millis(5) }
}

async fn open(store: &Store, dir: &std::path::Path, moved: Option<Moved>) -> Ledger {
    open_with_task(store, dir, moved).await.0
}

async fn open_with_task(
    store: &Store,
    dir: &std::path::Path,
    moved: Option<Moved>,
) -> (Ledger, tokio::task::JoinHandle<()>) {
    let prices = PriceList::shipped().unwrap();
    let unsettled = Box::new(move |a: &Admitted| tollgate::proxy::metering::unsettled_record(a, &prices));
    Ledger::open(store.clone(), &settings(dir), unsettled, moved).await.unwrap()
}

/// Every cost record of `owner`'s user, by request id.
async fn records(store: &Store, owner: &Owner) -> Vec<tollgate::store::CostRecord> {
    let filter = RecordFilter { user_id: Some(owner.user.id), ..RecordFilter::default() };
    let mut all = Vec::new();
    let mut page = PageRequest { cursor: None, limit: 1000 };
    loop {
        let got = store.list_cost_records(&filter, &page).await.unwrap();
        all.extend(got.data);
        match got.next_cursor {
            Some(c) => page.cursor = Some(Uuid::parse_str(&c).unwrap()),
            None => return all,
        }
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::db::Backend::Sqlite).await; })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(crate::db::Backend::Postgres).await; })*
        }
    };
}

both_backends!(
    records_pass_through_the_journal_once_and_counters_match,
    a_restart_writes_what_a_crash_left_in_the_journal,
    with_the_database_away_records_wait_in_the_journal_not_in_memory,
);

async fn records_pass_through_the_journal_once_and_counters_match(backend: Backend) {
    let db = TestDb::new(backend).await;
    let f = Factory::new(db.store().await, &db.url);
    let owner = f.owner().await;
    let store = f.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let (moved, mut moved_rx) = tokio::sync::mpsc::unbounded_channel();
    let ledger = open(&store, dir.path(), Some(moved)).await;
    let n = 3000;
    let mut expected = Decimal::ZERO;
    let mut first = None;
    for i in 0..n {
        let r = cost_record(&owner, &format!("0.000{:03}1", i % 1000));
        expected += r.cost_usd;
        first.get_or_insert_with(|| r.clone());
        ledger.record(r);
    }
    // The same request id again (a retried write) must not count twice.
    ledger.record(first.clone().unwrap());
    ledger.flush().await;
    assert_eq!(ledger.depth(), 0);
    assert_eq!(records(&store, &owner).await.len(), n);
    let (org, project, user) = (owner.org.id, owner.project.id, owner.user.id);
    for (scope, period) in [(user, Period::Daily), (project, Period::Monthly), (org, Period::Total)] {
        let spent = store.window_spend(scope, period, period.start(Utc::now())).await.unwrap();
        assert_eq!(spent, expected, "{period:?}");
    }
    let filter = RecordFilter { user_id: Some(user), ..RecordFilter::default() };
    let rows = store.spend(&filter, GroupBy::User).await.unwrap();
    assert_eq!(rows[0].cost_usd, expected.normalize());
    assert_eq!(rows[0].requests, n as u64);
    // What the writes reported moving adds up to what was written, window by window.
    let mut reported = Decimal::ZERO;
    let mut settled = Decimal::ZERO;
    while let Ok(batch) = moved_rx.try_recv() {
        for w in batch.windows.iter().filter(|w| w.scope_id == user && w.period == Period::Total) {
            reported += w.delta();
        }
        for (_, _, _, cost) in batch.settled.iter().filter(|(id, p, _, _)| *id == user && *p == Period::Total)
        {
            settled += cost;
        }
    }
    // Every record handed over is reported settled once, the replayed one included.
    assert_eq!(settled, expected + first.unwrap().cost_usd);
    assert_eq!(reported, expected);
    // A clean close leaves no segment with anything in it.
    assert!(ledger.close(Duration::from_secs(10)).await);
    let left: u64 = journal::segments(&settings(dir.path()).dir)
        .unwrap()
        .iter()
        .map(|i| std::fs::metadata(journal::segment_path(&settings(dir.path()).dir, *i)).unwrap().len())
        .sum();
    assert_eq!(left, 0, "segments left after a clean close");
}

fn admitted(owner: &Owner, model: &str, request_bytes: u64) -> Admitted {
    Admitted {
        request_id: Uuid::now_v7(),
        created_at: Utc::now(),
        organization_id: owner.org.id,
        project_id: owner.project.id,
        user_id: owner.user.id,
        api_key_id: None,
        provider: "openai".into(),
        endpoint: "/v1/chat/completions".into(),
        model: Some(model.into()),
        request_bytes,
        streamed: true,
    }
}

async fn a_restart_writes_what_a_crash_left_in_the_journal(backend: Backend) {
    let db = TestDb::new(backend).await;
    let f = Factory::new(db.store().await, &db.url);
    let owner = f.owner().await;
    let store = f.store.clone();
    let dir = tempfile::tempdir().unwrap();
    // What a process killed mid-traffic leaves: spread over two segments, a request that
    // settled, one that never did, and one whose record was already stored before the
    // crash (its segment not yet deleted).
    let answered = admitted(&owner, "gpt-4o", 400);
    let interrupted = admitted(&owner, "gpt-4o", 4001);
    let stored_before = admitted(&owner, "gpt-4o", 100);
    let record_of = |a: &Admitted, cost: &str| {
        let mut r = cost_record(&owner, cost);
        r.request_id = a.request_id;
        r
    };
    let answered_record = record_of(&answered, "0.0125");
    let stored_record = record_of(&stored_before, "0.5");
    store.insert_cost_records(std::slice::from_ref(&stored_record)).await.unwrap();
    {
        let crashed = Journal::open(&settings(dir.path()), 7, 0).unwrap();
        crashed.append(&Entry::Admitted(answered.clone())).unwrap();
        crashed.append(&Entry::Admitted(interrupted.clone())).unwrap();
        crashed.append(&Entry::Admitted(stored_before.clone())).unwrap();
        crashed.seal(7).unwrap();
        crashed.append(&Entry::Settled(Box::new(stored_record.clone()))).unwrap();
        crashed.append(&Entry::Settled(Box::new(answered_record.clone()))).unwrap();
    }
    assert_eq!(journal::segments(&settings(dir.path()).dir).unwrap(), vec![7, 8]);
    let (moved, mut moved_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ledger, task) = open_with_task(&store, dir.path(), Some(moved)).await;
    // Replayed before the ledger serves: nothing to wait for.
    let got = records(&store, &owner).await;
    assert_eq!(got.len(), 3, "{got:#?}");
    let find = |id: Uuid| got.iter().find(|r| r.request_id == id).unwrap();
    assert_eq!(find(answered.request_id).cost_usd, answered_record.cost_usd);
    assert_eq!(find(answered.request_id).usage_source, UsageSource::Reported);
    assert_eq!(find(stored_before.request_id).cost_usd, stored_record.cost_usd);
    let lost = find(interrupted.request_id);
    assert_eq!(lost.usage_source, UsageSource::Estimated);
    assert_eq!(lost.status_code, 0);
    assert_eq!(lost.input_tokens, Some(1001));
    assert_eq!(lost.output_tokens, Some(0));
    assert!(lost.priced);
    // gpt-4o input at $2.50 per million tokens.
    assert_eq!(lost.cost_usd, Decimal::new(1001 * 25, 7));
    assert!(lost.streamed);
    // The old segments are gone; only the new (empty) one is left.
    assert_eq!(journal::segments(&settings(dir.path()).dir).unwrap(), vec![9]);
    // The windows moved (for alerts), but nothing is reported settled: this process
    // never held that spend.
    let mut moved_total = Decimal::ZERO;
    while let Ok(batch) = moved_rx.try_recv() {
        assert!(batch.settled.is_empty());
        for w in batch.windows.iter().filter(|w| w.scope_id == owner.user.id && w.period == Period::Total) {
            moved_total += w.delta();
        }
    }
    assert_eq!(moved_total, answered_record.cost_usd + lost.cost_usd);
    // A second start finds nothing more to do, and nothing is counted twice.
    drop(ledger);
    task.abort();
    let _ = task.await;
    let _again = open(&store, dir.path(), None).await;
    assert_eq!(records(&store, &owner).await.len(), 3);
    let total =
        store.window_spend(owner.user.id, Period::Total, Period::Total.start(Utc::now())).await.unwrap();
    assert_eq!(total, answered_record.cost_usd + lost.cost_usd + stored_record.cost_usd);
}

/// Holds the database's write lock from another connection until dropped.
enum Outage {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Outage {
    async fn start(backend: Backend, url: &str) -> Outage {
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
                Outage::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("LOCK TABLE ai_cost_records IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Outage::Postgres(conn)
            }
        }
    }

    async fn end(self) {
        match self {
            Outage::Sqlite(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            }
            Outage::Postgres(mut c) => {
                sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            }
        }
    }
}

async fn with_the_database_away_records_wait_in_the_journal_not_in_memory(backend: Backend) {
    let db = TestDb::new(backend).await;
    let f = Factory::new(db.store().await, &db.url);
    let owner = f.owner().await;
    let store = f.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&store, dir.path(), None).await;
    let outage = Outage::start(backend, &db.url).await;
    let n = 500;
    let mut expected = Decimal::ZERO;
    for _ in 0..n {
        let r = cost_record(&owner, "0.001");
        expected += r.cost_usd;
        ledger.record(r);
    }
    // Nothing reaches the database; everything is on disk, each record once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ledger.depth(), n);
    let bytes = ledger.journal_bytes();
    assert!(bytes > 500 * n, "journal holds {bytes} bytes");
    assert!(tokio::time::timeout(Duration::from_millis(200), ledger.flush()).await.is_err());
    outage.end().await;
    tokio::time::timeout(Duration::from_secs(30), ledger.flush()).await.expect("ledger caught up");
    let got = records(&store, &owner).await;
    assert_eq!(got.len() as u64, n);
    let total =
        store.window_spend(owner.user.id, Period::Total, Period::Total.start(Utc::now())).await.unwrap();
    assert_eq!(total, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_is_waited_out_not_taken_for_bad_records() {
    let db = TestDb::new(Backend::Postgres).await;
    let f = Factory::new(db.store().await, &db.url);
    let owner = f.owner().await;
    let store = f.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&store, dir.path(), None).await;
    // The database goes away: it refuses new connections and drops the open ones.
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&crate::db::server_url()).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    for _ in 0..50 {
        ledger.record(cost_record(&owner, "0.01"));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(ledger.depth(), 50, "records set aside or lost while the database was away");
    sqlx::query(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), ledger.flush()).await.expect("caught up");
    assert_eq!(records(&store, &owner).await.len(), 50);
    assert!(!settings(dir.path()).dir.join("refused.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_record_whose_owner_is_gone_is_kept_aside_and_the_others_are_written() {
    let db = TestDb::new(Backend::Sqlite).await;
    let f = Factory::new(db.store().await, &db.url);
    let owner = f.owner().await;
    let store = f.store.clone();
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&store, dir.path(), None).await;
    let mut orphan = cost_record(&owner, "0.5");
    orphan.user_id = Uuid::now_v7();
    ledger.record(cost_record(&owner, "0.01"));
    ledger.record(orphan.clone());
    ledger.record(cost_record(&owner, "0.02"));
    ledger.flush().await;
    assert_eq!(records(&store, &owner).await.len(), 2);
    let kept = std::fs::read_to_string(settings(dir.path()).dir.join("refused.jsonl")).unwrap();
    let line: tollgate::store::CostRecord = serde_json::from_str(kept.trim()).unwrap();
    assert_eq!(line, orphan);
}
