//! The spend windows a batch of cost records moves: each record counts against its
//! organization, project and user in every period's calendar window. Both backends add
//! these deltas in the transaction that inserts the records, and report what moved.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{CostRecord, Scope};
use crate::window::Period;

/// A spend window: scope id, period, window start.
pub(super) type WindowKey = (Uuid, Period, DateTime<Utc>);

/// What a batch adds to one window.
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowDelta {
    pub scope: Scope,
    pub cost: Decimal,
    pub requests: i64,
}

/// The batch's additions per window, in key order: every writer locks window rows in
/// this same order, so two ledgers writing overlapping windows cannot deadlock.
pub(super) fn deltas(rows: &[&CostRecord]) -> BTreeMap<WindowKey, WindowDelta> {
    let mut deltas: BTreeMap<WindowKey, WindowDelta> = BTreeMap::new();
    for r in rows {
        for (scope, id) in [
            (Scope::Organization, r.organization_id),
            (Scope::Project, r.project_id),
            (Scope::User, r.user_id),
        ] {
            for period in Period::ALL {
                let key = (id, period, period.start(r.created_at));
                let entry =
                    deltas.entry(key).or_insert(WindowDelta { scope, cost: Decimal::ZERO, requests: 0 });
                entry.cost += r.cost_usd;
                entry.requests += 1;
            }
        }
    }
    deltas
}

/// What a batch of records costs in each spend window, whether or not they were new to
/// the database (a replayed or refused record is done with all the same).
pub fn window_costs(records: &[CostRecord]) -> Vec<(Uuid, Period, DateTime<Utc>, Decimal)> {
    let refs: Vec<&CostRecord> = records.iter().collect();
    deltas(&refs).into_iter().map(|((id, period, start), d)| (id, period, start, d.cost)).collect()
}

/// How a written batch moved one spend window: its settled total before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowMove {
    pub scope: Scope,
    pub scope_id: Uuid,
    pub period: Period,
    pub window_start: DateTime<Utc>,
    pub before: Decimal,
    pub after: Decimal,
}

impl WindowMove {
    /// What this batch added.
    pub fn delta(&self) -> Decimal {
        self.after - self.before
    }
}

/// What a batch insert did: how many records were new, and the windows they moved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    pub inserted: u64,
    pub windows: Vec<WindowMove>,
}
