//! The one SQLite database behind the embedded table, change stream and queues.
//!
//! Writes go to one writer thread that group-commits everything in flight
//! (see `writer`), so a table write and its stream record commit together
//! (the stream is an outbox) and many callers share one commit. Reads run
//! on a small pool of separate connections, which WAL lets run beside the
//! writer. WAL with `synchronous=NORMAL` means a committed transaction
//! survives `kill -9` of the process without an fsync per commit; the WAL
//! is checkpointed off the commit path, on a connection of its own.
use std::collections::HashMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::Notify;

use super::faults::Faults;
use super::queue::QueueMeta;
use super::stream::StreamSeq;
use super::writer::{Batch, Writer};
use crate::envelope::{LOCAL_ACCOUNT, LOCAL_REGION};

/// The schema this code writes; a database from a newer build is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// Options for opening a store. Defaults suit `switchyard up` and tests.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Number of change-stream shards; fixed when the database is created
    /// (a reopened database keeps its own count so records stay in place).
    pub shards: u32,
    /// The table name shown in stream ARNs.
    pub table_name: String,
    /// How long a write waits for another process holding the database lock.
    pub busy_timeout: Duration,
    /// Upper bound on a wait (long poll, stream wait) between re-checks, so
    /// writes by another process (e.g. `switchyard publish` into a running
    /// data dir), which fire no in-process notification, are still seen.
    pub external_poll: Duration,
    /// FIFO deduplication window (SQS: 5 minutes).
    pub dedup_window: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            shards: 4,
            table_name: "switchyard".to_owned(),
            busy_timeout: Duration::from_secs(5),
            external_poll: Duration::from_millis(500),
            dedup_window: Duration::from_secs(300),
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
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL, sk TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
-- Keyed by (shard, seq): one B-tree page touched per record. `seq` is
-- global and handed out by the writer (see stream::next_sequence).
CREATE TABLE IF NOT EXISTS stream (
    shard INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    pk TEXT NOT NULL, sk TEXT NOT NULL,
    new_image TEXT, old_image TEXT,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (shard, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    consumer TEXT NOT NULL, shard INTEGER NOT NULL, seq TEXT NOT NULL,
    PRIMARY KEY (consumer, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY, fifo INTEGER NOT NULL,
    max_receive_count INTEGER NOT NULL, dlq TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,
    group_id TEXT,
    sent_at_ms INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt INTEGER,
    reason TEXT,
    source_queue TEXT
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at_ms, id);
CREATE INDEX IF NOT EXISTS messages_group ON messages (queue, group_id, id) WHERE group_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedup (
    queue TEXT NOT NULL, dedup_id TEXT NOT NULL, message_id TEXT NOT NULL, expires_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
"#;

/// The embedded backend's database. Open it once and share the `Arc`; the
/// table, stream and queues are cheap handles onto it.
pub struct EmbeddedStore {
    writer: Writer,
    /// Idle read connections (file databases; in memory, reads share the writer's).
    readers: Mutex<Vec<Connection>>,
    /// How to open another reader (`None` in memory).
    reader_path: Option<(PathBuf, Duration)>,
    path: String,
    pub(super) shard_ids: Vec<String>,
    pub(super) table_name: String,
    pub(super) stream_arn: String,
    pub(super) queues: RwLock<HashMap<String, Arc<QueueMeta>>>,
    pub(super) faults: Arc<Faults>,
    pub(super) external_poll: Duration,
    pub(super) dedup_window_ms: i64,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database at `path`; `":memory:"` gives a
    /// private in-memory database.
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
        let path = path.as_ref();
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
        let in_memory = shown == ":memory:";
        if !in_memory {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: shown.clone(),
                    source,
                })?;
            }
        }
        let sql = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        let conn = if in_memory {
            Connection::open_in_memory().map_err(sql)?
        } else {
            Connection::open_with_flags(PathBuf::from(path), OPEN_FLAGS).map_err(sql)?
        };
        conn.busy_timeout(options.busy_timeout).map_err(sql)?;
        // WAL + NORMAL: commits are durable against a process crash and need
        // no fsync each; only a power loss can drop the last commits.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(sql)?;
        // Sort and statement journals in memory: never a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(sql)?;
        conn.set_prepared_statement_cache_capacity(64);
        stable_plans(&conn).map_err(sql)?;

        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { path: shown, found });
        }
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(sql)?;

        let created_ms = now_ms();
        let shards = meta_get_or_init(&conn, "shards", &options.shards.to_string()).map_err(sql)?;
        let shards: u32 = shards.parse().unwrap_or(options.shards);
        if shards != options.shards {
            tracing::warn!(db = %shown, stored = shards, asked = options.shards, "keeping the shard count the database was created with");
        }
        let label =
            meta_get_or_init(&conn, "stream_label", &stream_label(created_ms)).map_err(sql)?;

        let queues = super::queue::load_queue_configs(&conn)
            .map_err(sql)?
            .into_iter()
            .map(|cfg| (cfg.name.clone(), Arc::new(QueueMeta::new(cfg))))
            .collect();

        let stream_arn = format!(
            "arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:table/{}/stream/{label}",
            options.table_name
        );
        // The checkpointer's connection: the writer never checkpoints itself.
        let checkpoint_conn = if in_memory {
            None
        } else {
            let c = open_side_connection(path, options.busy_timeout).map_err(sql)?;
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(sql)?;
            Some(c)
        };
        let writer = Writer::start(
            Conn {
                db: conn,
                stream_seq: StreamSeq::default(),
            },
            shards as usize,
            // Seeded from the clock so handles stay unique across restarts.
            created_ms as u64 * 1000,
            checkpoint_conn,
        );
        Ok(Arc::new(EmbeddedStore {
            writer,
            readers: Mutex::new(Vec::new()),
            reader_path: (!in_memory).then(|| (path.to_path_buf(), options.busy_timeout)),
            path: shown,
            shard_ids: (0..shards).map(shard_id).collect(),
            table_name: options.table_name,
            stream_arn,
            queues: RwLock::new(queues),
            faults: Arc::new(Faults::default()),
            external_poll: options.external_poll,
            dedup_window_ms: options.dedup_window.as_millis() as i64,
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

    /// The fault-injection switch (off by default). Pass it to
    /// `FolderBlobStore::with_faults` to drive blob faults from the same seed.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The write connection, for synchronous admin writes (queue creation,
    /// redrive, trim); the hot path goes through [`EmbeddedStore::submit`].
    pub(super) fn lock(&self) -> MutexGuard<'_, Conn> {
        self.writer.shared.lock_conn()
    }

    /// Runs `f` in one write transaction (BEGIN IMMEDIATE, so another process
    /// cannot make it fail half-way with a lock upgrade), committing if `f` returns Ok.
    pub(super) fn write<T, E>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Queues `op` for the writer's next group commit and waits until it
    /// committed. An `Err` from `op` rolls back its own writes only.
    pub(super) async fn submit<T, E>(
        &self,
        op: impl FnOnce(&mut Batch<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: super::writer::OpError + Send + 'static,
    {
        self.writer.submit(op).await
    }

    /// Runs `f` on a read connection: it sees every committed write and
    /// never waits for the writer (WAL). In memory, the writer's connection.
    pub(super) fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let Some((path, busy)) = &self.reader_path else {
            return f(&self.lock());
        };
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => open_side_connection(path, *busy)?,
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Fired when a commit appended records to shard `idx`.
    pub(super) fn stream_notify(&self, idx: i64) -> &Notify {
        &self.writer.shared.stream_notify[idx as usize]
    }

    pub(super) fn shard_index(&self, shard: &str) -> Option<i64> {
        self.shard_ids
            .iter()
            .position(|s| s == shard)
            .map(|i| i as i64)
    }
}

/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 8;

const OPEN_FLAGS: OpenFlags = OpenFlags::SQLITE_OPEN_READ_WRITE
    .union(OpenFlags::SQLITE_OPEN_CREATE)
    .union(OpenFlags::SQLITE_OPEN_NO_MUTEX);

/// Another connection to a file database in WAL mode (a reader, the checkpointer).
fn open_side_connection(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OPEN_FLAGS)?;
    conn.busy_timeout(busy)?;
    conn.set_prepared_statement_cache_capacity(32);
    stable_plans(&conn)?;
    Ok(conn)
}

/// Plans that do not depend on bound values. Without this, SQLite (built
/// with STAT4) re-prepares a cached statement every time a parameter its
/// plan looked at is bound again, e.g. every `LIMIT ?`.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// The connection and the writer's stream-sequence state, locked together.
pub(super) struct Conn {
    db: Connection,
    pub(super) stream_seq: StreamSeq,
}

impl Conn {
    pub(super) fn db(&self) -> &Connection {
        &self.db
    }

    /// Both halves at once, so a transaction on `db` can use `stream_seq`.
    pub(super) fn parts(&mut self) -> (&mut Connection, &mut StreamSeq) {
        (&mut self.db, &mut self.stream_seq)
    }
}

impl Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.db
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.db
    }
}

pub(super) fn meta_get_or_init(
    conn: &Connection,
    key: &str,
    default: &str,
) -> rusqlite::Result<String> {
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
        (key, default),
    )?;
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map(|v| v.unwrap_or_else(|| default.to_owned()))
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
        // Register before checking, so a commit between the check and the
        // wait still wakes us.
        notified.as_mut().enable();
        let (value, next_at_ms) = check().await?;
        let now = tokio::time::Instant::now();
        if found(&value) || now >= deadline {
            return Ok(value);
        }
        let mut wake = deadline.min(now + external_poll);
        if let Some(at) = next_at_ms {
            let in_ms = (at - now_ms()).max(0) as u64 + 1;
            wake = wake.min(now + Duration::from_millis(in_ms));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
