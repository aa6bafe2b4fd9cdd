//! The one place a `tracing` subscriber is built: the CLI and every Lambda
//! binary call [`init`]. Logs go to stderr; ANSI colours only when stderr is
//! a terminal (never into a file or a pipe, nor with `NO_COLOR` set).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

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

/// What [`init`] builds.
#[derive(Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub target: LogTarget,
    /// The filter, as an [`EnvFilter`] directive string.
    pub filter: EnvFilter,
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

    /// A Lambda function's logs: JSON unless Lambda's log format setting says
    /// `Text` (`AWS_LAMBDA_LOG_FORMAT`); `RUST_LOG` filters, else
    /// `AWS_LAMBDA_LOG_LEVEL`, else `info`.
    pub fn lambda() -> Self {
        let format = match std::env::var("AWS_LAMBDA_LOG_FORMAT") {
            Ok(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
            .map(|l| l.to_ascii_lowercase())
            .unwrap_or_else(|_| "info".to_owned());
        LogConfig {
            format,
            target: LogTarget::Lambda,
            filter: EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        }
    }
}

/// Whether colour codes may be written to stderr.
pub fn stderr_wants_ansi() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber, writing to stderr.
pub fn init(config: LogConfig) {
    install(config, std::io::stderr, stderr_wants_ansi());
}

/// Builds the subscriber for `config` over any writer (tests capture lines).
pub fn subscriber<W>(
    config: LogConfig,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(config.filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match (config.format, config.target) {
        (LogFormat::Json, LogTarget::Cli) => {
            Box::new(builder.json().with_current_span(true).finish())
        }
        (LogFormat::Json, LogTarget::Lambda) => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .without_time()
                .with_target(false)
                .finish(),
        ),
        (LogFormat::Text, LogTarget::Cli) => Box::new(builder.finish()),
        (LogFormat::Text, LogTarget::Lambda) => {
            Box::new(builder.without_time().with_target(false).finish())
        }
    }
}

fn install<W>(config: LogConfig, writer: W, ansi: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::util::SubscriberInitExt;
    // A second init (tests, a library embedding us) keeps the first subscriber.
    let _ = subscriber(config, writer, ansi).try_init();
}
