//! `switchyard replay LOG ...`, the commands that make logs, and
//! `switchyard bench e2e`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::replay::bench::{self, E2eOptions};
use crate::replay::import::{self, ExportFormat};
use crate::replay::{
    generate, replay_embedded, EmbeddedTarget, EventLog, FaultSpec, Rate, ReplayClock,
    ReplayOptions,
};
use crate::state::StateSnapshot;
use crate::EmbeddedSystem;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use switchyard_shared::config::{BackendKind, DataDir};

use super::GlobalArgs;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReplayArgs {
    #[command(subcommand)]
    pub command: Option<ReplayCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The event log (JSONL) to replay.
    #[arg(required = true)]
    pub log: Option<PathBuf>,
    /// `embedded` (a fresh store unless --data-dir) or `aws` (the provisioned bus, topic and
    /// bucket; with --endpoint for moto; the consumers run there, e.g. `up --backend aws`).
    #[arg(long, default_value = "embedded")]
    pub backend: BackendKind,
    /// With `--backend aws`: an AWS-compatible endpoint (a moto server).
    #[arg(long, env = "SWITCHYARD_AWS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Replay into this data dir (created if missing) instead of a fresh one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Events per second, `max` (the default), or `log` (each event when its `time` comes; no
    /// waiting on the virtual clock).
    #[arg(long)]
    pub rate: Option<Rate>,
    /// `virtual` (time jumps to the next deadline whenever the consumers are idle; timing as on
    /// AWS; reproducible under --seed) or `wall` (today's real-time run, short retry delays).
    /// The embedded backend only.
    #[arg(long, default_value = "virtual")]
    pub clock: ReplayClock,
    /// Only events whose `time` is at or after this (RFC 3339).
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// Only events whose `time` is before this (RFC 3339).
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
    /// Only events this EventBridge pattern matches (JSON, or @FILE).
    #[arg(long)]
    pub filter: Option<String>,
    /// Faults: duplicate=P,reorder=N|Tms,crash=P,transient=P,visibility-expiry=P (or none).
    #[arg(long, default_value = "none")]
    pub faults: FaultSpec,
    /// Seed of every fault decision: the same seed, the same faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compare the final state with this snapshot (from `switchyard state dump`).
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// Seconds the system may take to settle after the last event.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FixtureKind {
    /// Orders with images, in realistic interleavings.
    Orders,
    /// Payments before placements, shipments before payments.
    OutOfOrder,
    /// Good orders with poison among them.
    Poison,
    /// The e2e benchmark's log (--orders is the number of events).
    Bench,
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Make a log from an EventBridge, SNS or SQS JSON export.
    Import {
        export: PathBuf,
        #[arg(long, default_value = "auto")]
        format: ExportFormat,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Make a log from a dead-letter queue of an embedded data dir.
    FromDlq {
        queue: String,
        #[arg(long, env = "SWITCHYARD_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Write a generated log (the fixtures of tests/fixtures are made this way).
    Generate {
        kind: FixtureKind,
        #[arg(long, default_value_t = 1000)]
        orders: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, short)]
        out: PathBuf,
    },
}

pub async fn run(global: &GlobalArgs, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(ReplayCommand::Import {
            export,
            format,
            out,
        }) => {
            let text = std::fs::read_to_string(&export)
                .with_context(|| format!("reading {}", export.display()))?;
            let log = import::from_export(&text, format, &super::load_topology(global)?)
                .with_context(|| format!("{}", export.display()))?;
            write_log(&log, &out)
        }
        Some(ReplayCommand::FromDlq {
            queue,
            data_dir,
            out,
        }) => {
            let topology = Arc::new(super::load_topology(global)?);
            let system = EmbeddedSystem::open(&EmbeddedSystem::data_dir(data_dir), topology)?;
            if !system.dead_letter_queues().contains(&queue) {
                bail!(
                    "{queue:?} is not a dead-letter queue; try one of: {}",
                    system.dead_letter_queues().join(", ")
                );
            }
            let (log, skipped) = import::from_dlq(&system, &queue).await?;
            for s in &skipped {
                eprintln!("skipped {s}");
            }
            write_log(&log, &out)
        }
        Some(ReplayCommand::Generate {
            kind,
            orders,
            seed,
            out,
        }) => {
            let log = match kind {
                FixtureKind::Orders => generate::orders_with_images(seed, orders),
                FixtureKind::OutOfOrder => generate::out_of_order(seed, orders),
                FixtureKind::Poison => generate::poison(seed, orders),
                FixtureKind::Bench => generate::bench_orders(seed, orders),
            };
            write_log(&log, &out)
        }
        None => replay(global, args.run).await,
    }
}

