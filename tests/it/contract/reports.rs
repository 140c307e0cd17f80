//! Contract: spend reports. Whatever the range (whole hours read from the hourly rollup,
//! partial hours from the records), filter and grouping, a report equals the sums of the
//! matching records computed here from the records themselves; and a database that had
//! records before the rollup existed gets it filled on open.

use std::collections::BTreeMap;

use chrono::Duration;
use rust_decimal::Decimal;
use tollgate::store::{self, CostRecord, DayRow, GroupBy, PoolSettings, RecordFilter, SpendRow};

use crate::contract::contract_tests;
use crate::factory::{at, cost_record, Factory};

contract_tests!(
    reports_equal_the_records_for_any_range_filter_and_grouping,
    reports_by_day_equal_the_records_for_any_range_filter_and_grouping,
    the_latest_records_come_newest_first,
    a_database_with_records_gets_its_rollup_filled,
    report_queries_are_served_by_indexes,
);

const GROUPINGS: [GroupBy; 7] = [
    GroupBy::Organization,
    GroupBy::Project,
    GroupBy::User,
    GroupBy::Key,
    GroupBy::Model,
    GroupBy::Provider,
    GroupBy::Day,
];

/// The report, computed from the records (the oracle).
fn expected(records: &[CostRecord], f: &RecordFilter, group_by: GroupBy) -> Vec<SpendRow> {
    let mut groups: BTreeMap<Option<String>, SpendRow> = BTreeMap::new();
    for r in &matching(records, f) {
        let group = match group_by {
            GroupBy::Organization => Some(r.organization_id.to_string()),
            GroupBy::Project => Some(r.project_id.to_string()),
            GroupBy::User => Some(r.user_id.to_string()),
            GroupBy::Key => r.api_key_id.map(|k| k.to_string()),
            GroupBy::Model => r.model.clone(),
            GroupBy::Provider => Some(r.provider.clone()),
            GroupBy::Day => Some(r.created_at.format("%Y-%m-%d").to_string()),
        };
        let row = groups.entry(group.clone()).or_insert_with(|| SpendRow {
            group,
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: Decimal::ZERO,
        });
        row.requests += 1;
        row.input_tokens += r.input_tokens.unwrap_or(0);
        row.output_tokens += r.output_tokens.unwrap_or(0);
        row.cost_usd += r.cost_usd;
    }
    groups
        .into_values()
        .map(|mut r| {
            r.cost_usd = r.cost_usd.normalize();
            r
        })
        .collect()
}

/// Records over three days at odd minutes, across two owners, keys and no key, models
/// and no model, two providers.
async fn scattered_records(f: &Factory) -> Vec<CostRecord> {
    let a = f.owner().await;
    let mut b = a.clone();
    b.user = f.user(&a.org).create().await;
    let (key, _) = f.key(&b.user, &b.project).create().await;
    let start = at("2026-10-30T21:07:13.250000Z");
    let mut records = Vec::new();
    for i in 0..600i64 {
        let owner = if i % 4 == 0 { &b } else { &a };
        let mut r = cost_record(owner, "0.0000013");
        r.cost_usd += Decimal::new(i, 7);
        r.created_at = start + Duration::seconds(i * 431);
        r.api_key_id = (i % 4 == 0).then_some(key.id);
        r.model = match i % 5 {
            0 => None,
            1 | 2 => Some("gpt-4o".into()),
            _ => Some("claude-sonnet-4-5".into()),
        };
        r.provider = if i % 7 == 0 { "anthropic" } else { "openai" }.into();
        r.input_tokens = (i % 9 != 0).then_some(i as u64);
        records.push(r);
    }
    for chunk in records.chunks(97) {
        f.store.insert_cost_records(chunk).await.unwrap();
    }
    records
}

