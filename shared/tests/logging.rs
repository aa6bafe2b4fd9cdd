//! The subscriber every binary builds: JSON lines on Lambda carry the
//! request id, and text has colour codes only when asked for.

use std::sync::{Arc, Mutex};

use switchyard_shared::logging::{subscriber, LogConfig, LogFormat, LogTarget};
use tracing_subscriber::EnvFilter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
    type Writer = Captured;
    fn make_writer(&'w self) -> Captured {
        self.clone()
    }
}

fn lines<F>(config: LogConfig<F>, ansi: bool) -> Vec<String>
where
    F: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let out = Captured::default();
    let subscriber = subscriber(config, out.clone(), ansi);
    tracing::subscriber::with_default(subscriber, || {
        // The span lambda_runtime opens around each invocation.
        let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-42");
        let _invoke = invoke.enter();
        let message = tracing::info_span!("message", correlation_id = "c-1");
        let _message = message.enter();
        tracing::info!(order_id = "o-1", "handled");
        tracing::debug!("details");
    });
    let bytes = out.0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn config(format: LogFormat, target: LogTarget) -> LogConfig {
    LogConfig {
        format,
        target,
        filter: EnvFilter::new("info"),
    }
}

#[test]
fn lambda_json_lines_carry_the_request_id_and_the_current_span() {
    let lines = lines(config(LogFormat::Json, LogTarget::Lambda), false);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let spans = line["spans"].as_array().expect("a span list");
    assert!(spans.iter().any(|s| s["requestId"] == "req-42"), "{line}");
    assert_eq!(line["span"]["correlation_id"], "c-1", "{line}");
    assert_eq!(line["fields"]["order_id"], "o-1", "{line}");
    // Lambda stamps lines itself.
    assert!(line.get("timestamp").is_none(), "{line}");
}

#[test]
fn text_has_colour_codes_only_when_asked() {
    let plain = lines(config(LogFormat::Text, LogTarget::Cli), false).join("\n");
    assert!(plain.contains("handled"), "{plain}");
    assert!(!plain.contains('\x1b'), "{plain:?}");
    let coloured = lines(config(LogFormat::Text, LogTarget::Cli), true).join("\n");
    assert!(coloured.contains('\x1b'), "{coloured:?}");
}

/// Lambda's filter reads `RUST_LOG`-style directives as a target list.
#[test]
fn lambda_filters_by_target_directives() {
    let with = |directives: &str| {
        let filter: tracing_subscriber::filter::Targets = directives.parse().unwrap();
        lines(
            LogConfig {
                format: LogFormat::Json,
                target: LogTarget::Lambda,
                filter,
            },
            false,
        )
    };
    assert_eq!(with("info").len(), 1);
    assert_eq!(with("warn").len(), 0);
    // The test's own events have this test binary as their target.
    assert_eq!(with("warn,logging=debug").len(), 2);
}
