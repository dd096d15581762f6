#!/usr/bin/env bash
# The cluster quickstart: PostgreSQL and nats-server on loopback (each in a
# folder of its own under .cluster/, installed with apt-get where missing),
# three droid nodes sharing the store, the sample provider publishing its
# ticket events to NATS JetStream, and a sidecar following one node. Shows a
# record written through one node read on the others, an invalidation
# reaching every node, and the sidecar moving to another node when its own
# goes away.
#
#   examples/cluster/run.sh                 # build (release), run, keep serving until Ctrl-C
#   QUICKSTART_EXIT=1 examples/cluster/run.sh   # run the demo, then stop
#   QUICKSTART_PROFILE=dev ...              # use a debug build (faster to build)
#
# The nodes run with --insecure-no-auth to keep the demo short; the README
# says what to configure in production.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# shellcheck source=../common.sh
source "$root/examples/common.sh"
pg_port=55432
nats_port=54222
nodes=(8181 8182 8183)

scripts/setup.sh
scripts/servers.sh
state="$here/.cluster"
rm -rf "$state"
build_all "$state/plugins"

echo "==> PostgreSQL on 127.0.0.1:$pg_port (data in $state/pg)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "${DROID_PG_BIN:-}" ] && pg_bin=$DROID_PG_BIN
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root.
    as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
mkdir -p "$state/pg"
[ "$(id -u)" -eq 0 ] && chown postgres: "$state/pg"
"${as_pg[@]}" "$pg_bin/initdb" -D "$state/pg/data" -U droid -A trust -E UTF8 --locale=C >"$state/pg/initdb.log"
"${as_pg[@]}" "$pg_bin/postgres" -D "$state/pg/data" -k "$state/pg" -p "$pg_port" \
    -c listen_addresses=127.0.0.1 >"$state/pg/server.log" 2>&1 &
started $!
for _ in $(seq 1 300); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 0.1
done
"$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U droid droid

echo "==> nats-server with JetStream on 127.0.0.1:$nats_port"
nats=$(command -v nats-server || echo /usr/sbin/nats-server)
"$nats" -js -a 127.0.0.1 -p "$nats_port" -sd "$state/nats" >"$state/nats.log" 2>&1 &
started $!
for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
    sleep 0.1
done

echo "==> the tracker's stream: its events published to NATS (the stream is created first)"
"$out/sample-provider" publish --nats "nats://127.0.0.1:$nats_port" "$root/examples/quickstart/events/tickets.jsonl"

echo "==> the sample provider's store on 127.0.0.1:9090"
"$out/sample-provider" --listen 127.0.0.1:9090 &
started $!
wait_for http://127.0.0.1:9090/healthz "the sample provider"

echo "==> three droid nodes on ports ${nodes[*]}, one store, one stream"
for i in "${!nodes[@]}"; do
    port=${nodes[$i]}
    cat >"$state/node$i.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
node_name = "node-$((i + 1))"

[plugins]
dir = "plugins"
cache_dir = "cache"
state_file = "node$i-decisions.json"

[store]
backend = "postgres"
url = "postgresql://droid@127.0.0.1:$pg_port/droid"
schema = "droid"

