//! The ledger: every metered request goes into the journal when it is admitted and when
//! it settles; one task reads the journal back in order and writes the settled records to
//! the store in batches, then lets go of each segment whose entries are all stored. At
//! start it replays what a previous process left: settled records not yet stored are
//! written, and requests admitted but never settled are recorded as `estimated`.
//!
//! The request path never waits on the database: an append is one `write(2)`. While the
//! database is away the journal grows on disk (not in memory) up to its limit.

pub mod ingest;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::journal::{Admitted, Entry, Journal, JournalError, JournalSettings};
use crate::store::{CostRecord, Store, WindowMove};

/// What one write of the ledger did, for budgets and alerts (one message per write).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The spend windows it moved in the database (new records only).
    pub windows: Vec<WindowMove>,
    /// Each window's cost of every record it handled, new, already written by an earlier
    /// attempt, or refused for good: this process no longer holds that spend unwritten.
    pub settled: Vec<SettledCost>,
}

/// A window's (scope id, period, window start) share of settled records' cost.
pub type SettledCost =
    (uuid::Uuid, crate::window::Period, chrono::DateTime<chrono::Utc>, rust_decimal::Decimal);

/// Where the ledger reports each write.
pub type Moved = mpsc::UnboundedSender<Batch>;

/// Makes the record of a request a previous process admitted but never settled.
pub type Unsettled = Box<dyn Fn(&Admitted) -> CostRecord + Send + Sync>;

/// How far the ingester has got: settled journal entries and records kept in memory
/// (those the journal could not take) that are in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stored {
    journal: u64,
    memory: u64,
    /// The segment the ingester reads (every older one is read to its end).
    reading: u64,
}

struct Shared {
    journal: Journal,
    /// Settled records the journal could not take (a full or failing disk): kept here
    /// rather than lost, and written by the ingester like the others.
    memory: Mutex<Vec<CostRecord>>,
    memory_total: AtomicU64,
    /// Records this process inserted into the store (replayed ones included).
    written: AtomicU64,
    stored: watch::Sender<Stored>,
    /// A settled entry was appended (wakes an idle ingester).
    appended: Notify,
    /// Someone waits for a flush: write without lingering.
    hurry: Notify,
}

/// The handle every request settles through; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("depth", &self.depth()).finish()
    }
}

/// Why the ledger could not start.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl Ledger {
    /// Opens the journal in `settings.dir`, writes what a previous process left in it
    /// (`unsettled` makes the records of requests it never settled), then starts the
    /// ingester. After each write the spend windows it moved go to `moved`.
    pub async fn open(
        store: Store,
        settings: &JournalSettings,
        unsettled: Unsettled,
        moved: Option<Moved>,
    ) -> Result<(Ledger, JoinHandle<()>), LedgerError> {
        std::fs::create_dir_all(&settings.dir)
            .map_err(|source| JournalError::Io { path: settings.dir.display().to_string(), source })?;
        // Lock first (opening creates the next segment), then replay what is older.
        let before = crate::journal::segments(&settings.dir)?;
        let next = before.last().map_or(0, |last| last + 1);
        let on_disk = before
            .iter()
            .filter_map(|i| std::fs::metadata(crate::journal::segment_path(&settings.dir, *i)).ok())
            .map(|m| m.len())
            .sum();
        let journal = Journal::open(settings, next, on_disk)?;
        let replayed = ingest::replay(&store, &journal, &before, &unsettled, moved.as_ref()).await;
        let (stored, _) = watch::channel(Stored { reading: next, ..Stored::default() });
        let shared = Arc::new(Shared {
            journal,
            memory: Mutex::new(Vec::new()),
            memory_total: AtomicU64::new(0),
            written: AtomicU64::new(replayed),
            stored,
            appended: Notify::new(),
            hurry: Notify::new(),
        });
        let task = tokio::spawn(ingest::run(Arc::clone(&shared), store, next, moved));
        Ok((Ledger { shared }, task))
    }

    /// Refuses when the journal is full (the database has been away too long): a request
    /// admitted now could not be recorded.
    pub fn check_room(&self) -> Result<(), JournalError> {
        self.shared.journal.check_room()
    }

    /// Journals a request about to be sent upstream; an error means it must not be sent.
    pub fn admitted(&self, admitted: Admitted) -> Result<(), JournalError> {
        self.shared.journal.check_room()?;
        self.shared.journal.append(&Entry::Admitted(admitted))
    }

    /// Journals a settled request's record without waiting for the database.
    pub fn record(&self, record: CostRecord) {
        let entry = Entry::Settled(Box::new(record));
        match self.shared.journal.append(&entry) {
            Ok(()) => {
                self.shared.appended.notify_one();
                if self.depth() >= ingest::MAX_BATCH as u64 {
                    self.shared.hurry.notify_one();
                }
            }
            Err(e) => {
                let Entry::Settled(record) = entry else { return };
                tracing::error!(error = %e, request_id = %record.request_id, "journal append failed; the cost record waits in memory");
                crate::sync::lock(&self.shared.memory).push(*record);
                self.shared.memory_total.fetch_add(1, Ordering::AcqRel);
                self.shared.appended.notify_one();
            }
        }
    }

    /// Records settled and not yet in the store.
    pub fn depth(&self) -> u64 {
        let stored = *self.shared.stored.borrow();
        (self.shared.journal.settled() - stored.journal.min(self.shared.journal.settled()))
            + (self.shared.memory_total.load(Ordering::Acquire).saturating_sub(stored.memory))
    }

    /// Records this process inserted into the store, those replayed at start included (a
    /// record an earlier attempt had already written is not counted again).
    pub fn records_written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Bytes the journal holds on disk.
    pub fn journal_bytes(&self) -> u64 {
        self.shared.journal.on_disk()
    }

    /// Waits until every record settled before this call is in the store.
    pub async fn flush(&self) {
        let journal = self.shared.journal.settled();
        let memory = self.shared.memory_total.load(Ordering::Acquire);
        self.shared.hurry.notify_one();
        let mut rx = self.shared.stored.subscribe();
        let _ = rx.wait_for(|s| s.journal >= journal && s.memory >= memory).await;
    }

    /// Waits, at most `limit`, until the records settled before this call are in the
    /// store, so a read of the database that follows sees them. The limit keeps a
    /// database outage from stalling the caller; it then reads what is there.
    pub async fn catch_up(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.flush()).await;
    }

    /// At shutdown, once no request is in flight: waits at most `limit` for every settled
    /// record to be stored, then seals the journal so every segment whose entries are all
    /// stored is deleted, and closes it (synced, unlocked, no more appends). False when
    /// records remain in the journal: they are written at the next start.
    pub async fn close(&self, limit: Duration) -> bool {
        let journal = &self.shared.journal;
        let work = async {
            self.flush().await;
            let (active, _) = journal.active();
            if let Err(e) = journal.seal(active) {
                tracing::error!(error = %e, "journal could not be sealed at shutdown");
                return;
            }
            self.shared.hurry.notify_one();
            let mut rx = self.shared.stored.subscribe();
            let _ = rx.wait_for(|s| s.reading > active).await;
        };
        let done = tokio::time::timeout(limit, work).await.is_ok();
        if let Err(e) = journal.close() {
            tracing::error!(error = %e, "journal could not be closed cleanly at shutdown");
        }
        done && self.depth() == 0
    }
}
