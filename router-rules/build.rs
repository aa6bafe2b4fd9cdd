//! The built-in topology as JSON as well (`$OUT_DIR/topology.json`): the
//! binaries that read no topology file (the Lambda functions) then parse it
//! with serde_json, which they link anyway, and link no YAML parser.

fn main() {
    println!("cargo:rerun-if-changed=topology.yaml");
    let yaml = std::fs::read_to_string("topology.yaml").expect("router-rules/topology.yaml");
    let value: serde_json::Value =
        serde_yaml::from_str(&yaml).expect("router-rules/topology.yaml is valid YAML");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("topology.json");
    std::fs::write(out, value.to_string()).expect("writable OUT_DIR");
}
