//! The embedded store: the table, its change stream and the queues, held in
//! memory and made durable by a snapshot in a SQLite file and a journal
//! file beside it.
//!
//! Every change is applied in memory and appended, under the same lock and
//! so in the same order, to a pending journal buffer. A commit thread
//! appends what is pending as one frame of the journal file (see
//! `journal_file`): everything in flight together shares one
//! commit. Changes are visible at once and durable with the next commit, in
//! order, so a crash loses at most a suffix of the changes, never one in the
//! middle, and the state after a restart is one the running process went
//! through. A commit is in the page cache once its `write` returns, so it
//! survives `kill -9`. A sync thread flushes the file to disk
//! (`fdatasync`) every `SYNC_EVERY`, and at once when someone waits for
//! it: what acknowledges to the outside world (the HTTP API's 202,
//! `switchyard publish`) waits in [`EmbeddedStore::sync`] for the flush
//! that covers its changes, so an acknowledged command survives a power
//! loss too. Everyone waiting meanwhile shares the next flush (group
//! commit). A failed flush fails the store: it takes no more changes, and
//! every waiter gets the error.
//!
//! The journal is folded into a snapshot (the state written out as ops, in
//! the database's `snapshot` table) when a store opens and whenever it
//! grows past [`StoreOptions::fold_journal_bytes`] (256 MB by default).
//!
//! One process owns a data dir at a time (an exclusive `flock` on the
//! database file itself, which cannot be deleted from under its owner the
//! way a lock file could); others can open it read-only, seeing the state
//! as of the last commit, without changing any file.
use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::{watch, Notify};

use super::faults::Faults;
use super::journal::{decode_all, CorruptJournal, Op};
use super::journal_file::{self, Found, JournalFileError, JournalWriter};
use super::legacy;
use super::state::State;
use crate::envelope::{LOCAL_ACCOUNT, LOCAL_REGION};
use crate::ports::clock::{wall_clock, Clock};

/// The file format this code writes: 3 is the snapshot with a journal file
/// beside it (2 kept the journal in the database, 1 was a table per kind
/// of row; both are read and converted on open); a database from a newer
/// build is refused, so an older build never ignores a journal file.
pub const SCHEMA_VERSION: i64 = 3;

/// Journal bytes past which the commit thread folds the journal into a new
/// snapshot, by default. The state is serialised under the store's lock, so
/// this is kept large: the pause is rare, and a load replays at most this much.
const COMPACT_BYTES: u64 = 256 << 20;
/// Snapshot rows are cut at about this size.
const SNAPSHOT_PART_BYTES: usize = 4 << 20;

/// Options for opening a store. Defaults suit `switchyard up` and tests.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Number of change-stream shards; fixed when the database is created
    /// (a reopened database keeps its own count so records stay in place).
    pub shards: u32,
    /// The table name shown in stream ARNs.
    pub table_name: String,
    /// How long a commit waits for a reader holding the database lock.
    pub busy_timeout: Duration,
    /// Upper bound on a wait (long poll, stream wait) between re-checks.
    pub external_poll: Duration,
    /// FIFO deduplication window (SQS: 5 minutes).
    pub dedup_window: Duration,
    /// Journal bytes past which the running store folds the journal into a
    /// new snapshot.
    pub fold_journal_bytes: u64,
    /// What the store reads the time from (visibility, delays, the
    /// deduplication window, record times). With a virtual clock, waits for
    /// the commit thread block the calling runtime thread, so that virtual
    /// time cannot move while a commit is being written.
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            shards: 4,
            table_name: "switchyard".to_owned(),
            busy_timeout: Duration::from_secs(5),
            external_poll: Duration::from_millis(500),
            dedup_window: Duration::from_secs(300),
            fold_journal_bytes: COMPACT_BYTES,
            clock: wall_clock(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite error on {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}; this build knows version {SCHEMA_VERSION} (newer Switchyard?)")]
    SchemaTooNew { path: String, found: i64 },
    #[error("invalid store option: {0}")]
    InvalidOption(String),
    #[error("cannot create directory for {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is in use by another Switchyard process (`switchyard up`?); stop it, or talk to it through its HTTP API (read-only commands still work)")]
    InUse { path: String },
    #[error("no Switchyard store at {path} (is the data dir right?)")]
    Missing { path: String },
    #[error("{path}: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: CorruptJournal,
    },
    #[error("{path}: {source}")]
    JournalFile {
        path: String,
        #[source]
        source: JournalFileError,
    },
}

impl StoreError {
    /// `map_err` for SQLite errors on the database at `path`.
    pub(super) fn sqlite(path: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        }
    }

    /// `map_err` for the journal file at `path`.
    fn journal_file(path: &Path) -> impl Fn(JournalFileError) -> StoreError + '_ {
        move |source| StoreError::JournalFile {
            path: path.display().to_string(),
            source,
        }
    }

    /// `map_err` for a damaged journal or snapshot of the database at `path`.
    pub(super) fn corrupt(path: &str) -> impl Fn(CorruptJournal) -> StoreError + '_ {
        move |source| StoreError::Corrupt {
            path: path.to_owned(),
            source,
        }
    }
}

