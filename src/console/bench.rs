//! `switchyard bench console`: the console's server-side render times and
//! page weights on a loaded store, and what the recorder and a connected
//! live tail cost the pipeline (side by side with neither, interleaved).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use router_rules::Topology;
use switchyard_shared::events::{EventType, LineItem, OrderPlaced};
use switchyard_shared::ports::{EventPublisher, OutgoingMessage, Queue};
use switchyard_shared::Envelope;

use super::pages::{events, flow, orders, queues};
use super::{Console, Recorder, RecorderLimits};
use crate::{EmbeddedSystem, RuntimeOptions};

#[derive(Debug, Clone)]
pub struct BenchConsoleOptions {
    /// Events in the store for the render times.
    pub events: usize,
    /// Messages in a DLQ for the render times.
    pub dlq_messages: usize,
    /// Renders per page (the median counts).
    pub renders: usize,
    /// Events per pipeline run for the overheads.
    pub pipeline_events: usize,
    /// Rounds of the pipeline runs (each round runs every variant once).
    pub rounds: usize,
    /// Events per second the pipeline runs are fed at; None: as fast as it takes them.
    pub rate: Option<u32>,
}

fn order_event(i: usize) -> Envelope {
    OrderPlaced {
        order_id: format!("o-{i}"),
        customer_id: format!("c-{}", i % 1000),
        items: vec![LineItem {
            sku: "mug".into(),
            quantity: 1 + (i % 3) as u32,
            unit_price_cents: 1200,
        }],
        total_cents: 1200 * (1 + (i % 3) as u64),
        currency: "EUR".into(),
    }
    .into_envelope()
}

async fn publish_all(publisher: &dyn EventPublisher, n: usize) -> anyhow::Result<()> {
    let events: Vec<Envelope> = (0..n).map(order_event).collect();
    for chunk in events.chunks(10) {
        publisher.publish(chunk).await?.into_result()?;
    }
    Ok(())
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Times `render` `n` times; the median and the page's size.
async fn time<F, Fut>(n: usize, render: F) -> anyhow::Result<(Duration, usize)>
where
    F: Fn() -> Fut,
    Fut:
        std::future::Future<Output = Result<axum::response::Html<String>, super::pages::PageError>>,
{
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for _ in 0..n.max(1) {
        let start = Instant::now();
        let page = render().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        times.push(start.elapsed());
        size = page.0.len();
    }
    Ok((median(times), size))
}

/// Render times on a store holding `events` events (run through the whole
/// pipeline) and `dlq_messages` dead letters.
async fn renders(topology: Arc<Topology>, o: &BenchConsoleOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut system = EmbeddedSystem::in_memory(dir.path(), topology.clone())?;
    let mut options = RuntimeOptions {
        queue_pollers: 2,
        ..RuntimeOptions::default()
    };
    let recorder = Recorder::new(topology, RecorderLimits::default())?;
    recorder.install(&mut system, &mut options);
    system.start(&options).await?;
    let started = Instant::now();
    publish_all(&*system.publisher, o.events).await?;
    system.wait_quiet(Duration::from_secs(600)).await?;
    let dlq: Arc<dyn Queue> = Arc::new(system.store.queue("order-processor-dlq")?);
    let poison: Vec<Envelope> = (0..o.dlq_messages)
        .map(|i| order_event(o.events + i))
        .collect();
    for chunk in poison.chunks(10) {
        dlq.send_batch(
            chunk
                .iter()
                .map(|e| OutgoingMessage::new(e.to_json()))
                .collect(),
        )
        .await?;
    }
    println!(
        "store: {} events through the pipeline in {:.1} s, {} DLQ messages, {} table items",
        o.events,
        started.elapsed().as_secs_f64(),
        o.dlq_messages,
        system.table.scan().await?.len()
    );
    let console = Console::new(&system, recorder.clone());
    let any = recorder.recent(1, |_| true);
    let id = any
        .first()
        .map(|e| e.envelope.id.to_string())
        .unwrap_or_default();
    let n = o.renders;
    let rows: Vec<(&str, (Duration, usize))> = vec![
        ("flow", time(n, || flow::flow_page(State(console.clone()))).await?),
        (
            "events (100 rows)",
            time(n, || events::events_page(State(console.clone()), Query(Default::default()))).await?,
        ),
        (
            "events, filtered by a pattern",
            time(n, || {
                events::events_page(
                    State(console.clone()),
                    Query(events::Filter {
                        pattern: r#"{"detail-type":["OrderStatusChanged"],"detail":{"status":["PLACED"]}}"#.into(),
                    }),
                )
            })
            .await?,
        ),
        (
            "lineage",
            time(n, || events::lineage_page(State(console.clone()), Path(id.clone()))).await?,
        ),
        (
            "queue order-processor-dlq (50 messages)",
            time(n, || {
                queues::queue_page(
                    State(console.clone()),
                    Path("order-processor-dlq".into()),
                    Query(Default::default()),
                )
            })
            .await?,
        ),
        (
            "orders (first 500)",
            time(n.min(20), || orders::orders_page(State(console.clone()), Query(Default::default()))).await?,
        ),
        (
            "order",
            time(n, || orders::order_page(State(console.clone()), Path("o-7".into()))).await?,
        ),
    ];
    println!("\n| page | median render | weight |\n|---|---:|---:|");
    for (name, (t, size)) in &rows {
        println!(
            "| {name} | {:.2} ms | {:.1} KB |",
            t.as_secs_f64() * 1000.0,
            *size as f64 / 1024.0
        );
    }
    system.shutdown().await;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// No recorder at all.
    Bare,
    /// The recorder, no tail.
    Recorder,
    /// The recorder and a live tail: a client of the console's event stream
    /// over HTTP on 127.0.0.1, with a pattern.
    Tail,
}

/// One pipeline run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    /// Events per second, first publish to quiet.
    rate: f64,
    /// Process CPU time per event (every thread: pipeline, recorder, tail).
    cpu_per_event: Duration,
    /// From the last publish to quiet.
    drain: Duration,
    /// What the live tail received, if one was connected.
    tail_bytes: usize,
}

