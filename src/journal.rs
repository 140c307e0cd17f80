//! The write-ahead journal of cost records (SPEC §6): a directory of numbered segment
//! files that every metered request is appended to when it is admitted and again when it
//! settles, before anything waits on the database. The ledger reads it back in order and
//! deletes a segment once everything in it is in the store.
//!
//! Appends are one `write(2)` each under a mutex, so a process crash loses nothing that
//! was appended (the kernel holds it); a background thread fsyncs at most every
//! `fsync_ms`, which bounds what a power loss can take. The directory is locked
//! (`flock`) so two processes cannot share it.

pub mod frame;
pub mod reader;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use frame::{Admitted, Entry};

use crate::sync::lock;

/// Where the journal lives and how much of it may pile up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSettings {
    pub dir: PathBuf,
    /// Bytes on disk past which new metered requests are refused (503).
    pub max_bytes: u64,
    /// Group fsync interval; zero syncs every append before it returns.
    pub fsync: Duration,
}

/// Why the journal cannot take an entry (or cannot be opened).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the cost journal holds {bytes} bytes, its limit is {max}: the database is not keeping up")]
    Full { bytes: u64, max: u64 },
    #[error("journal directory {0} is in use by another tollgate process (give each replica its own [ledger] journal_dir)")]
    Locked(String),
    #[error("journal {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Encode(#[from] frame::EncodeError),
    #[error("the journal is closed (shutting down)")]
    Closed,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.display().to_string(), source }
}

/// The segment file of a given index.
pub fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:020}.seg"))
}

/// The indices of the segment files in `dir`, oldest first.
pub fn segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let index = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse::<u64>().ok());
        found.extend(index);
    }
    found.sort_unstable();
    Ok(found)
}

struct Active {
    index: u64,
    file: Arc<File>,
    len: u64,
    closed: bool,
}

/// The appending side of the journal, shared by every request.
pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sync_every_append: bool,
    active: Mutex<Active>,
    /// The segment being appended to and how many of its bytes are whole entries: the
    /// reader never reads past them, so it cannot see half an entry.
    active_index: AtomicU64,
    active_len: AtomicU64,
    /// Bytes in segment files not yet deleted.
    on_disk: AtomicU64,
    /// Settled entries appended so far (the ledger's progress is measured against it).
    settled: AtomicU64,
    syncer: Option<Arc<Syncer>>,
    lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).field("on_disk", &self.on_disk()).finish()
    }
}

impl Journal {
    /// Locks `settings.dir` (created if missing) and starts a new segment after the
    /// highest one there; `on_disk` is what the older segments already hold.
    pub fn open(settings: &JournalSettings, next_index: u64, on_disk: u64) -> Result<Journal, JournalError> {
        let dir = settings.dir.clone();
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(JournalError::Locked(dir.display().to_string())),
            Err(fs::TryLockError::Error(e)) => return Err(io_error(&lock_path)(e)),
        }
        let file = create_segment(&dir, next_index)?;
        let syncer = (!settings.fsync.is_zero()).then(|| Syncer::start(Arc::clone(&file), settings.fsync));
        Ok(Journal {
            segment_bytes: (settings.max_bytes / 16).clamp(64 << 10, 64 << 20),
            max_bytes: settings.max_bytes,
            sync_every_append: settings.fsync.is_zero(),
            active: Mutex::new(Active { index: next_index, file, len: 0, closed: false }),
            active_index: AtomicU64::new(next_index),
            active_len: AtomicU64::new(0),
            on_disk: AtomicU64::new(on_disk),
            settled: AtomicU64::new(0),
            syncer,
            lock,
            dir,
        })
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in segment files not yet released.
    pub fn on_disk(&self) -> u64 {
        self.on_disk.load(Ordering::Relaxed)
    }

