//! Wiring: config -> store -> caches -> upstream client -> both listeners, running until
//! a shutdown signal, then draining in-flight requests within the grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::alerts::Alerts;
use crate::budget::{Budgets, Clock, SystemClock};
use crate::config::{Config, LogFormat};
use crate::identity::Identities;
use crate::invalidation::{self, Caches};
use crate::ledger::Ledger;
use crate::metrics::{Endpoint, Metrics, Sources};
use crate::proxy::metering::Metering;
use crate::proxy::{self, ProxyState};
use crate::server;
use crate::store::{self, Store};
use crate::upstream;

/// How often histogram samples are folded into their buckets between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// How long shutdown waits for the ledger to write what is journaled; what is left is
/// written at the next start.
const LEDGER_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// A started tollgate: its bound addresses and the handle that stops it.
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub store: Store,
    pub ledger: Ledger,
    /// Budget state, leases included (tests look at it).
    pub budgets: Arc<Budgets>,
    alerts: Arc<Alerts>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    ledger_task: JoinHandle<()>,
    _alerts_task: JoinHandle<()>,
    _follow_ledger: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, waits for in-flight requests (bounded by the grace period), then
    /// writes every pending cost record.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if self.ledger.close(LEDGER_FLUSH_LIMIT).await {
            // Every record is written, so nothing of this replica's leases is consumed and
            // unwritten: the others may have all of it now rather than after the TTL.
            self.budgets.release_leases().await;
        } else {
            tracing::warn!(
                pending = self.ledger.depth(),
                "cost records not all written to the database at shutdown; they are in the journal and are written at the next start"
            );
        }
        self.alerts.release_claims().await;
        drop(self.ledger);
        drop(self.ledger_task);
    }
}

/// Sets up tracing per the config; `RUST_LOG` overrides `log.filter`.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_filter));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Opens the store, binds both listeners and starts serving in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// [`start`] with the clock budget windows are computed from (tests move it).
pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let store = store::open(&config.database_url, config.database_pool)
        .await
        .with_context(|| format!("opening database {}", store::redact_url(&config.database_url)))?;
    let identities = Arc::new(Identities::new(store.clone()));
    let client = upstream::build_client(config.upstream_ca_file.as_deref(), config.connect_timeout)
        .context("building the upstream client")?;
    let (written, written_rx) = tokio::sync::mpsc::unbounded_channel();
    for field in &config.ignored {
        tracing::warn!(field, "config field no longer has any effect; remove it");
    }
    let prices = Arc::clone(&config.prices);
    let unsettled =
        Box::new(move |a: &crate::journal::Admitted| crate::proxy::metering::unsettled_record(a, &prices));
    let (ledger, ledger_task) = Ledger::open(store.clone(), &config.journal, unsettled, Some(written))
        .await
        .with_context(|| format!("opening the cost journal in {}", config.journal.dir.display()))?;
    let providers = config.providers.iter().map(|p| p.name.as_str());
    let metrics =
        Arc::new(Metrics::new(Arc::clone(&config.prices), providers).context("setting up the metrics")?);
    let metering = Arc::new(Metering::new(ledger.clone(), Arc::clone(&metrics)));
    let webhook_client = upstream::build_client(config.upstream_ca_file.as_deref(), config.connect_timeout)
        .context("building the webhook client")?;
    let (alerts, moved, alerts_task) = Alerts::start(store.clone(), webhook_client, config.alert_delivery);
    alerts.resume_pending().await;
    let budgets = Arc::new(Budgets::new(
        store.clone(),
        ledger.clone(),
        clock,
        config.admission,
        config.leases,
        Some(moved),
    ));
    let follow_ledger = tokio::spawn({
        let budgets = Arc::clone(&budgets);
        async move { budgets.follow_ledger(written_rx).await }
    });
    let tls = match &config.tls {
        Some((cert, key)) => Some(server::tls_acceptor(cert, key).context("loading listener TLS")?),
        None => None,
    };
    let proxy_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding proxy on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding admin on {}", config.admin_listen))?;
    let proxy_addr = proxy_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let (shutdown, watch_rx) = watch::channel(false);
    let signal = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let proxy_state = Arc::new(ProxyState {
        config: Arc::clone(&config),
        identities: Arc::clone(&identities),
        client,
        metering,
        budgets: Arc::clone(&budgets),
        metrics: Arc::clone(&metrics),
    });
    let scrape = Endpoint {
        metrics: Arc::clone(&metrics),
        sources: Sources { ledger: ledger.clone(), budgets: Arc::clone(&budgets), store: store.clone() },
        open: admin_addr.ip().is_loopback(),
    };
    let admin_state = Arc::new(AdminState {
        store: store.clone(),
        identities: Arc::clone(&identities),
        budgets: Arc::clone(&budgets),
        alerts: Arc::clone(&alerts),
        token: config.admin_token.clone(),
        metrics: scrape,
    });
    let grace = config.shutdown_grace;
    let proxy_task = tokio::spawn(server::serve(
        "proxy",
        proxy_listener,
        tls,
        move |req| proxy::handle(Arc::clone(&proxy_state), req),
        signal(watch_rx.clone()),
        grace,
        config.client_limits,
    ));
    let admin_task = tokio::spawn(server::serve(
        "admin",
        admin_listener,
        None,
        move |req| admin::handle(Arc::clone(&admin_state), req),
        signal(watch_rx.clone()),
        grace,
        config.client_limits,
    ));
    let keep_leases = tokio::spawn({
        let budgets = Arc::clone(&budgets);
        let stop = signal(watch_rx.clone());
        async move { budgets.keep_leases(stop).await }
    });
    let upkeep = tokio::spawn({
        let stop = signal(watch_rx.clone());
        async move {
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tokio::select! {
                    _ = tick.tick() => metrics.upkeep(),
                    () = &mut stop => return,
                }
            }
        }
    });
    let caches = Caches { identities, budgets: Arc::clone(&budgets), alerts: Arc::clone(&alerts) };
    let follow_task =
        tokio::spawn(invalidation::run(store.clone(), config.database_url.clone(), caches, signal(watch_rx)));
    let replica_id = store.postgres().map(|pg| pg.replica_id().to_string()).unwrap_or_default();
    tracing::info!(
        %proxy_addr, %admin_addr, database = %store::redact_url(&config.database_url), %replica_id,
        "tollgate started"
    );
    Ok(Running {
        proxy_addr,
        admin_addr,
        store,
        ledger,
        shutdown,
        tasks: vec![proxy_task, admin_task, follow_task, keep_leases, upkeep],
        budgets,
        alerts,
        _follow_ledger: follow_ledger,
        _alerts_task: alerts_task,
        ledger_task,
    })
}

/// Runs until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutdown signal received");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