/// Per-queue wake-ups shared by every handle of the queue.
#[derive(Debug, Default)]
pub(crate) struct QueueMeta {
    /// Fired on changes that may make a message receivable.
    pub(super) notify: Notify,
    pub(super) dedup_inserts: AtomicU64,
}

impl QueueMeta {
    pub(super) fn new() -> Self {
        QueueMeta::default()
    }
}

/// A change was refused, or cannot be made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unwritable {
    #[error("the store was opened read-only (another process owns the data dir)")]
    ReadOnly,
    #[error("the store's journal failed and it takes no more changes: {0}")]
    Failed(String),
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshot (part INTEGER PRIMARY KEY, ops BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal (batch INTEGER PRIMARY KEY, ops BLOB NOT NULL);
"#;
// The `journal` table is schema 2's journal: read on open, then emptied.

/// The meta key naming the generation of the journal file that continues
/// the snapshot.
const JOURNAL_GENERATION: &str = "journal_generation";

/// What the lock guards: the state and the journal bytes not yet committed.
pub(super) struct Inner {
    pub(super) state: State,
    /// A journal frame: the ops after [`JournalWriter::frame`]'s header.
    pending: Vec<u8>,
    /// The number of the commit that `pending` will go out with.
    batch: u64,
    journaling: bool,
    /// The commit thread waits for a wake (it naps on its own otherwise,
    /// and a wake is a syscall that every change would pay).
    committer_parked: bool,
}

impl Inner {
    /// The commit that holds every change applied so far. With nothing
    /// pending, that is the one being written (or already durable).
    fn latest_batch(&self) -> u64 {
        if !self.has_pending() {
            self.batch - 1
        } else {
            self.batch
        }
    }

    fn has_pending(&self) -> bool {
        !JournalWriter::frame_is_empty(&self.pending)
    }
}

/// The changes one caller makes under the lock.
pub(super) struct Changes<'a> {
    pub(super) state: &'a mut State,
    /// The store clock's time when the change began: one instant per change.
    pub(super) now_ms: i64,
    pending: &'a mut Vec<u8>,
    journaling: bool,
}

impl Changes<'_> {
    /// Applies a change and journals it.
    pub(super) fn apply(&mut self, op: Op<'_>) {
        if let Err(e) = self.state.apply(&op) {
            // Live callers only build ops that fit the state.
            unreachable!("a live change did not apply: {e}");
        }
        if self.journaling {
            op.encode(self.pending);
        }
    }
}

/// Shared with the commit thread.
struct Core {
    inner: Mutex<Inner>,
    /// Woken when `pending` stops being empty, and on shutdown.
    wake: Condvar,
    /// The last commit written to the journal file (survives `kill -9`).
    committed: watch::Sender<u64>,
    /// The last commit flushed to disk (survives a power loss).
    flushed: watch::Sender<u64>,
    /// Someone waits for a flush: the sync thread flushes at once.
    flush_wanted: AtomicBool,
    failed: Mutex<Option<String>>,
    stop: AtomicBool,
    /// The journal file being appended to, for the sync thread.
    journal: Mutex<Option<File>>,
    /// Tests: the next flush fails as if the disk had.
    #[cfg(test)]
    fail_next_flush: AtomicBool,
}

/// The embedded backend's store. Open it once and share the `Arc`; the
/// table, stream and queues are cheap handles onto it.
pub struct EmbeddedStore {
    core: Arc<Core>,
    committer: Option<JoinHandle<()>>,
    syncer: Option<JoinHandle<()>>,
    read_only: bool,
    path: String,
    pub(super) shard_ids: Vec<String>,
    pub(super) table_name: String,
    pub(super) stream_arn: Arc<str>,
    pub(super) queues: RwLock<HashMap<String, Arc<QueueMeta>>>,
    stream_notify: Vec<Notify>,
    pub(super) faults: Arc<Faults>,
    pub(super) external_poll: Duration,
    pub(super) dedup_window_ms: i64,
    pub(super) clock: Arc<dyn Clock>,
    receipts: AtomicU64,
    /// Held while open: the exclusive lock on the database file.
    _owner: Option<File>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.core.stop.store(true, Ordering::SeqCst);
        // Through the lock: the commit thread is then either before its
        // check of `stop` or waiting, so the wake cannot fall in between.
        drop(self.lock());
        self.core.wake.notify_all();
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
        if let Some(t) = self.syncer.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// How a store opens its file.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Owner,
    ReadOnly,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database at `path`, owning it until
    /// dropped; `":memory:"` gives a private store with no file.
    pub fn open(path: impl AsRef<Path>) -> Result<Arc<Self>, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    pub fn in_memory() -> Result<Arc<Self>, StoreError> {
        Self::open(":memory:")
    }

    pub fn open_with(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<Arc<Self>, StoreError> {
        Self::open_mode(path.as_ref(), options, Mode::Owner)
    }

    /// Opens an existing database read-only, as it was at its last commit,
    /// whether or not another process owns it (`state dump`, `dlq list`
    /// beside a running `switchyard up`). Changes are refused.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Arc<Self>, StoreError> {
        Self::open_mode(path.as_ref(), StoreOptions::default(), Mode::ReadOnly)
    }

