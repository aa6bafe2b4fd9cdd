//! The one writer: a thread that owns the write connection and commits
//! every pending write operation (table writes, stream appends, queue
//! sends, receives, deletes, visibility changes, checkpoints) of all
//! callers in ONE transaction, so the cost of a commit (WAL frames, locks)
//! is shared by everything that was in flight together. Each operation runs
//! inside its own savepoint, so one that fails leaves no trace while the
//! rest of the batch commits; each is acknowledged only after its commit.
//!
//! The WAL is checkpointed by a second thread on its own connection, so a
//! commit never pays for a checkpoint's fsyncs.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{oneshot, Notify};

use super::queue::QueueMeta;
use super::store::{now_ms, Conn};
use super::stream::StreamSeq;

/// WAL pages (4 KiB) past which the checkpointer is woken.
const CHECKPOINT_PAGES: i32 = 2000;

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
    pub tx: &'a Transaction<'a>,
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

/// A queued operation, type-erased.
trait PendingJob: Send {
    /// Whether its caller has gone (then it is dropped unwritten).
    fn abandoned(&self) -> bool;
    /// Runs inside the batch; keeps its result until [`PendingJob::finish`].
    /// `Err` means its writes must be rolled back.
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
    E: From<rusqlite::Error> + Send,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(&mut self, batch: &mut Batch<'_>) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let result = op(batch);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &rusqlite::Error>) {
        let result = match (commit, self.result) {
            // A failed op wrote nothing; its own error stands either way.
            (_, Some(Err(e))) => Err(e),
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
        E: From<rusqlite::Error> + Send + 'static,
    {
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
        if p.sleeping {
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
    loop {
        let jobs = {
            let mut p = lock(&shared.pending);
            while p.jobs.is_empty() && !p.stop {
                p.sleeping = true;
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.jobs.is_empty() {
                return; // stopped and drained
            }
            p.sleeping = false;
            std::mem::take(&mut p.jobs)
        };
        let mut jobs: Vec<Box<dyn PendingJob>> =
            jobs.into_iter().filter(|j| !j.abandoned()).collect();
        if jobs.is_empty() {
            continue;
        }
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
        if checkpoints && WAL_PAGES.with(Cell::get) >= CHECKPOINT_PAGES {
            shared.want_checkpoint();
        }
    }
}

/// One transaction over every job, each in its own savepoint.
fn run_batch(
    shared: &WriterShared,
    db: &mut Connection,
    seq: &mut StreamSeq,
    jobs: &mut [Box<dyn PendingJob>],
    wake_shards: &mut [bool],
    wake_queues: &mut Vec<Arc<QueueMeta>>,
) -> rusqlite::Result<()> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    seq.refresh(&tx, wake_shards.len())?;
    let mut batch = Batch {
        tx: &tx,
        seq,
        at_ms: now_ms(),
        shared,
        wake_shards,
        wake_queues,
    };
    for job in jobs.iter_mut() {
        batch.tx.prepare_cached("SAVEPOINT op")?.execute([])?;
        // Notifications of an op that rolls back are harmless (a spurious
        // wake-up). A panicking op is rolled back and answered as failed.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&mut batch)));
        if ran.unwrap_or(false) {
            batch.tx.prepare_cached("RELEASE op")?.execute([])?;
        } else {
            batch.tx.prepare_cached("ROLLBACK TO op")?.execute([])?;
            batch.tx.prepare_cached("RELEASE op")?.execute([])?;
        }
    }
    drop(batch);
    tx.commit()
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
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; the next one will retry");
        }
    }
}
