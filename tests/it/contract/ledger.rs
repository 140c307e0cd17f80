//! Contract: the ledger's side of the store. Request ids are unique (a replayed batch
//! counts once), money sums are exact to the last digit, window counters roll over at
//! UTC calendar boundaries, and reports filter, group and page alike on both backends.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use tollgate::store::{CostRecord, GroupBy, PageRequest, RecordFilter, Scope};
use tollgate::window::Period;
use uuid::Uuid;

use crate::contract::contract_tests;
use crate::factory::{at, cost_record, cost_record_with_dimensions, dec, Factory};

contract_tests!(
    a_replayed_batch_counts_only_its_new_records,
    one_batch_over_many_windows_moves_each_exactly_once,
    sums_are_exact_in_every_grouping,
    windows_roll_over_at_utc_calendar_boundaries,
    cost_records_filter_and_page,
    billed_dimensions_round_trip_and_absent_ones_stay_null,
);

async fn a_replayed_batch_counts_only_its_new_records(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    let old: Vec<CostRecord> = (0..70).map(|_| cost_record(&owner, "0.25")).collect();
    assert_eq!(s.insert_cost_records(&old).await.unwrap().inserted, 70);
    // Replayed after an ambiguous failure: the old records again (more than one INSERT
    // statement's worth on SQLite) mixed with new ones, one with text that needs care.
    let mut new: Vec<CostRecord> = (0..5).map(|_| cost_record(&owner, "0.125")).collect();
    new[0].model = Some("a \"quoted\" 'model'\\with\ttab, é".into());
    let mut replay = old.clone();
    replay.splice(30..30, new.iter().cloned());
    assert_eq!(s.insert_cost_records(&replay).await.unwrap().inserted, 5);
    assert_eq!(s.insert_cost_records(&replay).await.unwrap().inserted, 0);
    let expected = dec("18.125"); // 70 x 0.25 + 5 x 0.125
    for (scope, period) in
        [(owner.user.id, Period::Daily), (owner.project.id, Period::Weekly), (owner.org.id, Period::Total)]
    {
        assert_eq!(
            s.window_spend(scope, period, period.start(Utc::now())).await.unwrap(),
            expected,
            "{period:?}"
        );
    }
    let filter = RecordFilter { request_id: Some(new[0].request_id), ..RecordFilter::default() };
    let got = s.list_cost_records(&filter, &PageRequest::default()).await.unwrap();
    assert_eq!(got.data, vec![new[0].clone()]);
}

async fn one_batch_over_many_windows_moves_each_exactly_once(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    // 70 users x 3 scopes x 4 periods: more windows than one statement reads or writes.
    let mut owners = Vec::new();
    for _ in 0..70 {
        let mut o = owner.clone();
        o.user = f.user(&owner.org).create().await;
        owners.push(o);
    }
    for round in 1..=2 {
        let batch: Vec<CostRecord> =
            owners.iter().flat_map(|o| [cost_record(o, "0.5"), cost_record(o, "0.25")]).collect();
        assert_eq!(s.insert_cost_records(&batch).await.unwrap().inserted, 140);
        let round = Decimal::from(round);
        for o in &owners {
            let spent =
                s.window_spend(o.user.id, Period::Weekly, Period::Weekly.start(Utc::now())).await.unwrap();
            assert_eq!(spent, dec("0.75") * round);
        }
        let spent = s.window_spend(owner.project.id, Period::Total, DateTime::UNIX_EPOCH).await.unwrap();
        assert_eq!(spent, dec("52.5") * round);
    }
}

