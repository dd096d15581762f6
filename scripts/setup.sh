#!/usr/bin/env bash
# Installs what building droid needs on a fresh machine that has rustup: the
# toolchain pinned in rust-toolchain.toml, with rustfmt, clippy and the
# wasm32-wasip2 target plugins are built for. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if [ -z "$channel" ]; then
    echo "setup: no channel in rust-toolchain.toml" >&2
    exit 1
fi
rustup toolchain install "$channel" --profile minimal --component rustfmt --component clippy
rustup target add wasm32-wasip2 --toolchain "$channel"
