#!/usr/bin/env bash
# The whole images benchmark: install sharp (scratch folder), build, generate
# inputs, run both sides interleaved. Ends with the `images-bench ...` line.
set -euo pipefail
cd "$(dirname "$0")/../.."
export SHARP_DIR="${SHARP_DIR:-$(scripts/bench-images/install-sharp.sh | tail -n1)}"
cargo build --release --quiet --bin switchyard
exec target/release/switchyard bench images "$@"
