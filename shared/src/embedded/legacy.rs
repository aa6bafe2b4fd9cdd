//! Databases of schema version 1 (a SQLite table per kind of row) are
//! imported into a snapshot the first time this build opens them, and their
//! old tables dropped, in one transaction: no data dir is left behind.

use rusqlite::Connection;

use super::journal::{CorruptJournal, MessageOp, Op};
use super::state::{Change, State};

/// Why a schema-1 database could not be read; the store says which file.
#[derive(Debug, thiserror::Error)]
pub(super) enum ImportError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptJournal),
}

/// Reads every row of a schema-1 database into a state; in-flight messages
/// become visible at `now_ms`. The store writes it as a snapshot, then calls
/// [`drop_tables`].
pub(super) fn read(conn: &Connection, now_ms: i64) -> Result<State, ImportError> {
    let shards: usize = conn
        .query_row("SELECT value FROM meta WHERE key = 'shards'", [], |r| {
            r.get::<_, String>(0)
        })?
        .parse()
        .unwrap_or(4);
    let mut state = State::new(shards);
    let mut apply = |op: Op<'_>| state.apply(&op).map_err(ImportError::from);
    let now = now_ms;

    let high_water: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'stream_high_water'",
            [],
            |r| r.get(0),
        )
        .ok();
    apply(Op::Counters {
        next_seq: high_water.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1,
        next_message: 1,
    })?;
    let mut st = conn.prepare("SELECT name, fifo, max_receive_count, dlq FROM queues")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (name, dlq): (String, Option<String>) = (r.get(0)?, r.get(3)?);
        apply(Op::CreateQueue {
            name: &name,
            fifo: r.get(1)?,
            max_receive_count: r.get(2)?,
            dlq: dlq.as_deref(),
        })?;
    }
    // In-flight messages belonged to a process that is gone: visible now.
    let mut st = conn
        .prepare(
            "SELECT queue, id, message_id, body, attributes, group_id, sent_at_ms,
                    CASE WHEN receipt IS NOT NULL AND visible_at_ms > ?1 THEN ?1 ELSE visible_at_ms END,
                    receive_count, reason, source_queue
             FROM messages ORDER BY id",
        )
        ?;
    let mut rows = st.query([now])?;
    while let Some(r) = rows.next()? {
        let texts: Vec<Option<String>> = [0, 2, 3, 4, 5, 9, 10]
            .iter()
            .map(|i| r.get(*i))
            .collect::<Result<_, _>>()?;
        let text = |i: usize| texts[i].as_deref();
        apply(Op::Message(MessageOp {
            queue: text(0).unwrap_or_default(),
            id: r.get::<_, i64>(1)? as u64,
            message_id: text(1).unwrap_or_default(),
            body: text(2).unwrap_or_default(),
            attributes: text(3),
            group: text(4),
            sent_at_ms: r.get(6)?,
            visible_at_ms: r.get(7)?,
            receive_count: r.get(8)?,
            reason: text(5),
            source: text(6),
        }))?;
    }
    each_row(
        conn,
        "SELECT queue, dedup_id, message_id, expires_ms FROM dedup",
        |r| {
            let t = three_texts(r)?;
            apply(Op::Dedup {
                queue: &t[0],
                dedup_id: &t[1],
                message_id: &t[2],
                expires_ms: r.get(3)?,
            })
        },
    )?;
    each_row(conn, "SELECT pk, sk, body FROM items", |r| {
        let t = three_texts(r)?;
        apply(Op::Item {
            pk: &t[0],
            sk: &t[1],
            body: &t[2],
        })
    })?;
    let mut st = conn
        .prepare("SELECT shard, seq, event, pk, sk, new_image, old_image, at_ms FROM stream ORDER BY shard, seq")
        ?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let event: String = r.get(2)?;
        let (pk, sk): (String, String) = (r.get(3)?, r.get(4)?);
        let (new, old): (Option<String>, Option<String>) = (r.get(5)?, r.get(6)?);
        let change = match event.as_str() {
            "INSERT" => Change::Insert,
            "MODIFY" => Change::Modify,
            _ => Change::Remove,
        };
        apply(Op::Record {
            shard: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            event: change as u8,
            pk: &pk,
            sk: &sk,
            new: new.as_deref(),
            old: old.as_deref(),
            at_ms: r.get(7)?,
        })?;
    }
    let mut st = conn.prepare("SELECT consumer, shard, seq FROM checkpoints")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (consumer, seq): (String, String) = (r.get(0)?, r.get(2)?);
        apply(Op::Checkpoint {
            consumer: &consumer,
            shard: r.get(1)?,
            sequence: &seq,
        })?;
    }
    Ok(state)
}

/// Drops the schema-1 tables, once their rows are in the snapshot.
pub(super) fn drop_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS stream; DROP TABLE IF EXISTS checkpoints;
         DROP TABLE IF EXISTS messages; DROP TABLE IF EXISTS dedup; DROP TABLE IF EXISTS queues;",
    )
}

/// Runs `each` on every row of a query.
fn each_row(
    conn: &Connection,
    query: &str,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut st = conn.prepare(query)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        each(r)?;
    }
    Ok(())
}

/// The first three columns of a row, as text.
fn three_texts(r: &rusqlite::Row<'_>) -> rusqlite::Result<[String; 3]> {
    Ok([r.get(0)?, r.get(1)?, r.get(2)?])
}