    fn open_mode(path: &Path, options: StoreOptions, mode: Mode) -> Result<Arc<Self>, StoreError> {
        let shown = path.display().to_string();
        if options.shards == 0 || options.shards > 1024 {
            return Err(StoreError::InvalidOption(format!(
                "shards must be 1..=1024, got {}",
                options.shards
            )));
        }
        if options.external_poll.is_zero() {
            return Err(StoreError::InvalidOption(
                "external_poll must be above zero".to_owned(),
            ));
        }
        let sql = StoreError::sqlite(&shown);
        let in_memory = shown == ":memory:";
        let created_ms = now_ms();
        if mode == Mode::ReadOnly && !in_memory && !path.is_file() {
            // A read-only open never creates anything: a mistyped data dir
            // is an error, not a new empty store.
            return Err(StoreError::Missing {
                path: shown.clone(),
            });
        }
        let (state, shards, label, conn, owner, journal) = if in_memory {
            let state = State::new(options.shards as usize);
            (
                state,
                options.shards,
                stream_label(created_ms),
                None,
                None,
                None,
            )
        } else {
            let owner = match mode {
                Mode::Owner => Some(take_ownership(path, &shown)?),
                Mode::ReadOnly => None,
            };
            let journal_path = journal_file::path_for(path);
            if mode == Mode::Owner {
                // A damaged journal is refused before anything is written,
                // or even opened for writing (whose close checkpoints).
                check_journal(path, &options, &journal_path, &shown)?;
            }
            let conn = open_file(path, &options, mode).map_err(&sql)?;
            if mode == Mode::Owner {
                upgrade_schema(&conn, &shown)?;
            }
            let shards: u32 = match meta_get(&conn, "shards").map_err(&sql)? {
                Some(s) => s.parse().unwrap_or(options.shards),
                None if mode == Mode::Owner => {
                    meta_set(&conn, "shards", &options.shards.to_string()).map_err(&sql)?;
                    options.shards
                }
                None => options.shards,
            };
            if shards != options.shards {
                tracing::warn!(db = %shown, stored = shards, asked = options.shards, "keeping the shard count the database was created with");
            }
            let label = match meta_get(&conn, "stream_label").map_err(&sql)? {
                Some(l) => l,
                None => {
                    let l = stream_label(created_ms);
                    if mode == Mode::Owner {
                        meta_set(&conn, "stream_label", &l).map_err(&sql)?;
                    }
                    l
                }
            };
            let mut loaded = load(&conn, shards as usize, &journal_path, &shown)?;
            let reclaimed = loaded.state.reclaim_in_flight(created_ms);
            let journal = match mode {
                Mode::Owner => Some(start_journal(&conn, &loaded, &journal_path, &shown)?),
                Mode::ReadOnly => None,
            };
            let state = loaded.state;
            if reclaimed > 0 {
                tracing::info!(db = %shown, reclaimed, "messages in flight when the store last closed are visible again");
            }
            (state, shards, label, Some(conn), owner, journal)
        };

        let queues = state
            .queues
            .keys()
            .map(|name| (name.clone(), Arc::new(QueueMeta::new())))
            .collect();
        let journaling = journal.is_some();
        let (committed, _) = watch::channel(0u64);
        let (flushed, _) = watch::channel(0u64);
        let core = Arc::new(Core {
            inner: Mutex::new(Inner {
                state,
                pending: JournalWriter::frame(),
                batch: 1,
                committer_parked: false,
                journaling,
            }),
            wake: Condvar::new(),
            committed,
            flushed,
            flush_wanted: AtomicBool::new(false),
            failed: Mutex::new(None),
            stop: AtomicBool::new(false),
            journal: Mutex::new(None),
            #[cfg(test)]
            fail_next_flush: AtomicBool::new(false),
        });
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(run)
                .map_err(|source| StoreError::Io {
                    path: shown.clone(),
                    source,
                })
        };
        let (committer, syncer) = match (conn, journal) {
            (Some(conn), Some(journal)) => {
                let (c, db) = (Arc::clone(&core), shown.clone());
                let fold = options.fold_journal_bytes;
                let committer = spawn(
                    "switchyard-commit",
                    Box::new(move || commit_loop(&c, &conn, journal, fold, &db)),
                )?;
                let (c, db) = (Arc::clone(&core), shown.clone());
                let syncer = spawn("switchyard-sync", Box::new(move || sync_loop(&c, &db)))?;
                (Some(committer), Some(syncer))
            }
            _ => (None, None),
        };
        let stream_arn = format!(
            "arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{}/stream/{label}",
            options.table_name
        )
        .into();
        Ok(Arc::new(EmbeddedStore {
            core,
            committer,
            syncer,
            read_only: mode == Mode::ReadOnly,
            path: shown.clone(),
            shard_ids: (0..shards).map(shard_id).collect(),
            table_name: options.table_name,
            stream_arn,
            queues: RwLock::new(queues),
            stream_notify: (0..shards).map(|_| Notify::new()).collect(),
            faults: Arc::new(Faults::default()),
            external_poll: options.external_poll,
            dedup_window_ms: ms(options.dedup_window),
            clock: options.clock,
            // Seeded from the clock so receipts stay unique across restarts.
            receipts: AtomicU64::new(created_ms as u64 * 1000),
            _owner: owner,
        }))
    }

    /// The table name the stream ARN names.
    pub fn table_name(&self) -> &str {
        &self.table_name
    }

    /// The database path (or `:memory:`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this store was opened with [`EmbeddedStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The fault-injection switch (off by default). Pass it to
    /// `FolderBlobStore::with_faults` to drive blob faults from the same seed.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The state, for reads.
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.core.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the lock; the changes it applies are journaled and go
    /// out with the returned commit (see [`EmbeddedStore::durable`]). A
    /// refusal (`Err` from `f`) must come before `f` applies anything.
    pub(super) fn change<T, E>(
        &self,
        f: impl FnOnce(&mut Changes<'_>) -> Result<T, E>,
    ) -> Result<(T, u64), E>
    where
        E: From<Unwritable>,
    {
        if self.read_only {
            return Err(Unwritable::ReadOnly.into());
        }
        if let Some(e) = self.failure() {
            return Err(Unwritable::Failed(e).into());
        }
        let mut g = self.lock();
        let inner = &mut *g;
        let mut changes = Changes {
            now_ms: self.clock.now_ms(),
            state: &mut inner.state,
            pending: &mut inner.pending,
            journaling: inner.journaling,
        };
        let out = f(&mut changes)?;
        let batch = inner.latest_batch();
        let wake = inner.committer_parked && inner.has_pending();
        if wake {
            inner.committer_parked = false;
        }
        drop(g);
        if wake {
            self.core.wake.notify_one();
        }
        Ok((out, batch))
    }

    /// Waits until every change applied so far is on disk (written and
    /// flushed): what a system's edge calls before it acknowledges anything
    /// to the outside world (the HTTP API's 202, `switchyard publish`).
    /// Inside the pipeline nothing waits for the disk: a crash loses only a
    /// suffix of the changes, so a handled message whose delete was lost is
    /// redelivered and handled again.
    pub async fn sync(&self) -> Result<(), Unwritable> {
        let batch = self.lock().latest_batch();
        self.flushed(batch).await
    }

    /// Waits until commit `batch` is written to the journal file, so it
    /// survives `kill -9` (at once in memory).
    pub(super) async fn committed(&self, batch: u64) -> Result<(), Unwritable> {
        if self.committer.is_some() {
            let mut rx = self.core.committed.subscribe();
            // The sender lives as long as the store, which `self` borrows.
            let _ = self.wait_for_thread(rx.wait_for(|d| *d >= batch)).await;
        }
        self.healthy()
    }

    /// Awaits work of the commit or sync thread. On a virtual clock the
    /// runtime thread blocks instead: were it to park, tokio would move
    /// virtual time on while the disk is written (and run other tasks in an
    /// order the OS decides), so a replay would be neither faithful nor
    /// reproducible.
    async fn wait_for_thread<F: Future>(&self, wait: F) -> F::Output {
        if self.clock.is_virtual() {
            block_this_thread(wait)
        } else {
            wait.await
        }
    }

    /// The time on the store's clock, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Waits until commit `batch` is flushed to disk, asking the sync thread
    /// for a flush if none covers it yet.
    pub(super) async fn flushed(&self, batch: u64) -> Result<(), Unwritable> {
        self.committed(batch).await?;
        let Some(syncer) = &self.syncer else {
            return Ok(());
        };
        let mut rx = self.core.flushed.subscribe();
        if *rx.borrow_and_update() < batch {
            self.core.flush_wanted.store(true, Ordering::Release);
            syncer.thread().unpark();
            let _ = self.wait_for_thread(rx.wait_for(|d| *d >= batch)).await;
        }
        self.healthy()
    }

    fn healthy(&self) -> Result<(), Unwritable> {
        match self.failure() {
            Some(e) => Err(Unwritable::Failed(e)),
            None => Ok(()),
        }
    }

    fn failure(&self) -> Option<String> {
        self.core
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A fresh receipt nonce (never 0).
    pub(super) fn next_receipt(&self) -> u64 {
        self.receipts.fetch_add(1, Ordering::Relaxed) | 1
    }

    /// Fired when records were appended to shard `idx`.
    pub(super) fn stream_notify(&self, idx: usize) -> &Notify {
        &self.stream_notify[idx]
    }

    pub(super) fn shard_index(&self, shard: &str) -> Option<usize> {
        self.shard_ids.iter().position(|s| s == shard)
    }
}

/// Takes the exclusive lock on the database file (creating it, private to
/// its owner, if new), or says who has it. `flock` locks are independent
/// of the `fcntl` locks SQLite takes on the same file.
fn take_ownership(path: &Path, shown: &str) -> Result<File, StoreError> {
    let io = |source| StoreError::Io {
        path: shown.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = super::private_file(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true),
    )
    .open(path)
    .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: shown.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

fn open_file(path: &Path, options: &StoreOptions, mode: Mode) -> rusqlite::Result<Connection> {
    let flags = match mode {
        Mode::Owner => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    if mode == Mode::Owner {
        // WAL, so a read-only open reads beside the owner's snapshot writes.
        // Only snapshots are written here (the journal is a file of its own),
        // rarely: FULL puts each on disk before the journal that continues
        // it is started, at no cost to a commit.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(conn)
}

/// Reads through the journal file's frames without applying them: an owner
/// refuses a damaged journal before it writes to the database, so the
/// refusal leaves every file as it was.
fn check_journal(
    path: &Path,
    options: &StoreOptions,
    journal: &Path,
    shown: &str,
) -> Result<(), StoreError> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(()); // a new database: any journal beside it is stale
    }
    let conn = open_file(path, options, Mode::ReadOnly).map_err(StoreError::sqlite(shown))?;
    let generation = meta_get(&conn, JOURNAL_GENERATION)
        .map_err(StoreError::sqlite(shown))?
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    journal_file::read(journal, generation, |_| Ok(()))
        .map(drop)
        .map_err(StoreError::journal_file(journal))
}

/// Creates the schema, or brings an older database to this one.
fn upgrade_schema(conn: &Connection, shown: &str) -> Result<(), StoreError> {
    let sql = StoreError::sqlite(shown);
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&sql)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: shown.to_owned(),
            found,
        });
    }
    conn.execute_batch(SCHEMA).map_err(&sql)?;
    if found == 1 {
        import_schema_1(conn, shown)?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(&sql)?;
    Ok(())
}

