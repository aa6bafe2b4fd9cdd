//! The one writer: a thread that owns the write connection and commits
//! every pending write operation (table writes, stream appends, queue
//! sends, receives, deletes, visibility changes, checkpoints) of all
//! callers in ONE transaction, so the cost of a commit (WAL frames, locks)
//! is shared by everything that was in flight together. An operation that
//! refuses (a condition that does not hold, a stale receipt) decides so
//! before writing anything, so the rest of the batch commits without it;
//! an operation that fails in SQLite itself aborts the whole batch, and
//! every operation of it gets the error. Each is acknowledged only after
//! its commit.
//!
//! The WAL is checkpointed by a second thread on its own connection, so
//! commits do not pay for a checkpoint's copying and fsyncs; only the
//! occasional RESTART (which keeps the WAL file from growing) holds the
//! writer off while it copies the last frames.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{oneshot, Notify};

use super::queue::QueueMeta;
use super::store::{now_ms, Conn};
use super::stream::StreamSeq;

/// Under load (the last batch was at least this big), the writer lets a
/// batch gather up to this many operations for at most [`GATHER_WINDOW`]:
/// every commit rewrites the pages it touched (the tails of the stream and
/// the queues, index pages), so fewer, bigger commits write much less WAL.
const GATHER_MIN: usize = 64;
const GATHER_AFTER: usize = 8;
const GATHER_WINDOW: std::time::Duration = std::time::Duration::from_micros(300);

/// WAL pages (4 KiB) past which the checkpointer is woken.
const CHECKPOINT_PAGES: i32 = 1000;
/// WAL pages past which the checkpointer restarts the WAL from its
/// beginning. Under steady writes a passive checkpoint never catches up
/// with the writer, so the WAL would only grow (every frame a new file
/// block); a RESTART checkpoint holds writers off while it copies the last
/// frames (most are copied already) and waits for readers.
const RESTART_PAGES: i64 = 4000;
/// How long a restart waits for the writer and readers before it gives up
/// until the next checkpoint.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