/// A connected live tail: its server, its reader, and the bytes read so far.
struct Tail {
    server: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
    bytes: Arc<std::sync::atomic::AtomicUsize>,
}

impl Tail {
    /// Disconnects; the bytes the tail received.
    fn stop(self) -> usize {
        self.reader.abort();
        self.server.abort();
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The console's live tail as a browser has it: `GET
/// /console/events/stream` on a server of its own, read as it comes.
async fn connect_tail(console: Console) -> anyhow::Result<Tail> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, super::router(console)).await;
    });
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let pattern = "%7B%22detail-type%22%3A%5B%22OrderStatusChanged%22%5D%7D";
    stream
        .write_all(
            format!("GET /console/events/stream?pattern={pattern} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    anyhow::ensure!(
        &head == b"HTTP/1.1 200",
        "the tail was refused: {}",
        String::from_utf8_lossy(&head)
    );
    let bytes = Arc::new(std::sync::atomic::AtomicUsize::new(head.len()));
    let counted = bytes.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    });
    Ok(Tail {
        server,
        reader,
        bytes,
    })
}

/// One pipeline run of `n` OrderPlaced (each through the order processor,
/// the table, the stream reactor and the notifier), fed at `rate` events/s.
async fn pipeline(
    topology: Arc<Topology>,
    n: usize,
    variant: Variant,
    rate: Option<u32>,
) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let mut system = EmbeddedSystem::in_memory(dir.path(), topology.clone())?;
    let mut options = RuntimeOptions {
        queue_pollers: 2,
        ..RuntimeOptions::default()
    };
    let mut tail = None;
    if variant != Variant::Bare {
        let recorder = Recorder::new(topology, RecorderLimits::default())?;
        recorder.install(&mut system, &mut options);
        if variant == Variant::Tail {
            tail = Some(connect_tail(Console::new(&system, recorder)).await?);
        }
    }
    system.start(&options).await?;
    let events: Vec<Envelope> = (0..n).map(order_event).collect();
    let cpu = switchyard_imaging::measure::process_cpu_time();
    let start = Instant::now();
    for (i, chunk) in events.chunks(10).enumerate() {
        if let Some(rate) = rate {
            // Chunk i is due at i * 10 / rate seconds: a steady feed, caught up after any stall.
            let due = start + Duration::from_secs_f64((i * 10) as f64 / f64::from(rate.max(1)));
            tokio::time::sleep_until(due.into()).await;
        }
        system.publisher.publish(chunk).await?.into_result()?;
    }
    let published = Instant::now();
    system.wait_quiet(Duration::from_secs(600)).await?;
    let run = Run {
        rate: n as f64 / start.elapsed().as_secs_f64(),
        cpu_per_event: (switchyard_imaging::measure::process_cpu_time() - cpu) / n.max(1) as u32,
        drain: published.elapsed(),
        tail_bytes: tail.map_or(0, Tail::stop),
    };
    system.shutdown().await;
    Ok(run)
}