/// Brings a schema-1 database (a SQLite table per kind of row) into a
/// snapshot and drops its old tables, in the transaction of the upgrade.
fn import_schema_1(conn: &Connection, shown: &str) -> Result<(), StoreError> {
    let state = legacy::read(conn, now_ms()).map_err(|e| match e {
        legacy::ImportError::Sqlite(source) => StoreError::sqlite(shown)(source),
        legacy::ImportError::Corrupt(source) => StoreError::corrupt(shown)(source),
    })?;
    // A schema-1 database never had a journal file: generation 0 starts one.
    write_parts(conn, &snapshot_parts(&state), 0).map_err(StoreError::sqlite(shown))?;
    legacy::drop_tables(conn).map_err(StoreError::sqlite(shown))?;
    tracing::info!(db = %shown, items = state.items.len(), queues = state.queues.len(), "imported a schema-1 database into the journal format");
    Ok(())
}

/// A database and its journal file, read.
struct Loaded {
    state: State,
    /// Rows of schema 2's journal table replayed.
    rows: usize,
    /// The generation of the journal file that continues the snapshot.
    generation: u64,
    found: Found,
}

/// Reads the snapshot (and any schema-2 journal rows), then the journal
/// file that continues it. A read-only open racing the owner's fold can
/// find a journal newer than the snapshot it read: it reads again.
fn load(
    conn: &Connection,
    shards: usize,
    journal: &Path,
    shown: &str,
) -> Result<Loaded, StoreError> {
    let corrupt = StoreError::corrupt(shown);
    for _ in 0..10 {
        let mut state = State::new(shards);
        let (rows, generation) = load_database(conn, &mut state, shown)?;
        let found = journal_file::read(journal, generation, |ops| {
            decode_all(ops, |op| state.apply(&op))
        });
        let found = match found {
            Err(JournalFileError::Ops(e)) => return Err(corrupt(e)),
            other => other.map_err(StoreError::journal_file(journal))?,
        };
        if found != Found::Newer {
            return Ok(Loaded {
                state,
                rows,
                generation,
                found,
            });
        }
    }
    Err(StoreError::journal_file(journal)(
        JournalFileError::AheadOfSnapshot,
    ))
}

