//! The ingester: reads the journal in order, writes settled records to the store in
//! batches (idempotent by request id), and deletes a segment once every entry in it is
//! stored: its settled records, and the settled records of the requests it admitted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{Batch, Moved, Shared, Stored, Unsettled};
use crate::journal::reader::{Progress, SegmentReader};
use crate::journal::{Entry, Journal};
use crate::store::{CostRecord, Store, WindowMove, Written};

/// Records written per transaction at most.
pub const MAX_BATCH: usize = 2048;
/// How long the ingester waits for company once a record arrives, so a transaction (a
/// fixed cost: WAL frames for every touched index page) carries many records. Budgets
/// are enforced from memory, so this only delays reports, by at most this much.
/// `ledger_bench 30000 5000`: 70 µs of CPU per record at 10 ms, 46 at 50 ms, 39 at 200 ms.
const LINGER: Duration = Duration::from_millis(50);
/// Longest wait between retries of a failing write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Where records the database refuses for good are kept (one JSON object a line).
const REFUSED_FILE: &str = "refused.jsonl";

/// Writes what a previous process left in the journal's older `segments`, then deletes
/// them: settled records once, admitted-but-never-settled requests as `unsettled` makes
/// them. Windows moved go to `moved` (alerts); nothing is reported settled, as this
/// process holds none of that spend. Returns how many records were new in the store.
pub async fn replay(
    store: &Store,
    journal: &Journal,
    segments: &[u64],
    unsettled: &Unsettled,
    moved: Option<&Moved>,
) -> u64 {
    if segments.is_empty() {
        return 0;
    }
    let mut inserted = 0;
    let mut open: HashMap<Uuid, crate::journal::Admitted> = HashMap::new();
    let mut batch = Vec::new();
    let mut entries = Vec::new();
    let mut settled = 0u64;
    for &index in segments {
        let mut reader = match SegmentReader::open(journal.dir(), index) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "journal segment cannot be read; skipped");
                continue;
            }
        };
        loop {
            entries.clear();
            let progress = match reader.next(None, &mut entries, MAX_BATCH) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, segment = index, "journal segment read failed; rest skipped");
                    Progress::End { bytes: 0, lost: 0 }
                }
            };
            for entry in entries.drain(..) {
                match entry {
                    Entry::Admitted(a) => {
                        open.insert(a.request_id, a);
                    }
                    Entry::Settled(record) => {
                        open.remove(&record.request_id);
                        batch.push(*record);
                    }
                }
            }
            if batch.len() >= MAX_BATCH {
                settled += batch.len() as u64;
                let written = write_with_retry(store, journal, &batch).await;
                inserted += written.inserted;
                report(moved, written.windows, Vec::new());
                batch.clear();
            }
            if let Progress::End { .. } = progress {
                break;
            }
        }
    }
    let interrupted = open.len();
    batch.extend(open.values().map(unsettled));
    settled += batch.len() as u64;
    for chunk in batch.chunks(MAX_BATCH) {
        let written = write_with_retry(store, journal, chunk).await;
        inserted += written.inserted;
        report(moved, written.windows, Vec::new());
    }
    for &index in segments {
        if let Err(e) = journal.release(index) {
            tracing::error!(error = %e, "replayed journal segment could not be deleted");
        }
    }
    tracing::info!(
        records = settled,
        interrupted,
        segments = segments.len(),
        "journal replayed into the store"
    );
    inserted
}

/// What the ingester knows of the segments it has read.
#[derive(Default)]
struct Segments {
    /// Entries of each segment not yet stored (settled records, and admitted requests
    /// whose record is not stored yet).
    outstanding: BTreeMap<u64, u64>,
    /// Segments read to their end.
    finished: BTreeSet<u64>,
    /// Requests admitted and not settled yet, with the segment of their admission.
    admitted: HashMap<Uuid, u64>,
}

impl Segments {
    fn add(&mut self, index: u64) {
        *self.outstanding.entry(index).or_default() += 1;
    }

    fn done(&mut self, index: u64) {
        if let Some(n) = self.outstanding.get_mut(&index) {
            *n = n.saturating_sub(1);
        }
    }

    /// Counts a stored record off its segment and off the segment that admitted it.
    fn stored(&mut self, segment: Option<u64>, request_id: &Uuid) {
        if let Some(index) = segment {
            self.done(index);
        }
        if let Some(index) = self.admitted.remove(request_id) {
            self.done(index);
        }
    }

    /// Deletes every finished segment with nothing outstanding.
    fn release(&mut self, journal: &Journal) {
        let free: Vec<u64> = self
            .finished
            .iter()
            .copied()
            .filter(|i| self.outstanding.get(i).copied().unwrap_or(0) == 0)
            .collect();
        for index in free {
            match journal.release(index) {
                Ok(()) => {
                    self.finished.remove(&index);
                    self.outstanding.remove(&index);
                }
                Err(e) => tracing::error!(error = %e, "journal segment could not be deleted"),
            }
        }
    }
}

