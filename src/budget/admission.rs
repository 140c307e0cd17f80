//! Admission and settlement: check every hard budget of the chain and reserve the
//! estimate on all of them at once; later replace the reservation by the actual cost,
//! exactly once (an admission dropped unsettled releases its reservation).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{AdmissionMode, Budgets, Counter, CounterKey, SpendMoved};
use crate::store::{Budget, Identity, Scope, StoreError};

/// Why a request was refused: the first hard budget it would exceed.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub budget: Budget,
    pub spent: Decimal,
    pub reserved: Decimal,
    pub estimate: Decimal,
    pub window_end: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resets = match self.window_end {
            Some(t) => format!("resets at {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            None => "never resets (total budget)".to_owned(),
        };
        write!(
            f,
            "budget exceeded: {} {} budget {} ({}) limit ${}, spent ${}, reserved ${}, this request's estimate ${}; window {}",
            self.budget.scope.as_str(),
            self.budget.scope_id,
            self.budget.id,
            self.budget.period.as_str(),
            self.budget.limit_usd.normalize(),
            self.spent.normalize(),
            self.reserved.normalize(),
            self.estimate.normalize(),
            resets
        )
    }
}

/// What admission can end in besides success.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("{0}")]
    Refused(Box<Refusal>),
    #[error("budget store unavailable: {0}")]
    Store(#[from] StoreError),
}

/// A request let through: it holds its reservation until settled.
pub struct Admission {
    budgets: Arc<Budgets>,
    chain: Vec<(Arc<Budget>, CounterKey)>,
    counters: BTreeMap<CounterKey, Arc<Mutex<Counter>>>,
    estimate: Decimal,
    settled: bool,
    /// The caller's user, project and organization, and when the request started: a
    /// budget created while this request was in flight still gets its cost.
    scopes: [uuid::Uuid; 3],
    at: DateTime<Utc>,
    /// The smallest `limit - spent - reserved` along the chain when admitted (before this
    /// request's own reservation); `None` when no budget applies.
    pub remaining: Option<Decimal>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("estimate", &self.estimate)
            .field("remaining", &self.remaining)
            .finish()
    }
}

fn guard(m: &Mutex<Counter>) -> MutexGuard<'_, Counter> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Budgets {
    /// Checks the caller's budget chain against `estimate` and reserves it everywhere.
    /// `now` is when the request started: it is charged to that moment's windows.
    pub async fn admit(
        self: &Arc<Self>,
        who: &Identity,
        estimate: Decimal,
        now: DateTime<Utc>,
    ) -> Result<Admission, AdmitError> {
        let mut chain = Vec::new();
        for (scope, id) in [
            (Scope::User, who.user_id),
            (Scope::Project, who.project_id),
            (Scope::Organization, who.organization_id),
        ] {
            for b in self.of(scope, id).await?.iter() {
                let key =
                    CounterKey { scope_id: b.scope_id, period: b.period, window_start: b.period.start(now) };
                chain.push((Arc::clone(b), key));
            }
        }
        let mut counters = BTreeMap::new();
        for (_, key) in &chain {
            if !counters.contains_key(key) {
                counters.insert(*key, self.counter(*key).await?);
            }
        }
        let estimate = estimate.max(Decimal::ZERO);
        // Lock in key order (BTreeMap iteration): no deadlock, and no other admission
        // sees this chain half-reserved. Nothing awaits while the guards are held.
        let mut guards: BTreeMap<CounterKey, MutexGuard<'_, Counter>> =
            counters.iter().map(|(k, c)| (*k, guard(c))).collect();
        let mut remaining: Option<Decimal> = None;
        for (budget, key) in &chain {
            let Some(c) = guards.get(key) else { continue };
            let left = budget.limit_usd - c.spent - c.reserved;
            remaining = Some(remaining.map_or(left, |r| r.min(left)));
            if !budget.hard {
                continue;
            }
            let fits = match self.mode {
                AdmissionMode::Reserve => c.spent + c.reserved + estimate <= budget.limit_usd,
                AdmissionMode::Spent => c.spent + c.reserved < budget.limit_usd,
            };
            if !fits {
                return Err(AdmitError::Refused(Box::new(Refusal {
                    budget: Budget::clone(budget),
                    spent: c.spent,
                    reserved: c.reserved,
                    estimate,
                    window_end: budget.period.end(now),
                })));
            }
        }
        for g in guards.values_mut() {
            g.reserved += estimate;
        }
        drop(guards);
        let scopes = [who.user_id, who.project_id, who.organization_id];
        Ok(Admission {
            budgets: Arc::clone(self),
            chain,
            counters,
            estimate,
            settled: false,
            remaining,
            scopes,
            at: now,
        })
    }
}

impl Admission {
    /// This request's reserved estimate.
    pub fn estimate(&self) -> Decimal {
        self.estimate
    }

    /// Replaces the reservation with the actual cost on every counter of the chain.
    pub fn settle(mut self, actual: Decimal) {
        self.release(actual);
    }

    fn release(&mut self, actual: Decimal) {
        if self.settled {
            return;
        }
        self.settled = true;
        let mut moved: BTreeMap<CounterKey, (Decimal, Decimal)> = BTreeMap::new();
        for (key, counter) in &self.counters {
            let mut c = guard(counter);
            let before = c.spent;
            c.reserved = (c.reserved - self.estimate).max(Decimal::ZERO);
            c.spent += actual;
            moved.insert(*key, (before, c.spent));
        }
        if actual.is_zero() {
            return;
        }
        // Counters that appeared after admission (a budget created meanwhile) loaded their
        // spend before this request's record existed: add the cost there too.
        for scope_id in self.scopes {
            for period in crate::window::Period::ALL {
                let key = CounterKey { scope_id, period, window_start: period.start(self.at) };
                if self.counters.contains_key(&key) {
                    continue;
                }
                if let Some(counter) = self.budgets.counters.get(&key).map(|e| Arc::clone(e.value())) {
                    guard(&counter).spent += actual;
                }
            }
        }
        let Some(tx) = &self.budgets.moved else { return };
        let moves: Vec<SpendMoved> = self
            .chain
            .iter()
            .filter_map(|(budget, key)| {
                let (before, after) = moved.get(key)?;
                Some(SpendMoved {
                    budget: Arc::clone(budget),
                    window_start: key.window_start,
                    before: *before,
                    after: *after,
                })
            })
            .collect();
        if !moves.is_empty() {
            let _ = tx.send(moves);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Never settled (the request failed before it could be): free the reservation.
        self.release(Decimal::ZERO);
    }
}