/// Applies the database's snapshot and journal rows; returns how many rows
/// there were and the journal generation. One read transaction, so a
/// concurrent fold is either wholly in or wholly out.
fn load_database(
    conn: &Connection,
    state: &mut State,
    shown: &str,
) -> Result<(usize, u64), StoreError> {
    let sql = StoreError::sqlite(shown);
    let corrupt = StoreError::corrupt(shown);
    let has_tables: bool = conn
        .query_row(
            "SELECT COUNT(*) = 2 FROM sqlite_master WHERE name IN ('snapshot', 'journal')",
            [],
            |r| r.get(0),
        )
        .map_err(&sql)?;
    if !has_tables {
        return Ok((0, 0));
    }
    conn.execute_batch("BEGIN").map_err(&sql)?;
    let result = (|| {
        let mut rows = 0;
        for table in ["snapshot", "journal"] {
            let mut st = conn
                .prepare(&format!("SELECT ops FROM {table} ORDER BY rowid"))
                .map_err(&sql)?;
            let mut found = st.query([]).map_err(&sql)?;
            while let Some(row) = found.next().map_err(&sql)? {
                let blob = row.get_ref(0).map_err(&sql)?.as_blob().map_err(|e| {
                    sql(rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Blob,
                        Box::new(e),
                    ))
                })?;
                decode_all(blob, |op| state.apply(&op)).map_err(&corrupt)?;
                if table == "journal" {
                    rows += 1;
                }
            }
        }
        let generation = meta_get(conn, JOURNAL_GENERATION)
            .map_err(&sql)?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        Ok((rows, generation))
    })();
    let _ = conn.execute_batch("COMMIT");
    result
}

