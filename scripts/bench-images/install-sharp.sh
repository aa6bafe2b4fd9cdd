#!/usr/bin/env bash
# Installs npm `sharp` (with its prebuilt libvips) into a scratch folder outside
# the repository, for `switchyard bench images`. Idempotent.
#   SHARP_DIR  where to install (default: ${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/sharp)
#   SHARP_VERSION  npm version spec (default: 0.34)
set -euo pipefail
dir="${SHARP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/sharp}"
version="${SHARP_VERSION:-0.34}"
mkdir -p "$dir"
if [ ! -f "$dir/package.json" ]; then
  printf '{ "name": "switchyard-sharp-bench", "private": true }\n' >"$dir/package.json"
fi
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "sharp@$version" >&2
node -e "const s=require(process.argv[1]); console.log('sharp', s.versions.sharp, 'libvips', s.versions.vips)" "$dir/node_modules/sharp" >&2
echo "$dir"
