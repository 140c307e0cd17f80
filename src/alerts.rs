//! Budget alerts: every settled spend movement is checked against the budget's alert
//! configs; a threshold crossed writes one `ai_budget_alerts` row per config per window
//! (the unique key decides), logs a warning, and POSTs the webhook with retries and
//! backoff, storing each attempt. Pending deliveries are resumed at start.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http::{header, Request};
use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::body::full;
use crate::budget::SpendMoved;
use crate::store::{Alert, AlertConfig, Budget, Store, StoreError};
use crate::upstream::UpstreamClient;

/// How often pending deliveries whose claim ran out (their replica stopped) are taken over.
const CLAIM_SWEEP: Duration = Duration::from_secs(30);

/// Delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// Wait before the second attempt; doubles each time.
    pub retry_base: Duration,
    /// Attempts before an alert's delivery is marked failed.
    pub max_attempts: u32,
    /// Time allowed for one webhook call.
    pub timeout: Duration,
}

/// The alert evaluator's shared state (its config cache is invalidated by admin writes).
pub struct Alerts {
    store: Store,
    client: UpstreamClient,
    settings: DeliverySettings,
    configs: DashMap<Uuid, Arc<Vec<AlertConfig>>>,
    /// Deliveries this process holds the claim of, released at shutdown so a restarted
    /// or another replica resumes them at once instead of after the claim runs out.
    delivering: dashmap::DashSet<Uuid>,
    generation: AtomicU64,
}

