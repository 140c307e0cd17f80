//! The ledger on its own: a full queue never drops a record, a flush covers records
//! still waiting for room, a retried request id is not counted twice, and the window
//! counters equal the sum of the records.

use std::str::FromStr;

use chrono::Utc;
use rust_decimal::Decimal;
use tollgate::ledger::Ledger;
use tollgate::store::{self, CostRecord, NewUser, RecordFilter, UsageSource};
use tollgate::window::Period;
use uuid::Uuid;

fn record(org: Uuid, project: Uuid, user: Uuid, cost: &str) -> CostRecord {
    CostRecord {
        id: Uuid::now_v7(),
        request_id: Uuid::now_v7(),
        created_at: Utc::now(),
        organization_id: org,
        project_id: project,
        user_id: user,
        api_key_id: None,
        provider: "openai".into(),
        model: Some("gpt-4o".into()),
        endpoint: "/v1/chat/completions".into(),
        input_tokens: Some(10),
        cached_input_tokens: Some(0),
        cache_write_tokens: Some(0),
        output_tokens: Some(5),
        reasoning_tokens: Some(0),
        cost_usd: Decimal::from_str(cost).unwrap(),
        status_code: 200,
        latency_ms: 3,
        streamed: false,
        usage_source: UsageSource::Reported,
        priced: true,
    }
}

/// A fresh database with one organization, project and user.
struct Owner {
    _dir: tempfile::TempDir,
    store: tollgate::store::Store,
    org: tollgate::store::Organization,
    project: tollgate::store::Project,
    user: tollgate::store::User,
}

async fn owner() -> Owner {
    let _dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}/l.db", _dir.path().display()), 4).await.unwrap();
    let org = store.create_organization("o").await.unwrap();
    let project = store.create_project(org.id, "p").await.unwrap();
    let user = store
        .create_user(&NewUser { organization_id: org.id, external_id: "u".into(), email: None })
        .await
        .unwrap();
    Owner { _dir, store, org, project, user }
}

#[tokio::test]
async fn a_full_queue_loses_nothing_and_counters_match_the_records() {
    let Owner { _dir, store, org, project, user } = owner().await;
    // A queue of one: almost every record takes the overflow path.
    let (ledger, _task) = Ledger::start(store.clone(), 1);
    let n = 700;
    let mut expected = Decimal::ZERO;
    let mut first = None;
    for i in 0..n {
        let cost = format!("0.000{:03}1", i % 1000);
        let r = record(org.id, project.id, user.id, &cost);
        expected += r.cost_usd;
        first.get_or_insert_with(|| r.clone());
        ledger.record(r);
    }
    // The same request id again (a retried write) must not count twice.
    ledger.record(first.clone().unwrap());
    ledger.flush().await;
    assert_eq!(ledger.depth(), 0);
    let filter = RecordFilter { user_id: Some(user.id), ..Default::default() };
    let mut count = 0;
    let mut page = tollgate::store::PageRequest { cursor: None, limit: 1000 };
    loop {
        let got = store.list_cost_records(&filter, &page).await.unwrap();
        count += got.data.len();
        match got.next_cursor {
            Some(c) => page.cursor = Some(Uuid::parse_str(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(count, n);
    for (scope, period) in [(user.id, Period::Daily), (project.id, Period::Monthly), (org.id, Period::Total)]
    {
        let spent = store.window_spend(scope, period, period.start(Utc::now())).await.unwrap();
        assert_eq!(spent, expected, "{period:?}");
    }
    let rows = store.spend(&filter, tollgate::store::GroupBy::User).await.unwrap();
    assert_eq!(rows[0].cost_usd, expected.normalize());
    assert_eq!(rows[0].requests, n as u64);
}

#[tokio::test]
async fn deleting_an_owner_with_history_is_refused() {
    let Owner { _dir, store, org, project, user } = owner().await;
    store.insert_cost_records(&[record(org.id, project.id, user.id, "0.5")]).await.unwrap();
    for result in [
        store.delete_user(user.id).await,
        store.delete_project(project.id).await,
        store.delete_organization(org.id).await,
    ] {
        let err = result.unwrap_err().to_string();
        assert!(err.contains("archive"), "{err}");
    }
    assert!(store.get_user(user.id).await.is_ok());
}

#[tokio::test]
async fn a_replayed_batch_counts_only_its_new_records() {
    let Owner { _dir, store, org, project, user } = owner().await;
    let old: Vec<CostRecord> = (0..70).map(|_| record(org.id, project.id, user.id, "0.25")).collect();
    assert_eq!(store.insert_cost_records(&old).await.unwrap(), 70);
    // A batch replayed after an ambiguous failure: the old records again (more than one
    // INSERT statement's worth) mixed with new ones, one of them with text that needs care.
    let mut new: Vec<CostRecord> = (0..5).map(|_| record(org.id, project.id, user.id, "0.125")).collect();
    new[0].model = Some("a \"quoted\" model\\with\ttab, é".into());
    let mut replay = old.clone();
    replay.splice(30..30, new.iter().cloned());
    assert_eq!(store.insert_cost_records(&replay).await.unwrap(), 5);
    assert_eq!(store.insert_cost_records(&replay).await.unwrap(), 0);
    let expected = Decimal::from_str("18.125").unwrap(); // 70 x 0.25 + 5 x 0.125
    for (scope, period) in [(user.id, Period::Daily), (project.id, Period::Weekly), (org.id, Period::Total)] {
        let spent = store.window_spend(scope, period, period.start(Utc::now())).await.unwrap();
        assert_eq!(spent, expected, "{period:?}");
    }
    let filter = RecordFilter { request_id: Some(new[0].request_id), ..Default::default() };
    let page = tollgate::store::PageRequest { cursor: None, limit: 10 };
    let got = store.list_cost_records(&filter, &page).await.unwrap();
    assert_eq!(got.data.len(), 1);
    assert_eq!(got.data[0].model, new[0].model);
    assert_eq!(got.data[0].cost_usd, new[0].cost_usd);
}

#[tokio::test]
async fn one_batch_over_many_windows_moves_each_exactly_once() {
    let Owner { _dir, store, org, project, .. } = owner().await;
    // 70 users x 4 periods: more windows than one statement reads or writes.
    let mut users = Vec::new();
    for i in 0..70 {
        let new = NewUser { organization_id: org.id, external_id: format!("u{i}"), email: None };
        users.push(store.create_user(&new).await.unwrap().id);
    }
    for round in 1..=2 {
        let batch: Vec<CostRecord> = users
            .iter()
            .flat_map(|u| [record(org.id, project.id, *u, "0.5"), record(org.id, project.id, *u, "0.25")])
            .collect();
        assert_eq!(store.insert_cost_records(&batch).await.unwrap(), 140);
        let round = Decimal::from(round);
        for user in &users {
            let spent =
                store.window_spend(*user, Period::Weekly, Period::Weekly.start(Utc::now())).await.unwrap();
            assert_eq!(spent, Decimal::from_str("0.75").unwrap() * round);
        }
        let spent =
            store.window_spend(project.id, Period::Total, chrono::DateTime::UNIX_EPOCH).await.unwrap();
        assert_eq!(spent, Decimal::from_str("52.5").unwrap() * round);
    }
}
