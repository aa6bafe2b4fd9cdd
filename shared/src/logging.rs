//! The one place a `tracing` subscriber is built: the CLI and every Lambda
//! binary call [`init`]. Logs go to stderr; ANSI colours only when stderr is
//! a terminal (never into a file or a pipe, nor with `NO_COLOR` set).

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Text for people, or one JSON object per line for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the logs are read, which decides their shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// A terminal or a file: timestamps and targets on every line.
    Cli,
    /// CloudWatch Logs: Lambda stamps each line itself, and every line carries
    /// the span list, so the runtime's `requestId` is on each line.
    Lambda,
}

/// What [`init`] builds. The filter is a layer over the registry: the CLI's
/// [`EnvFilter`] (span and field filters), or on Lambda a [`Targets`] list,
/// which reads the same `target=level` directives without linking the
/// regex engine into every bootstrap (BENCHMARKS.md "Lambda").
#[derive(Debug)]
pub struct LogConfig<F = EnvFilter> {
    pub format: LogFormat,
    pub target: LogTarget,
    pub filter: F,
}

impl LogConfig {
    /// The CLI's logs: `SWITCHYARD_LOG` filters, else `default_filter`.
    pub fn cli(format: LogFormat, default_filter: &str) -> Self {
        LogConfig {
            format,
            target: LogTarget::Cli,
            filter: EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_filter)),
        }
    }
}

impl LogConfig<Targets> {
    /// A Lambda function's logs: JSON unless Lambda's log format setting says
    /// `Text` (`AWS_LAMBDA_LOG_FORMAT`); `RUST_LOG` filters (`info`,
    /// `warn,switchyard_consumers=debug`), else `AWS_LAMBDA_LOG_LEVEL`, else
    /// `info`. A directive list that does not parse is reported on stderr
    /// and `info` is used.
    pub fn lambda() -> Self {
        let format = match std::env::var("AWS_LAMBDA_LOG_FORMAT") {
            Ok(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        let directives = std::env::var("RUST_LOG")
            .ok()
            .filter(|d| !d.is_empty())
            .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok())
            .unwrap_or_else(|| "info".to_owned())
            .to_ascii_lowercase();
        let filter = directives.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!("log filter {directives:?} ignored ({e}); logging at info");
            Targets::new().with_default(tracing::Level::INFO)
        });
        LogConfig {
            format,
            target: LogTarget::Lambda,
            filter,
        }
    }
}

/// Whether colour codes may be written to stderr.
pub fn stderr_wants_ansi() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber, writing to stderr.
pub fn init<F>(config: LogConfig<F>)
where
    F: Layer<Registry> + Send + Sync + 'static,
{
    install(config, std::io::stderr, stderr_wants_ansi());
}

/// Builds the subscriber for `config` over any writer (tests capture lines).
pub fn subscriber<F, W>(
    config: LogConfig<F>,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    F: Layer<Registry> + Send + Sync + 'static,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let filtered = Registry::default().with(config.filter);
    match (config.format, config.target) {
        (LogFormat::Json, LogTarget::Cli) => {
            Box::new(filtered.with(layer.json().with_current_span(true)))
        }
        (LogFormat::Json, LogTarget::Lambda) => Box::new(
            filtered.with(
                layer
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .without_time()
                    .with_target(false),
            ),
        ),
        (LogFormat::Text, LogTarget::Cli) => Box::new(filtered.with(layer)),
        (LogFormat::Text, LogTarget::Lambda) => {
            Box::new(filtered.with(layer.without_time().with_target(false)))
        }
    }
}

fn install<F, W>(config: LogConfig<F>, writer: W, ansi: bool)
where
    F: Layer<Registry> + Send + Sync + 'static,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt;
    // A second init (tests, a library embedding us) keeps the first subscriber.
    let _ = subscriber(config, writer, ansi).try_init();
}