fn write_log(log: &EventLog, out: &Path) -> anyhow::Result<ExitCode> {
    log.write(out)?;
    eprintln!(
        "wrote {} events and {} blobs to {}",
        log.events.len(),
        log.blobs.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A pattern given inline or as @FILE.
fn pattern(arg: &str) -> anyhow::Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).context("--filter is not JSON (an EventBridge pattern)")
}

fn read_snapshot(path: &Path) -> anyhow::Result<StateSnapshot> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a state snapshot (`switchyard state dump` prints one)",
            path.display()
        )
    })
}

async fn replay(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let log_path = args.log.context("which log? `switchyard replay LOG`")?;
    // Read everything that can be wrong before any work starts.
    let expected = args.expect.as_deref().map(read_snapshot).transpose()?;
    let filter = args.filter.as_deref().map(pattern).transpose()?;
    let log = EventLog::read(&log_path)?;
    let topology = super::load_topology(global)?;
    let on_virtual = args.clock == ReplayClock::Virtual && args.backend != BackendKind::Aws;
    let options = ReplayOptions {
        rate: args.rate.unwrap_or(Rate::Max),
        clock: args.clock,
        from: args.from,
        to: args.to,
        filter,
        faults: args.faults,
        seed: args.seed,
        quiet_timeout: Duration::from_secs(args.timeout),
        progress: !args.quiet,
        runtime: global.runtime_options(),
        ..ReplayOptions::default()
    };
    if args.backend == BackendKind::Aws {
        return replay_into_aws(
            &log,
            &topology,
            args.endpoint.as_deref(),
            &options,
            expected,
        )
        .await;
    }
    let fresh = || std::env::temp_dir().join(format!("switchyard-replay-{}", uuid::Uuid::now_v7()));
    // On the virtual clock a fresh store is in memory (nothing waits for a
    // disk); `--data-dir` keeps the state, as on the wall clock.
    let (target, data_dir, _blobs) = match args.data_dir {
        Some(d) => {
            let dir = DataDir::new(d);
            (EmbeddedTarget::DataDir(dir.clone()), Some(dir), None)
        }
        None if on_virtual => {
            let blobs = tempfile::tempdir().context("creating a blob folder")?;
            let target = EmbeddedTarget::Memory {
                blob_dir: blobs.path().to_path_buf(),
            };
            (target, None, Some(blobs))
        }
        None => {
            let dir = DataDir::new(fresh());
            (EmbeddedTarget::DataDir(dir.clone()), Some(dir), None)
        }
    };
    eprintln!(
        "replaying {} ({} events) into {} on the {} clock",
        log_path.display(),
        log.events.len(),
        data_dir
            .as_ref()
            .map_or("a fresh in-memory store".to_owned(), |d| d
                .root
                .display()
                .to_string()),
        args.clock
    );
    let outcome = replay_embedded(&log, &topology, &target, &options).await?;
    println!("{}", outcome.report);
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&outcome.report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match &data_dir {
        Some(d) => println!(
            "  state:               `switchyard state dump --data-dir {}`",
            d.root.display()
        ),
        None => println!("  state:               in memory, gone (keep it with --data-dir DIR)"),
    }
    let diff = expected.map(|e| outcome.snapshot.diff(&e));
    Ok(verdict(outcome.report.unaccounted.is_empty(), diff, ""))
}

