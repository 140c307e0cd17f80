//! The spend rollups: `ai_spend_hourly` and `ai_spend_daily`, what a batch of new cost
//! records adds to each (period, organization, project, user, key, provider, model), and
//! how a spend report is split between them and the records themselves: whole days from
//! the daily rollup, the whole hours left at either end from the hourly one, the partial
//! hours at the ends of the range (and filters the rollups cannot answer) from the
//! records. A month of a busy organization is a few thousand daily rows instead of
//! hundreds of thousands of hourly ones.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{CostRecord, RecordFilter, SpendRow};

/// The period a rollup sums over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    /// Both, each once.
    pub const ALL: [Grain; 2] = [Grain::Hour, Grain::Day];

    fn length(self) -> TimeDelta {
        match self {
            Grain::Hour => TimeDelta::hours(1),
            Grain::Day => TimeDelta::days(1),
        }
    }

    /// The rollup's table.
    pub fn table(self) -> &'static str {
        match self {
            Grain::Hour => "ai_spend_hourly",
            Grain::Day => "ai_spend_daily",
        }
    }

    /// Its time column (the start of the period, UTC).
    pub fn time_col(self) -> &'static str {
        match self {
            Grain::Hour => "hour_start",
            Grain::Day => "day_start",
        }
    }

    /// Its one-row table saying whether it holds every record.
    pub fn state_table(self) -> &'static str {
        match self {
            Grain::Hour => "ai_spend_hourly_state",
            Grain::Day => "ai_spend_daily_state",
        }
    }

    /// The start of the period `t` falls in.
    pub fn start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.length()).unwrap_or(t)
    }

    /// The first period start at or after `t`.
    fn ceil(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.start(t);
        if start == t {
            start
        } else {
            start + self.length()
        }
    }
}

/// One rollup row's grouping columns and what a batch adds to it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Delta {
    pub id: Uuid,
    /// The start of the row's hour or day.
    pub start: DateTime<Utc>,
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

/// The batch's additions per rollup row of `grain`, in id order (every writer locks rows
/// in the same order).
pub(super) fn deltas(rows: &[&CostRecord], grain: Grain) -> Vec<Delta> {
    let mut deltas: BTreeMap<Uuid, Delta> = BTreeMap::new();
    for r in rows {
        let start = grain.start(r.created_at);
        let id = row_id(r, start);
        let entry = deltas.entry(id).or_insert_with(|| Delta {
            id,
            start,
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
    /// A rollup (the part's range is whole periods of its grain).
    Rollup(Grain),
}

/// Splits a report's filter into parts that add up to it: whole days from the daily
/// rollup, whole hours at the ends from the hourly one, the partial hours at the ends
/// (under an hour each) from the records. A filter on one request reads the records.
pub fn split(filter: &RecordFilter) -> Vec<(RecordFilter, Source)> {
    if filter.request_id.is_some() {
        return vec![(filter.clone(), Source::Records)];
    }
    let mut parts = Vec::new();
    ranges(filter.from, filter.to, &[Grain::Day, Grain::Hour], &mut parts);
    parts
        .into_iter()
        .map(|(from, to, source)| (RecordFilter { from, to, ..filter.clone() }, source))
        .collect()
}

type Bound = Option<DateTime<Utc>>;

/// `[from, to)` as whole periods of the coarsest grain that fits, then the ends with the
/// finer grains, then the records. An open end is whole in every grain.
fn ranges(from: Bound, to: Bound, grains: &[Grain], out: &mut Vec<(Bound, Bound, Source)>) {
    let Some((&grain, finer)) = grains.split_first() else {
        out.push((from, to, Source::Records));
        return;
    };
    let first = from.map(|f| grain.ceil(f));
    let last = to.map(|t| grain.start(t));
    if let (Some(first), Some(last)) = (first, last) {
        if first >= last {
            ranges(from, to, finer, out);
            return;
        }
    }
    out.push((first, last, Source::Rollup(grain)));
    if let (Some(from), Some(first)) = (from, first) {
        if from < first {
            ranges(Some(from), Some(first), finer, out);
        }
    }
    if let (Some(last), Some(to)) = (last, to) {
        if last < to {
            ranges(Some(last), Some(to), finer, out);
        }
    }
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
    fn a_range_splits_into_whole_days_whole_hours_and_partial_ends() {
        let f = RecordFilter {
            from: Some(at("2026-11-01T10:15:00Z")),
            to: Some(at("2026-11-03T08:00:00.5Z")),
            ..RecordFilter::default()
        };
        let parts = split(&f);
        let ranges: Vec<_> = parts.iter().map(|(p, s)| (p.from, p.to, *s)).collect();
        let hourly = Source::Rollup(Grain::Hour);
        assert_eq!(
            ranges,
            vec![
                (
                    Some(at("2026-11-02T00:00:00Z")),
                    Some(at("2026-11-03T00:00:00Z")),
                    Source::Rollup(Grain::Day)
                ),
                (Some(at("2026-11-01T11:00:00Z")), Some(at("2026-11-02T00:00:00Z")), hourly),
                (Some(at("2026-11-01T10:15:00Z")), Some(at("2026-11-01T11:00:00Z")), Source::Records),
                (Some(at("2026-11-03T00:00:00Z")), Some(at("2026-11-03T08:00:00Z")), hourly),
                (Some(at("2026-11-03T08:00:00Z")), Some(at("2026-11-03T08:00:00.5Z")), Source::Records),
            ]
        );
        let aligned =
            RecordFilter { from: Some(at("2026-11-01T00:00:00Z")), to: None, ..RecordFilter::default() };
        assert_eq!(split(&aligned), vec![(aligned.clone(), Source::Rollup(Grain::Day))]);
        let hours = RecordFilter {
            from: Some(at("2026-11-01T10:00:00Z")),
            to: Some(at("2026-11-01T12:00:00Z")),
            ..RecordFilter::default()
        };
        assert_eq!(split(&hours), vec![(hours.clone(), hourly)]);
        let inside = RecordFilter {
            from: Some(at("2026-11-01T10:15:00Z")),
            to: Some(at("2026-11-01T10:45:00Z")),
            ..RecordFilter::default()
        };
        assert_eq!(split(&inside), vec![(inside.clone(), Source::Records)]);
        let one = RecordFilter { request_id: Some(Uuid::nil()), ..RecordFilter::default() };
        assert_eq!(split(&one)[0].1, Source::Records);
        // Every instant of the range is in exactly one part.
        let mut covered: Vec<_> = parts.iter().map(|(p, _)| (p.from.unwrap(), p.to.unwrap())).collect();
        covered.sort();
        assert_eq!(covered.first().unwrap().0, f.from.unwrap());
        assert_eq!(covered.last().unwrap().1, f.to.unwrap());
        assert!(covered.windows(2).all(|w| w[0].1 == w[1].0));
    }
}
