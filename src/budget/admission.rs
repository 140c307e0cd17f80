//! Admission and settlement: check every hard budget of the chain and reserve the
//! estimate on all of them at once; later replace the reservation by the actual cost,
//! exactly once (an admission dropped unsettled releases its reservation).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{AdmissionMode, Budgets, Counter, CounterKey};
use crate::store::{Budget, Identity, Scope, StoreError};
use crate::sync::lock;

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

/// Why a chain could not be reserved right now.
enum Shortfall {
    /// A hard budget would be exceeded: refuse.
    Refused(Box<Refusal>),
    /// Leases too small for this request: (window, its scope, the smallest hard limit on
    /// it) to take more of, then try again; and the first hard budget short of room.
    Lease(Vec<(CounterKey, Scope, Decimal)>, (Arc<Budget>, CounterKey)),
}

/// How a reservation attempt ended.
enum Outcome {
    Admitted(Option<Decimal>),
    Refused(Box<Refusal>),
    /// A budget changed while leases were taken with the old figures: reload the chain.
    BudgetsChanged,
}

/// Chain reloads before a request whose budgets keep changing is refused.
const MAX_RELOADS: usize = 3;

/// Grants a request may go through before it is refused although every grant gave what
/// was asked: under heavy load other requests on the replica can use up a fresh slice
/// before this one re-checks (settled spend stays in the slice until the ledger writes
/// it, up to 50 ms later). A grant that could not give what was asked refuses at once.
const LEASE_ROUNDS: usize = 8;

impl Budgets {
    /// Checks the caller's budget chain against `estimate` and reserves it everywhere.
    /// `now` is when the request started: it is charged to that moment's windows.
    pub async fn admit(
        self: &Arc<Self>,
        who: &Identity,
        estimate: Decimal,
        now: DateTime<Utc>,
    ) -> Result<Admission, AdmitError> {
        let estimate = estimate.max(Decimal::ZERO);
        let mut reloads = 0;
        loop {
            // Budgets loaded after this generation: a lease taken with their limits is
            // only trusted if no budget changed meanwhile (else the chain is reloaded).
            let generation = self.generation.load(Ordering::SeqCst);
            let chain = self.chain(who, now).await?;
            let mut counters = BTreeMap::new();
            for (_, key) in &chain {
                if !counters.contains_key(key) {
                    counters.insert(*key, self.counter(*key).await?);
                }
            }
            let may_reload = reloads < MAX_RELOADS;
            let remaining =
                match self.reserve_leasing(&chain, &counters, estimate, generation, may_reload).await? {
                    Outcome::Admitted(remaining) => remaining,
                    Outcome::Refused(refusal) => return Err(AdmitError::Refused(refusal)),
                    Outcome::BudgetsChanged => {
                        reloads += 1;
                        continue;
                    }
                };
            let scopes = [who.user_id, who.project_id, who.organization_id];
            return Ok(Admission {
                budgets: Arc::clone(self),
                counters,
                estimate,
                settled: false,
                remaining,
                scopes,
                at: now,
            });
        }
    }

    /// Every budget of the caller's user, project and organization, with the counter of
    /// the window `now` falls in.
    async fn chain(
        &self,
        who: &Identity,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Arc<Budget>, CounterKey)>, StoreError> {
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
        Ok(chain)
    }

    /// Reserves the chain, taking more of the leases it lacks (several replicas) until it
    /// fits, a grant cannot give what is missing, or (when `may_reload`) the budgets changed
    /// under it.
    async fn reserve_leasing(
        &self,
        chain: &[(Arc<Budget>, CounterKey)],
        counters: &BTreeMap<CounterKey, Arc<Mutex<Counter>>>,
        estimate: Decimal,
        generation: u64,
        may_reload: bool,
    ) -> Result<Outcome, StoreError> {
        let mut round = 0;
        loop {
            match self.reserve(chain, counters, estimate) {
                Ok(remaining) => return Ok(Outcome::Admitted(remaining)),
                Err(Shortfall::Refused(refusal)) => return Ok(Outcome::Refused(refusal)),
                Err(Shortfall::Lease(short, first)) => {
                    let mut covered = round < LEASE_ROUNDS;
                    round += 1;
                    let mut refused_on = first.1;
                    for (key, scope, limit) in short {
                        if covered {
                            covered = self.take_lease(key, scope, limit, estimate, generation).await?;
                            if !covered {
                                refused_on = key;
                            }
                        }
                    }
                    if may_reload && self.generation.load(Ordering::SeqCst) != generation {
                        return Ok(Outcome::BudgetsChanged);
                    }
                    if !covered {
                        let refusal = self.lease_refusal(chain, counters, (first.0, refused_on), estimate);
                        return Ok(Outcome::Refused(Box::new(refusal)));
                    }
                }
            }
        }
    }