/// Prints how the final state compares with `--expect` (when given) and
/// turns the outcome into the exit code.
fn verdict(accounted: bool, diff: Option<Vec<String>>, waited: &str) -> ExitCode {
    let mut ok = accounted;
    match diff {
        None => {}
        Some(diff) if diff.is_empty() => println!("  expected state:      matches"),
        Some(diff) => {
            ok = false;
            println!(
                "  expected state:      DIFFERS{waited} ({} lines)",
                diff.len()
            );
            for line in diff {
                println!("    {line}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `--backend aws`: publish into the provisioned resources; with `--expect`,
/// wait (up to `--timeout`) for the table to reach the expected state.
async fn replay_into_aws(
    log: &EventLog,
    topology: &router_rules::Topology,
    endpoint: Option<&str>,
    options: &ReplayOptions,
    expected: Option<StateSnapshot>,
) -> anyhow::Result<ExitCode> {
    let outcome = crate::replay::aws::replay_aws(log, topology, endpoint, options).await?;
    println!("{outcome}");
    let diff = match expected {
        Some(expected) => Some(
            crate::replay::aws::await_state(topology, endpoint, &expected, options.quiet_timeout)
                .await?,
        ),
        None => None,
    };
    let waited = format!(" after {:?}", options.quiet_timeout);
    Ok(verdict(outcome.refused.is_empty(), diff, &waited))
}

#[derive(Debug, Args)]
pub struct BenchE2eArgs {
    /// Events in the generated log.
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// The fixed rate (events/s) of the latency run.
    #[arg(long, default_value_t = 10_000.0)]
    pub latency_rate: f64,
    /// Events in the latency run.
    #[arg(long, default_value_t = 50_000)]
    pub latency_events: usize,
    /// Events of the moto leg.
    #[arg(long, default_value_t = 500)]
    pub moto_events: usize,
    /// A moto server (`scripts/moto/run` starts one and sets this). The bench resets its
    /// state and provisions the topology in it: do not point this at AWS.
    #[arg(long, env = "SWITCHYARD_MOTO_ENDPOINT")]
    pub moto_endpoint: Option<String>,
    /// Pollers per consumer queue (Lambda's SQS event source mapping starts with five).
    #[arg(long, default_value_t = 5)]
    pub pollers: usize,
    /// Full speed: at most this many events published and not yet consumed
    /// (the embedded queues hold their backlog in memory); 0 publishes the
    /// whole log without waiting.
    #[arg(long, default_value_t = 10_000)]
    pub window: usize,
    /// Where the runs' durable data dirs go (removed after each run).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub async fn bench_e2e(_global: &GlobalArgs, args: BenchE2eArgs) -> anyhow::Result<ExitCode> {
    let options = E2eOptions {
        events: args.events,
        latency_rate: args.latency_rate,
        latency_events: args.latency_events,
        moto_events: args.moto_events,
        moto_endpoint: args.moto_endpoint,
        pollers: args.pollers,
        window: args.window,
        dir: args.dir.unwrap_or_else(std::env::temp_dir),
        seed: args.seed,
        progress: !args.quiet,
        ..E2eOptions::default()
    };
    let r = bench::run(&options).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let cpu = match r.throughput.cpu_per_event() {
        Some(c) => format!(", process CPU {:.1} µs/event", c.as_secs_f64() * 1e6),
        None => String::new(),
    };
    println!(
        "full speed:  {} events end to end in {:.2}s = {:.0} events/s (durable data dir{cpu})",
        r.throughput.events,
        r.throughput.elapsed.as_secs_f64(),
        r.throughput.events_per_sec
    );
    println!(
        "fixed rate:  {} events at {:.0}/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        r.latency.events,
        r.latency_rate,
        ms(r.latency.percentile(0.5)),
        ms(r.latency.percentile(0.99)),
        ms(r.latency.percentile(1.0)),
    );
    println!("peak RSS:    {:.0} MB", r.peak_rss_mb);
    println!(
        "peer:        bare SQLite commits of one row (same pragmas): {:.0}/s; end to end is {:.3}x that, {:.1} bare commits per event",
        r.bare_commits_per_sec,
        r.throughput.events_per_sec / r.bare_commits_per_sec,
        r.bare_commits_per_sec / r.throughput.events_per_sec
    );
    match &r.moto {
        Ok(m) => println!(
            "moto:        {} events end to end in {:.2}s = {:.1} events/s; embedded is {:.0}x",
            m.events,
            m.elapsed.as_secs_f64(),
            m.events_per_sec,
            r.ratio_vs_moto().unwrap_or(0.0)
        ),
        Err(reason) => println!("moto:        not measured: {reason}"),
    }
    println!("{}", r.summary_line());
    Ok(ExitCode::SUCCESS)
}