thread_local! {
    /// Pages in the WAL after the last commit on this thread (the writer's).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

fn on_wal_commit(_wal: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

/// What a write operation sees: the batch's transaction and what it may
/// need beside it. Notifications it asks for fire after the commit.
pub(super) struct Batch<'a> {
    /// The write connection, inside the batch's transaction.
    pub tx: &'a Connection,
    pub seq: &'a mut StreamSeq,
    /// The batch's clock: one timestamp for every stream record of a commit.
    pub at_ms: i64,
    shared: &'a WriterShared,
    wake_shards: &'a mut [bool],
    wake_queues: &'a mut Vec<Arc<QueueMeta>>,
}

impl Batch<'_> {
    /// The shard index of a partition key: a stable hash (FNV-1a), so every
    /// record of one item lands in the same shard across restarts and builds.
    pub fn shard_of(&self, pk: &str) -> i64 {
        shard_of(pk, self.wake_shards.len())
    }

    /// Wakes the readers of `shard` once this batch has committed.
    pub fn wake_shard(&mut self, shard: i64) {
        if let Some(w) = self.wake_shards.get_mut(shard as usize) {
            *w = true;
        }
    }

    /// Wakes the receivers of `queue` once this batch has committed.
    pub fn wake_queue(&mut self, queue: &Arc<QueueMeta>) {
        if !self.wake_queues.iter().any(|q| Arc::ptr_eq(q, queue)) {
            self.wake_queues.push(Arc::clone(queue));
        }
    }

    /// A fresh receipt nonce.
    pub fn next_receipt(&self) -> u64 {
        self.shared.receipt_counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// FNV-1a of `pk`, modulo `shards`.
pub(super) fn shard_of(pk: &str, shards: usize) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pk.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as i64
}

/// The error of a write operation: either a refusal that wrote nothing, or
/// a failure of the database that aborts the batch.
pub(super) trait OpError: From<rusqlite::Error> {
    /// True if the operation decided this before writing anything.
    fn is_refusal(&self) -> bool;
}

/// A queued operation, type-erased.
trait PendingJob: Send {
    /// Whether its caller has gone (then it is dropped unwritten).
    fn abandoned(&self) -> bool;
    /// Runs inside the batch; keeps its result until [`PendingJob::finish`].
    /// `false` if it failed other than by a refusal: the batch must abort.
    fn run(&mut self, batch: &mut Batch<'_>) -> bool;
    /// Answers the caller: its result if the batch committed, else the failure.
    fn finish(self: Box<Self>, commit: Result<(), &rusqlite::Error>);
}

struct TypedJob<F, T, E> {
    op: Option<F>,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> PendingJob for TypedJob<F, T, E>
where
    F: FnOnce(&mut Batch<'_>) -> Result<T, E> + Send,
    T: Send,
    E: OpError + Send,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(&mut self, batch: &mut Batch<'_>) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let result = op(batch);
        let ok = match &result {
            Ok(_) => true,
            Err(e) => e.is_refusal(),
        };
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &rusqlite::Error>) {
        let result = match (commit, self.result) {
            // A refusal wrote nothing; it stands whatever became of the batch.
            (_, Some(Err(e))) if e.is_refusal() => Err(e),
            (Ok(()), Some(Err(e))) => Err(e),
            (Ok(()), Some(ok)) => ok,
            (Err(e), _) => Err(E::from(copy_error(e))),
            (Ok(()), None) => Err(E::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the batch ended before this operation ran".to_owned()),
            ))),
        };
        let _ = self.reply.send(result);
    }
}

/// rusqlite errors are not `Clone`; every job of a failed batch gets one.
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

#[derive(Default)]
struct Pending {
    jobs: Vec<Box<dyn PendingJob>>,
    /// The writer is (about to be) waiting on the condvar.
    sleeping: bool,
    /// How many queued jobs wake a sleeping writer (more while it gathers).
    wake_at: usize,
    stop: bool,
}

/// State shared by the store, the writer thread and the checkpointer.
pub(super) struct WriterShared {
    /// The write connection. The writer thread holds it per batch; the
    /// store's synchronous admin writes and an in-memory store's reads take it too.
    pub conn: Mutex<Conn>,
    pending: Mutex<Pending>,
    wake: Condvar,
    receipt_counter: AtomicU64,
    /// One per stream shard: fired when a commit appended to that shard.
    pub stream_notify: Vec<Notify>,
    checkpoint: Mutex<CheckpointState>,
    checkpoint_wake: Condvar,
}

#[derive(Default)]
struct CheckpointState {
    wanted: bool,
    stop: bool,
}

/// The writer and checkpointer threads; stopped and joined on drop.
pub(super) struct Writer {
    pub shared: Arc<WriterShared>,
    thread: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer on `conn`. `checkpoint_conn` (file databases only)
    /// gets the WAL checkpoints; the writer then never checkpoints itself.
    pub fn start(
        conn: Conn,
        shards: usize,
        receipt_seed: u64,
        checkpoint_conn: Option<Connection>,
    ) -> Writer {
        if checkpoint_conn.is_some() {
            // Replaces the automatic checkpoint: the writer only counts pages.
            conn.db().wal_hook(Some(on_wal_commit));
        }
        let shared = Arc::new(WriterShared {
            conn: Mutex::new(conn),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            receipt_counter: AtomicU64::new(receipt_seed),
            stream_notify: (0..shards).map(|_| Notify::new()).collect(),
            checkpoint: Mutex::new(CheckpointState::default()),
            checkpoint_wake: Condvar::new(),
        });
        let checkpoints = checkpoint_conn.is_some();
        let checkpointer = checkpoint_conn.map(|c| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("switchyard-checkpoint".to_owned())
                .spawn(move || checkpoint_loop(&shared, c))
                .expect("spawning the checkpoint thread")
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("switchyard-writer".to_owned())
                .spawn(move || write_loop(&shared, checkpoints))
                .expect("spawning the writer thread")
        };
        Writer {
            shared,
            thread: Some(thread),
            checkpointer,
        }
    }

    /// Queues `op` for the next batch and waits until it committed (or failed).
    pub async fn submit<T, E>(
        &self,
        op: impl FnOnce(&mut Batch<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: OpError + Send + 'static,
    {
        // Let other ready writers run first, so their operations share this
        // commit; a caller dropped before it resumes has queued nothing.
        tokio::task::yield_now().await;
        let (reply, outcome) = oneshot::channel();
        self.shared.push(Box::new(TypedJob {
            op: Some(op),
            result: None,
            reply,
        }));
        outcome.await.unwrap_or_else(|_| {
            Err(E::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the store's writer stopped before this write ran".to_owned()),
            )))
        })
    }
}

impl WriterShared {
    fn push(&self, job: Box<dyn PendingJob>) {
        let mut p = lock(&self.pending);
        p.jobs.push(job);
        // Only a sleeping writer needs the syscall of a wake-up.
        if p.sleeping && p.jobs.len() >= p.wake_at {
            p.sleeping = false;
            self.wake.notify_one();
        }
    }

    /// The write connection, locked (a panic mid-transaction rolled it back).
    pub fn lock_conn(&self) -> MutexGuard<'_, Conn> {
        lock(&self.conn)
    }

    fn want_checkpoint(&self) {
        let mut c = lock(&self.checkpoint);
        if !c.wanted {
            c.wanted = true;
            self.checkpoint_wake.notify_one();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        lock(&self.shared.pending).stop = true;
        self.shared.wake.notify_one();
        lock(&self.shared.checkpoint).stop = true;
        self.shared.checkpoint_wake.notify_one();
        for t in [self.thread.take(), self.checkpointer.take()]
            .into_iter()
            .flatten()
        {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn write_loop(shared: &WriterShared, checkpoints: bool) {
    let shards = shared.stream_notify.len();
    // For the log at the end: how busy the writer was.
    let (started, mut busy, mut batches, mut ops) = (
        std::time::Instant::now(),
        std::time::Duration::ZERO,
        0u64,
        0u64,
    );
    let (mut frames, mut last_pages) = (0u64, 0i32);
    let mut last_batch = 0usize;
    let mut next_checkpoint_at = CHECKPOINT_PAGES;
    loop {
        let jobs = {
            let mut p = lock(&shared.pending);
            p.wake_at = 1;
            while p.jobs.is_empty() && !p.stop {
                p.sleeping = true;
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if last_batch >= GATHER_AFTER && p.jobs.len() < GATHER_MIN && !p.stop {
                // A batching window (as SQS pollers have), bounded in time:
                // a push wakes the writer as soon as GATHER_MIN are queued.
                p.wake_at = GATHER_MIN;
                p.sleeping = true;
                p = shared
                    .wake
                    .wait_timeout(p, GATHER_WINDOW)
                    .map(|(p, _)| p)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            if p.jobs.is_empty() {
                tracing::debug!(
                    batches,
                    operations = ops,
                    busy_ms = busy.as_millis() as u64,
                    wal_frames = frames,
                    lifetime_ms = started.elapsed().as_millis() as u64,
                    "store writer stopped"
                );
                return; // stopped and drained
            }
            p.sleeping = false;
            std::mem::take(&mut p.jobs)
        };
        last_batch = jobs.len();
        let mut jobs: Vec<Box<dyn PendingJob>> =
            jobs.into_iter().filter(|j| !j.abandoned()).collect();
        if jobs.is_empty() {
            continue;
        }
        let batch_started = std::time::Instant::now();
        batches += 1;
        ops += jobs.len() as u64;
        let mut wake_shards = vec![false; shards];
        let mut wake_queues = Vec::new();
        let outcome = {
            let mut guard = shared.lock_conn();
            let (db, seq) = guard.parts();
            run_batch(
                shared,
                db,
                seq,
                &mut jobs,
                &mut wake_shards,
                &mut wake_queues,
            )
        };
        if outcome.is_ok() {
            for (i, wake) in wake_shards.iter().enumerate() {
                if *wake {
                    shared.stream_notify[i].notify_waiters();
                }
            }
            for q in &wake_queues {
                q.wake_receivers();
            }
        } else if let Err(e) = &outcome {
            tracing::warn!(error = %e, operations = jobs.len(), "write batch failed; nothing of it was written");
        }
        for job in jobs {
            job.finish(outcome.as_ref().map(|_| ()));
        }
        busy += batch_started.elapsed();
        let pages = WAL_PAGES.with(Cell::get);
        frames += u64::try_from(if pages >= last_pages {
            pages - last_pages
        } else {
            pages
        })
        .unwrap_or(0);
        last_pages = pages;
        if checkpoints {
            // Every CHECKPOINT_PAGES more frames; the WAL restarting from its
            // beginning shows as fewer pages than at the last signal.
            if pages + CHECKPOINT_PAGES < next_checkpoint_at {
                next_checkpoint_at = CHECKPOINT_PAGES;
            }
            if pages >= next_checkpoint_at {
                next_checkpoint_at = pages + CHECKPOINT_PAGES;
                shared.want_checkpoint();
            }
        }
    }
}

/// One transaction over every job. Statements are cached: BEGIN and
/// COMMIT are parsed once, not per batch.
fn run_batch(
    shared: &WriterShared,
    db: &mut Connection,
    seq: &mut StreamSeq,
    jobs: &mut [Box<dyn PendingJob>],
    wake_shards: &mut [bool],
    wake_queues: &mut Vec<Arc<QueueMeta>>,
) -> rusqlite::Result<()> {
    db.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let outcome = (|| {
        seq.refresh(db, wake_shards.len())?;
        let mut batch = Batch {
            tx: db,
            seq,
            at_ms: now_ms(),
            shared,
            wake_shards,
            wake_queues,
        };
        for job in jobs.iter_mut() {
            // A panicking op is answered as failed, like a database error.
            let ran =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&mut batch)));
            if !ran.unwrap_or(false) {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some(
                        "an operation of the batch failed; nothing of the batch was written"
                            .to_owned(),
                    ),
                ));
            }
        }
        db.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    })();
    if outcome.is_err() && !db.is_autocommit() {
        if let Err(e) = db.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back a failed write batch failed");
        }
    }
    outcome
}

fn checkpoint_loop(shared: &WriterShared, conn: Connection) {
    loop {
        {
            let mut c = lock(&shared.checkpoint);
            while !c.wanted && !c.stop {
                c = shared
                    .checkpoint_wake
                    .wait(c)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if c.stop {
                return;
            }
            c.wanted = false;
        }
        // PASSIVE: copies what it can without blocking the writer or readers.
        let log = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        let restart = match log {
            Ok(log) => log >= RESTART_PAGES,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; the next one will retry");
                false
            }
        };
        if restart {
            let done = conn.busy_timeout(RESTART_WAIT).and_then(|()| {
                conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))
            });
            match done {
                Ok(0) => {}
                Ok(_) => tracing::debug!("WAL restart deferred: the writer or a reader was busy"),
                Err(e) => tracing::warn!(error = %e, "WAL restart failed; the next one will retry"),
            }
        }
    }
}
