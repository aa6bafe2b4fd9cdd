//! The `switchyard replay` command line: a report, `--expect` with a
//! readable diff, logs made from a DLQ, from exports and by `up --record`,
//! and `switchyard bench e2e`'s summary line.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::replay::EventLog;
use switchyard::state::StateSnapshot;

fn switchyard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .expect("running switchyard")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp paths")
}

#[test]
fn replay_reports_compares_with_expect_and_logs_its_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("poison.jsonl");
    let out = switchyard(&[
        "replay",
        "generate",
        "poison",
        "--orders",
        "30",
        "--out",
        path(&log),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let data = dir.path().join("data");
    let json = dir.path().join("report.json");
    let out = switchyard(&[
        "replay",
        path(&log),
        "--report-json",
        path(&json),
        "--data-dir",
        path(&data),
        "--faults",
        "duplicate=0.2,reorder=8",
        "--seed",
        "3",
        "--quiet",
    ]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    for expected in [
        "events in:",
        "published:",
        "faults:              duplicate=0.2,reorder=8 (seed 3)",
        "handler invocations:",
        "retries:",
        "dlq entries:         10 (image-processor-dlq 2, order-processor-dlq 8)",
        "state digest:        sha256:",
        "every event applied, or dead-lettered with a reason",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing from\n{report}"
        );
    }

    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(saved["dead_letters"]["order-processor-dlq"], 8, "{saved}");
    assert!(saved["state_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(saved["refused"].as_array().unwrap().len(), 4, "{saved}");

    // A saved state matches a fresh replay of the same log; an edited one shows what differs.
    // (A log without poison: poison waits out its retries, which takes seconds.)
    let orders = dir.path().join("orders.jsonl");
    let out = switchyard(&[
        "replay",
        "generate",
        "orders",
        "--orders",
        "20",
        "--out",
        path(&orders),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let first = dir.path().join("first");
    let out = switchyard(&[
        "replay",
        path(&orders),
        "--data-dir",
        path(&first),
        "--rate",
        "2000",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("rate 2000/s"), "{}", text(&out));
    let dump = switchyard(&["state", "dump", "--data-dir", path(&first)]);
    assert!(dump.status.success(), "{}", text(&dump));
    let state = dir.path().join("state.json");
    std::fs::write(&state, &dump.stdout).unwrap();
    let again = switchyard(&["replay", path(&orders), "--expect", path(&state), "--quiet"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("expected state:      matches"));

    let mut edited: StateSnapshot = serde_json::from_slice(&dump.stdout).unwrap();
    let (id, order) = edited.orders.iter_mut().next().unwrap();
    let id = id.clone();
    order.version += 7;
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, edited.to_json()).unwrap();
    let diff = switchyard(&["replay", path(&orders), "--expect", path(&wrong), "--quiet"]);
    let shown = text(&diff);
    assert_eq!(diff.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("expected state:      DIFFERS (1 lines)"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("~ order {id}: expected")),
        "{shown}"
    );

    // A log made from the DLQ holds exactly the dead-lettered events.
    let from_dlq = dir.path().join("dlq.jsonl");
    let out = switchyard(&[
        "replay",
        "from-dlq",
        "order-processor-dlq",
        "--data-dir",
        path(&data),
        "--out",
        path(&from_dlq),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let dead = EventLog::read(&from_dlq).unwrap();
    let mut types: Vec<&str> = dead
        .events
        .iter()
        .map(|e| e.event.detail_type.as_str())
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(types, ["OrderPaid", "OrderShipped"]);
    assert!(dead.events.len() >= 8, "{}", dead.events.len());

    let bad = switchyard(&["replay", path(&log), "--faults", "crash=2"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("not a probability"), "{}", text(&bad));
    let missing = switchyard(&["replay", "/nonexistent/log.jsonl"]);
    assert!(
        text(&missing).contains("/nonexistent/log.jsonl"),
        "{}",
        text(&missing)
    );
}

#[test]
fn an_sns_export_becomes_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let envelope = json!({
        "version": "0", "id": "01941f29-7c00-7000-8000-000000000001", "detail-type": "OrderPlaced",
        "source": "switchyard.orders", "account": "000000000000", "time": "2025-01-01T09:00:00Z",
        "region": "us-east-1", "resources": [], "schema-version": 2,
        "correlation-id": "01941f29-7c00-7000-8000-000000000001",
        "detail": {"order_id": "o-1", "customer_id": "c", "items": [], "total_cents": 5, "currency": "EUR"}
    });
    let export = json!([{
        "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:000000000000:images",
        "Message": envelope.to_string(),
        "MessageAttributes": {"event_type": {"Type": "String", "Value": "OrderPlaced"}}
    }]);
    let file = dir.path().join("export.json");
    std::fs::write(&file, export.to_string()).unwrap();
    let out_log = dir.path().join("log.jsonl");
    let out = switchyard(&["replay", "import", path(&file), "--out", path(&out_log)]);
    assert!(out.status.success(), "{}", text(&out));
    let log = EventLog::read(&out_log).unwrap();
    assert_eq!(log.events.len(), 1);
    assert_eq!(log.events[0].event.detail["order_id"], "o-1");

    // Replaying it refuses the event: it was logged on a topic the topology does not publish it to.
    let out = switchyard(&["replay", path(&out_log), "--quiet"]);
    let shown = text(&out);
    assert!(
        shown.contains("logged as published to topic images, but the topology publishes OrderPlaced to bus orders"),
        "{shown}"
    );
}

struct Up(Child);

impl Up {
    /// Stops `up` as a user does (SIGTERM): it finishes its batches and
    /// commits everything, so the data dir holds the state it reached.
    /// (`kill -9` would leave the last changes to be redone on restart.)
    fn stop(mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success(), "kill -TERM failed");
        let status = self.0.wait().unwrap();
        assert!(status.success(), "up exited with {status}");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `up --record`, a few commands through the API, then a replay of the
/// recording on a fresh data dir ends in the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_of_up_replays_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let (live, record) = (dir.path().join("live"), dir.path().join("rec.jsonl"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "up",
            "--port",
            "0",
            "--data-dir",
            path(&live),
            "--record",
            path(&record),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let up = Up(child);
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("up prints its URL")
        .to_owned();
    let http = reqwest::Client::new();
    for i in 0..5 {
        let id = format!("r-{i}");
        let placed = http
            .post(format!("{base}/orders"))
            .json(&json!({"order_id": id, "customer_id": "c", "items": [{"sku": "s", "quantity": 1, "unit_price_cents": 700}], "currency": "EUR"}))
            .send()
            .await
            .unwrap();
        assert_eq!(placed.status(), 202);
        let paid = http
            .post(format!("{base}/orders/{id}/pay"))
            .json(&json!({"payment_id": format!("p{i}"), "amount_cents": 700}))
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), 202);
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        40,
        30,
        image::Rgb([200, 30, 30]),
    ))
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    let uploaded = http
        .post(format!("{base}/orders/r-0/images"))
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 202);
    // Wait (with a deadline) until the live system has done everything.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..5 {
        loop {
            let order: serde_json::Value = http
                .get(format!("{base}/orders/r-{i}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let image_done = i != 0 || order["images"][0]["status"] == "READY";
            if order["status"] == "PAID" && image_done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the live system did not settle: {order}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    up.stop();

    let log = EventLog::read(&record).unwrap();
    assert_eq!(log.events.len(), 11, "5 placed, 5 paid, 1 upload");
    assert_eq!(log.blobs.len(), 1, "the upload's original is in the log");
    let dump = switchyard(&["state", "dump", "--data-dir", path(&live)]);
    let state = dir.path().join("state.json");
    std::fs::write(&state, &dump.stdout).unwrap();
    let live_state: StateSnapshot = serde_json::from_slice(&dump.stdout).unwrap();
    assert_eq!(live_state.orders.len(), 5);
    let out = switchyard(&["replay", path(&record), "--expect", path(&state), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("expected state:      matches"),
        "{}",
        text(&out)
    );
}

#[test]
fn bench_e2e_ends_with_its_summary_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "bench",
            "e2e",
            "--events",
            "600",
            "--latency-events",
            "300",
            "--latency-rate",
            "3000",
            "--quiet",
            "--dir",
            path(dir.path()),
        ])
        .env_remove("SWITCHYARD_MOTO_ENDPOINT")
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let fields: Vec<(&str, &str)> = last
        .strip_prefix("e2e-bench ")
        .unwrap_or_else(|| panic!("last line is not the summary: {last:?}"))
        .split(' ')
        .map(|f| f.split_once('=').expect("key=value"))
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "events_per_s",
            "p50_ms",
            "p99_ms",
            "peak_rss_mb",
            "ratio_vs_moto"
        ]
    );
    for (k, v) in &fields[..4] {
        let n: f64 = v
            .parse()
            .unwrap_or_else(|_| panic!("{k}={v} is not a number"));
        assert!(n > 0.0, "{k}={v}");
    }
    assert_eq!(fields[4].1, "NA", "no moto endpoint was given");
    assert!(
        shown.contains("moto:        not measured: no moto endpoint"),
        "{shown}"
    );
    // Every run cleaned up its data dir.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
