//! The command line on a stopped data dir: publish (good and bad events),
//! state dump, dlq, schema and topology export.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn switchyard(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn publish_refuses_malformed_events_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The second event is bad, so the first must not be published either.
    let batch = r#"[
        {"detail-type": "OrderPlaced", "detail": {"order_id": "p-1", "customer_id": "c", "items": [], "total_cents": 5, "currency": "EUR"}},
        {"detail-type": "OrderPaid", "detail": {"order_id": "p-1", "payment_id": "x", "amount_cents": -5}}
    ]"#;
    let out = switchyard(&["publish", "--data-dir", d, "-"], Some(batch));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("event 2")
            && err.contains("amount_cents")
            && err.contains("nothing was published"),
        "{err}"
    );
    // Nothing was published, so there is no store yet, and a read command
    // says so rather than creating an empty one.
    let stats = switchyard(&["dlq", "list", "--data-dir", d], None);
    assert!(!stats.status.success());
    assert!(
        text(&stats.stderr).contains("no Switchyard store"),
        "{}",
        text(&stats.stderr)
    );

    let good = r#"{"detail-type": "OrderPlaced", "detail": {"order_id": "p-1", "customer_id": "c", "items": [], "total_cents": 5, "currency": "EUR"}}"#;
    let out = switchyard(&["publish", "--data-dir", d], Some(good));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("published OrderPlaced "));
    let stats = switchyard(&["dlq", "list", "--data-dir", d], None);
    assert!(stats.status.success(), "{}", text(&stats.stderr));

    for (bad, needle) in [
        ("{not json", "not JSON"),
        (r#"{"detail-type":"Nope","detail":{}}"#, "Nope"),
        ("", "no event"),
    ] {
        let out = switchyard(&["publish", "--data-dir", d], Some(bad));
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(
            text(&out.stderr).contains(needle),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn schema_and_topology_export() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard(
        &["schema", "export", "--out", dir.path().to_str().unwrap()],
        None,
    );
    assert!(out.status.success());
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("OrderPlaced.schema.json")).unwrap())
            .unwrap();
    assert!(schema["properties"]["order_id"].is_object());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 8);

    let out = switchyard(&["topology", "export"], None);
    let topology: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(topology["consumers"][0]["name"], "order-processor");
}

#[test]
fn dlq_commands_name_the_valid_queues() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchyard(
        &[
            "dlq",
            "show",
            "orders",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("order-processor-dlq"),
        "{}",
        text(&out.stderr)
    );
}

/// Every file of a data dir, with its bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

/// The paths whose bytes differ between two listings, or that only one has.
fn changed(
    a: &[(std::path::PathBuf, Vec<u8>)],
    b: &[(std::path::PathBuf, Vec<u8>)],
) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = a.iter().chain(b).map(|(p, _)| p.clone()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| {
            a.iter().find(|(q, _)| q == p).map(|x| &x.1)
                != b.iter().find(|(q, _)| q == p).map(|x| &x.1)
        })
        .collect()
}

#[test]
fn read_commands_refuse_a_damaged_journal_and_change_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for i in 0..5 {
        let event = format!(
            r#"{{"detail-type": "OrderPlaced", "detail": {{"order_id": "j-{i}", "customer_id": "c", "items": [], "total_cents": 5, "currency": "EUR"}}}}"#
        );
        let out = switchyard(&["publish", "--data-dir", d], Some(&event));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let dump = switchyard(&["state", "dump", "--data-dir", d], None);
    assert!(dump.status.success(), "{}", text(&dump.stderr));
    // A read command on an idle data dir changes nothing.
    let before = files(dir.path());
    assert!(switchyard(&["dlq", "list", "--data-dir", d], None)
        .status
        .success());
    assert_eq!(
        changed(&before, &files(dir.path())),
        Vec::<std::path::PathBuf>::new(),
        "dlq list"
    );
    let again = switchyard(&["state", "dump", "--data-dir", d], None);
    assert_eq!(text(&again.stdout), text(&dump.stdout));
    assert_eq!(
        changed(&before, &files(dir.path())),
        Vec::<std::path::PathBuf>::new(),
        "state dump"
    );

    // The repro: a frame's length damaged in the middle of the journal.
    let journal = dir.path().join("switchyard.db.journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let frame_at = 16; // after the file header: the first frame
    let len = u32::from_le_bytes(bytes[frame_at..frame_at + 4].try_into().unwrap()) as usize;
    let second = frame_at + 12 + len;
    assert!(
        second + 12 < bytes.len(),
        "the journal holds more than one frame"
    );
    bytes[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&journal, &bytes).unwrap();
    let before = files(dir.path());
    for args in [
        &["state", "dump", "--data-dir", d][..],
        &["dlq", "list", "--data-dir", d],
    ] {
        let out = switchyard(args, None);
        assert!(!out.status.success(), "{args:?} read a damaged journal");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("at byte {second}")),
            "{args:?}: {err}"
        );
    }
    // The owner refuses it too, and nothing was folded or cut off.
    let event = r#"{"detail-type": "OrderPlaced", "detail": {"order_id": "x", "customer_id": "c", "items": [], "total_cents": 5, "currency": "EUR"}}"#;
    let out = switchyard(&["publish", "--data-dir", d], Some(event));
    assert!(!out.status.success(), "published into a damaged data dir");
    assert_eq!(
        changed(&before, &files(dir.path())),
        Vec::<std::path::PathBuf>::new(),
        "refused open"
    );

    // A mistyped data dir is an error, and is not created.
    let typo = dir.path().join("typo");
    let out = switchyard(
        &["state", "dump", "--data-dir", typo.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no Switchyard store"),
        "{}",
        text(&out.stderr)
    );
    assert!(!typo.exists());
}

/// `switchyard up 2>log.txt`: the log file gets plain text, no colour codes
/// (tracing colours its levels and fields on a terminal only).
#[test]
fn up_logs_to_a_file_without_escape_sequences() {
    use std::io::{BufRead, BufReader, Read};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("log.txt");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("SWITCHYARD_LOG", "debug")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let child = Kill(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = switchyard::cli::up::announced_address(&line)
        .unwrap_or_else(|| panic!("no API address in {line:?}"))
        .to_owned();

    // One order, so the consumers log their spans and fields too.
    let body = r#"{"order_id":"o-ansi","customer_id":"c-1","items":[{"sku":"mug","quantity":1,"unit_price_cents":100}],"currency":"EUR"}"#;
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /orders HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    // Wait (with a deadline) until the order processor has logged the message.
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = loop {
        let written = std::fs::read(&log_path).unwrap();
        if text(&written).contains("handled") {
            break written;
        }
        assert!(
            Instant::now() < deadline,
            "no `handled` line within 30 s:\n{}",
            text(&written)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(child);
    let written = text(&written);
    assert!(written.contains("DEBUG"), "{written}");
    assert!(written.contains("correlation_id"), "{written}");
    assert!(
        !written.contains('\x1b'),
        "escape sequences in the log file:\n{written:?}"
    );
}
