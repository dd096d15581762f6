#!/usr/bin/env bash
# Sets up the toolchain and runs every test of the workspace: unit tests, the
# SDK's doc examples, the plugins' native tests, and the end-to-end tests (which
# build every plugin for wasm32-wasip2 from source first, and start the
# PostgreSQL servers they need in folders of their own).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/servers.sh
cargo test --workspace --locked "$@"