/// The owner's journal: what was replayed is folded into a fresh snapshot
/// first, so the next load is quick, and a new journal continues it.
fn start_journal(
    conn: &Connection,
    loaded: &Loaded,
    path: &Path,
    shown: &str,
) -> Result<OpenJournal, StoreError> {
    let io = |e: std::io::Error| StoreError::journal_file(path)(e.into());
    let Loaded {
        ref state,
        rows,
        generation,
        found,
    } = *loaded;
    let (writer, generation) = match found {
        Found::Current {
            frames: 0,
            valid_end,
            legacy: false,
        } if rows == 0 => (
            JournalWriter::resume(path, valid_end).map_err(io)?,
            generation,
        ),
        Found::Missing | Found::Stale | Found::Current { frames: 0, .. } if rows == 0 => (
            JournalWriter::create(path, generation).map_err(io)?,
            generation,
        ),
        Found::Newer => {
            return Err(StoreError::journal_file(path)(
                JournalFileError::AheadOfSnapshot,
            ))
        }
        _ => {
            let next = generation + 1;
            write_parts(conn, &snapshot_parts(state), next).map_err(StoreError::sqlite(shown))?;
            (JournalWriter::create(path, next).map_err(io)?, next)
        }
    };
    Ok(OpenJournal {
        writer,
        generation,
        path: path.to_owned(),
    })
}

/// The journal file the commit thread appends to.
struct OpenJournal {
    writer: JournalWriter,
    generation: u64,
    path: PathBuf,
}

/// The state as snapshot rows.
fn snapshot_parts(state: &State) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = vec![Vec::new()];
    state.snapshot(|op| {
        let last = parts.last_mut().expect("one part at least");
        op.encode(last);
        if last.len() >= SNAPSHOT_PART_BYTES {
            parts.push(Vec::new());
        }
    });
    parts
}

