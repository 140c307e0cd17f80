//! Budgets as a gate: the request's chain (every budget of its user, project and
//! organization) is checked and reserved in memory — no database I/O once warm — and
//! the reservation is replaced by the actual cost when the request settles.
//!
//! Counters are keyed by (scope id, period, window start), so a new calendar window
//! starts from zero with no job; several budgets of one scope and period share one
//! counter. Admission locks the chain's counters in a fixed order, so requests on
//! different chains never contend and no budget ever sees half a reservation.

pub mod admission;
pub mod lease;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::ledger::Ledger;
use crate::store::{Budget, Scope, Store, StoreError};
use crate::sync::lock;
use crate::window::Period;

/// Longest a counter load waits for the ledger to write what it holds (a healthy write
/// takes milliseconds; a database outage must not stall admission beyond this).
const CATCH_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

pub use admission::Admission;
pub use lease::{Lease, LeaseSettings};

/// Where "now" comes from; tests move it across window boundaries.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How strictly hard budgets admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionMode {
    /// `spent + reserved + estimate <= limit`.
    Reserve,
    /// `spent + reserved < limit`.
    Spent,
}

/// One spend counter: what settled in this window, and what in-flight requests hold.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter {
    pub spent: Decimal,
    pub reserved: Decimal,
    /// With several replicas: this replica's slice of the window, which hard budgets
    /// admit against instead of `spent` (SQLite: always `None`).
    pub lease: Option<Lease>,
}

/// A counter's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub scope_id: Uuid,
    pub period: Period,
    pub window_start: DateTime<Utc>,
}

/// Something loaded from the database on a cache miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Load {
    Counter(CounterKey),
    Budgets(Scope, Uuid),
}

/// A budget's current window, for reports and `GET /v1/budgets/{id}`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct BudgetStatus {
    #[serde(flatten)]
    pub budget: Budget,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = crate::store::Usd)]
    pub spent_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = crate::store::Usd)]
    pub reserved_usd: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = crate::store::Usd)]
    pub remaining_usd: Decimal,
    pub window_start: DateTime<Utc>,
    pub window_end: Option<DateTime<Utc>>,
}

/// A settled request took a budget's window spend from `before` to `after`.
#[derive(Debug, Clone)]
pub struct SpendMoved {
    pub budget: Arc<Budget>,
    pub window_start: DateTime<Utc>,
    pub before: Decimal,
    pub after: Decimal,
}

/// The in-memory budget state shared by the proxy and the admin API.
pub struct Budgets {
    store: Store,
    /// Lease settings when several replicas share budgets (PostgreSQL); `None` on SQLite.
    leases: Option<LeaseSettings>,
    /// One grant at a time per window, so concurrent shortfalls share one round trip.
    granting: DashMap<CounterKey, Arc<tokio::sync::Mutex<()>>>,
    /// One load at a time per counter or scope entity (present only while loading).
    loading: DashMap<Load, Arc<tokio::sync::Mutex<()>>>,
    /// Read-your-writes for counters loaded from the database (see `settled_spend`).
    ledger: Ledger,
    clock: Arc<dyn Clock>,
    mode: AdmissionMode,
    by_scope: DashMap<(Scope, Uuid), Arc<Vec<Arc<Budget>>>>,
    counters: DashMap<CounterKey, Arc<Mutex<Counter>>>,
    /// Bumped by every invalidation so a slow load cannot put stale budgets back.
    generation: AtomicU64,
    /// Where settled spend movements go (the alert evaluator), one message per write.
    moved: Option<tokio::sync::mpsc::UnboundedSender<Vec<SpendMoved>>>,
}

impl Budgets {
    /// Budget state over `store`; `moved` receives every written change of a budget's
    /// spend. On PostgreSQL hard budgets admit against leases taken with `leases`.
    pub fn new(
        store: Store,
        ledger: Ledger,
        clock: Arc<dyn Clock>,
        mode: AdmissionMode,
        leases: LeaseSettings,
        moved: Option<tokio::sync::mpsc::UnboundedSender<Vec<SpendMoved>>>,
    ) -> Budgets {
        Budgets {
            leases: store.postgres().map(|_| leases),
            granting: DashMap::new(),
            loading: DashMap::new(),
            store,
            ledger,
            clock,
            mode,
            by_scope: DashMap::new(),
            counters: DashMap::new(),
            generation: AtomicU64::new(0),
            moved,
        }
    }

