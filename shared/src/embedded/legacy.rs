//! Databases of schema version 1 (a SQLite table per kind of row) are
//! imported into a snapshot the first time this build opens them, and their
//! old tables dropped, in one transaction: no data dir is left behind.

use rusqlite::Connection;

use super::journal::{MessageOp, Op};
use super::state::{Change, State};
use super::store::{now_ms, StoreError};

pub(super) fn import(conn: &Connection, shown: &str) -> Result<(), StoreError> {
    let sql = StoreError::sqlite(shown);
    let corrupt = StoreError::corrupt(shown);
    let shards: usize = conn
        .query_row("SELECT value FROM meta WHERE key = 'shards'", [], |r| {
            r.get::<_, String>(0)
        })
        .map_err(&sql)?
        .parse()
        .unwrap_or(4);
    let mut state = State::new(shards);
    let mut apply = |op: Op<'_>| state.apply(&op).map_err(&corrupt);
    let now = now_ms();

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
    let mut st = conn
        .prepare("SELECT name, fifo, max_receive_count, dlq FROM queues")
        .map_err(&sql)?;
    let mut rows = st.query([]).map_err(&sql)?;
    while let Some(r) = rows.next().map_err(&sql)? {
        let (name, dlq): (String, Option<String>) =
            (r.get(0).map_err(&sql)?, r.get(3).map_err(&sql)?);
        apply(Op::CreateQueue {
            name: &name,
            fifo: r.get(1).map_err(&sql)?,
            max_receive_count: r.get(2).map_err(&sql)?,
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
        .map_err(&sql)?;
    let mut rows = st.query([now]).map_err(&sql)?;
    while let Some(r) = rows.next().map_err(&sql)? {
        let texts: Vec<Option<String>> = [0, 2, 3, 4, 5, 9, 10]
            .iter()
            .map(|i| r.get(*i))
            .collect::<Result<_, _>>()
            .map_err(&sql)?;
        let text = |i: usize| texts[i].as_deref();
        apply(Op::Message(MessageOp {
            queue: text(0).unwrap_or_default(),
            id: r.get::<_, i64>(1).map_err(&sql)? as u64,
            message_id: text(1).unwrap_or_default(),
            body: text(2).unwrap_or_default(),
            attributes: text(3),
            group: text(4),
            sent_at_ms: r.get(6).map_err(&sql)?,
            visible_at_ms: r.get(7).map_err(&sql)?,
            receive_count: r.get(8).map_err(&sql)?,
            reason: text(5),
            source: text(6),
        }))?;
    }
    each_row(
        conn,
        "SELECT queue, dedup_id, message_id, expires_ms FROM dedup",
        &sql,
        |r| {
            let t = three_texts(r).map_err(&sql)?;
            apply(Op::Dedup {
                queue: &t[0],
                dedup_id: &t[1],
                message_id: &t[2],
                expires_ms: r.get(3).map_err(&sql)?,
            })
        },
    )?;
    each_row(conn, "SELECT pk, sk, body FROM items", &sql, |r| {
        let t = three_texts(r).map_err(&sql)?;
        apply(Op::Item {
            pk: &t[0],
            sk: &t[1],
            body: &t[2],
        })
    })?;
    let mut st = conn
        .prepare("SELECT shard, seq, event, pk, sk, new_image, old_image, at_ms FROM stream ORDER BY shard, seq")
        .map_err(&sql)?;
    let mut rows = st.query([]).map_err(&sql)?;
    while let Some(r) = rows.next().map_err(&sql)? {
        let event: String = r.get(2).map_err(&sql)?;
        let (pk, sk): (String, String) = (r.get(3).map_err(&sql)?, r.get(4).map_err(&sql)?);
        let (new, old): (Option<String>, Option<String>) =
            (r.get(5).map_err(&sql)?, r.get(6).map_err(&sql)?);
        let change = match event.as_str() {
            "INSERT" => Change::Insert,
            "MODIFY" => Change::Modify,
            _ => Change::Remove,
        };
        apply(Op::Record {
            shard: r.get(0).map_err(&sql)?,
            seq: r.get::<_, i64>(1).map_err(&sql)? as u64,
            event: change as u8,
            pk: &pk,
            sk: &sk,
            new: new.as_deref(),
            old: old.as_deref(),
            at_ms: r.get(7).map_err(&sql)?,
        })?;
    }
    let mut st = conn
        .prepare("SELECT consumer, shard, seq FROM checkpoints")
        .map_err(&sql)?;
    let mut rows = st.query([]).map_err(&sql)?;
    while let Some(r) = rows.next().map_err(&sql)? {
        let (consumer, seq): (String, String) = (r.get(0).map_err(&sql)?, r.get(2).map_err(&sql)?);
        apply(Op::Checkpoint {
            consumer: &consumer,
            shard: r.get(1).map_err(&sql)?,
            sequence: &seq,
        })?;
    }
    let parts = super::store::snapshot_parts(&state);
    // A schema-1 database never had a journal file: generation 0 starts one.
    super::store::write_parts(conn, &parts, 0).map_err(&sql)?;
    conn.execute_batch(
        "DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS stream; DROP TABLE IF EXISTS checkpoints;
         DROP TABLE IF EXISTS messages; DROP TABLE IF EXISTS dedup; DROP TABLE IF EXISTS queues;",
    )
    .map_err(&sql)?;
    tracing::info!(db = %shown, items = state.items.len(), queues = state.queues.len(), "imported a schema-1 database into the journal format");
    Ok(())
}

/// Runs `each` on every row of a query.
fn each_row(
    conn: &Connection,
    query: &str,
    sql: &impl Fn(rusqlite::Error) -> StoreError,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut st = conn.prepare(query).map_err(&sql)?;
    let mut rows = st.query([]).map_err(&sql)?;
    while let Some(r) = rows.next().map_err(&sql)? {
        each(r)?;
    }
    Ok(())
}

/// The first three columns of a row, as text.
fn three_texts(r: &rusqlite::Row<'_>) -> rusqlite::Result<[String; 3]> {
    Ok([r.get(0)?, r.get(1)?, r.get(2)?])
}
