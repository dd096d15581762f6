#!/usr/bin/env bash
# HTTP load test of the read-through path, with nginx's proxy_cache measured by
# the same script in the same run:
#
#   1. cache-hit throughput and p50/p99 at 64 connections (wrk), droid and nginx;
#   2. cache-hit p99 at a fixed rate of half droid's maximum (oha -q);
#   3. what a miss adds over calling a 5 ms backing store directly (wrk);
#   4. resident memory with a 1 GiB found cache filled (4 KiB records), against the bound;
#   5. cache-hit throughput with service authentication on (a bearer token on
#      every request) against off, alternating rounds;
#   6. cache-hit throughput and p50/p99 of a sidecar (`droid sidecar` following
#      the droid) against the droid itself, alternating rounds.
#
#   bench/load.sh               # DURATION=10 seconds per round, ROUNDS=3 by default
#   ONLY=hits bench/load.sh     # step 1 alone (hit throughput against nginx)
#   ONLY=auth bench/load.sh     # step 5 alone
#   ONLY=sidecar bench/load.sh  # step 6 alone
#
# The servers (droid, nginx with one worker, the sample stores) are pinned to CPU
# 0 and the load generators to CPU 1, so each side has one core to itself and
# droid and nginx compete on equal terms. Hit throughput alternates droid and
# nginx rounds and reports medians, because a shared virtual machine's speed
# drifts from minute to minute. Everything listens on loopback only and is
# stopped by PID at the end. Installs wrk and nginx with apt-get and oha with
# cargo when they are missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
SERVER_CPU=0
LOAD_CPU=1
on_load() { taskset -c $LOAD_CPU "$@"; }
KEYS=10000
BIG_KEYS=300000

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx
fi
OHA="$root/target/tools/bin/oha"
[ -x "$OHA" ] || cargo install --locked oha --root "$root/target/tools"

scripts/setup.sh >/dev/null
cargo build --locked --release -p droid-host -p sample-provider
cargo build --locked --profile plugin --target wasm32-wasip2 -p http-json-adapter

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

wait_for() {
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers at $1" >&2
    exit 1
}

# Backing stores: fast, 5 ms, and one with 64 KiB records for the memory test.
taskset -c $SERVER_CPU target/release/sample-provider --listen 127.0.0.1:19090 --records $KEYS >/dev/null &
pids+=($!)
taskset -c $SERVER_CPU target/release/sample-provider --listen 127.0.0.1:19091 --records $KEYS --latency-ms 5 >/dev/null &
pids+=($!)
taskset -c $SERVER_CPU target/release/sample-provider --listen 127.0.0.1:19092 --records $BIG_KEYS --pad-bytes 4096 >/dev/null &
pids+=($!)
for port in 19090 19091 19092; do wait_for "http://127.0.0.1:$port/healthz"; done

mkdir -p "$work/plugins"
cp target/wasm32-wasip2/plugin/http_json_adapter.wasm "$work/plugins/"
cat > "$work/droid.toml" <<TOML
[server]
listen = "127.0.0.1:18080"

[plugins]
dir = "plugins"
cache_dir = "cache"

[runtime]
# Above the record types' max_in_flight (576 together), as the pool rule asks.
max_instances = 640

