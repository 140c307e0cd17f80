//! Budget leases for several replicas on PostgreSQL (SPEC §4). A replica admits against
//! a slice of a hard budget window's remaining allowance that it leased from the
//! database; the database guarantees the slices plus the settled spend never exceed the
//! limit. Here: the slice this replica holds per spend counter, taking more when a
//! request does not fit, renewing before the TTL, giving back what sits idle, and
//! following the ledger as it moves settled spend from the slice into the window total.
//!
//! Every change to a lease row is relative to what it holds (grow by, shrink by), so the
//! ledger's consumption, returns and grants commute and the copy here stays exact.

use std::time::{Duration, Instant};

use rust_decimal::Decimal;

use super::{Budgets, CounterKey};
use crate::store::{LeaseWindow, PgStore, Scope, StoreError};
use crate::sync::lock;

/// Lease timing and slice size.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// A lease not renewed within this long expires (a crashed replica's slice returns).
    pub ttl: Duration,
    /// A slice unused for this long (no request in flight) goes back to the database.
    pub idle: Duration,
    /// A grant covers at most this many more requests of the asking one's estimate (and
    /// no more than a quarter of what is left).
    pub max_requests: u32,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings { ttl: Duration::from_secs(10), idle: Duration::from_secs(2), max_requests: 256 }
    }
}

/// This replica's slice of one spend window.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// The scope of the budgets on its window (for `tollgate_budget_leases`).
    pub scope: Scope,
    /// What the lease row holds, as far as this replica knows (it alone changes it).
    pub amount: Decimal,
    /// Settled here and not yet written by the ledger: still part of `amount`.
    pub consumed: Decimal,
    /// The window's settled spend and the other replicas' leases at the last grant.
    pub spent_seen: Decimal,
    pub others_seen: Decimal,
    /// No admission against the lease after this without a renewal (the database's TTL
    /// minus a margin, counted from before the statement was sent).
    pub valid_until: Instant,
    /// Budgets changed since the grant: the lease must be taken again (against the new
    /// limit) before it admits anything.
    pub stale: bool,
    /// The last admission against it, for returning idle slices.
    pub last_used: Instant,
}

impl Lease {
    /// What the lease can still admit: its amount minus settled-but-unwritten spend, or
    /// nothing when it is stale or past its validity.
    pub fn usable(&self, now: Instant) -> Decimal {
        if self.stale || now >= self.valid_until {
            Decimal::ZERO
        } else {
            (self.amount - self.consumed).max(Decimal::ZERO)
        }
    }
}

/// How long a lease may be used after the statement that granted or renewed it was sent.
fn validity(settings: &LeaseSettings) -> Duration {
    settings.ttl - settings.ttl / 10
}

impl Budgets {
    fn pg(&self) -> Option<(&PgStore, LeaseSettings)> {
        Some((self.store.postgres()?, self.leases?))
    }

    /// Takes more of `key`'s window for a request that did not fit: enough for what is
    /// reserved and consumed here plus `estimate`, and a slice beyond it. One database
    /// round trip, after waiting for any grant of the same window already in flight (which
    /// may make this one unnecessary). False when the window has no room for it: the
    /// database could not give what it lacks and what is held does not cover it either.
    /// `generation` is the budget generation `limit` was read at: if budgets changed since,
    /// the lease stays stale (the caller reloads them).
    pub(super) async fn take_lease(
        &self,
        key: CounterKey,
        scope: Scope,
        limit: Decimal,
        estimate: Decimal,
        generation: u64,
    ) -> Result<bool, StoreError> {
        let Some((pg, settings)) = self.pg() else { return Ok(false) };
        let gate = self.granting.entry(key).or_default().value().clone();
        let _one_at_a_time = gate.lock().await;
        let counter = self.counter(key).await?;
        let now = Instant::now();
        // A request without an estimate still needs a slice to admit against.
        let sizing = if estimate.is_zero() { limit / Decimal::ONE_THOUSAND } else { estimate };
        let need = {
            let c = *lock(&counter);
            // What the row holds counts even when the copy is stale or past its validity:
            // the database still has it (or says it lapsed), and asking for it again would
            // make the grant look short.
            let (held, usable) = match c.lease {
                Some(l) => ((l.amount - l.consumed).max(Decimal::ZERO), l.usable(now)),
                None => (Decimal::ZERO, Decimal::ZERO),
            };
            if c.reserved + sizing <= usable {
                return Ok(true); // another request's grant already covers this one
            }
            (c.reserved + sizing - held).max(Decimal::ZERO)
        };
        let window =
            LeaseWindow { scope, scope_id: key.scope_id, period: key.period, window_start: key.window_start };
        let sent = Instant::now();
        let grant = self.store.counted(
            "take_lease",
            pg.take_lease(window, limit, need, sizing, settings.max_requests, settings.ttl).await,
        )?;
        let mut c = lock(&counter);
        let mut lease = c.lease.unwrap_or(Lease {
            scope,
            amount: Decimal::ZERO,
            consumed: Decimal::ZERO,
            spent_seen: Decimal::ZERO,
            others_seen: Decimal::ZERO,
            valid_until: sent,
            stale: false,
            last_used: sent,
        });
        let gave_all = if grant.was_live { grant.delta >= need } else { grant.amount >= need };
        lease.amount =
            if grant.was_live { (lease.amount + grant.delta).max(Decimal::ZERO) } else { grant.amount };
        lease.spent_seen = grant.spent;
        lease.others_seen = grant.others;
        lease.valid_until = sent + validity(&settings);
        lease.stale = self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation;
        lease.last_used = Instant::now();
        let room = lease.amount - lease.consumed - c.reserved;
        c.lease = Some(lease);
        // Given everything asked: the request checks again (concurrent requests may have
        // used it first). Given less: only what is there now decides.
        Ok(gave_all || room >= sizing)
    }