/// Replaces the snapshot with these rows, continued by the journal file of
/// `generation`, and empties the journal table, in one transaction; then
/// copies the WAL into the database so it does not keep the snapshot twice.
fn write_parts(conn: &Connection, parts: &[Vec<u8>], generation: u64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE; DELETE FROM snapshot; DELETE FROM journal;")?;
    let result = (|| {
        let mut st = conn.prepare("INSERT INTO snapshot (part, ops) VALUES (?1, ?2)")?;
        for (i, part) in parts.iter().enumerate() {
            st.execute((i as i64, part))?;
        }
        meta_set(conn, JOURNAL_GENERATION, &generation.to_string())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    // A reader in the way only delays this to the next fold.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::debug!(error = %e, "checkpoint after the snapshot skipped");
    }
    Ok(())
}

/// The commit thread: appends each pending frame to the journal file and
/// marks its batch durable; folds the journal into a snapshot when it is big.
fn commit_loop(core: &Core, conn: &Connection, journal: OpenJournal, fold_bytes: u64, shown: &str) {
    let OpenJournal {
        mut writer,
        mut generation,
        path,
    } = journal;
    let share = |writer: &JournalWriter| {
        *core.journal.lock().unwrap_or_else(|e| e.into_inner()) = writer.sync_handle().ok();
    };
    share(&writer);
    // Swapped with `pending` each commit, so neither buffer is reallocated.
    let mut frame = JournalWriter::frame();
    let mut g = core.inner.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if !g.has_pending() && !core.stop.load(Ordering::SeqCst) {
            // Under load the next change comes within the nap, so nobody
            // needs to wake this thread; only an idle store parks it.
            g = core
                .wake
                .wait_timeout(g, COMMIT_NAP)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        while !g.has_pending() && !core.stop.load(Ordering::SeqCst) {
            g.committer_parked = true;
            g = core.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.committer_parked = false;
        if !g.has_pending() {
            drop(g);
            // Stopping, and everything is written: flush it to disk too.
            if let Err(e) = core.flush() {
                fail(
                    core,
                    shown,
                    format!("flushing the journal to disk at close: {e}"),
                );
            }
            return;
        }
        let batch = g.batch;
        g.batch += 1;
        let result = if writer.bytes + g.pending.len() as u64 > fold_bytes {
            // The state includes the pending changes: the snapshot covers them.
            JournalWriter::clear_frame(&mut g.pending);
            let parts = snapshot_parts(&g.state);
            drop(g);
            let started = std::time::Instant::now();
            let next = generation + 1;
            let r = write_parts(conn, &parts, next)
                .map_err(|e| e.to_string())
                .and_then(|()| JournalWriter::create(&path, next).map_err(|e| e.to_string()));
            tracing::debug!(db = %shown, parts = parts.len(), ms = started.elapsed().as_millis() as u64, "journal folded into a snapshot");
            r.map(|w| {
                writer = w;
                generation = next;
                share(&writer);
            })
        } else {
            std::mem::swap(&mut g.pending, &mut frame);
            drop(g);
            let r = writer.append(&mut frame).map_err(|e| e.to_string());
            JournalWriter::clear_frame(&mut frame);
            r
        };
        if let Err(e) = result {
            return fail(core, shown, format!("writing the journal: {e}"));
        }
        core.committed.send_replace(batch);
        g = core.inner.lock().unwrap_or_else(|e| e.into_inner());
    }
}

/// How long the commit thread waits for more changes before it parks
/// (and what a change made meanwhile may wait for its commit).
const COMMIT_NAP: Duration = Duration::from_micros(500);

/// How often the sync thread flushes the journal file to disk when nobody
/// waits for it.
const SYNC_EVERY: Duration = Duration::from_millis(100);

/// Flushes committed journal frames to disk on a thread of its own, so a
/// commit never waits for the disk: every [`SYNC_EVERY`], and at once when
/// [`EmbeddedStore::flushed`] asks. Whoever asks during a flush is served
/// by the next one, which covers every commit written by then.
fn sync_loop(core: &Core, shown: &str) {
    loop {
        let stopping = core.stop.load(Ordering::SeqCst);
        if !stopping && !core.flush_wanted.swap(false, Ordering::AcqRel) {
            std::thread::park_timeout(SYNC_EVERY);
            core.flush_wanted.store(false, Ordering::Release);
        }
        if let Err(e) = core.flush() {
            // What is in memory can no longer be promised to survive.
            return fail(core, shown, format!("flushing the journal to disk: {e}"));
        }
        if stopping {
            return;
        }
    }
}

impl Core {
    /// Flushes the journal file and marks every commit written before the
    /// flush began as flushed. Earlier journals of a fold need no flush:
    /// the snapshot that replaced them was written with `synchronous=FULL`.
    fn flush(&self) -> std::io::Result<()> {
        // Read before the flush: everything written by now is covered.
        let target = *self.committed.borrow();
        if target <= *self.flushed.borrow() {
            return Ok(());
        }
        #[cfg(test)]
        if self.fail_next_flush.swap(false, Ordering::AcqRel) {
            return Err(std::io::Error::other("injected flush failure"));
        }
        {
            let file = self.journal.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = &*file {
                f.sync_data()?;
            }
        }
        self.flushed.send_if_modified(|f| {
            let newer = target > *f;
            if newer {
                *f = target;
            }
            newer
        });
        Ok(())
    }
}

/// Stops the store taking changes and releases every waiter with the error:
/// what is in memory can no longer be made durable.
fn fail(core: &Core, shown: &str, error: String) {
    tracing::error!(db = %shown, %error, "the store's journal failed");
    *core.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    core.committed.send_replace(u64::MAX);
    core.flushed.send_replace(u64::MAX);
}

fn meta_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    let exists: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'meta'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn meta_set(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        (key, value),
    )?;
    Ok(())
}

/// DynamoDB names a stream by its creation time, e.g. `2024-01-01T00:00:00.000`.
fn stream_label(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f")
        .to_string()
}

fn shard_id(i: u32) -> String {
    format!("shardId-{i:05}")
}

/// Milliseconds since the Unix epoch.
/// Runs `wait` to completion on this thread, parking it in between. Not
/// `futures::executor::block_on`: the synchronous admin calls already run
/// inside one (`create_queue`, `redrive`), and it refuses to nest. The wait
/// is unconstrained so tokio's cooperative budget, which this thread never
/// gets back while it blocks, cannot keep it pending.
fn block_this_thread<F: Future>(wait: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl futures::task::ArcWake for Unpark {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.unpark();
        }
    }
    let waker = futures::task::waker(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut wait = std::pin::pin!(tokio::task::unconstrained(wait));
    loop {
        if let std::task::Poll::Ready(out) = wait.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A duration in whole milliseconds, saturating.
pub(super) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Registers with `notify`, runs `check`, and if it found nothing waits for a
/// notification, for `next_at_ms` (a known future event, e.g. a visibility
/// expiry), for `external_poll` or for the deadline, whichever comes first;
/// then checks again. Returns the first non-empty result or the last empty one.
pub(super) async fn wait_until<T, E, Fut>(
    clock: &dyn Clock,
    notify: &Notify,
    deadline: tokio::time::Instant,
    external_poll: Duration,
    mut check: impl FnMut() -> Fut,
    found: impl Fn(&T) -> bool,
) -> Result<T, E>
where
    Fut: Future<Output = Result<(T, Option<i64>), E>>,
{
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        // Register before checking, so a change between the check and the
        // wait still wakes us.
        notified.as_mut().enable();
        let (value, next_at_ms) = check().await?;
        let now = tokio::time::Instant::now();
        if found(&value) || now >= deadline {
            return Ok(value);
        }
        let mut wake = deadline.min(now + external_poll);
        if let Some(at) = next_at_ms {
            let in_ms = (at - clock.now_ms()).max(0) as u64 + 1;
            wake = wake.min(now + Duration::from_millis(in_ms));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint_op(store: &EmbeddedStore, sequence: &str) -> u64 {
        store
            .change(|c| {
                c.apply(Op::Checkpoint {
                    consumer: "c",
                    shard: 0,
                    sequence,
                });
                Ok::<_, Unwritable>(())
            })
            .unwrap()
            .1
    }

    #[tokio::test]
    async fn sync_answers_only_once_the_change_is_flushed_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("s.db")).unwrap();
        for i in 0..20 {
            let batch = checkpoint_op(&store, &format!("{i:021}"));
            store.sync().await.unwrap();
            // Acknowledged means on disk, not only written to the page cache.
            assert!(*store.core.flushed.borrow() >= batch, "change {i}");
        }
    }

    #[tokio::test]
    async fn a_failed_flush_fails_the_store_and_every_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("s.db")).unwrap();
        store.core.fail_next_flush.store(true, Ordering::SeqCst);
        checkpoint_op(&store, "000000000000000000001");
        let err = store.sync().await.unwrap_err();
        assert!(err.to_string().contains("injected flush failure"), "{err}");
        // No more changes: what is in memory can no longer be made durable.
        let refused = store.change(|_| Ok::<_, Unwritable>(()));
        assert!(matches!(refused, Err(Unwritable::Failed(_))));
    }

    #[test]
    fn the_owner_lock_is_on_the_database_file_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let owner = EmbeddedStore::open(&path).unwrap();
        // A lock file could be deleted from under the owner; the database
        // cannot be without deleting the data.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(!name.to_string_lossy().ends_with(".lock"), "{name:?}");
        }
        assert!(matches!(
            EmbeddedStore::open(&path),
            Err(StoreError::InUse { .. })
        ));
        drop(owner);
        EmbeddedStore::open(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn data_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = EmbeddedStore::open(&path).unwrap();
        checkpoint_op(&store, "000000000000000000001");
        futures::executor::block_on(store.sync()).unwrap();
        for file in [path.clone(), journal_file::path_for(&path)] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }

    #[test]
    fn a_read_only_open_needs_an_existing_store_and_changes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo").join("s.db");
        assert!(matches!(
            EmbeddedStore::open_read_only(&missing),
            Err(StoreError::Missing { .. })
        ));
        assert!(!dir.path().join("typo").exists(), "nothing created");

        let path = dir.path().join("s.db");
        let store = EmbeddedStore::open(&path).unwrap();
        checkpoint_op(&store, "000000000000000000001");
        futures::executor::block_on(store.sync()).unwrap();
        drop(store);
        // A torn last frame: an owner would cut it off; a reader must not.
        let journal = journal_file::path_for(&path);
        let mut bytes = std::fs::read(&journal).unwrap();
        bytes.extend_from_slice(&[0x55; 5]);
        std::fs::write(&journal, &bytes).unwrap();
        let before = (std::fs::read(&path).unwrap(), bytes);
        let reader = EmbeddedStore::open_read_only(&path).unwrap();
        assert_eq!(reader.lock().state.checkpoints.len(), 1);
        drop(reader);
        let after = (
            std::fs::read(&path).unwrap(),
            std::fs::read(&journal).unwrap(),
        );
        assert!(before == after, "a read-only open changed the data files");
    }

    #[test]
    fn a_damaged_journal_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = EmbeddedStore::open(&path).unwrap();
        for i in 0..3 {
            checkpoint_op(&store, &format!("{i:021}"));
            futures::executor::block_on(store.sync()).unwrap();
        }
        drop(store);
        let journal = journal_file::path_for(&path);
        let mut bytes = std::fs::read(&journal).unwrap();
        // The first frame's length, as a bit flip could leave it.
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&journal, &bytes).unwrap();
        let db = std::fs::read(&path).unwrap();
        for err in [
            EmbeddedStore::open(&path).unwrap_err(),
            EmbeddedStore::open_read_only(&path).unwrap_err(),
        ] {
            assert!(err.to_string().contains("at byte 16"), "{err}");
        }
        assert!(std::fs::read(&journal).unwrap() == bytes, "journal changed");
        assert!(std::fs::read(&path).unwrap() == db, "database changed");
    }

    #[test]
    fn a_schema_2_database_with_journal_rows_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let sequence = "000000000000000000007";
        // Schema 2 kept its journal as rows of the database's `journal` table.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        let mut ops = Vec::new();
        Op::Checkpoint {
            consumer: "c",
            shard: 0,
            sequence,
        }
        .encode(&mut ops);
        conn.execute("INSERT INTO journal (batch, ops) VALUES (1, ?1)", [&ops])
            .unwrap();
        drop(conn);
        let checkpoint = |store: &EmbeddedStore| {
            store
                .lock()
                .state
                .checkpoints
                .get(&("c".to_owned(), 0))
                .cloned()
        };
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(checkpoint(&store).as_deref(), Some(sequence));
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!((rows, version), (0, SCHEMA_VERSION), "folded and upgraded");
        drop(conn);
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(checkpoint(&store).as_deref(), Some(sequence));
    }
}
