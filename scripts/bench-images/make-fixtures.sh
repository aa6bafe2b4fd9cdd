#!/usr/bin/env bash
# Writes the benchmark inputs (fixed seed, byte-identical on every run):
# photo-12mp.jpg (4000x3000, q90), photo-2mp.jpg (1920x1080, q90), photo-2mp.png.
#   usage: scripts/bench-images/make-fixtures.sh [DIR]   (default target/bench-images)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release --quiet --bin switchyard -- bench images --generate-only --dir "${1:-target/bench-images}"