    /// Marks every lease stale: a budget changed (maybe its limit), so each must be taken
    /// again, against the new figures, before it admits another request.
    pub(super) fn stale_leases(&self) {
        for entry in self.counters.iter() {
            if let Some(lease) = lock(entry.value()).lease.as_mut() {
                lease.stale = true;
            }
        }
    }

    /// Follows the ledger: `delta` of this window's spend is no longer held here unwritten
    /// (the ledger wrote it, and took the same amount out of the lease row in that
    /// transaction; or it had been written before; or the database refused it for good,
    /// and the copy then stays below the row: the safe side).
    pub(super) fn lease_consumed(&self, key: &CounterKey, delta: Decimal) {
        let Some(counter) = self.counters.get(key).map(|e| e.value().clone()) else { return };
        let mut c = lock(&counter);
        if let Some(lease) = c.lease.as_mut() {
            lease.amount = (lease.amount - delta).max(Decimal::ZERO);
            lease.consumed = (lease.consumed - delta).max(Decimal::ZERO);
        }
    }

    /// Renews leases before their TTL, gives idle slices back, until `stop`. Runs on
    /// PostgreSQL only.
    pub async fn keep_leases(&self, stop: impl std::future::Future<Output = ()>) {
        let Some((_, settings)) = self.pg() else { return };
        tokio::pin!(stop);
        let renew_every = settings.ttl / 3;
        let mut tick =
            tokio::time::interval((settings.idle / 4).min(renew_every).max(Duration::from_millis(50)));
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => return,
            }
            if last_renewal.elapsed() >= renew_every {
                last_renewal = Instant::now();
                if let Err(e) = self.renew().await {
                    tracing::warn!(error = %e, "renewing budget leases failed; they lapse at their TTL");
                }
            }
            self.return_idle().await;
        }
    }

    async fn renew(&self) -> Result<(), StoreError> {
        let Some((pg, settings)) = self.pg() else { return Ok(()) };
        let sent = Instant::now();
        let renewed: std::collections::HashSet<_> =
            self.store.counted("renew_leases", pg.renew_leases(settings.ttl).await)?.into_iter().collect();
        for entry in self.counters.iter() {
            let key = entry.key();
            let mut c = lock(entry.value());
            let Some(lease) = c.lease.as_mut() else { continue };
            if renewed.contains(&(key.scope_id, key.period, key.window_start)) {
                lease.valid_until = lease.valid_until.max(sent + validity(&settings));
            } else if lease.valid_until < sent + validity(&settings) && lease.amount > Decimal::ZERO {
                // (A lease granted after this renewal was sent is newer than its answer.)
                // Expired in the database (or never written): the others may spend it.
                lease.amount = Decimal::ZERO;
                lease.valid_until = sent;
            }
        }
        Ok(())
    }

    /// Gives back slices nobody used for `idle`: what is not consumed, or the whole row
    /// once nothing of it is consumed or reserved.
    async fn return_idle(&self) {
        let Some((pg, settings)) = self.pg() else { return };
        let idle: Vec<_> = self
            .counters
            .iter()
            .filter(|e| {
                let c = *lock(e.value());
                c.reserved.is_zero() && c.lease.is_some_and(|l| l.last_used.elapsed() >= settings.idle)
            })
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        for (key, counter) in idle {
            let Some(gate) = self.granting.get(&key).map(|g| g.value().clone()) else { continue };
            let Ok(_one_at_a_time) = gate.try_lock() else { continue };
            // Taken out of the copy first, so no request admits against what is returned.
            let (unused, everything) = {
                let mut c = lock(&counter);
                if !c.reserved.is_zero() {
                    continue;
                }
                let Some(lease) = c.lease.as_mut() else { continue };
                let unused = (lease.amount - lease.consumed).max(Decimal::ZERO);
                let everything = lease.consumed.is_zero();
                if everything {
                    c.lease = None;
                } else if unused.is_zero() {
                    continue;
                } else {
                    lease.amount -= unused;
                }
                (unused, everything)
            };
            // On failure the copy stays below the row (the return may have committed before
            // the answer was lost): the safe side; the row goes with the next idle return.
            let returned =
                pg.return_lease(key.scope_id, key.period, key.window_start, unused, everything).await;
            if let Err(e) = self.store.counted("return_lease", returned) {
                tracing::warn!(error = %e, "returning an idle budget lease failed");
            }
        }
    }

    /// How many live leases (held, and within their validity) this replica has, by the
    /// scope of their window.
    pub fn live_leases(&self) -> [(Scope, usize); 3] {
        let now = Instant::now();
        let mut live = [(Scope::Organization, 0), (Scope::Project, 0), (Scope::User, 0)];
        for entry in self.counters.iter() {
            let Some(lease) = lock(entry.value()).lease else { continue };
            if now < lease.valid_until {
                if let Some((_, n)) = live.iter_mut().find(|(scope, _)| *scope == lease.scope) {
                    *n += 1;
                }
            }
        }
        live
    }

    /// Drops every lease of this replica (at shutdown, after the ledger's last write).
    pub async fn release_leases(&self) {
        let Some((pg, _)) = self.pg() else { return };
        for entry in self.counters.iter() {
            lock(entry.value()).lease = None;
        }
        if let Err(e) = self.store.counted("drop_leases", pg.drop_leases().await) {
            tracing::warn!(error = %e, "dropping budget leases at shutdown failed; they lapse at their TTL");
        }
    }
}
