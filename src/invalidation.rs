//! Cache invalidation across processes. An admin write made elsewhere (another replica's
//! admin API, the CLI) must reach this process's caches: on PostgreSQL every write sends
//! `NOTIFY` and each replica `LISTEN`s on a connection of its own; on SQLite a server polls
//! the admin change counter once a second.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::alerts::Alerts;
use crate::budget::Budgets;
use crate::identity::Identities;
use crate::store::{Store, ADMIN_CHANNEL};

/// How often a SQLite server checks whether another process changed identities.
const ADMIN_POLL: Duration = Duration::from_secs(1);
/// How often budget counters of long-gone windows are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Longest wait between attempts to (re)open the LISTEN connection.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);
/// The `application_name` of the LISTEN connection (followed by the replica id), so an
/// operator can find it in `pg_stat_activity`.
pub const LISTEN_APPLICATION_NAME: &str = "tollgate-listen";

/// Every cache an admin write can make stale.
pub struct Caches {
    pub identities: Arc<Identities>,
    pub budgets: Arc<Budgets>,
    pub alerts: Arc<Alerts>,
}

impl Caches {
    /// Drops everything cached from the admin tables.
    pub fn invalidate(&self) {
        self.identities.invalidate_all();
        self.budgets.invalidate();
        self.alerts.invalidate();
    }
}

/// Keeps `caches` in step with admin writes made by other processes until `stop`, and
/// sweeps budget counters of ended windows.
pub async fn run(
    store: Store,
    database_url: String,
    caches: Caches,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let follow = async {
        if let Some(pg) = store.postgres() {
            let name = format!("{LISTEN_APPLICATION_NAME}-{}", pg.replica_id());
            listen(&database_url, &name, &caches).await;
        } else {
            poll(&store, &caches).await;
        }
    };
    let sweep = async {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            caches.budgets.sweep();
        }
    };
    tokio::select! {
        () = follow => {}
        () = sweep => {}
        () = &mut stop => {}
    }
}

/// SQLite: invalidates when the admin write counter moves.
async fn poll(store: &Store, caches: &Caches) {
    let mut seen = store.admin_version().await.ok();
    let mut tick = tokio::time::interval(ADMIN_POLL);
    loop {
        tick.tick().await;
        match store.admin_version().await {
            Ok(v) if Some(v) != seen => {
                if seen.is_some() {
                    caches.invalidate();
                }
                seen = Some(v);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "polling admin changes failed"),
        }
    }
}

/// PostgreSQL: invalidates on every notification. A lost connection may have hidden
/// notifications, so every (re)subscription invalidates everything. A drop alone does
/// not: if the database itself is away, nothing can change in it and the caches keep
/// serving; whatever changed before the connection came back is dropped then.
async fn listen(database_url: &str, application_name: &str, caches: &Caches) {
    let mut wait = Duration::from_millis(100);
    loop {
        match subscribe(database_url, application_name).await {
            Ok(mut listener) => {
                // Anything may have changed while there was no subscription.
                caches.invalidate();
                wait = Duration::from_millis(100);
                loop {
                    match listener.try_recv().await {
                        Ok(Some(_)) => caches.invalidate(),
                        Ok(None) => {
                            // Subscribe again (and invalidate once that runs) rather than
                            // letting the listener reconnect on its own: a change made
                            // before the new LISTEN would be missed by whatever got cached
                            // in between.
                            tracing::warn!(
                                "LISTEN connection lost; reconnecting (caches are dropped once it is back)"
                            );
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection failed; reconnecting (caches are dropped once it is back)");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for admin changes; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RECONNECT_WAIT);
    }
}

/// A listener on a one-connection pool of its own, so it never holds a connection the
/// request path needs.
async fn subscribe(database_url: &str, application_name: &str) -> Result<PgListener, sqlx::Error> {
    let options = PgConnectOptions::from_str(database_url)?.application_name(application_name);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(ADMIN_CHANNEL).await?;
    Ok(listener)
}
