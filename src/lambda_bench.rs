//! `switchyard bench lambda`: each Lambda bootstrap started against a local
//! Lambda runtime API (a small axum server on 127.0.0.1, this module), as the
//! Lambda service starts a function: the process's init (from spawn to its
//! first `GET /runtime/invocation/next`), the first invocation (from handing
//! over the event to the posted response), its peak RSS, and the bootstrap's
//! bytes and zip bytes, beside a hello-world `lambda_runtime` function built
//! by the same command (the floor).
//!
//! The first event touches no AWS service: an SQS batch of one message whose
//! body is no envelope (decoded, failed, reported in the partial batch
//! response, EMF written), an empty stream batch, `GET /health` for the API.
//! So the figures are the runtime's, the layers' and the start-up's, not a
//! network's.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// The functions measured: (bootstrap folder name, first event).
pub fn functions() -> Vec<(&'static str, Value)> {
    vec![
        ("lambda-floor", json!({"hello": "world"})),
        ("order-processor", sqs_event("order-processor")),
        ("notifier", sqs_event("notifier")),
        ("image-processor", sqs_event("image-processor")),
        ("stream-reactor", json!({"Records": []})),
        ("orders-api", health_request()),
    ]
}

/// An SQS event of one message, as Lambda's SQS integration hands it over.
fn sqs_event(queue: &str) -> Value {
    json!({ "Records": [sqs_record(queue, "bench-1", "not an envelope")] })
}

/// One record of an `SqsEvent` from `queue` on its first receive (the Lambda
/// tests in tests/aws_lambda.rs send the same shape).
pub fn sqs_record(queue: &str, message_id: &str, body: &str) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("handle-{message_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000001"
        },
        "messageAttributes": {},
        "md5OfBody": "00000000000000000000000000000000",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
        "awsRegion": "us-east-1"
    })
}

fn health_request() -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/health",
        "rawQueryString": "",
        "headers": {"host": "bench.example"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.example",
            "domainPrefix": "bench",
            "http": {"method": "GET", "path": "/health", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "switchyard-bench"},
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "06/Dec/2026:18:00:00 +0000",
            "timeEpoch": 1796580000000u64
        },
        "isBase64Encoded": false
    })
}

/// One cold start of one bootstrap.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// Spawn to the first `/next` request.
    pub init: Duration,
    /// The event handed over to the response posted.
    pub first_invocation: Duration,
    /// VmHWM after the first response, in bytes.
    pub peak_rss: u64,
    /// Whether the function posted a response (not an error).
    pub ok: bool,
    /// What it posted.
    pub answer: String,
}

#[derive(Default)]
struct Runtime {
    event: Vec<u8>,
    next: Mutex<Vec<Instant>>,
    answered: Mutex<Option<(Instant, bool, String)>>,
    done: Notify,
}

async fn next(State(rt): State<Arc<Runtime>>) -> axum::response::Response {
    let first = {
        let mut next = rt.next.lock().unwrap();
        next.push(Instant::now());
        next.len() == 1
    };
    if !first {
        // One invocation per cold start: the process waits here until it is killed.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now() + Duration::from_secs(60);
    let deadline_ms = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static("bench-request"),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from(deadline_ms as u64),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        ),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, rt.event.clone()).into_response()
}

fn answer(rt: &Runtime, ok: bool, body: &[u8]) -> StatusCode {
    let mut answered = rt.answered.lock().unwrap();
    if answered.is_none() {
        *answered = Some((
            Instant::now(),
            ok,
            String::from_utf8_lossy(body).into_owned(),
        ));
        rt.done.notify_one();
    }
    StatusCode::ACCEPTED
}