[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:19090/sites"
max_in_flight = 256
cache = { found = { capacity_bytes = 536870912, ttl_ms = 3600000 } }

[record_types.miss]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:19091/sites"
max_in_flight = 256
cache = { found = { ttl_ms = 1 } }

[record_types.big]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:19092/sites"
max_in_flight = 64
cache = { found = { capacity_bytes = 1073741824, ttl_ms = 3600000 } }
TOML
DROID_LOG=warn taskset -c $SERVER_CPU target/release/droid serve --config "$work/droid.toml" --insecure-no-auth &
droid_pid=$!
pids+=($droid_pid)
wait_for http://127.0.0.1:18080/healthz

# The same droid with authentication on, for step 5: one consumer's key, and a
# token it reuses for reads (as consumers do).
target/release/droid keygen --issuer shop --key-id bench --repository "$work/keys" --private-key "$work/shop.key" >/dev/null
sed -e 's/127.0.0.1:18080/127.0.0.1:18082/' -e 's/^cache_dir = "cache"/cache_dir = "cache-auth"/' \
    -e 's/^mode = "read-through"/mode = "read-through"\nreaders = ["shop"]/' "$work/droid.toml" > "$work/droid-auth.toml"
printf '\n[auth]\naudience = "droid"\nkey_repositories = ["keys"]\n\n[store]\npath = "store-auth.redb"\n' >> "$work/droid-auth.toml"
DROID_LOG=warn taskset -c $SERVER_CPU target/release/droid serve --config "$work/droid-auth.toml" &
pids+=($!)
wait_for http://127.0.0.1:18082/healthz
TOKEN=$(target/release/droid token --key "$work/shop.key" --audience droid --lifetime-s 3600)

# A sidecar following the droid without authentication, for step 6.
cat > "$work/sidecar.toml" <<TOML
listen = "127.0.0.1:18083"
[upstream]
url = "http://127.0.0.1:18080"
[record_types.site]
ttl_ms = 3600000
capacity_bytes = 536870912
TOML
DROID_LOG=warn taskset -c $SERVER_CPU target/release/droid sidecar --config "$work/sidecar.toml" &
pids+=($!)
wait_for http://127.0.0.1:18083/healthz

mkdir -p "$work/nginx/logs" "$work/nginx/cache"
cat > "$work/nginx/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=sites:64m max_size=2g inactive=1h use_temp_path=off;
    upstream provider { server 127.0.0.1:19090; keepalive 64; }
    server {
        listen 127.0.0.1:18081;
        location /v1/entity/site/ {
            proxy_pass http://provider/sites/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache sites;
            proxy_cache_valid 200 1h;
            proxy_cache_valid 404 30s;
            proxy_cache_lock on;
        }
    }
}
NGINX
taskset -c $SERVER_CPU nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
wait_for http://127.0.0.1:18081/v1/entity/site/site-00001

# Random keys from 1..COUNT under PREFIX (or in order, for ORDER=seq).
cat > "$work/keys.lua" <<'LUA'
-- Each wrk thread has its own Lua state: give each its own id (and random
-- seed), and let ordered runs stride over the keys by the thread count.
local prefix = os.getenv("PREFIX")
local count = tonumber(os.getenv("COUNT"))
local stride = tonumber(os.getenv("THREADS"))
local width = #tostring(count) < 4 and 4 or #tostring(count)
local ordered = os.getenv("ORDER") == "seq"
local next_thread = 0
local n = 0
function setup(thread)
    thread:set("id", next_thread)
    next_thread = next_thread + 1
end
function init()
    n = id
    math.randomseed(os.time() * 1000 + id * 7919)
end
function request()
    local k
    if ordered then
        k = n % count + 1
        n = n + stride
    else
        k = math.random(1, count)
    end
    return wrk.format("GET", string.format("%s/site-%0" .. width .. "d", prefix, k))
