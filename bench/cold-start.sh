#!/usr/bin/env bash
# Cold start: the time from `droid serve` to the first answered read of a record,
# with the example plugins, both without and with the compiled-artifact cache.
#
#   bench/cold-start.sh [RUNS]      # default 5 runs of each
#
# Builds release binaries and the plugins, starts the sample provider on
# 127.0.0.1:19090 and droid on 127.0.0.1:18080 (loopback only), and prints the
# median and range of each case in milliseconds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
runs="${1:-5}"

scripts/setup.sh >/dev/null
cargo build --locked --release -p droid-host -p sample-provider
cargo build --locked --profile plugin --target wasm32-wasip2 -p http-json-adapter -p ticket-transformer

work="$(mktemp -d)"
provider_pid=""
droid_pid=""
cleanup() {
    [ -n "$droid_pid" ] && kill "$droid_pid" 2>/dev/null || true
    [ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/plugins"
cp target/wasm32-wasip2/plugin/http_json_adapter.wasm target/wasm32-wasip2/plugin/ticket_transformer.wasm "$work/plugins/"
sed -e 's/127.0.0.1:8080/127.0.0.1:18080/' -e 's/127.0.0.1:9090/127.0.0.1:19090/' \
    examples/quickstart/droid.toml > "$work/droid.toml"

target/release/sample-provider --listen 127.0.0.1:19090 >/dev/null &
provider_pid=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:19090/healthz 2>/dev/null && break; sleep 0.05; done

# One run: start droid, poll for the first 200 on a record, print elapsed ms.
one_run() {
    local start end
    start=$(date +%s%N)
    DROID_LOG=warn target/release/droid serve --config "$work/droid.toml" &
    droid_pid=$!
    until curl -fsS -o /dev/null http://127.0.0.1:18080/v1/entity/site/site-0001 2>/dev/null; do
        if ! kill -0 "$droid_pid" 2>/dev/null; then echo "droid exited" >&2; exit 1; fi
        sleep 0.002
    done
    end=$(date +%s%N)
    kill "$droid_pid"
    wait "$droid_pid" 2>/dev/null || true
    droid_pid=""
    echo $(( (end - start) / 1000000 ))
}

summary() {
    local label=$1; shift
    local sorted
    sorted=$(printf '%s\n' "$@" | sort -n)
    local n=$# median min max
    median=$(echo "$sorted" | sed -n "$(( (n + 1) / 2 ))p")
    min=$(echo "$sorted" | head -n1)
    max=$(echo "$sorted" | tail -n1)
    printf '%-32s median %5d ms   (min %d, max %d, %d runs)\n' "$label" "$median" "$min" "$max" "$n"
}

cold=()
for _ in $(seq 1 "$runs"); do
    rm -rf "$work/.droid"
    cold+=("$(one_run)")
done
warm=()
for _ in $(seq 1 "$runs"); do
    warm+=("$(one_run)")
done
echo
echo "cold start: droid serve -> first 200 on /v1/entity/site/site-0001 (2 plugins)"
summary "without artifact cache" "${cold[@]}"
summary "with artifact cache" "${warm[@]}"
