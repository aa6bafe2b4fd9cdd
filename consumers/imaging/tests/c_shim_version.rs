//! csrc/keep_decode.c mirrors a private libjpeg-turbo struct, so it must not
//! compile against a libjpeg-turbo it was not checked for: this compiles it
//! again, with the C compiler the build used, against copies of the real
//! headers whose version number is changed.

use std::path::{Path, PathBuf};
use std::process::Command;

const INCLUDE: &str = env!("SWITCHYARD_TURBOJPEG_INCLUDE");

/// Copies the headers, replacing LIBJPEG_TURBO_VERSION_NUMBER's value.
fn headers_with_version(version: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-jpeg-headers-{}-{version}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for include in INCLUDE.split(',') {
        for entry in std::fs::read_dir(include).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "h") {
                std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let jconfig = dir.join("jconfig.h");
    let text = std::fs::read_to_string(&jconfig).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("#define LIBJPEG_TURBO_VERSION_NUMBER"))
        .expect("jconfig.h defines LIBJPEG_TURBO_VERSION_NUMBER");
    let changed = text.replace(
        line,
        &format!("#define LIBJPEG_TURBO_VERSION_NUMBER  {version}"),
    );
    std::fs::write(&jconfig, changed).unwrap();
    dir
}

fn compile(includes: &[&Path]) -> std::process::Output {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut command = Command::new(cc);
    command.arg("-fsyntax-only");
    for include in includes {
        command.arg("-I").arg(include);
    }
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("csrc/keep_decode.c"))
        .output()
        .expect("a C compiler (the build used one)")
}

#[test]
fn the_shim_compiles_only_against_the_checked_libjpeg_turbo() {
    // The control: the headers the build used compile.
    let real: Vec<&Path> = INCLUDE.split(',').map(Path::new).collect();
    let ok = compile(&real);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for other in ["3001001", "3002000", "3000004", "2001005"] {
        let dir = headers_with_version(other);
        let out = compile(&[&dir]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "compiled against {other}");
        assert!(
            stderr.contains("checked for 3.1.0 only"),
            "{other}: {stderr}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