end
LUA
# run_wrk CONNECTIONS SECONDS URL_PREFIX COUNT [seq] -> wrk's output. The URL's
# origin is where wrk connects; its path is the prefix the keys go under.
run_wrk() {
    local origin path
    origin=$(echo "$3" | sed -E 's#^(https?://[^/]+).*#\1#')
    path=${3#"$origin"}
    PREFIX="$path" COUNT="$4" ORDER="${5:-rand}" THREADS=1 on_load wrk -t1 -c"$1" -d"$2"s --latency \
        ${AUTH:+-H "Authorization: Bearer $AUTH"} -s "$work/keys.lua" "$origin"
}
# microseconds of a wrk latency such as 412.00us, 1.23ms or 2.00s
to_us() {
    awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); print v } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 } else { sub(/s$/,"",v); print v*1000000 } }'
}
rps() { grep "Requests/sec" | awk '{printf "%d", $2}'; }
pct() { grep -E "^ +$1% " | awk '{print $2}' | to_us; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
# auth_step: cache hits on the droid without and with authentication, alternating.
auth_step() {
    echo "==> warming $KEYS keys in both droids"
    run_wrk 16 10 http://127.0.0.1:18080/v1/entity/site $KEYS seq >/dev/null
    AUTH=$TOKEN run_wrk 16 10 http://127.0.0.1:18082/v1/entity/site $KEYS seq >/dev/null
    echo "==> cache hits without and with a token, 64 connections, $ROUNDS rounds of ${DURATION}s"
    local off=() on=() out
    for _ in $(seq 1 "$ROUNDS"); do
        out=$(run_wrk 64 "$DURATION" http://127.0.0.1:18080/v1/entity/site $KEYS)
        off+=("$(echo "$out" | rps)")
        out=$(AUTH=$TOKEN run_wrk 64 "$DURATION" http://127.0.0.1:18082/v1/entity/site $KEYS)
        echo "$out" | grep -q "Non-2xx" && echo "    (the authenticated droid refused some requests)"
        on+=("$(echo "$out" | rps)")
    done
    auth_off=$(printf '%s\n' "${off[@]}" | median); auth_on=$(printf '%s\n' "${on[@]}" | median)
    printf 'auth, cache hits:      off %7d req/s  on %7d req/s  (rounds off: %s; on: %s)\n' "$auth_off" "$auth_on" "${off[*]}" "${on[*]}"
    awk -v a="$auth_off" -v b="$auth_on" 'BEGIN {printf "                       authentication costs %.1f%% of hit throughput\n", 100 * (a - b) / a}'
}
# sidecar_step: cache hits on the sidecar and on the droid it follows, alternating.
sidecar_step() {
    echo "==> warming $KEYS keys in the droid and the sidecar"
    run_wrk 16 10 http://127.0.0.1:18080/v1/entity/site $KEYS seq >/dev/null
    run_wrk 16 10 http://127.0.0.1:18083/v1/entity/site $KEYS seq >/dev/null
    echo "==> cache hits on the droid and on its sidecar, 64 connections, $ROUNDS rounds of ${DURATION}s"
    local d=() d50=() d99=() s=() s50=() s99=() out
    for _ in $(seq 1 "$ROUNDS"); do
        out=$(run_wrk 64 "$DURATION" http://127.0.0.1:18080/v1/entity/site $KEYS)
        d+=("$(echo "$out" | rps)"); d50+=("$(echo "$out" | pct 50)"); d99+=("$(echo "$out" | pct 99)")
        out=$(run_wrk 64 "$DURATION" http://127.0.0.1:18083/v1/entity/site $KEYS)
        echo "$out" | grep -q "Non-2xx" && echo "    (the sidecar answered some requests with non-2xx statuses)"
        s+=("$(echo "$out" | rps)"); s50+=("$(echo "$out" | pct 50)"); s99+=("$(echo "$out" | pct 99)")
    done
    local dr sr
    dr=$(printf '%s\n' "${d[@]}" | median); sr=$(printf '%s\n' "${s[@]}" | median)
    printf 'sidecar, cache hits:   droid   %7d req/s  p50 %6.0f us  p99 %6.0f us  (rounds: %s)\n' "$dr" \
        "$(printf '%s\n' "${d50[@]}" | median)" "$(printf '%s\n' "${d99[@]}" | median)" "${d[*]}"
    printf '                       sidecar %7d req/s  p50 %6.0f us  p99 %6.0f us  (rounds: %s)\n' "$sr" \
        "$(printf '%s\n' "${s50[@]}" | median)" "$(printf '%s\n' "${s99[@]}" | median)" "${s[*]}"
    awk -v a="$sr" -v b="$dr" 'BEGIN {printf "                       sidecar/droid throughput: %.2fx\n", a / b}'
    # One consumer calling at a time: what a single read costs, unqueued.
    out=$(run_wrk 1 "$DURATION" http://127.0.0.1:18083/v1/entity/site $KEYS)
    printf '                       sidecar, 1 connection: %d req/s  p50 %.0f us  p99 %.0f us\n' \
        "$(echo "$out" | rps)" "$(echo "$out" | pct 50)" "$(echo "$out" | pct 99)"
    curl -fsS http://127.0.0.1:18083/healthz | sed 's/^/                       sidecar health: /'
    echo
}
if [ "${ONLY:-}" = "auth" ]; then
    auth_step
    exit 0
fi
if [ "${ONLY:-}" = "sidecar" ]; then
    sidecar_step
    exit 0
fi

echo "==> warming $KEYS keys in droid and nginx"
run_wrk 16 10 http://127.0.0.1:18080/v1/entity/site $KEYS seq >/dev/null
run_wrk 16 10 http://127.0.0.1:18081/v1/entity/site $KEYS seq >/dev/null

echo "==> cache hits, 64 connections, $ROUNDS rounds of ${DURATION}s, droid and nginx alternating"
d_rps=(); d_p50=(); d_p99=(); n_rps=(); n_p50=(); n_p99=(); non2xx=0
for _ in $(seq 1 "$ROUNDS"); do
    out=$(run_wrk 64 "$DURATION" http://127.0.0.1:18080/v1/entity/site $KEYS)
    d_rps+=("$(echo "$out" | rps)"); d_p50+=("$(echo "$out" | pct 50)"); d_p99+=("$(echo "$out" | pct 99)")
    non2xx=$((non2xx + $(echo "$out" | grep -c "Non-2xx" || true)))
    out=$(run_wrk 64 "$DURATION" http://127.0.0.1:18081/v1/entity/site $KEYS)
    n_rps+=("$(echo "$out" | rps)"); n_p50+=("$(echo "$out" | pct 50)"); n_p99+=("$(echo "$out" | pct 99)")
done
droid_rps=$(printf '%s\n' "${d_rps[@]}" | median); nginx_rps=$(printf '%s\n' "${n_rps[@]}" | median)
droid_p50=$(printf '%s\n' "${d_p50[@]}" | median); droid_p99=$(printf '%s\n' "${d_p99[@]}" | median)
nginx_p50=$(printf '%s\n' "${n_p50[@]}" | median); nginx_p99=$(printf '%s\n' "${n_p99[@]}" | median)
print_hits() {
    printf 'cache hits, 64 conns:  droid %7d req/s  p50 %6.0f us  p99 %6.0f us  (rounds: %s)\n' "$droid_rps" "$droid_p50" "$droid_p99" "${d_rps[*]}"
    printf '                       nginx %7d req/s  p50 %6.0f us  p99 %6.0f us  (rounds: %s)\n' "$nginx_rps" "$nginx_p50" "$nginx_p99" "${n_rps[*]}"
    awk -v d="$droid_rps" -v n="$nginx_rps" 'BEGIN {printf "                       droid/nginx throughput: %.2fx (medians; one server core each)\n", d / n}'
    [ "$non2xx" = "0" ] || echo "                       (droid answered some requests with non-2xx statuses)"
}
if [ "${ONLY:-}" = "hits" ]; then
    echo
    echo "== results (servers on CPU $SERVER_CPU, load generators on CPU $LOAD_CPU)"
    print_hits
    exit 0
fi

half=$((droid_rps / 2))
quarter=$((droid_rps / 4))
echo "==> fixed rates: $half and $quarter req/s (half and a quarter of droid's maximum), ${DURATION}s each"
# oha_at RATE URL_PREFIX -> "p50_us p99_us", latency measured from each request's
# scheduled start (so a stalled server cannot hide queueing).
oha_at() {
    on_load "$OHA" --no-tui -z "${DURATION}s" -c 64 -q "$1" --latency-correction \
        --rand-regex-url "$2/site-0[0-9]{4}" 2>&1 |
        awk 'function us(v, unit) { return unit ~ /^s/ ? v * 1e6 : unit == "ms" ? v * 1e3 : v }
             /^ +50\.00% in/ {p50 = us($3, $4)} /^ +99\.00% in/ {p99 = us($3, $4)}
             END {printf "%.0f %.0f", p50, p99}'
}
read -r droid_half_p50 droid_half_p99 <<<"$(oha_at "$half" http://127.0.0.1:18080/v1/entity/site)"
read -r nginx_half_p50 nginx_half_p99 <<<"$(oha_at "$half" http://127.0.0.1:18081/v1/entity/site)"
read -r droid_q_p50 droid_q_p99 <<<"$(oha_at "$quarter" http://127.0.0.1:18080/v1/entity/site)"
read -r nginx_q_p50 nginx_q_p99 <<<"$(oha_at "$quarter" http://127.0.0.1:18081/v1/entity/site)"

echo "==> misses against a 5 ms store, 8 connections, ${DURATION}s each"
direct_out=$(run_wrk 8 "$DURATION" http://127.0.0.1:19091/sites $KEYS)
miss_out=$(run_wrk 8 "$DURATION" http://127.0.0.1:18080/v1/entity/miss $KEYS)
direct_p50=$(echo "$direct_out" | pct 50); direct_p99=$(echo "$direct_out" | pct 99)
miss_p50=$(echo "$miss_out" | pct 50); miss_p99=$(echo "$miss_out" | pct 99)
metric() { curl -fsS http://127.0.0.1:18080/metrics | grep -F "$1" | awk '{print $2}' | head -n1; }
misses=$(metric 'droid_cache_requests_total{record_type="miss",result="miss"}')
all_reads=$(curl -fsS http://127.0.0.1:18080/metrics | grep -F 'droid_cache_requests_total{record_type="miss"' | awk '{s+=$2} END {print s}')

echo "==> filling a 1 GiB found cache with 4 KiB records (90 s)"
rss() { grep VmRSS "/proc/$droid_pid/status" | awk '{print $2 * 1024}'; }
rss_before=$(rss)
run_wrk 16 90 http://127.0.0.1:18080/v1/entity/big $BIG_KEYS seq >/dev/null
cached_bytes=$(metric 'droid_cache_bytes{record_type="big",cache="found"}')
cached_entries=$(metric 'droid_cache_entries{record_type="big",cache="found"}')
rss_after=$(rss)

mib() { awk -v b="$1" 'BEGIN {printf "%.0f MiB", b / 1048576}'; }
echo
echo "== results (servers on CPU $SERVER_CPU, load generators on CPU $LOAD_CPU)"
print_hits
printf 'fixed %6d req/s:    droid p50 %6d us  p99 %6d us   nginx p50 %6d us  p99 %6d us\n' \
    "$half" "$droid_half_p50" "$droid_half_p99" "$nginx_half_p50" "$nginx_half_p99"
printf 'fixed %6d req/s:    droid p50 %6d us  p99 %6d us   nginx p50 %6d us  p99 %6d us\n' \
    "$quarter" "$droid_q_p50" "$droid_q_p99" "$nginx_q_p50" "$nginx_q_p99"
printf 'miss, 5 ms store:      direct p50 %6.0f us  p99 %6.0f us\n' "$direct_p50" "$direct_p99"
printf '                       droid  p50 %6.0f us  p99 %6.0f us\n' "$miss_p50" "$miss_p99"
awk -v a="$miss_p50" -v b="$direct_p50" -v c="$miss_p99" -v d="$direct_p99" \
    'BEGIN {printf "                       added  p50 %6.0f us  p99 %6.0f us\n", a - b, c - d}'
awk -v m="$misses" -v t="$all_reads" 'BEGIN {printf "                       (%.1f%% of those reads were misses)\n", 100 * m / t}'
echo "memory, 1 GiB cache of 4 KiB records: weighed $(mib "$cached_bytes") in $cached_entries entries; RSS $(mib "$rss_before") before, $(mib "$rss_after") after"
auth_step | tail -n 2
sidecar_step | tail -n 5