    /// The clock admission uses.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Forgets cached budget definitions (counters stay: spend does not change) and makes
    /// every lease be taken again before it admits (a limit may have changed).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.by_scope.clear();
        self.stale_leases();
    }

    /// The budgets of one scope entity, from the cache or the database.
    pub async fn of(&self, scope: Scope, scope_id: Uuid) -> Result<Arc<Vec<Arc<Budget>>>, StoreError> {
        let key = (scope, scope_id);
        if let Some(found) = self.by_scope.get(&key).map(|e| Arc::clone(e.value())) {
            return Ok(found);
        }
        // One load per scope entity at a time: a burst of requests after a start or an
        // invalidation waits for the first one's query instead of each sending its own.
        let gate = self.loading.entry(Load::Budgets(scope, scope_id)).or_default().value().clone();
        let _one_at_a_time = gate.lock().await;
        if let Some(found) = self.by_scope.get(&key).map(|e| Arc::clone(e.value())) {
            return Ok(found);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded: Arc<Vec<Arc<Budget>>> =
            Arc::new(self.store.budgets_of(scope, scope_id).await?.into_iter().map(Arc::new).collect());
        self.by_scope.insert(key, Arc::clone(&loaded));
        if self.generation.load(Ordering::SeqCst) != generation {
            self.by_scope.remove(&key);
        }
        self.loading.remove(&Load::Budgets(scope, scope_id));
        Ok(loaded)
    }

    /// The counter for a key, loading the window's settled spend on first use.
    async fn counter(&self, key: CounterKey) -> Result<Arc<Mutex<Counter>>, StoreError> {
        if let Some(c) = self.counters.get(&key).map(|e| Arc::clone(e.value())) {
            return Ok(c);
        }
        let gate = self.loading.entry(Load::Counter(key)).or_default().value().clone();
        let _one_at_a_time = gate.lock().await;
        if let Some(c) = self.counters.get(&key).map(|e| Arc::clone(e.value())) {
            return Ok(c);
        }
        let spent = self.settled_spend(key).await?;
        let entry = self
            .counters
            .entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(Counter { spent, ..Counter::default() })));
        let counter = Arc::clone(entry.value());
        drop(entry);
        self.loading.remove(&Load::Counter(key));
        Ok(counter)
    }

    /// A window's spend from the database, once the ledger has written the records it
    /// already holds: requests that settled before this counter existed must count.
    async fn settled_spend(&self, key: CounterKey) -> Result<Decimal, StoreError> {
        self.ledger.catch_up(CATCH_UP_LIMIT).await;
        self.store.window_spend(key.scope_id, key.period, key.window_start).await
    }

    /// Current window figures of one budget.
    pub async fn status(&self, budget: Budget) -> Result<BudgetStatus, StoreError> {
        let now = self.now();
        let key = CounterKey {
            scope_id: budget.scope_id,
            period: budget.period,
            window_start: budget.period.start(now),
        };
        let counter = match (self.store.postgres(), self.counters.get(&key).map(|e| Arc::clone(e.value()))) {
            // Several replicas: the database knows the settled spend and every replica's
            // lease (which holds its in-flight reservations).
            (Some(pg), _) => Counter {
                spent: self.settled_spend(key).await?,
                reserved: self.store.counted(
                    "window_leases",
                    pg.window_leases(key.scope_id, key.period, key.window_start).await,
                )?,
                lease: None,
            },
            (None, Some(c)) => *lock(&c),
            (None, None) => Counter { spent: self.settled_spend(key).await?, ..Counter::default() },
        };
        Ok(BudgetStatus {
            remaining_usd: (budget.limit_usd - counter.spent - counter.reserved).normalize(),
            spent_usd: counter.spent.normalize(),
            reserved_usd: counter.reserved.normalize(),
            window_start: key.window_start,
            window_end: budget.period.end(now),
            budget,
        })
    }

    /// Drops counters of windows that ended more than a day ago and hold nothing (no
    /// reservation, no lease: an idle lease is returned first).
    pub fn sweep(&self) {
        let now = self.now();
        self.counters.retain(|key, counter| {
            let ended =
                key.period.end(key.window_start).is_some_and(|end| end + chrono::Duration::days(1) < now);
            let c = *lock(counter);
            !(ended && c.reserved.is_zero() && c.lease.is_none())
        });
        // A window's grant gate goes with its counter (unless a grant is waiting on it).
        self.granting.retain(|key, gate| self.counters.contains_key(key) || Arc::strong_count(gate) > 1);
    }

    /// Follows the ledger: each written batch's window movements update this replica's
    /// leases and become alert checks for every budget on those windows.
    pub async fn follow_ledger(&self, mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::ledger::Batch>) {
        while let Some(batch) = rx.recv().await {
            if self.leases.is_some() {
                for (scope_id, period, window_start, cost) in &batch.settled {
                    let key =
                        CounterKey { scope_id: *scope_id, period: *period, window_start: *window_start };
                    self.lease_consumed(&key, *cost);
                }
            }
            let mut moves = Vec::new();
            for w in batch.windows {
                self.heal(&w);
                if self.moved.is_none() {
                    continue;
                }
                let budgets = match self.of(w.scope, w.scope_id).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot load budgets to check alerts");
                        continue;
                    }
                };
                for budget in budgets.iter().filter(|b| b.period == w.period) {
                    moves.push(SpendMoved {
                        budget: Arc::clone(budget),
                        window_start: w.window_start,
                        before: w.before,
                        after: w.after,
                    });
                }
            }
            if let (Some(tx), false) = (&self.moved, moves.is_empty()) {
                let _ = tx.send(moves);
            }
        }
    }
}

impl Budgets {
    /// A counter never holds less than its window's written total: one loaded while a
    /// request settled (its record neither in the load's read nor added to the counter,
    /// which did not exist yet) catches up at the window's next write.
    fn heal(&self, w: &crate::store::WindowMove) {
        let key = CounterKey { scope_id: w.scope_id, period: w.period, window_start: w.window_start };
        let Some(counter) = self.counters.get(&key).map(|e| Arc::clone(e.value())) else { return };
        let mut c = lock(&counter);
        if c.spent < w.after {
            tracing::debug!(scope_id = %w.scope_id, missing = %(w.after - c.spent), "spend counter caught up with its window");
            c.spent = w.after;
        }
    }
}