fn filters(records: &[CostRecord]) -> Vec<RecordFilter> {
    let r = &records[8];
    vec![
        RecordFilter::default(),
        RecordFilter {
            from: Some(at("2026-10-31T00:00:00Z")),
            to: Some(at("2026-11-01T00:00:00Z")),
            ..RecordFilter::default()
        },
        RecordFilter {
            from: Some(at("2026-10-31T03:17:05Z")),
            to: Some(at("2026-11-01T15:59:59.999999Z")),
            ..RecordFilter::default()
        },
        RecordFilter { from: Some(at("2026-10-31T03:17:05Z")), ..RecordFilter::default() },
        RecordFilter { to: Some(at("2026-10-31T07:30:00Z")), ..RecordFilter::default() },
        RecordFilter {
            from: Some(at("2026-10-31T10:05:00Z")),
            to: Some(at("2026-10-31T10:55:00Z")),
            ..RecordFilter::default()
        },
        RecordFilter {
            from: Some(at("2026-10-31T10:05:00Z")),
            to: Some(at("2026-10-31T11:55:00Z")),
            ..RecordFilter::default()
        },
        RecordFilter {
            user_id: Some(r.user_id),
            from: Some(at("2026-10-31T01:30:00Z")),
            ..RecordFilter::default()
        },
        RecordFilter {
            api_key_id: r.api_key_id,
            to: Some(at("2026-11-01T12:34:56Z")),
            ..RecordFilter::default()
        },
        RecordFilter {
            model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            ..RecordFilter::default()
        },
        RecordFilter {
            project_id: Some(r.project_id),
            organization_id: Some(r.organization_id),
            ..RecordFilter::default()
        },
        RecordFilter { request_id: Some(records[17].request_id), ..RecordFilter::default() },
    ]
}

async fn reports_equal_the_records_for_any_range_filter_and_grouping(f: Factory) {
    let records = scattered_records(&f).await;
    let mut compared = 0;
    for filter in filters(&records) {
        for group_by in GROUPINGS {
            let got = f.store.spend(&filter, group_by).await.unwrap();
            assert_eq!(got, expected(&records, &filter, group_by), "{filter:?} by {group_by:?}");
            compared += got.len();
        }
    }
    assert!(compared > 100, "the cases compare something: {compared} rows");
}

/// The records matching a filter (the oracle's selection).
fn matching(records: &[CostRecord], f: &RecordFilter) -> Vec<CostRecord> {
    records
        .iter()
        .filter(|r| {
            f.organization_id.is_none_or(|v| v == r.organization_id)
                && f.project_id.is_none_or(|v| v == r.project_id)
                && f.user_id.is_none_or(|v| v == r.user_id)
                && f.api_key_id.is_none_or(|v| Some(v) == r.api_key_id)
                && f.request_id.is_none_or(|v| v == r.request_id)
                && f.model.as_ref().is_none_or(|v| Some(v) == r.model.as_ref())
                && f.provider.as_ref().is_none_or(|v| *v == r.provider)
                && f.from.is_none_or(|v| r.created_at >= v)
                && f.to.is_none_or(|v| r.created_at < v)
        })
        .cloned()
        .collect()
}

async fn reports_by_day_equal_the_records_for_any_range_filter_and_grouping(f: Factory) {
    let records = scattered_records(&f).await;
    let mut compared = 0;
    for filter in filters(&records) {
        for group_by in GROUPINGS {
            // The oracle: the plain report of each day's records, day by day.
            let selected = matching(&records, &filter);
            let mut days: Vec<String> =
                selected.iter().map(|r| r.created_at.format("%Y-%m-%d").to_string()).collect();
            days.sort();
            days.dedup();
            let mut want = Vec::new();
            for day in days {
                let of_day: Vec<CostRecord> = selected
                    .iter()
                    .filter(|r| r.created_at.format("%Y-%m-%d").to_string() == day)
                    .cloned()
                    .collect();
                for row in expected(&of_day, &RecordFilter::default(), group_by) {
                    want.push(DayRow { day: Some(day.clone()), row });
                }
            }
            let got = f.store.spend_by_day(&filter, group_by).await.unwrap();
            assert_eq!(got, want, "{filter:?} by {group_by:?}");
            compared += got.len();
        }
    }
    assert!(compared > 300, "the cases compare something: {compared} rows");
}

