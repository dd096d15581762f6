#!/usr/bin/env bash
# The droid's cost per sidecar following its change feed: CPU and memory of
# the droid process with no follower and with FOLLOWERS real sidecars
# (`droid sidecar`, default 100) connected, under the same steady ingestion
# (RATE events/s, default 100, in batches of 10) for SECONDS (default 30) each.
#
#   bench/followers.sh
#   FOLLOWERS=100 RATE=100 SECONDS_PER_PHASE=30 bench/followers.sh
#
# droid runs on CPU 0; the sidecars and the event poster on CPU 1. CPU time is
# droid's user + system time from /proc over each phase; memory is its RSS at
# the end of each phase. Everything listens on loopback and is stopped by PID.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
FOLLOWERS="${FOLLOWERS:-100}"
RATE="${RATE:-100}"
PHASE="${SECONDS_PER_PHASE:-30}"
SERVER_CPU=0
LOAD_CPU=1

scripts/setup.sh >/dev/null
cargo build --locked --release -p droid-host
cargo build --locked --profile plugin --target wasm32-wasip2 -p ticket-transformer

work="$(mktemp -d)"
pids=()
cleanup() {
    # Followers first, so they do not log the droid going away.
    for ((i = ${#pids[@]} - 1; i > 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
    sleep 1
    [ ${#pids[@]} -gt 0 ] && kill "${pids[0]}" 2>/dev/null || true
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

mkdir -p "$work/plugins"
cp target/wasm32-wasip2/plugin/ticket_transformer.wasm "$work/plugins/"
cat > "$work/droid.toml" <<TOML
[server]
listen = "127.0.0.1:18180"

[plugins]
dir = "plugins"
cache_dir = "cache"

[record_types.ticket]
mode = "ingested"
transformer = "ticket_transformer.wasm"

[sources.tracker]
record_type = "ticket"
rate_limit = 100000
burst = 100000
TOML
DROID_LOG=warn taskset -c $SERVER_CPU target/release/droid serve --config "$work/droid.toml" --insecure-no-auth &
droid_pid=$!
pids+=($droid_pid)
wait_for http://127.0.0.1:18180/healthz

# poster: RATE events/s in batches of 10, each event new (unique id, new
# version), for PHASE seconds.
batch=0
post_for() {
    local until=$((SECONDS + PHASE)) interval
    interval=$(awk -v r="$RATE" 'BEGIN {printf "%.3f", 10 / r}')
    while [ $SECONDS -lt $until ]; do
        local events=() n
        for i in $(seq 0 9); do
            n=$((batch * 10 + i))
            events+=("{\"id\":\"f-$n\",\"kind\":\"ticket.updated\",\"tenant\":\"acme\",\"occurred_at\":$(date +%s%3N),\"payload\":{\"ticket\":{\"key\":\"OPS-$((n % 1000))\",\"summary\":\"s\",\"status\":\"open\",\"priority\":\"low\",\"updated_at\":\"t\",\"version\":$((n + 1))},\"project\":{\"key\":\"OPS\",\"name\":\"Ops\"},\"assignee\":null,\"reporter\":{\"account_id\":\"u\",\"display_name\":\"U\"}}}")
        done
        batch=$((batch + 1))
        (IFS=,; taskset -c $LOAD_CPU curl -fsS -o /dev/null -H 'content-type: application/json' \
            --data-binary "[${events[*]}]" http://127.0.0.1:18180/v1/ingest/tracker) &
        sleep "$interval"
    done
    wait_posts
}
wait_posts() { for job in $(jobs -p); do case " ${pids[*]} " in *" $job "*) ;; *) wait "$job" || true ;; esac; done; }

ticks() { awk '{print $14 + $15}' "/proc/$droid_pid/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$droid_pid/status"; }
threads() { awk '/Threads/ {print $2}' "/proc/$droid_pid/status"; }
hz=$(getconf CLK_TCK)

# phase: posts for PHASE seconds; sets measured="CPU% RSS_KIB THREADS" of droid
# (in this shell, not a subshell, so event ids keep counting up).
phase() {
    local t0 t1
    t0=$(ticks)
    post_for
    t1=$(ticks)
    measured="$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$PHASE" 'BEGIN {printf "%.2f", 100 * (b - a) / hz / s}') $(rss_kib) $(threads)"
}

echo "==> phase 1: no follower, $RATE events/s for ${PHASE}s"
phase
read -r cpu0 rss0 threads0 <<<"$measured"

echo "==> starting $FOLLOWERS sidecars"
for i in $(seq 1 "$FOLLOWERS"); do
    port=$((19200 + i))
    cat > "$work/sidecar-$i.toml" <<TOML
listen = "127.0.0.1:$port"
[upstream]
url = "http://127.0.0.1:18180"
[record_types.ticket]
TOML
    DROID_LOG=warn taskset -c $LOAD_CPU target/release/droid sidecar --config "$work/sidecar-$i.toml" &
    pids+=($!)
done
for i in $(seq 1 "$FOLLOWERS"); do
    until curl -fsS -o /dev/null "http://127.0.0.1:$((19200 + i))/healthz" 2>/dev/null; do sleep 0.1; done
done
subscribers=$(curl -fsS http://127.0.0.1:18180/metrics | awk '/^droid_feed_subscribers / {print $2}')
echo "    droid counts $subscribers feed subscribers"

echo "==> phase 2: $FOLLOWERS followers, $RATE events/s for ${PHASE}s"
phase
read -r cpu1 rss1 threads1 <<<"$measured"
in_sync=0
for i in $(seq 1 "$FOLLOWERS"); do
    curl -fsS -o /dev/null "http://127.0.0.1:$((19200 + i))/healthz" 2>/dev/null && in_sync=$((in_sync + 1))
done
propagation=$(curl -fsS "http://127.0.0.1:19201/metrics" | awk '/^droid_sidecar_propagation_seconds_(sum|count) / {v[$1]=$2} END {if (v["droid_sidecar_propagation_seconds_count"] > 0) printf "%.1f ms mean over %d changes", 1000 * v["droid_sidecar_propagation_seconds_sum"] / v["droid_sidecar_propagation_seconds_count"], v["droid_sidecar_propagation_seconds_count"]}')

echo
echo "== results (droid on CPU $SERVER_CPU; $RATE events/s; ${PHASE}s per phase)"
printf 'droid, no follower:     CPU %6.2f%% of a core   RSS %7.1f MiB   %3d threads\n' "$cpu0" "$(awk -v k="$rss0" 'BEGIN {print k / 1024}')" "$threads0"
printf 'droid, %3d followers:   CPU %6.2f%% of a core   RSS %7.1f MiB   %3d threads   (%s in sync at the end)\n' \
    "$FOLLOWERS" "$cpu1" "$(awk -v k="$rss1" 'BEGIN {print k / 1024}')" "$threads1" "$in_sync"
awk -v a="$cpu0" -v b="$cpu1" -v r0="$rss0" -v r1="$rss1" -v n="$FOLLOWERS" \
    'BEGIN {printf "per follower:           CPU %6.3f%% of a core   RSS %7.1f KiB\n", (b - a) / n, (r1 - r0) / n}'
echo "first sidecar's propagation (source event to visible): $propagation"
