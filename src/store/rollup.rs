//! The hourly spend rollup (`ai_spend_hourly`): what a batch of new cost records adds to
//! each (hour, organization, project, user, key, provider, model), and how a spend report
//! is split between the rollup (whole hours) and the records themselves (the partial
//! hours at either end of its range, and filters the rollup cannot answer).

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{CostRecord, RecordFilter, SpendRow};

/// One rollup row's grouping columns and what a batch adds to it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HourlyDelta {
    pub id: Uuid,
    pub hour_start: DateTime<Utc>,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub provider: String,
    pub model: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Decimal,
}

/// The start of the hour `t` falls in.
pub(super) fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// The row id for a set of grouping columns: a hash of them, length-prefixed so no two
/// different sets can spell the same input.
fn row_id(r: &CostRecord, hour: DateTime<Utc>) -> Uuid {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(&hour.timestamp().to_le_bytes());
    field(r.organization_id.as_bytes());
    field(r.project_id.as_bytes());
    field(r.user_id.as_bytes());
    field(r.api_key_id.as_ref().map_or(&[][..], |k| k.as_bytes()));
    field(r.provider.as_bytes());
    field(r.model.as_deref().map_or(&[0xff][..], str::as_bytes));
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn tokens(n: Option<u64>) -> i64 {
    n.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// The batch's additions per rollup row, in id order (every writer locks rows in the
/// same order).
pub(super) fn hourly_deltas(rows: &[&CostRecord]) -> Vec<HourlyDelta> {
    let mut deltas: BTreeMap<Uuid, HourlyDelta> = BTreeMap::new();
    for r in rows {
        let hour_start = hour_of(r.created_at);
        let id = row_id(r, hour_start);
        let entry = deltas.entry(id).or_insert_with(|| HourlyDelta {
            id,
            hour_start,
            organization_id: r.organization_id,
            project_id: r.project_id,
            user_id: r.user_id,
            api_key_id: r.api_key_id,
            provider: r.provider.clone(),
            model: r.model.clone(),
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: Decimal::ZERO,
        });
        entry.requests += 1;
        entry.input_tokens = entry.input_tokens.saturating_add(tokens(r.input_tokens));
        entry.output_tokens = entry.output_tokens.saturating_add(tokens(r.output_tokens));
        entry.cost_usd += r.cost_usd;
    }
    deltas.into_values().collect()
}

/// Where one part of a report is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `ai_cost_records`.
    Records,
    /// `ai_spend_hourly` (the part's range is whole hours).
    Hourly,
}

/// Splits a report's filter into parts that add up to it: whole hours from the rollup,
/// the partial hours at the ends (under an hour each) from the records. A filter on one
/// request reads the records.
pub fn split(filter: &RecordFilter) -> Vec<(RecordFilter, Source)> {
    if filter.request_id.is_some() {
        return vec![(filter.clone(), Source::Records)];
    }
    let first_whole = filter.from.map(|from| {
        let hour = hour_of(from);
        if hour == from {
            hour
        } else {
            hour + TimeDelta::hours(1)
        }
    });
    let last_whole = filter.to.map(hour_of);
    if let (Some(first), Some(last)) = (first_whole, last_whole) {
        if first >= last {
            return vec![(filter.clone(), Source::Records)];
        }
    }
    let mut parts =
        vec![(RecordFilter { from: first_whole, to: last_whole, ..filter.clone() }, Source::Hourly)];
    if let (Some(from), Some(first)) = (filter.from, first_whole) {
        if from < first {
            parts.push((
                RecordFilter { from: Some(from), to: Some(first), ..filter.clone() },
                Source::Records,
            ));
        }
    }
    if let (Some(last), Some(to)) = (last_whole, filter.to) {
        if last < to {
            parts.push((RecordFilter { from: Some(last), to: Some(to), ..filter.clone() }, Source::Records));
        }
    }
    parts
}

/// One group's sums on one day (UTC), or over the whole range when `day` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub day: Option<String>,
    pub row: SpendRow,
}

/// Adds report rows into `groups`, keyed by (day, group): `None` sorts first, strings
/// bytewise.
pub fn merge(groups: &mut BTreeMap<(Option<String>, Option<String>), SpendRow>, rows: Vec<DayRow>) {
    for DayRow { day, row } in rows {
        match groups.get_mut(&(day.clone(), row.group.clone())) {
            Some(g) => {
                g.requests += row.requests;
                g.input_tokens += row.input_tokens;
                g.output_tokens += row.output_tokens;
                g.cost_usd += row.cost_usd;
            }
            None => {
                groups.insert((day, row.group.clone()), row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_range_splits_into_whole_hours_and_partial_ends() {
        let f = RecordFilter {
            from: Some(at("2026-11-01T10:15:00Z")),
            to: Some(at("2026-11-03T08:00:00.5Z")),
            ..RecordFilter::default()
        };
        let parts = split(&f);
        let ranges: Vec<_> = parts.iter().map(|(p, s)| (p.from, p.to, *s)).collect();
        assert_eq!(
            ranges,
            vec![
                (Some(at("2026-11-01T11:00:00Z")), Some(at("2026-11-03T08:00:00Z")), Source::Hourly),
                (Some(at("2026-11-01T10:15:00Z")), Some(at("2026-11-01T11:00:00Z")), Source::Records),
                (Some(at("2026-11-03T08:00:00Z")), Some(at("2026-11-03T08:00:00.5Z")), Source::Records),
            ]
        );
        let aligned =
            RecordFilter { from: Some(at("2026-11-01T00:00:00Z")), to: None, ..RecordFilter::default() };
        assert_eq!(split(&aligned).len(), 1);
        let inside = RecordFilter {
            from: Some(at("2026-11-01T10:15:00Z")),
            to: Some(at("2026-11-01T10:45:00Z")),
            ..RecordFilter::default()
        };
        assert_eq!(split(&inside), vec![(inside.clone(), Source::Records)]);
        let one = RecordFilter { request_id: Some(Uuid::nil()), ..RecordFilter::default() };
        assert_eq!(split(&one)[0].1, Source::Records);
    }
}