impl Alerts {
    /// Starts the evaluator; returns the state, the sender budgets report to, and the task.
    pub fn start(
        store: Store,
        client: UpstreamClient,
        settings: DeliverySettings,
    ) -> (Arc<Alerts>, mpsc::UnboundedSender<Vec<SpendMoved>>, JoinHandle<()>) {
        let alerts = Arc::new(Alerts {
            store,
            client,
            settings,
            configs: DashMap::new(),
            delivering: dashmap::DashSet::new(),
            generation: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(evaluate(Arc::clone(&alerts), rx));
        (alerts, tx, task)
    }

    /// Forgets cached alert configs.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.configs.clear();
    }

    async fn configs_of(&self, budget_id: Uuid) -> Result<Arc<Vec<AlertConfig>>, StoreError> {
        if let Some(found) = self.configs.get(&budget_id).map(|e| Arc::clone(e.value())) {
            return Ok(found);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let loaded = Arc::new(self.store.list_alert_configs(Some(budget_id)).await?);
        self.configs.insert(budget_id, Arc::clone(&loaded));
        if self.generation.load(Ordering::SeqCst) != generation {
            self.configs.remove(&budget_id);
        }
        Ok(loaded)
    }

    /// Gives up the claims of deliveries in progress here (at shutdown): whoever runs
    /// next takes them over at once.
    pub async fn release_claims(&self) {
        let held: Vec<Uuid> = self.delivering.iter().map(|id| *id).collect();
        if held.is_empty() {
            return;
        }
        if let Err(e) = self.store.release_alert_claims(&held).await {
            tracing::warn!(error = %e, "releasing alert delivery claims failed; they run out on their own");
        }
    }

    /// Takes over deliveries left pending by a replica that stopped (or by this one
    /// before a restart) and retries them; each goes to one replica only.
    pub async fn resume_pending(self: &Arc<Self>) {
        match self.store.claim_pending_alerts().await {
            Ok(pending) => {
                for alert in pending {
                    match self.store.get_budget(alert.budget_id).await {
                        Ok(budget) => {
                            tokio::spawn(deliver(Arc::clone(self), alert, budget));
                        }
                        Err(e) => {
                            tracing::warn!(alert_id = %alert.id, error = %e, "pending alert has no budget")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read pending alert deliveries"),
        }
    }
}

/// Whether spend moving from `before` to `after` crosses `percent` of `limit`.
pub fn crosses(limit: Decimal, percent: u32, before: Decimal, after: Decimal) -> bool {
    let threshold = limit * Decimal::from(percent) / Decimal::ONE_HUNDRED;
    before < threshold && after >= threshold
}

async fn evaluate(alerts: Arc<Alerts>, mut rx: mpsc::UnboundedReceiver<Vec<SpendMoved>>) {
    let mut sweep = tokio::time::interval(CLAIM_SWEEP);
    sweep.tick().await;
    loop {
        tokio::select! {
            moves = rx.recv() => {
                let Some(moves) = moves else { return };
                for m in moves {
                    check(&alerts, m).await;
                }
            }
            _ = sweep.tick() => alerts.resume_pending().await,
        }
    }
}

/// Fires every enabled threshold of the budget that this movement crossed.
async fn check(alerts: &Arc<Alerts>, m: SpendMoved) {
    let configs = match alerts.configs_of(m.budget.id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(budget_id = %m.budget.id, error = %e, "cannot load alert configs");
            return;
        }
    };
    for config in configs.iter().filter(|c| c.enabled) {
        if !crosses(m.budget.limit_usd, config.threshold_percent, m.before, m.after) {
            continue;
        }
        match alerts.store.insert_alert(config, m.window_start, m.budget.limit_usd, m.after).await {
            Ok(Some(alert)) => {
                tracing::warn!(
                    budget_id = %m.budget.id, scope = m.budget.scope.as_str(), scope_id = %m.budget.scope_id,
                    threshold_percent = config.threshold_percent, limit_usd = %m.budget.limit_usd,
                    spent_usd = %m.after, "budget alert threshold crossed"
                );
                if alert.webhook_url.is_some() {
                    tokio::spawn(deliver(Arc::clone(alerts), alert, Budget::clone(&m.budget)));
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(budget_id = %m.budget.id, error = %e, "cannot record budget alert"),
        }
    }
}

/// The webhook's JSON body.
pub fn payload(alert: &Alert, budget: &Budget) -> serde_json::Value {
    serde_json::json!({
        "alert_id": alert.id,
        "budget_id": budget.id,
        "scope": budget.scope.as_str(),
        "scope_id": budget.scope_id,
        "period": budget.period.as_str(),
        "threshold_percent": alert.threshold_percent,
        "limit_usd": alert.limit_usd.normalize().to_string(),
        "spent_usd": alert.spent_usd.normalize().to_string(),
        "window_start": alert.window_start,
        "time": alert.created_at,
    })
}

async fn deliver(alerts: Arc<Alerts>, alert: Alert, budget: Budget) {
    let Some(url) = alert.webhook_url.clone() else { return };
    alerts.delivering.insert(alert.id);
    attempt_delivery(&alerts, &alert, &budget, &url).await;
    alerts.delivering.remove(&alert.id);
}

async fn attempt_delivery(alerts: &Alerts, alert: &Alert, budget: &Budget, url: &str) {
    let body = Bytes::from(payload(alert, budget).to_string());
    let settings = alerts.settings;
    let mut attempts = alert.attempts;
    let mut wait = settings.retry_base;
    while attempts < settings.max_attempts {
        attempts += 1;
        let outcome = post(&alerts.client, url, body.clone(), settings.timeout).await;
        let (status, error) = match &outcome {
            Ok(()) => ("delivered", None),
            Err(e) if attempts >= settings.max_attempts => ("failed", Some(e.as_str())),
            Err(e) => ("pending", Some(e.as_str())),
        };
        if let Err(e) = alerts.store.record_delivery(alert.id, status, attempts, error).await {
            tracing::error!(alert_id = %alert.id, error = %e, "cannot store alert delivery status");
        }
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(alert_id = %alert.id, attempts, error = %e, "alert webhook delivery failed")
            }
        }
        if attempts < settings.max_attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        }
    }
}

async fn post(client: &UpstreamClient, url: &str, body: Bytes, timeout: Duration) -> Result<(), String> {
    let request = Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "tollgate-alerts")
        .body(full(body))
        .map_err(|e| format!("bad webhook url: {e}"))?;
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err("timed out".into()),
        Ok(Err(e)) => Err(format!("request failed: {e}")),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("webhook answered {}", response.status())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn crossing_means_from_below_to_at_or_above() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        assert!(crosses(d("10"), 50, d("4.99"), d("5")));
        assert!(crosses(d("10"), 80, d("0"), d("12")));
        assert!(!crosses(d("10"), 50, d("5"), d("6")), "already at the threshold before");
        assert!(!crosses(d("10"), 50, d("1"), d("4.999")));
        assert!(crosses(d("10"), 150, d("14"), d("15")));
    }
}
