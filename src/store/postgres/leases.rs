//! Budget leases on PostgreSQL: this replica's slices of spend windows' remaining
//! allowance (SPEC §4). Taking one is one call of `tollgate_take_lease` (migration
//! 0002), atomic under the window row's lock; renewal, return and the ledger's
//! consumption only ever change this replica's own rows, by relative amounts, so they
//! commute with each other.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{decimal_col, PgStore};
use crate::store::{Scope, StoreError, WindowMove};
use crate::window::Period;

/// One spend window a lease is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseWindow {
    pub scope: Scope,
    pub scope_id: Uuid,
    pub period: Period,
    pub window_start: DateTime<Utc>,
}

/// What a take did to this replica's lease on one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseGrant {
    /// New amount minus the live amount before (negative: the lease shrank).
    pub delta: Decimal,
    /// The lease's amount now.
    pub amount: Decimal,
    /// The window's settled spend, as the grant saw it.
    pub spent: Decimal,
    /// Other replicas' live leases on the window.
    pub others: Decimal,
    /// False when this replica's lease had expired or did not exist: a copy of it held in
    /// memory is void and `amount` replaces it.
    pub was_live: bool,
}

fn ttl_ms(ttl: Duration) -> i32 {
    i32::try_from(ttl.as_millis()).unwrap_or(i32::MAX)
}

/// Shrinks this replica's leases by what the ledger just settled on their windows, in
/// the ledger's transaction: the spend moved from the lease into the window's total.
pub(super) async fn consume(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    replica: Uuid,
    windows: &[WindowMove],
) -> Result<(), StoreError> {
    let moved: Vec<&WindowMove> = windows.iter().filter(|w| !w.delta().is_zero()).collect();
    if moved.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Postgres>::new(
        "UPDATE ai_budget_leases l SET amount_usd = greatest(l.amount_usd - d.delta, 0)
         FROM (",
    );
    q.push_values(moved, |mut b, w| {
        b.push_bind(w.scope_id).push_bind(w.period.as_str()).push_bind(w.window_start).push_bind(w.delta());
    });
    q.push(
        ") AS d (scope_id, period, window_start, delta)
         WHERE l.scope_id = d.scope_id AND l.period = d.period AND l.window_start = d.window_start
           AND l.replica_id = ",
    )
    .push_bind(replica);
    q.build().execute(&mut **tx).await?;
    Ok(())
}

impl PgStore {
    /// This process's identity in lease rows.
    pub fn replica_id(&self) -> Uuid {
        self.replica_id
    }

    /// Whether this replica has ever taken a lease (the ledger skips lease bookkeeping
    /// until then).
    pub(super) fn holds_leases(&self) -> bool {
        self.leasing.load(Ordering::Relaxed)
    }

    /// Serializes the ledger's transaction with renewal (see `PgStore::lease_rows`).
    pub(super) async fn lock_lease_rows(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.holds_leases() {
            Some(self.lease_rows.lock().await)
        } else {
            None
        }
    }

    /// Takes, grows, shrinks or renews this replica's lease on `window` against `limit`:
    /// it wants `need` more than it holds, plus whole `unit`s (one request's estimate)
    /// worth a quarter of what would remain, at most `max_units` of them.
    pub async fn take_lease(
        &self,
        window: LeaseWindow,
        limit: Decimal,
        need: Decimal,
        unit: Decimal,
        max_units: u32,
        ttl: Duration,
    ) -> Result<LeaseGrant, StoreError> {
        self.leasing.store(true, Ordering::Relaxed);
        let row = sqlx::query(
            "SELECT delta, amount, spent, others, was_live FROM tollgate_take_lease($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(window.scope.as_str())
        .bind(window.scope_id)
        .bind(window.period.as_str())
        .bind(window.window_start)
        .bind(self.replica_id)
        .bind(limit)
        .bind(need.max(Decimal::ZERO))
        .bind(unit.max(Decimal::ZERO))
        .bind(i32::try_from(max_units).unwrap_or(i32::MAX))
        .bind(ttl_ms(ttl))
        .fetch_one(&self.pool)
        .await?;
        Ok(LeaseGrant {
            delta: decimal_col(&row, "delta")?,
            amount: decimal_col(&row, "amount")?,
            spent: decimal_col(&row, "spent")?,
            others: decimal_col(&row, "others")?,
            was_live: row.try_get("was_live")?,
        })
    }

    /// Extends every live lease of this replica by `ttl`; returns the windows renewed.
    /// A lease missing from the answer has expired: the others may already spend it.
    pub async fn renew_leases(
        &self,
        ttl: Duration,
    ) -> Result<Vec<(Uuid, Period, DateTime<Utc>)>, StoreError> {
        let _rows = self.lease_rows.lock().await;
        let rows = sqlx::query(
            "UPDATE ai_budget_leases SET expires_at = now() + $2 * interval '1 millisecond'
             WHERE replica_id = $1 AND expires_at > now()
             RETURNING scope_id, period, window_start",
        )
        .bind(self.replica_id)
        .bind(ttl_ms(ttl))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let period: String = row.try_get("period")?;
                let period = Period::parse(&period)
                    .ok_or_else(|| StoreError::Invalid(format!("bad period {period}")))?;
                Ok((row.try_get("scope_id")?, period, row.try_get("window_start")?))
            })
            .collect()
    }

    /// Gives `unused` of this replica's lease on a window back; with `everything`, drops
    /// the lease row (nothing of it is consumed or reserved any more).
    pub async fn return_lease(
        &self,
        scope_id: Uuid,
        period: Period,
        window_start: DateTime<Utc>,
        unused: Decimal,
        everything: bool,
    ) -> Result<(), StoreError> {
        let q = if everything {
            sqlx::query(
                "DELETE FROM ai_budget_leases
                 WHERE scope_id = $1 AND period = $2 AND window_start = $3 AND replica_id = $4",
            )
        } else {
            sqlx::query(
                "UPDATE ai_budget_leases SET amount_usd = greatest(amount_usd - $5, 0)
                 WHERE scope_id = $1 AND period = $2 AND window_start = $3 AND replica_id = $4",
            )
        };
        let q = q.bind(scope_id).bind(period.as_str()).bind(window_start).bind(self.replica_id);
        let q = if everything { q } else { q.bind(unused.max(Decimal::ZERO)) };
        q.execute(&self.pool).await?;
        Ok(())
    }

    /// Drops every lease of this replica (at shutdown, once the ledger is flushed).
    pub async fn drop_leases(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ai_budget_leases WHERE replica_id = $1")
            .bind(self.replica_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Live leases of every replica on one window (the allowance replicas hold).
    pub async fn window_leases(
        &self,
        scope_id: Uuid,
        period: Period,
        window_start: DateTime<Utc>,
    ) -> Result<Decimal, StoreError> {
        let held: Decimal = sqlx::query_scalar(
            "SELECT coalesce(sum(amount_usd), 0) FROM ai_budget_leases
             WHERE scope_id = $1 AND period = $2 AND window_start = $3 AND expires_at > now()",
        )
        .bind(scope_id)
        .bind(period.as_str())
        .bind(window_start)
        .fetch_one(&self.pool)
        .await?;
        Ok(held.normalize())
    }
}