    /// Checks every hard budget of the chain and, when all fit, reserves `estimate` on
    /// every counter at once. Returns the smallest remaining amount along the chain.
    fn reserve(
        &self,
        chain: &[(Arc<Budget>, CounterKey)],
        counters: &BTreeMap<CounterKey, Arc<Mutex<Counter>>>,
        estimate: Decimal,
    ) -> Result<Option<Decimal>, Shortfall> {
        let now = Instant::now();
        // Lock in key order (BTreeMap iteration): no deadlock, and no other admission
        // sees this chain half-reserved. Nothing awaits while the guards are held.
        let mut guards: BTreeMap<CounterKey, MutexGuard<'_, Counter>> =
            counters.iter().map(|(k, c)| (*k, lock(c))).collect();
        let mut remaining: Option<Decimal> = None;
        let mut short: Vec<(CounterKey, Scope, Decimal)> = Vec::new();
        for (budget, key) in chain {
            let Some(c) = guards.get(key) else { continue };
            let left = match (&self.leases, c.lease) {
                (Some(_), Some(l)) => {
                    budget.limit_usd - l.spent_seen - l.consumed - l.others_seen - c.reserved
                }
                _ => budget.limit_usd - c.spent - c.reserved,
            };
            remaining = Some(remaining.map_or(left, |r| r.min(left)));
            if !budget.hard {
                continue;
            }
            if self.leases.is_some() {
                // Several replicas: what this replica may admit is its lease.
                let usable = c.lease.map_or(Decimal::ZERO, |l| l.usable(now));
                // A request with no estimate needs some room left, as on one node.
                let fits = match self.mode {
                    AdmissionMode::Reserve if !estimate.is_zero() => c.reserved + estimate <= usable,
                    _ => c.reserved < usable,
                };
                if !fits && !short.iter().any(|(k, _, _)| k == key) {
                    short.push((*key, budget.scope, budget.limit_usd));
                }
                continue;
            }
            // A request with no estimate needs some room left: at the limit it is refused.
            let fits = match self.mode {
                AdmissionMode::Reserve if !estimate.is_zero() => {
                    c.spent + c.reserved + estimate <= budget.limit_usd
                }
                _ => c.spent + c.reserved < budget.limit_usd,
            };
            if !fits {
                return Err(Shortfall::Refused(Box::new(Refusal {
                    budget: Budget::clone(budget),
                    spent: c.spent,
                    reserved: c.reserved,
                    estimate,
                    window_end: budget.period.end(key.window_start),
                })));
            }
        }
        let first = short.first().and_then(|(k, _, _)| chain.iter().find(|(b, key)| b.hard && key == k));
        if let Some((budget, key)) = first {
            // Every hard limit on a window bounds its lease: use the smallest.
            for (b, k) in chain.iter().filter(|(b, _)| b.hard) {
                if let Some(entry) = short.iter_mut().find(|(key, _, _)| key == k) {
                    entry.2 = entry.2.min(b.limit_usd);
                }
            }
            return Err(Shortfall::Lease(short, (Arc::clone(budget), *key)));
        }
        for g in guards.values_mut() {
            g.reserved += estimate;
            if let Some(lease) = g.lease.as_mut() {
                lease.last_used = now;
            }
        }
        Ok(remaining)
    }

    /// The refusal for a request its leases could not cover on window `key`: the hard
    /// budget with the smallest limit there (else `budget`), with the figures the last
    /// grant saw (settled spend plus what settled here since, and what this replica's
    /// requests and the other replicas hold).
    fn lease_refusal(
        &self,
        chain: &[(Arc<Budget>, CounterKey)],
        counters: &BTreeMap<CounterKey, Arc<Mutex<Counter>>>,
        (budget, key): (Arc<Budget>, CounterKey),
        estimate: Decimal,
    ) -> Refusal {
        let budget = chain
            .iter()
            .filter(|(b, k)| *k == key && b.hard)
            .min_by_key(|(b, _)| b.limit_usd)
            .map_or(budget, |(b, _)| Arc::clone(b));
        let c = counters.get(&key).map(|c| *lock(c)).unwrap_or_default();
        let (spent, others) =
            c.lease.map_or((c.spent, Decimal::ZERO), |l| (l.spent_seen + l.consumed, l.others_seen));
        Refusal {
            window_end: budget.period.end(key.window_start),
            budget: Budget::clone(&budget),
            spent,
            reserved: c.reserved + others,
            estimate,
        }
    }
}

impl Admission {
    /// Replaces the reservation with the actual cost on every counter of the chain.
    pub fn settle(mut self, actual: Decimal) {
        self.release(actual);
    }

    fn release(&mut self, actual: Decimal) {
        if self.settled {
            return;
        }
        self.settled = true;
        for counter in self.counters.values() {
            let mut c = lock(counter);
            c.reserved = (c.reserved - self.estimate).max(Decimal::ZERO);
            c.spent += actual;
            // Part of the lease until the ledger writes it and moves it to the window.
            if let Some(lease) = c.lease.as_mut() {
                lease.consumed += actual;
            }
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
                    let mut c = lock(&counter);
                    c.spent += actual;
                    if let Some(lease) = c.lease.as_mut() {
                        lease.consumed += actual;
                    }
                }
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Never settled (the request failed before it could be): free the reservation.
        self.release(Decimal::ZERO);
    }
}
