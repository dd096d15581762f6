#!/usr/bin/env bash
# Sets up the toolchain and runs every test of the workspace: unit tests, the
# SDK's doc examples, the plugins' native tests, and the end-to-end tests (which
# build every plugin for wasm32-wasip2 from source first).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The test plugins are built for wasm32-wasip2 by a nested cargo in a build
# script; build them first, on their own, before the rest compiles around them.
cargo build --locked -p droid-test-artifacts
cargo test --workspace --locked "$@"
