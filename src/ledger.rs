//! The ledger: settled requests become cost records through a bounded queue, written in
//! batches off the request path by one task, flushed on shutdown. A failing database
//! keeps the batch and retries with backoff instead of dropping it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::store::{CostRecord, Store, WindowMove};

/// Records written per transaction at most.
const MAX_BATCH: usize = 2048;
/// How long the writer waits for more records before writing a batch that is not full.
/// Budgets are enforced from memory, so this only delays reports, by at most this much.
/// `ledger_bench 30000 5000`: 70 µs of CPU per record at 10 ms, 46 at 50 ms, 39 at 200 ms.
const LINGER: Duration = Duration::from_millis(50);
/// Longest wait between retries of a failing write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What one write of the ledger did, for budgets and alerts (one message per write).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The spend windows it moved in the database (new records only).
    pub windows: Vec<WindowMove>,
    /// Each window's cost of every record it handled, new, already written by an earlier
    /// attempt, or refused for good: this process no longer holds that spend unwritten.
    pub settled:
        Vec<(uuid::Uuid, crate::window::Period, chrono::DateTime<chrono::Utc>, rust_decimal::Decimal)>,
}

/// Where the ledger reports each write.
pub type Moved = mpsc::UnboundedSender<Batch>;

enum Msg {
    Record(Box<CostRecord>),
    /// Acknowledged once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The sending side, cloned into every request that settles.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Msg>,
    depth: Arc<AtomicUsize>,
    /// Cuts the writer's wait for a fuller batch short when someone waits on a flush.
    hurry: Arc<Notify>,
    /// Second of the last queue-full warning, and how many full events since.
    last_full_warning: Arc<AtomicU64>,
    full_events: Arc<AtomicU64>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("depth", &self.depth()).finish()
    }
}

impl Ledger {
    /// Starts the writer task over `store` with a queue of `capacity` records; after each
    /// write, the spend windows it moved go to `moved` (budgets and alerts follow them).
    pub fn start(store: Store, capacity: usize, moved: Option<Moved>) -> (Ledger, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let hurry = Arc::new(Notify::new());
        let task = tokio::spawn(writer(store, rx, Arc::clone(&depth), Arc::clone(&hurry), moved));
        let ledger = Ledger {
            hurry,
            tx,
            depth,
            last_full_warning: Arc::new(AtomicU64::new(0)),
            full_events: Arc::new(AtomicU64::new(0)),
        };
        (ledger, task)
    }

    /// Queues a record without waiting; when the queue is full the record waits in a
    /// task of its own rather than stalling the response or being dropped.
    pub fn record(&self, record: CostRecord) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {
                let queued = self.tx.max_capacity() - self.tx.capacity();
                if self.tx.capacity() == 0 || queued >= MAX_BATCH {
                    self.hurry.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Full(msg)) => {
                self.hurry.notify_one();
                self.warn_full();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    if tx.send(msg).await.is_err() {
                        tracing::error!("ledger stopped before a queued cost record could be written");
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(Msg::Record(r))) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                tracing::error!(request_id = %r.request_id, "ledger stopped; cost record not written");
            }
            Err(mpsc::error::TrySendError::Closed(Msg::Flush(_))) => {}
        }
    }

    /// Says the queue is full, at most once a second (with how often it happened).
    fn warn_full(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let skipped = self.full_events.fetch_add(1, Ordering::Relaxed);
        if self.last_full_warning.swap(now, Ordering::Relaxed) != now {
            self.full_events.store(0, Ordering::Relaxed);
            tracing::warn!(
                times = skipped + 1,
                depth = self.depth(),
                "cost record queue full; records wait for room"
            );
        }
    }

    /// Records queued and not yet written.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Waits until every record handed over before this call is written, including those
    /// still waiting for room in the queue.
    pub async fn flush(&self) {
        loop {
            if !self.written_so_far().await {
                return;
            }
            if self.depth() == 0 {
                return;
            }
            // Records from the overflow path were queued behind the marker: go again.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits, at most `limit`, until the records in the queue when this is called are
    /// written (not those still waiting for room), so a read of the database that follows
    /// sees them. The limit keeps a database outage from stalling the caller; it then
    /// reads what is there.
    pub async fn catch_up(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.written_so_far()).await;
    }

    /// Puts a marker behind the queued records and waits for the writer to reach it;
    /// false when the writer has stopped.
    async fn written_so_far(&self) -> bool {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Msg::Flush(done)).await;
        self.hurry.notify_one();
        sent.is_ok() && wait.await.is_ok()
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Msg>,
    depth: Arc<AtomicUsize>,
    hurry: Arc<Notify>,
    moved: Option<Moved>,
) {
    let mut batch: Vec<CostRecord> = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        // A transaction has a fixed cost (about 0.4-1.5 ms of CPU here: WAL frames for every
        // touched index page, checkpoints), so a batch that is not full waits LINGER for
        // company. It sleeps rather than waiting on the queue, so arriving records do not
        // wake it one by one. It does not wait when the queue is full (senders are waiting
        // for room), and a sender that fills the queue or a batch, or a flush, cuts the
        // wait short (`hurry`).
        if !matches!(first, Msg::Flush(_)) && rx.capacity() > 0 && rx.len() < MAX_BATCH {
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                () = hurry.notified() => {}
            }
        }
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r) => batch.push(*r),
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let windows = write_with_retry(&store, &batch).await;
            depth.fetch_sub(batch.len(), Ordering::Relaxed);
            if let Some(moved) = &moved {
                let _ = moved.send(Batch { windows, settled: crate::store::window_costs(&batch) });
            }
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes a batch, retrying transient failures; a record the database refuses for good
/// (a constraint it breaks, data it cannot take) is isolated and logged so it cannot
/// block the others. Returns the spend windows the written records moved.
async fn write_with_retry(store: &Store, batch: &[CostRecord]) -> Vec<WindowMove> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.insert_cost_records(batch).await {
            Ok(written) => return written.windows,
            Err(e) if e.is_transient() => {
                tracing::error!(error = %e, records = batch.len(), "writing cost records failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(_) => {
                let mut windows = Vec::new();
                for record in batch {
                    windows.extend(write_one(store, record).await);
                }
                return windows;
            }
        }
    }
}

async fn write_one(store: &Store, record: &CostRecord) -> Vec<WindowMove> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.insert_cost_records(std::slice::from_ref(record)).await {
            Ok(written) => return written.windows,
            Err(e) if e.is_transient() => {
                tracing::error!(error = %e, "writing a cost record failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                tracing::error!(
                    error = %e, request_id = %record.request_id, cost_usd = %record.cost_usd,
                    user_id = %record.user_id, project_id = %record.project_id,
                    "cost record refused by the database (owner deleted mid-request?); not written"
                );
                return Vec::new();
            }
        }
    }
}