/// The ingester task: from segment `first` on, until the process ends.
pub(super) async fn run(shared: Arc<Shared>, store: Store, first: u64, moved: Option<Moved>) {
    let journal = &shared.journal;
    let mut reader = match SegmentReader::open(journal.dir(), first) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "journal cannot be read; cost records stay in it until the next start");
            return;
        }
    };
    let mut segments = Segments::default();
    let mut stored = Stored { reading: first, ..Stored::default() };
    let mut entries = Vec::new();
    // The records to write, and the segment each came from (none: kept in memory).
    let mut batch: Vec<CostRecord> = Vec::with_capacity(MAX_BATCH);
    let mut origins: Vec<Option<u64>> = Vec::with_capacity(MAX_BATCH);
    let mut caught_up = true;
    loop {
        if caught_up {
            // Idle: sleep until a record is appended, then give others a moment to join
            // it, unless someone is waiting for a flush.
            let hurried = tokio::select! {
                () = shared.appended.notified() => false,
                () = shared.hurry.notified() => true,
            };
            if !hurried {
                tokio::select! {
                    () = tokio::time::sleep(LINGER) => {}
                    () = shared.hurry.notified() => {}
                }
            }
        }
        caught_up = false;
        let mut journal_settled = 0u64;
        while batch.len() < MAX_BATCH {
            let (active, whole) = journal.active();
            let live = (reader.index >= active).then_some(whole);
            entries.clear();
            let progress = match reader.next(live, &mut entries, MAX_BATCH - batch.len()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "journal read failed; retrying");
                    caught_up = true;
                    break;
                }
            };
            for entry in entries.drain(..) {
                segments.add(reader.index);
                match entry {
                    Entry::Admitted(a) => {
                        segments.admitted.insert(a.request_id, reader.index);
                    }
                    Entry::Settled(record) => {
                        journal_settled += 1;
                        batch.push(*record);
                        origins.push(Some(reader.index));
                    }
                }
            }
            match progress {
                Progress::More => {}
                Progress::CaughtUp => {
                    caught_up = true;
                    break;
                }
                Progress::Damaged => {
                    if let Err(e) = journal.seal(reader.index) {
                        tracing::error!(error = %e, "damaged journal segment could not be sealed");
                        caught_up = true;
                        break;
                    }
                }
                Progress::End { .. } => {
                    segments.finished.insert(reader.index);
                    match SegmentReader::open(journal.dir(), reader.index + 1) {
                        Ok(next) => reader = next,
                        Err(e) => {
                            tracing::error!(error = %e, "next journal segment cannot be opened");
                            caught_up = true;
                            break;
                        }
                    }
                }
            }
        }
        let from_memory = {
            let mut memory = crate::sync::lock(&shared.memory);
            let take = memory.len().min(MAX_BATCH.saturating_sub(batch.len()).max(1));
            memory.drain(..take).collect::<Vec<_>>()
        };
        let memory_count = from_memory.len() as u64;
        origins.extend(from_memory.iter().map(|_| None));
        batch.extend(from_memory);
        if !batch.is_empty() {
            let written = write_with_retry(&store, journal, &batch).await;
            shared.written.fetch_add(written.inserted, std::sync::atomic::Ordering::Relaxed);
            for (segment, record) in origins.iter().zip(&batch) {
                segments.stored(*segment, &record.request_id);
            }
            report(moved.as_ref(), written.windows, crate::store::window_costs(&batch));
            batch.clear();
            origins.clear();
        }
        segments.release(journal);
        stored.journal += journal_settled;
        stored.memory += memory_count;
        stored.reading = reader.index;
        shared.stored.send_replace(stored);
    }
}

fn report(moved: Option<&Moved>, windows: Vec<WindowMove>, settled: Vec<super::SettledCost>) {
    if let Some(moved) = moved {
        let _ = moved.send(Batch { windows, settled });
    }
}

/// Writes a batch, retrying transient failures; a record the database refuses for good
/// (a constraint it breaks, data it cannot take) is isolated so it cannot block the
/// others, and kept in the journal directory's refused file. Returns how many records
/// were new and the spend windows they moved.
async fn write_with_retry(store: &Store, journal: &Journal, batch: &[CostRecord]) -> Written {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.insert_cost_records(batch).await {
            Ok(written) => return written,
            Err(e) if !e.refuses_data() => {
                tracing::error!(error = %e, records = batch.len(), "writing cost records failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(_) if batch.len() > 1 => {
                let mut all = Written::default();
                for record in batch {
                    let one = Box::pin(write_with_retry(store, journal, std::slice::from_ref(record))).await;
                    all.inserted += one.inserted;
                    all.windows.extend(one.windows);
                }
                return all;
            }
            Err(e) => {
                let nothing = Written::default();
                let Some(record) = batch.first() else { return nothing };
                keep_refused(journal, record, &e.to_string());
                return nothing;
            }
        }
    }
}

/// A record the database will never take (its owner was deleted mid-request, say) is
/// appended to `refused.jsonl` beside the journal, so it is not lost, and logged.
fn keep_refused(journal: &Journal, record: &CostRecord, error: &str) {
    let path = journal.dir().join(REFUSED_FILE);
    let kept = serde_json::to_vec(record).map_err(std::io::Error::other).and_then(|mut line| {
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(&line)?;
        file.sync_data()
    });
    tracing::error!(
        error, request_id = %record.request_id, cost_usd = %record.cost_usd,
        user_id = %record.user_id, project_id = %record.project_id, kept_in = %path.display(),
        kept = kept.is_ok(),
        "cost record refused by the database (owner deleted mid-request?); kept in the refused file"
    );
}
