//! The README's first command, scaled down: the demo accounts for every event.

use std::process::Command;

#[test]
fn the_demo_accounts_for_every_order_and_image() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["demo", "--orders", "30", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("running the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("every order and image accounted for"),
        "{stdout}"
    );
    for code in [
        "corrupt",
        "too_large",
        "too_many_pixels",
        "unsupported_type",
        "empty",
    ] {
        assert!(
            stdout.contains(&format!("REJECTED ({code})")),
            "no {code} rejection in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("cannot ship") && stdout.contains("cannot be cancelled"),
        "DLQ reasons missing:\n{stdout}"
    );
    // The thumbnails it lists exist on disk.
    let thumbs: Vec<&str> = stdout
        .split_whitespace()
        .filter(|w| w.ends_with(".jpg"))
        .collect();
    assert!(thumbs.len() >= 10, "{stdout}");
    for path in thumbs {
        assert!(std::path::Path::new(path).is_file(), "{path} missing");
    }
}
