//! Compiles the small libjpeg-API decoder in csrc/ against the libjpeg-turbo
//! that turbojpeg-sys builds (its headers come through `links` metadata).
fn main() {
    println!("cargo:rerun-if-changed=csrc/keep_decode.c");
    let include = std::env::var("DEP_TURBOJPEG_INCLUDE")
        .expect("turbojpeg-sys exports its include directory (DEP_TURBOJPEG_INCLUDE)");
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
