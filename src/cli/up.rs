//! `switchyard up`: the embedded runtime plus the HTTP API and the console on 127.0.0.1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::console::{Console, Recorder, RecorderLimits};
use crate::{EmbeddedSystem, RuntimeOptions};
use anyhow::Context;
use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where state lives (created if missing).
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Port of the HTTP API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Append every event the API publishes to this event log (JSONL), for `switchyard replay`.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// `embedded` (this machine) or `aws` (provisioned resources; see `switchyard provision`).
    #[arg(long, default_value = "embedded")]
    pub backend: switchyard_shared::config::BackendKind,
    /// With `--backend aws`: an AWS-compatible endpoint (a moto server) instead of AWS.
    #[arg(long, env = "SWITCHYARD_AWS_ENDPOINT")]
    pub endpoint: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: UpArgs) -> anyhow::Result<ExitCode> {
    let topology = Arc::new(super::load_topology(global)?);
    if args.backend == switchyard_shared::config::BackendKind::Aws {
        anyhow::ensure!(
            args.record.is_none(),
            "--record works with --backend embedded only (on AWS, record with an EventBridge archive or `replay` from an export)"
        );
        return up_aws(
            topology,
            global.runtime_options(),
            args.endpoint.as_deref(),
            args.port,
        )
        .await;
    }
    let data_dir = EmbeddedSystem::data_dir(args.data_dir);
    let mut system = EmbeddedSystem::open(&data_dir, topology)?;
    let mut options = global.runtime_options();
    // The console's recorder is fed by the runtime from here on.
    let recorder = Recorder::new(system.topology.clone(), RecorderLimits::default())?;
    recorder.install(&mut system, &mut options);
    system.start(&options).await?;
    let listener = bind_local(args.port).await?;
    let addr = listener.local_addr()?;
    let line = format!(
        "switchyard up: API on http://{addr} (data dir {})\nswitchyard up: console on http://{addr}/\n",
        data_dir.root.display()
    );
    announce(&line)?;
    let mut api = system.api_state();
    if let Some(path) = &args.record {
        let log = crate::replay::LogWriter::append(path)?;
        api.publisher = Arc::new(crate::replay::import::Recorder::new(
            api.publisher,
            system.blobs.clone(),
            system.topology.clone(),
            log,
        ));
        eprintln!(
            "switchyard up: recording published events to {}",
            path.display()
        );
    }
    let console = crate::console::router(Console::new(&system, recorder));
    serve_api(listener, api, &options, console).await?;
    eprintln!("switchyard up: stopping consumers after their current batch");
    system.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `switchyard up --backend aws`: the pollers and the HTTP API on the
/// provisioned resources, until Ctrl-C or SIGTERM.
async fn up_aws(
    topology: Arc<router_rules::Topology>,
    options: RuntimeOptions,
    endpoint: Option<&str>,
    port: u16,
) -> anyhow::Result<ExitCode> {
    let clients = switchyard_shared::aws::AwsClients::connect(endpoint).await;
    let mut system = crate::aws::AwsSystem::connect(topology, &clients).await?;
    system.start(&options).await?;
    let listener = bind_local(port).await?;
    let addr = listener.local_addr()?;
    announce(&format!(
        "switchyard up: API on http://{addr} (backend aws, {})\nswitchyard up: console on http://{addr}/\n",
        endpoint.unwrap_or("AWS")
    ))?;
    // Queues, dead letters, orders and images from SQS, DynamoDB and S3;
    // the pages that need the recorder say why they are empty here.
    let console = crate::console::router(crate::console::Console::aws(
        system.topology.clone(),
        &system.resources,
    ));
    serve_api(listener, system.api_state(), &options, console).await?;
    eprintln!("switchyard up: stopping pollers after their current batch");
    system.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The server's listener on 127.0.0.1 (`port` 0 picks a free one).
pub(super) async fn bind_local(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))
}

/// Prints where the server listens on stdout, flushed, so scripts and tests
/// can find the port. One write: a reader that stops after the first line
/// must not make the rest fail with a broken pipe.
pub(super) fn announce(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// The API's `host:port` in the first line `up` prints (`switchyard up: API
/// on http://127.0.0.1:PORT ...`), for scripts and tests that start it on port 0.
pub fn announced_address(line: &str) -> Option<&str> {
    line.split("http://").nth(1)?.split_whitespace().next()
}

/// Serves the API (hardened for a local port: see `switchyard_producer::serve`)
/// until SIGINT or SIGTERM; uploads over the image processor's limit are refused.
pub(super) async fn serve_api(
    listener: tokio::net::TcpListener,
    mut api: switchyard_producer::api::ApiState,
    options: &RuntimeOptions,
    console: axum::Router,
) -> anyhow::Result<()> {
    api.max_upload_bytes = usize::try_from(options.limits.max_bytes).unwrap_or(usize::MAX);
    let app = switchyard_producer::api::router(api).merge(console);
    let serve = switchyard_producer::serve::ServeOptions::default();
    switchyard_producer::serve::serve(listener, app, &serve, shutdown_signal()).await?;
    Ok(())
}

pub(super) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