pub async fn run(topology: Arc<Topology>, o: BenchConsoleOptions) -> anyhow::Result<()> {
    renders(topology.clone(), &o).await?;
    let feed = o.rate.map_or("as fast as it takes them".to_owned(), |r| {
        format!("fed at {r} events/s")
    });
    println!(
        "\npipeline: {} OrderPlaced per run, {feed}, end to end (order processor, table, stream reactor, notifier), {} rounds, best of each",
        o.pipeline_events, o.rounds
    );
    let variants = [Variant::Bare, Variant::Recorder, Variant::Tail];
    let mut best = [0f64; 3];
    let mut cpu: [Vec<Duration>; 3] = Default::default();
    let mut drain: [Vec<Duration>; 3] = Default::default();
    for round in 0..o.rounds {
        for (i, v) in variants.iter().enumerate() {
            let run = pipeline(topology.clone(), o.pipeline_events, *v, o.rate).await?;
            println!(
                "  round {} {:?}: {:.0} events/s, {:.1} µs CPU per event, drained {:.0} ms after the last publish{}",
                round + 1,
                v,
                run.rate,
                run.cpu_per_event.as_secs_f64() * 1e6,
                run.drain.as_secs_f64() * 1e3,
                if *v == Variant::Tail { format!(", tail received {} KB", run.tail_bytes / 1024) } else { String::new() }
            );
            best[i] = best[i].max(run.rate);
            cpu[i].push(run.cpu_per_event);
            drain[i].push(run.drain);
        }
    }
    let cpu = cpu.map(median);
    let drain = drain.map(median);
    println!(
        "\n| run | CPU per event (median) | vs no recorder | drain after the last publish (median) |\n|---|---:|---:|---:|"
    );
    for (i, name) in [
        "no recorder",
        "recorder (lineage on)",
        "recorder + live tail over HTTP",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "| {name} | {:.1} µs | {:.3} | {:.0} ms |",
            cpu[i].as_secs_f64() * 1e6,
            cpu[i].as_secs_f64() / cpu[0].as_secs_f64().max(1e-12),
            drain[i].as_secs_f64() * 1e3
        );
    }
    println!(
        "\n| run | events/s (best) | vs no recorder |\n|---|---:|---:|\n| no recorder | {:.0} | 1.00 |\n| recorder (lineage on) | {:.0} | {:.3} |\n| recorder + live tail with a pattern | {:.0} | {:.3} |",
        best[0],
        best[1],
        best[1] / best[0],
        best[2],
        best[2] / best[0]
    );
    println!(
        "summary: lineage costs {:.1}% of end-to-end throughput; a connected tail {:.1}% more",
        (1.0 - best[1] / best[0]) * 100.0,
        (1.0 - best[2] / best[1]) * 100.0
    );
    Ok(())
}
