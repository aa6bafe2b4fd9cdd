//! Throughput of the embedded adapters, each figure beside its peer measured
//! in the same run:
//!
//! - a table put (conditional, with its stream record) against a bare SQLite
//!   commit of one row on the same pragmas: what the outbox costs;
//! - the queue round trip (send, receive, delete in batches of 100) per message;
//! - the whole embedded path per event: queue -> handler put -> stream ->
//!   queue, as the runtime will drive it, against the bare commit.
//!
//! The machine is shared, so each stage runs several rounds interleaved with
//! its peer, and the figures are medians of the thread's on-CPU time
//! (`/proc/thread-self/schedstat`), with wall-clock medians beside them.
//!
//! Run: `cargo bench -p switchyard-shared --bench embedded_throughput [-- N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_shared::embedded::{EmbeddedStore, QueueConfig};
use switchyard_shared::ports::{ChangeStream, Condition, OutgoingMessage, Queue, Table};

const BATCH: usize = 100;

const ROUNDS: usize = 5;

/// Wall and on-CPU time of one stage.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

/// This thread's on-CPU time so far (Linux); zero elsewhere.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn timed<T>(f: impl FnOnce() -> T) -> Timing {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    f();
    Timing {
        wall: wall.elapsed(),
        cpu: thread_cpu() - cpu,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The peer: one INSERT per committed transaction, nothing else.
fn bare_commits(conn: &rusqlite::Connection, round: usize, n: usize) {
    let body = r#"{"pk":"x","sk":"meta","status":"PLACED","version":1}"#;
    for i in 0..n {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached("INSERT INTO t (pk, sk, body) VALUES (?1, 'meta', ?2)")
            .unwrap()
            .execute((format!("order#{round}-{i}"), body))
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
}

/// `writers` tasks put `n` new items between them (1 = one after another).
async fn table_puts(store: &Arc<EmbeddedStore>, round: usize, n: usize, writers: usize) {
    let table = store.table();
    let per = n / writers;
    let tasks = (0..writers).map(|w| {
        let table = table.clone();
        async move {
            for i in 0..per {
                let item = json!({ "pk": format!("put#{round}-{w}-{i}"), "sk": "meta", "status": "PLACED", "version": 1 });
                table.put(item.as_object().unwrap().clone(), Condition::Absent).await.unwrap();
            }
        }
    });
    futures::future::join_all(tasks).await;
}

async fn queue_round_trips(store: &Arc<EmbeddedStore>, n: usize) {
    store.create_queue(QueueConfig::new("bench-q")).unwrap();
    let q = store.queue("bench-q").unwrap();
    let body = json!({ "detail-type": "OrderPlaced", "detail": { "order_id": "o-1" } }).to_string();
    for chunk in 0..n.div_ceil(BATCH) {
        let size = BATCH.min(n - chunk * BATCH);
        q.send_batch(
            (0..size)
                .map(|_| OutgoingMessage::new(body.clone()))
                .collect(),
        )
        .await
        .unwrap();
    }
    let mut done = 0;
    while done < n {
        let got = q
            .receive(BATCH, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap();
        let handles: Vec<String> = got.into_iter().map(|m| m.receipt_handle).collect();
        done += handles.len();
        q.delete_batch(&handles).await.unwrap();
    }
}

/// The events of one pipeline round, sent ahead (as a publisher would).
async fn publish_inputs(store: &Arc<EmbeddedStore>, round: usize, n: usize) {
    store.create_queue(QueueConfig::new("bench-in")).unwrap();
    let input = store.queue("bench-in").unwrap();
    for chunk in 0..n.div_ceil(BATCH) {
        let size = BATCH.min(n - chunk * BATCH);
        let msgs = (0..size)
            .map(|i| {
                OutgoingMessage::new(
                    json!({ "order_id": format!("o-{round}-{}", chunk * BATCH + i) }).to_string(),
                )
            })
            .collect();
        input.send_batch(msgs).await.unwrap();
    }
}

/// One handler call: parse the message, write the order conditionally.
async fn handle(table: &switchyard_shared::embedded::EmbeddedTable, body: &str) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let id = v["order_id"].as_str().unwrap();
    let item =
        json!({ "pk": format!("order#{id}"), "sk": "meta", "status": "PLACED", "version": 1 });
    table
        .put(item.as_object().unwrap().clone(), Condition::Absent)
        .await
        .unwrap();
}

/// queue -> handler (one conditional put each) -> stream -> queue. With
/// `concurrent`, the handlers of one batch run concurrently.
async fn pipeline(store: &Arc<EmbeddedStore>, n: usize, concurrent: bool) {
    store.create_queue(QueueConfig::new("bench-out")).unwrap();
    let input = store.queue("bench-in").unwrap();
    let output = store.queue("bench-out").unwrap();
    let table = store.table();
    let stream = store.stream();
    let shards = stream.shards().await.unwrap();
    let mut positions = Vec::new();
    for shard in &shards {
        positions.push(stream.latest_sequence(shard).unwrap());
    }

    let (mut handled, mut forwarded) = (0, 0);
    while forwarded < n {
        if handled < n {
            let got = input
                .receive(BATCH, Duration::from_secs(30), Duration::ZERO)
                .await
                .unwrap();
            if concurrent {
                futures::future::join_all(got.iter().map(|m| handle(&table, &m.body))).await;
            } else {
                for m in &got {
                    handle(&table, &m.body).await;
                }
            }
            let handles: Vec<String> = got.into_iter().map(|m| m.receipt_handle).collect();
            handled += handles.len();
            input.delete_batch(&handles).await.unwrap();
        }
        for (shard, pos) in shards.iter().zip(positions.iter_mut()) {
            let records = stream.read(shard, pos.as_deref(), BATCH).await.unwrap();
            let Some(last) = records.last() else { continue };
            *pos = last.change.sequence_number.clone();
            let out = records
                .iter()
                .map(|r| OutgoingMessage::new(serde_json::to_string(&r.change.new_image).unwrap()))
                .collect::<Vec<_>>();
            forwarded += out.len();
            output.send_batch(out).await.unwrap();
            stream
                .save_checkpoint("bench", shard, pos.as_deref().unwrap())
                .await
                .unwrap();
        }
    }
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bare = rusqlite::Connection::open(dir.path().join("bare.db")).unwrap();
    bare.pragma_update(None, "journal_mode", "WAL").unwrap();
    bare.pragma_update(None, "synchronous", "NORMAL").unwrap();
    bare.execute_batch(
        "CREATE TABLE t (pk TEXT, sk TEXT, body TEXT, PRIMARY KEY (pk, sk)) WITHOUT ROWID",
    )
    .unwrap();
    let store = EmbeddedStore::open(dir.path().join("bench.db")).unwrap();

    let mut t: [Vec<Timing>; 6] = Default::default();
    for round in 0..ROUNDS {
        t[0].push(timed(|| bare_commits(&bare, round, n)));
        t[1].push(timed(|| rt.block_on(table_puts(&store, round, n, 1))));
        t[2].push(timed(|| {
            rt.block_on(table_puts(&store, round + ROUNDS, n, 16))
        }));
        t[3].push(timed(|| rt.block_on(queue_round_trips(&store, n))));
        rt.block_on(publish_inputs(&store, round, n));
        t[4].push(timed(|| rt.block_on(pipeline(&store, n, false))));
        rt.block_on(publish_inputs(&store, round + ROUNDS, n));
        t[5].push(timed(|| rt.block_on(pipeline(&store, n, true))));
    }
    let cpu: Vec<f64> = t
        .iter()
        .map(|v| rate(n, median(v.iter().map(|x| x.cpu).collect())))
        .collect();
    let wall: Vec<f64> = t
        .iter()
        .map(|v| rate(n, median(v.iter().map(|x| x.wall).collect())))
        .collect();

    println!("embedded throughput: n = {n} per round, median of {ROUNDS} rounds, one thread,");
    println!(
        "file database (WAL, synchronous=NORMAL); rates per second of on-CPU time (wall clock)"
    );
    let rows = [
        ("bare SQLite commit of one row (peer)", ""),
        ("table put + stream record, 1 writer", "puts"),
        ("table put + stream record, 16 writers", "puts"),
        ("queue send+receive+delete, batches of 100", "msgs"),
        ("queue -> put -> stream -> queue, sequential", "events"),
        ("queue -> put -> stream -> queue, concurrent", "events"),
    ];
    for (i, (name, unit)) in rows.iter().enumerate() {
        let ratio = if i == 0 {
            String::new()
        } else {
            format!("   {:.2}x the peer", cpu[i] / cpu[0])
        };
        println!(
            "  {name:<44} {:>9.0} {unit:<6} ({:>7.0}){ratio}",
            cpu[i], wall[i]
        );
    }
}
