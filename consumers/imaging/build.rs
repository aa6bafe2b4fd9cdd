//! Compiles the small libjpeg-API decoder in csrc/ against the libjpeg-turbo
//! that turbojpeg-sys builds (its headers come through `links` metadata).
//! csrc/keep_decode.c mirrors a private libjpeg-turbo struct and refuses to
//! compile (`#error`) against a libjpeg-turbo version it was not checked for.
fn main() {
    println!("cargo:rerun-if-changed=csrc/keep_decode.c");
    let include = std::env::var("DEP_TURBOJPEG_INCLUDE")
        .expect("turbojpeg-sys exports its include directory (DEP_TURBOJPEG_INCLUDE)");
    // For the test that the version pin holds (tests compile the file again
    // against altered copies of these headers).
    println!("cargo:rustc-env=SWITCHYARD_TURBOJPEG_INCLUDE={include}");
    let mut build = cc::Build::new();
    for dir in include.split(',') {
        build.include(dir);
    }
    build
        .file("csrc/keep_decode.c")
        .opt_level(3)
        .warnings(true)
        .compile("switchyard_keep_decode");
}
