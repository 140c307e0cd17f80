//! The ledger on its own, on both backends: a full queue never drops a record, a flush
//! covers records still waiting for room, a retried request id is not counted twice, the
//! window counters equal the sum of the records, and the window moves it reports add up
//! to what it wrote. (The store's side of it is in contract/ledger.rs.)

use chrono::Utc;
use rust_decimal::Decimal;
use tollgate::ledger::Ledger;
use tollgate::store::{GroupBy, PageRequest, RecordFilter};
use tollgate::window::Period;
use uuid::Uuid;

use crate::db::{Backend, TestDb};
use crate::factory::{cost_record, Factory};

#[tokio::test]
async fn sqlite_a_full_queue_loses_nothing_and_counters_match_the_records() {
    a_full_queue_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_full_queue_loses_nothing_and_counters_match_the_records() {
    a_full_queue_loses_nothing(Backend::Postgres).await;
}

async fn a_full_queue_loses_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let f = Factory::new(db.store().await, &db.url);
    let owner = f.owner().await;
    let store = f.store.clone();
    // A queue of one: almost every record takes the overflow path.
    let (moved, mut moved_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ledger, _task) = Ledger::start(store.clone(), 1, Some(moved));
    let n = 700;
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
    let filter = RecordFilter { user_id: Some(owner.user.id), ..RecordFilter::default() };
    let mut count = 0;
    let mut page = PageRequest { cursor: None, limit: 1000 };
    loop {
        let got = store.list_cost_records(&filter, &page).await.unwrap();
        count += got.data.len();
        match got.next_cursor {
            Some(c) => page.cursor = Some(Uuid::parse_str(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(count, n);
    let (org, project, user) = (owner.org.id, owner.project.id, owner.user.id);
    for (scope, period) in [(user, Period::Daily), (project, Period::Monthly), (org, Period::Total)] {
        let spent = store.window_spend(scope, period, period.start(Utc::now())).await.unwrap();
        assert_eq!(spent, expected, "{period:?}");
    }
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
}