async fn sums_are_exact_in_every_grouping(f: Factory) {
    let s = &f.store;
    let a = f.owner().await;
    let mut b = a.clone();
    b.user = f.user(&a.org).create().await;
    b.project = f.project(&a.org).create().await;
    let (key, _) = f.key(&b.user, &b.project).create().await;
    // Amounts a float would get wrong, summed thousands of times.
    let mut batch = Vec::new();
    let mut total = Decimal::ZERO;
    for i in 0..3000u32 {
        let owner = if i % 3 == 0 { &b } else { &a };
        let mut r = cost_record(owner, if i % 2 == 0 { "0.1" } else { "0.0000002" });
        r.cost_usd += Decimal::new(i64::from(i), 9);
        r.created_at = at("2026-03-01T10:00:00Z") + Duration::hours(i64::from(i % 48));
        r.model = Some(if i % 5 == 0 { "claude-sonnet-4-5" } else { "gpt-4o" }.into());
        r.api_key_id = (i % 3 == 0).then_some(key.id);
        r.input_tokens = Some(u64::from(i));
        total += r.cost_usd;
        batch.push(r);
    }
    for chunk in batch.chunks(1000) {
        s.insert_cost_records(chunk).await.unwrap();
    }
    let everything = RecordFilter::default();
    for group_by in [
        GroupBy::Organization,
        GroupBy::Project,
        GroupBy::User,
        GroupBy::Key,
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::Day,
    ] {
        let rows = s.spend(&everything, group_by).await.unwrap();
        let sum: Decimal = rows.iter().map(|r| r.cost_usd).sum();
        assert_eq!(sum, total.normalize(), "{group_by:?}");
        assert_eq!(rows.iter().map(|r| r.requests).sum::<u64>(), 3000, "{group_by:?}");
        assert_eq!(
            rows.iter().map(|r| r.input_tokens).sum::<u64>(),
            (0..3000u64).sum::<u64>(),
            "{group_by:?}"
        );
        // Groups come sorted, and every group is named the same way on both backends.
        let groups: Vec<_> = rows.iter().map(|r| r.group.clone()).collect();
        let mut sorted = groups.clone();
        sorted.sort();
        assert_eq!(groups, sorted, "{group_by:?}");
    }
    let by_day = s.spend(&everything, GroupBy::Day).await.unwrap();
    let days: Vec<_> = by_day.iter().map(|r| r.group.clone().unwrap()).collect();
    assert_eq!(days, ["2026-03-01", "2026-03-02", "2026-03-03"]);
    let by_key = s.spend(&everything, GroupBy::Key).await.unwrap();
    assert_eq!(by_key[0].group, None, "records without a key group under null, first");
    assert_eq!(by_key[1].group, Some(key.id.to_string()));
    assert_eq!(by_key[1].requests, 1000);
    let by_user = s
        .spend(&RecordFilter { user_id: Some(b.user.id), ..RecordFilter::default() }, GroupBy::User)
        .await
        .unwrap();
    let expected: Decimal = batch.iter().filter(|r| r.user_id == b.user.id).map(|r| r.cost_usd).sum();
    assert_eq!(by_user.len(), 1);
    assert_eq!(by_user[0].cost_usd, expected.normalize());
    // A time range is [from, to).
    let range = RecordFilter {
        from: Some(at("2026-03-02T00:00:00Z")),
        to: Some(at("2026-03-03T00:00:00Z")),
        ..RecordFilter::default()
    };
    let in_range: Vec<_> = batch
        .iter()
        .filter(|r| r.created_at >= range.from.unwrap() && r.created_at < range.to.unwrap())
        .collect();
    let rows = s.spend(&range, GroupBy::Provider).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].group.as_deref(), Some("openai"));
    assert_eq!(rows[0].cost_usd, in_range.iter().map(|r| r.cost_usd).sum::<Decimal>().normalize());
    assert_eq!(rows[0].requests, in_range.len() as u64);
    assert!(in_range.len() > 1000 && in_range.len() < 2000, "the range cuts the data");
}

async fn windows_roll_over_at_utc_calendar_boundaries(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    // Sunday 2026-05-31 23:59:59.999999 and Monday 2026-06-01 00:00:00: a new day, week
    // and month; the total window takes both.
    let mut last = cost_record(&owner, "1.5");
    last.created_at = at("2026-05-31T23:59:59.999999Z");
    let mut first = cost_record(&owner, "2.25");
    first.created_at = at("2026-06-01T00:00:00Z");
    s.insert_cost_records(&[last.clone(), first.clone()]).await.unwrap();
    for period in [Period::Daily, Period::Weekly, Period::Monthly] {
        let before = s.window_spend(owner.user.id, period, period.start(last.created_at)).await.unwrap();
        let after = s.window_spend(owner.project.id, period, period.start(first.created_at)).await.unwrap();
        assert_eq!((before, after), (dec("1.5"), dec("2.25")), "{period:?}");
    }
    assert_eq!(Period::Weekly.start(first.created_at), first.created_at, "weeks start on Monday");
    let total = s.window_spend(owner.org.id, Period::Total, DateTime::UNIX_EPOCH).await.unwrap();
    assert_eq!(total, dec("3.75"));
    let empty = s.window_spend(owner.org.id, Period::Daily, at("2026-06-02T00:00:00Z")).await.unwrap();
    assert_eq!(empty, Decimal::ZERO);
    // A budget reads its own scope's window only.
    let budget = f.budget(Scope::User, owner.user.id).period(Period::Monthly).create().await;
    let spent =
        s.window_spend(budget.scope_id, budget.period, budget.period.start(first.created_at)).await.unwrap();
    assert_eq!(spent, dec("2.25"));
}

