#!/usr/bin/env bash
# The quickstart: builds droid, the example plugins and the sample provider, starts
# the provider's store and droid, reads a record through the adapter, ingests and
# backfills tickets, and starts a sidecar next to a consumer.
#
#   examples/quickstart/run.sh                 # build (release), run, keep serving until Ctrl-C
#   QUICKSTART_EXIT=1 examples/quickstart/run.sh   # run the demo, then stop
#   QUICKSTART_PROFILE=dev ...                  # use a debug build (faster to build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# shellcheck source=../common.sh
source "$root/examples/common.sh"

scripts/setup.sh
build_all "$here/plugins"

echo "==> starting the sample provider's store on 127.0.0.1:9090"
"$out/sample-provider" --listen 127.0.0.1:9090 &
started $!
wait_for http://127.0.0.1:9090/healthz "the sample provider"

echo "==> service keys: shop (a consumer), tracker (a provider), ops (an operator)"
mkdir -p "$here/.droid/keys"
for issuer in shop tracker ops; do
    if [ ! -f "$here/.droid/$issuer.key" ]; then
        "$out/droid" keygen --issuer "$issuer" --key-id quickstart \
            --repository "$here/.droid/keys" --private-key "$here/.droid/$issuer.key"
    fi
done
# A fresh token for each call (droid refuses a reused one on mutating calls).
token() { "$out/droid" token --key "$here/.droid/$1.key" --audience droid; }

echo "==> starting droid on 127.0.0.1:8080"
"$out/droid" check-config "$here/droid.toml"
"$out/droid" serve --config "$here/droid.toml" &
started $!
wait_for http://127.0.0.1:8080/healthz droid

echo "==> reading through droid"
show curl -sS -i -H "Authorization: Bearer $(token shop)" http://127.0.0.1:8080/v1/entity/site/site-0001
show curl -sS -H "Authorization: Bearer $(token shop)" http://127.0.0.1:8080/v1/entity/site/site-9999
show curl -sS -i http://127.0.0.1:8080/v1/entity/site/site-0001
show curl -sS -H "Authorization: Bearer $(token shop)" http://127.0.0.1:8080/v1/entity/nosuchtype/x
echo "==> the ticket transformer on sample events, offline"
show "$out/droid" plugins transform "$here/plugins/ticket_transformer.wasm" --events "$here/events/tickets.jsonl"
echo "==> ingesting the same events, then reading a ticket back"
show curl -sS --fail-with-body -H "Authorization: Bearer $(token tracker)" -X POST --data-binary @"$here/events/tickets.jsonl" http://127.0.0.1:8080/v1/ingest/tracker
show curl -sS -i --fail-with-body -H "Authorization: Bearer $(token shop)" "http://127.0.0.1:8080/v1/entity/ticket/OPS-1001?tenant=tenant-0001"
echo "==> backfilling the tracker's history from its bootstrap endpoint (--restart: from the first page on every run)"
show "$out/droid" backfill ticket --config "$here/droid.toml" --restart --key "$here/.droid/tracker.key"
show curl -sS --fail-with-body -H "Authorization: Bearer $(token shop)" "http://127.0.0.1:8080/v1/entity/ticket/OPS-1500?tenant=tenant-0001"
echo "==> a sidecar next to the consumer on 127.0.0.1:7171: droid's read API from memory, kept current by the change feed"
"$out/droid" sidecar --config "$here/sidecar.toml" &
started $!
wait_for http://127.0.0.1:7171/healthz "the sidecar (in sync)"
show curl -sS -i "http://127.0.0.1:7171/v1/entity/ticket/OPS-1500?tenant=tenant-0001"
show curl -sS -i http://127.0.0.1:7171/v1/entity/site/site-0001
update='{"id":"ev-qs-sidecar","source":"tracker","kind":"ticket.updated","tenant":"tenant-0001","occurred_at":'$(date +%s%3N)',"payload":{"ticket":{"key":"OPS-1500","summary":"Updated while a sidecar watches","status":"open","priority":"low","labels":[],"updated_at":"2026-11-22T10:00:00Z","version":'$(date +%s)'},"project":{"key":"OPS","name":"Operations"},"assignee":null,"reporter":{"account_id":"u-7","display_name":"Grace Hopper"}}}'
show curl -sS --fail-with-body -H "Authorization: Bearer $(token tracker)" -X POST --data-binary "[$update]" http://127.0.0.1:8080/v1/ingest/tracker
sleep 0.2
show curl -sS -i "http://127.0.0.1:7171/v1/entity/ticket/OPS-1500?tenant=tenant-0001"
show curl -sS http://127.0.0.1:7171/healthz
echo "==> the plugins droid holds (drop a new .wasm into $here/plugins and it is picked up live)"
show "$out/droid" plugins list --key "$here/.droid/ops.key"

if [ -n "${QUICKSTART_EXIT:-}" ]; then
    exit 0
fi
echo "droid is serving on http://127.0.0.1:8080 (metrics at /metrics), its sidecar on http://127.0.0.1:7171; Ctrl-C stops everything."
echo "tokens: $out/droid token --key $here/.droid/shop.key --audience droid"
wait