async fn response(
    State(rt): State<Arc<Runtime>>,
    UrlPath(_id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    answer(&rt, true, &body)
}

async fn error(
    State(rt): State<Arc<Runtime>>,
    UrlPath(_id): UrlPath<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    answer(&rt, false, &body)
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: axum::body::Bytes) -> StatusCode {
    answer(&rt, false, &body)
}

/// Starts `bootstrap` against a fresh runtime API, hands it `event`, and
/// measures its cold start; the process is killed afterwards.
pub async fn cold_start(
    bootstrap: &Path,
    event: &Value,
    timeout: Duration,
) -> anyhow::Result<ColdStart> {
    let rt = Arc::new(Runtime {
        event: serde_json::to_vec(event)?,
        ..Runtime::default()
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let name = bootstrap
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bench".to_owned());
    let mut command = Command::new(bootstrap);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_SESSION_TOKEN", "bench")
        // Nothing may leave the machine: every SDK call would go here (none is made).
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SWITCHYARD_TABLE", "switchyard")
        .env("SWITCHYARD_BUCKET", "switchyard-bench")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let spawned = Instant::now();
    let mut child = command.spawn()?;
    let waited = tokio::time::timeout(timeout, rt.done.notified()).await;
    let peak_rss = peak_rss(child.id());
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    waited.map_err(|_| anyhow::anyhow!("{}: no answer within {timeout:?}", bootstrap.display()))?;
    let first_next = *rt.next.lock().unwrap().first().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: answered without asking for an event",
            bootstrap.display()
        )
    })?;
    let (answered, ok, answer) = rt
        .answered
        .lock()
        .unwrap()
        .clone()
        .expect("notified after an answer");
    Ok(ColdStart {
        init: first_next - spawned,
        first_invocation: answered.saturating_duration_since(first_next),
        peak_rss: peak_rss.unwrap_or(0),
        ok,
        answer,
    })
}

/// VmHWM of a live process, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The size of a zip holding the bootstrap as one deflated entry named
/// `bootstrap` (what Lambda is given): deflate at the default level, plus the
/// local header, the central directory entry and the end record.
pub fn zip_bytes(bootstrap: &Path) -> anyhow::Result<u64> {
    let data = std::fs::read(bootstrap)?;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&data)?;
    let deflated = encoder.finish()?.len() as u64;
    const NAME: u64 = "bootstrap".len() as u64;
    Ok((30 + NAME) + deflated + (46 + NAME) + 22)
}

/// What `switchyard bench lambda` reports for one function.
#[derive(Debug, Clone)]
pub struct FunctionReport {
    pub name: String,
    pub bootstrap_bytes: u64,
    pub zip_bytes: u64,
    pub runs: Vec<ColdStart>,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

impl FunctionReport {
    pub fn init(&self) -> Duration {
        median(self.runs.iter().map(|r| r.init).collect())
    }
    pub fn first_invocation(&self) -> Duration {
        median(self.runs.iter().map(|r| r.first_invocation).collect())
    }
    pub fn peak_rss(&self) -> u64 {
        self.runs.iter().map(|r| r.peak_rss).max().unwrap_or(0)
    }
}

/// Measures every function in `dir` (cargo lambda's `target/lambda`), `rounds`
/// cold starts each, interleaved so a busy moment hits every function alike.
pub async fn run(dir: &Path, rounds: u32) -> anyhow::Result<Vec<FunctionReport>> {
    let functions = functions();
    let mut reports: Vec<FunctionReport> = Vec::new();
    for (name, _) in &functions {
        let bootstrap: PathBuf = dir.join(name).join("bootstrap");
        anyhow::ensure!(
            bootstrap.is_file(),
            "{} is missing: build with `cargo lambda build --profile lambda -p switchyard-consumers -p switchyard-producer`",
            bootstrap.display()
        );
        reports.push(FunctionReport {
            name: (*name).to_owned(),
            bootstrap_bytes: std::fs::metadata(&bootstrap)?.len(),
            zip_bytes: zip_bytes(&bootstrap)?,
            runs: Vec::new(),
        });
    }
    for _ in 0..rounds {
        for ((name, event), report) in functions.iter().zip(&mut reports) {
            let run = cold_start(
                &dir.join(name).join("bootstrap"),
                event,
                Duration::from_secs(30),
            )
            .await?;
            anyhow::ensure!(run.ok, "{name} answered with an error: {}", run.answer);
            report.runs.push(run);
        }
    }
    Ok(reports)
}