async fn cost_records_filter_and_page(f: Factory) {
    let s = &f.store;
    let a = f.owner().await;
    let b = f.owner().await;
    let mut mine = Vec::new();
    for i in 0..25 {
        let mut r = cost_record(&a, "0.01");
        r.model = Some(if i % 2 == 0 { "gpt-4o" } else { "gpt-4o-mini" }.into());
        r.provider = if i % 5 == 0 { "azure" } else { "openai" }.into();
        r.input_tokens = None;
        r.status_code = 499;
        mine.push(r);
    }
    let theirs: Vec<_> = (0..5).map(|_| cost_record(&b, "1")).collect();
    s.insert_cost_records(&[mine.clone(), theirs].concat()).await.unwrap();
    let filter = RecordFilter { project_id: Some(a.project.id), ..RecordFilter::default() };
    let mut seen = Vec::new();
    let mut page = PageRequest { cursor: None, limit: 10 };
    loop {
        let got = s.list_cost_records(&filter, &page).await.unwrap();
        assert!(got.data.len() <= 10);
        seen.extend(got.data);
        match got.next_cursor {
            Some(c) => page.cursor = Some(Uuid::parse_str(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, mine, "every record once, oldest first, fields intact");
    let narrow = RecordFilter {
        organization_id: Some(a.org.id),
        user_id: Some(a.user.id),
        model: Some("gpt-4o".into()),
        provider: Some("azure".into()),
        ..RecordFilter::default()
    };
    let got = s.list_cost_records(&narrow, &PageRequest::default()).await.unwrap();
    let expected: Vec<_> = mine
        .iter()
        .filter(|r| r.model.as_deref() == Some("gpt-4o") && r.provider == "azure")
        .cloned()
        .collect();
    assert_eq!(got.data, expected);
    assert_eq!(got.data.len(), 3);
}

async fn billed_dimensions_round_trip_and_absent_ones_stay_null(f: Factory) {
    let s = &f.store;
    let owner = f.owner().await;
    // More than one INSERT statement's worth on SQLite, every column bound in each row; one
    // record in the middle has none of the dimensions (absent stays null, zero stays zero).
    let batch: Vec<CostRecord> = (0..71u64)
        .map(|i| {
            if i == 35 {
                let mut plain = cost_record(&owner, "0.25");
                plain.web_fetch_requests = Some(0);
                return plain;
            }
            let mut r = cost_record_with_dimensions(&owner, "0.5");
            r.web_search_requests = Some(i);
            r.audio_output_tokens = (i % 2 == 0).then_some(i * 1_000_000_000);
            r.service_tier =
                Some(["priority", "flex", "batch", "a \"quoted\" tier, é"][(i % 4) as usize].into());
            r
        })
        .collect();
    assert_eq!(s.insert_cost_records(&batch).await.unwrap().inserted, 71);
    let filter = RecordFilter { user_id: Some(owner.user.id), ..RecordFilter::default() };
    let got = s.list_cost_records(&filter, &PageRequest { cursor: None, limit: 1000 }).await.unwrap().data;
    assert_eq!(got.len(), batch.len());
    for (read, written) in got.iter().zip(&batch) {
        assert_eq!(read, written);
    }
    let plain = &got[35];
    assert_eq!((plain.service_tier.as_deref(), plain.inference_geo.as_deref()), (None, None));
    assert_eq!(
        (plain.audio_input_tokens, plain.web_search_requests, plain.web_fetch_requests),
        (None, None, Some(0))
    );
    // Spend reports keep their shape: money and tokens, not the dimensions.
    let rows = s.spend(&filter, GroupBy::Model).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.cost_usd).sum::<Decimal>(), dec("35.25"));
}