async fn the_latest_records_come_newest_first(f: Factory) {
    let records = scattered_records(&f).await;
    for filter in filters(&records) {
        let mut want = matching(&records, &filter);
        want.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        want.truncate(25);
        let got = f.store.latest_cost_records(&filter, 25).await.unwrap();
        let ids = |v: &[CostRecord]| v.iter().map(|r| r.request_id).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&want), "{filter:?}");
    }
}

async fn a_database_with_records_gets_its_rollup_filled(f: Factory) {
    let records = scattered_records(&f).await;
    // As a database written before the rollups existed: records, no rollup rows.
    for table in ["ai_spend_hourly", "ai_spend_daily"] {
        f.execute(&format!("DELETE FROM {table}")).await;
        f.execute(&format!("UPDATE {table}_state SET filled = (1 = 0)")).await;
    }
    let reopened = store::open(&f.url, PoolSettings::with_max(4)).await.unwrap();
    for filter in filters(&records) {
        for group_by in GROUPINGS {
            let got = reopened.spend(&filter, group_by).await.unwrap();
            assert_eq!(got, expected(&records, &filter, group_by), "{filter:?} by {group_by:?}");
        }
    }
    // Opening again does not fill it twice.
    let again = store::open(&f.url, PoolSettings::with_max(4)).await.unwrap();
    let all = again.spend(&RecordFilter::default(), GroupBy::Provider).await.unwrap();
    assert_eq!(all, expected(&records, &RecordFilter::default(), GroupBy::Provider));
}

async fn report_queries_are_served_by_indexes(f: Factory) {
    let id = "01a245e3-a2a2-73be-9051-a8aec3f0335b";
    let range = |col: &str| {
        format!("{col} >= '2026-11-01T00:00:00.000000Z' AND {col} < '2026-12-01T00:00:00.000000Z'")
    };
    let mut queries = Vec::new();
    for (scope, short) in
        [("organization_id", "org"), ("project_id", "project"), ("user_id", "user"), ("api_key_id", "key")]
    {
        for (table, time) in [("ai_spend_hourly", "hour_start"), ("ai_spend_daily", "day_start")] {
            queries.push((
                format!(
                    "SELECT model, requests, cost_usd FROM {table} WHERE {scope} = '{id}' AND {}",
                    range(time)
                ),
                format!("{table}_{short}_time"),
            ));
        }
        queries.push((
            format!(
                "SELECT model, cost_usd FROM ai_cost_records WHERE {scope} = '{id}' AND {}",
                range("created_at")
            ),
            format!("ai_cost_records_{short}_time"),
        ));
    }
    queries.push((
        format!("SELECT * FROM ai_spend_hourly WHERE {}", range("hour_start")),
        "ai_spend_hourly_time".into(),
    ));
    queries.push((
        format!("SELECT * FROM ai_spend_daily WHERE {}", range("day_start")),
        "ai_spend_daily_time".into(),
    ));
    queries.push((
        format!("SELECT * FROM ai_cost_records WHERE {}", range("created_at")),
        "ai_cost_records_time".into(),
    ));
    for (sql, index) in queries {
        let plan = f.explain(&sql).await;
        // SQLite's planner is rule-based: it must pick the composite index. PostgreSQL's
        // picks by cost, and on a small table may prefer another index of the same table.
        let table = sql.split(" FROM ").nth(1).and_then(|t| t.split(' ').next()).unwrap_or_default();
        let expected = if f.url.starts_with("sqlite:") { index.clone() } else { format!("{table}_") };
        assert!(plan.contains(&expected), "{sql}\nnot served by {expected}:\n{plan}");
        assert!(!plan.contains("Seq Scan") && !plan.contains("SCAN ai_"), "{sql}\nscans:\n{plan}");
    }
    let one = format!("SELECT * FROM ai_cost_records WHERE request_id = '{id}'");
    let plan = f.explain(&one).await;
    assert!(!plan.contains("Seq Scan") && !plan.contains("SCAN ai_"), "{one}\nscans:\n{plan}");
}