[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:9090/sites"
cache = { found = { ttl_ms = 600000 } }

[record_types.site.config]
version_field = "version"

[record_types.ticket]
mode = "ingested"
transformer = "ticket_transformer.wasm"

[sources.tracker]
record_type = "ticket"
stream = { url = "nats://127.0.0.1:$nats_port", stream = "EVENTS", subject = "events.tracker", durable = "droid" }
TOML
    "$out/droid" serve --config "$state/node$i.toml" --insecure-no-auth 2>"$state/node$i.log" &
    started $!
    node_pids[$i]=$!
done
for port in "${nodes[@]}"; do wait_for "http://127.0.0.1:$port/healthz" "droid on $port"; done

ticket=OPS-1001
echo "==> the events published to NATS, read on every node"
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:${nodes[2]}/v1/entity/ticket/$ticket?tenant=tenant-0001" && break
    sleep 0.1
done
for port in "${nodes[@]}"; do
    show curl -sS "http://127.0.0.1:$port/v1/entity/ticket/$ticket?tenant=tenant-0001"
done

echo "==> a sidecar following node 2 (and node 3 if node 2 goes away) on 127.0.0.1:7272"
cat >"$state/sidecar.toml" <<TOML
listen = "127.0.0.1:7272"

[upstream]
url = ["http://127.0.0.1:${nodes[1]}", "http://127.0.0.1:${nodes[2]}"]

[feed]
heartbeat_ms = 500
sync_timeout_ms = 1500
reconnect_initial_ms = 100
reconnect_max_ms = 1000

[record_types.ticket]
[record_types.site]
TOML
"$out/droid" sidecar --config "$state/sidecar.toml" 2>"$state/sidecar.log" &
started $!
wait_for http://127.0.0.1:7272/healthz "the sidecar (in sync)"

update() {
    local version=$1 summary=$2
    printf '[{"id":"ev-cluster-%s","kind":"ticket.updated","tenant":"tenant-0001","occurred_at":%s,"payload":{"ticket":{"key":"%s","summary":"%s","status":"open","priority":"high","labels":[],"updated_at":"2026-12-01T10:00:00Z","version":%s},"project":{"key":"OPS","name":"Operations"},"assignee":null,"reporter":{"account_id":"u-7","display_name":"Grace Hopper"}}}]' \
        "$version" "$(date +%s%3N)" "$ticket" "$summary" "$version"
}
echo "==> an update posted to node 1, read on nodes 2 and 3 and through the sidecar"
show curl -sS --fail-with-body -X POST --data-binary "$(update 1000 'Written through node 1')" "http://127.0.0.1:${nodes[0]}/v1/ingest/tracker"
sleep 0.3
for port in "${nodes[1]}" "${nodes[2]}"; do
    show curl -sS "http://127.0.0.1:$port/v1/entity/ticket/$ticket?tenant=tenant-0001"
done
show curl -sS -i "http://127.0.0.1:7272/v1/entity/ticket/$ticket?tenant=tenant-0001"

echo "==> a read-through record cached on nodes 2 and 3, invalidated through node 1"
for port in "${nodes[1]}" "${nodes[2]}"; do
    curl -sS -o /dev/null "http://127.0.0.1:$port/v1/entity/site/site-0001"
    show curl -sS -o /dev/null -w 'node on %{url}: Droid-Cache %header{droid-cache}\n' "http://127.0.0.1:$port/v1/entity/site/site-0001"
done
show curl -sS --fail-with-body -X POST -d '{"record_type":"site","key":"site-0001"}' "http://127.0.0.1:${nodes[0]}/v1/invalidate"
sleep 0.3
for port in "${nodes[1]}" "${nodes[2]}"; do
    show curl -sS -o /dev/null -w 'node on %{url}: Droid-Cache %header{droid-cache} (emptied by the invalidation)\n' "http://127.0.0.1:$port/v1/entity/site/site-0001"
done

echo "==> node 2 goes away; the sidecar moves to node 3 and misses nothing"
kill "${node_pids[1]}"
show curl -sS --fail-with-body -X POST --data-binary "$(update 1001 'Written while node 2 is down')" "http://127.0.0.1:${nodes[0]}/v1/ingest/tracker"
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:7272/v1/entity/ticket/$ticket?tenant=tenant-0001" 2>/dev/null | grep -q 'node 2 is down' && break
    sleep 0.1
done
show curl -sS -i "http://127.0.0.1:7272/v1/entity/ticket/$ticket?tenant=tenant-0001"
show curl -sS http://127.0.0.1:7272/healthz

echo "==> the fleet as node 1 sees it: what each node holds and serves"
show "$out/droid" plugins fleet --server "http://127.0.0.1:${nodes[0]}"

if [ -n "${QUICKSTART_EXIT:-}" ]; then
    exit 0
fi
echo "nodes on http://127.0.0.1:${nodes[0]} and :${nodes[2]} (node 2 was stopped), the sidecar on :7272; Ctrl-C stops everything."
wait
