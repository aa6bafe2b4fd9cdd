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
    // The summary is compact: the count of thumbnails and where they are
    // (there they are), not one line per file.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("thumbnails written: "))
        .unwrap_or_else(|| panic!("no thumbnails line in:\n{stdout}"));
    let (count, folder) = line
        .trim_start_matches("thumbnails written: ")
        .split_once(" files under ")
        .unwrap();
    let count: usize = count.parse().unwrap();
    assert!(count >= 10, "{stdout}");
    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            // Each blob has a hidden sidecar with its content type.
            .filter(|p| {
                !p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".sy-meta.")
            })
            .map(|p| if p.is_dir() { files(&p) } else { 1 })
            .sum()
    }
    assert_eq!(files(std::path::Path::new(folder)), count, "{stdout}");
    assert!(
        !stdout.contains(".jpg"),
        "one line per file again:\n{stdout}"
    );
}