    /// Settled entries appended since the journal was opened.
    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }

    /// Refuses when the journal is at its size limit: a request admitted now could not
    /// be recorded while the database is away.
    pub fn check_room(&self) -> Result<(), JournalError> {
        let bytes = self.on_disk();
        if bytes >= self.max_bytes {
            return Err(JournalError::Full { bytes, max: self.max_bytes });
        }
        Ok(())
    }

    /// Appends one entry; once this returns, a process crash cannot lose it.
    pub fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let mut frame = Vec::with_capacity(512);
        entry.encode(&mut frame)?;
        let settled = matches!(entry, Entry::Settled(_));
        let mut active = lock(&self.active);
        if active.closed {
            return Err(JournalError::Closed);
        }
        if active.len > 0 && active.len + frame.len() as u64 > self.segment_bytes {
            self.rotate(&mut active)?;
        }
        let path = segment_path(&self.dir, active.index);
        if let Err(e) = (&*active.file).write_all(&frame) {
            // Cut a partial write off so later entries stay readable; if even that fails,
            // later entries go to a new segment and the reader stops at the damage.
            if active.file.set_len(active.len).is_err() {
                let _ = self.rotate(&mut active);
            }
            return Err(io_error(&path)(e));
        }
        if self.sync_every_append {
            active.file.sync_data().map_err(io_error(&path))?;
        }
        active.len += frame.len() as u64;
        self.active_len.store(active.len, Ordering::Release);
        self.on_disk.fetch_add(frame.len() as u64, Ordering::Relaxed);
        if settled {
            self.settled.fetch_add(1, Ordering::AcqRel);
        }
        drop(active);
        if let Some(syncer) = &self.syncer {
            syncer.dirty();
        }
        Ok(())
    }

    /// Seals the active segment (synced) and starts the next one.
    fn rotate(&self, active: &mut MutexGuard<'_, Active>) -> Result<(), JournalError> {
        let old = segment_path(&self.dir, active.index);
        active.file.sync_data().map_err(io_error(&old))?;
        let next = active.index + 1;
        let file = create_segment(&self.dir, next)?;
        if let Some(syncer) = &self.syncer {
            syncer.switch(Arc::clone(&file));
        }
        **active = Active { index: next, file, len: 0, closed: false };
        // The length first: a reader that sees the new index sees its length too.
        self.active_len.store(0, Ordering::Release);
        self.active_index.store(next, Ordering::Release);
        Ok(())
    }

    /// The segment being appended to and the bytes of it that hold whole entries.
    pub fn active(&self) -> (u64, u64) {
        let index = self.active_index.load(Ordering::Acquire);
        (index, self.active_len.load(Ordering::Acquire))
    }

    /// Seals segment `index` if it is still the one appended to (the reader found damage
    /// in it and cannot read on until it is sealed).
    pub fn seal(&self, index: u64) -> Result<(), JournalError> {
        let mut active = lock(&self.active);
        if active.index == index {
            self.rotate(&mut active)?;
        }
        Ok(())
    }

    /// Deletes a segment whose entries are all in the store.
    pub fn release(&self, index: u64) -> Result<(), JournalError> {
        let path = segment_path(&self.dir, index);
        let bytes = fs::metadata(&path).map_err(io_error(&path))?.len();
        fs::remove_file(&path).map_err(io_error(&path))?;
        self.on_disk.fetch_sub(bytes.min(self.on_disk()), Ordering::Relaxed);
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Result<(), JournalError> {
        let active = lock(&self.active);
        active.file.sync_data().map_err(io_error(&segment_path(&self.dir, active.index)))
    }

    /// Shutdown: takes no more entries, syncs, and unlocks the directory for the next
    /// process.
    pub fn close(&self) -> Result<(), JournalError> {
        let mut active = lock(&self.active);
        active.closed = true;
        active.file.sync_data().map_err(io_error(&segment_path(&self.dir, active.index)))?;
        if let Some(syncer) = &self.syncer {
            syncer.stop();
        }
        self.lock.unlock().map_err(io_error(&self.dir.join("LOCK")))
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(syncer) = &self.syncer {
            syncer.stop();
        }
        let _ = self.sync();
    }
}

/// Creates a segment file and makes its directory entry durable.
fn create_segment(dir: &Path, index: u64) -> Result<Arc<File>, JournalError> {
    let path = segment_path(dir, index);
    let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_error(&path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
    Ok(Arc::new(file))
}

/// The group fsync thread: parked while nothing is appended, otherwise syncs the active
/// segment at most once per interval. Appends never wait for it.
struct Syncer {
    file: Mutex<Arc<File>>,
    dirty: AtomicBool,
    stopped: AtomicBool,
    thread: Mutex<Option<std::thread::Thread>>,
}

impl Syncer {
    fn start(file: Arc<File>, interval: Duration) -> Arc<Syncer> {
        let syncer = Arc::new(Syncer {
            file: Mutex::new(file),
            dirty: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let worker = Arc::clone(&syncer);
        let spawned = std::thread::Builder::new().name("tollgate-journal-sync".into()).spawn(move || {
            while !worker.stopped.load(Ordering::Acquire) {
                if !worker.dirty.swap(false, Ordering::AcqRel) {
                    std::thread::park_timeout(Duration::from_secs(1));
                    continue;
                }
                let file = Arc::clone(&*lock(&worker.file));
                if let Err(e) = file.sync_data() {
                    tracing::error!(error = %e, "journal fsync failed");
                }
                std::thread::sleep(interval);
            }
        });
        match spawned {
            Ok(handle) => *lock(&syncer.thread) = Some(handle.thread().clone()),
            Err(e) => tracing::error!(error = %e, "journal fsync thread could not start"),
        }
        syncer
    }

    fn dirty(&self) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            if let Some(thread) = &*lock(&self.thread) {
                thread.unpark();
            }
        }
    }

    fn switch(&self, file: Arc<File>) {
        *lock(&self.file) = file;
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(thread) = &*lock(&self.thread) {
            thread.unpark();
        }
    }
}
