#!/usr/bin/env python3
"""A mixed soak of a real `droid serve`, sampling its resident memory: does it
level off, or follow the store file's growth?

Traffic, all at once for SOAK_MINUTES (default 20):
  - cache hits on 100 site records, and misses on ever new keys (404s);
  - ingestion of 50 ticket-like events (~500 bytes each) every 100 ms, so the
    store grows all the time;
  - a change-feed follower reading everything as it commits.

Every SAMPLE_S seconds (default 30) it prints droid's RSS, the store file's
size and the totals so far; at the end the RSS of the first and last thirds.

    bench/soak.py
    SOAK_MINUTES=5 SAMPLE_S=10 bench/soak.py
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import DROID, PLUGINS, PROVIDER, PROVIDER_PORT, rss_mib, run, wait_for  # noqa: E402

PORT = 18480
MINUTES = float(os.environ.get("SOAK_MINUTES", "20"))
SAMPLE_S = float(os.environ.get("SAMPLE_S", "30"))


def main():
    run("scripts/setup.sh", stdout=subprocess.DEVNULL)
    run("cargo", "build", "--locked", "--release", "-p", "droid-host", "-p", "sample-provider")
    run("cargo", "build", "--locked", "--profile", "plugin", "--target", "wasm32-wasip2",
        "-p", "http-json-adapter", "-p", "hostile-transformer")
    work = tempfile.mkdtemp(prefix="droid-soak-")
    procs = []
    try:
        os.makedirs(os.path.join(work, "plugins"))
        for name in ["http_json_adapter.wasm", "hostile_transformer.wasm"]:
            shutil.copy(os.path.join(PLUGINS, name), os.path.join(work, "plugins"))
        with open(os.path.join(work, "droid.toml"), "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{PORT}"

[plugins]
dir = "plugins"
watch = false

[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:{PROVIDER_PORT}/sites"

[record_types.ticket]
mode = "ingested"
transformer = "hostile_transformer.wasm"

[sources.tracker]
record_type = "ticket"
""")
        log = open(os.path.join(work, "droid.log"), "w")
        procs.append(subprocess.Popen([PROVIDER, "--listen", f"127.0.0.1:{PROVIDER_PORT}", "--records", "1000"],
                                      stdout=subprocess.DEVNULL, stderr=log))
        wait_for(f"http://127.0.0.1:{PROVIDER_PORT}/healthz")
        droid = subprocess.Popen([DROID, "serve", "--config", os.path.join(work, "droid.toml"), "--insecure-no-auth"],
                                 stdout=subprocess.DEVNULL, stderr=log, cwd=work)
        procs.append(droid)
        wait_for(f"http://127.0.0.1:{PORT}/healthz")
        stop = threading.Event()
        counts = {"hits": 0, "misses": 0, "events": 0, "followed": 0}

        def hits():
            n = 0
            while not stop.is_set():
                n += 1
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v1/entity/site/site-{n % 100 + 1:04d}").read()
                counts["hits"] += 1

        def misses():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v1/entity/site/missing-{n}").read()
                except urllib.error.HTTPError:
                    pass
                counts["misses"] += 1
                time.sleep(0.01)

        def ingest():
            n = 0
            while not stop.is_set():
                events = []
                for _ in range(50):
                    n += 1
                    events.append({"id": f"e{n}", "kind": "big", "tenant": f"t{n % 20}", "occurred_at": n,
                                   "payload": {"key": f"k{n % 100000}", "n": 400}})
                request = urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/ingest/tracker",
                                                 data=json.dumps(events).encode(), method="POST",
                                                 headers={"Content-Type": "application/json"})
                urllib.request.urlopen(request).read()
                counts["events"] += 50
                time.sleep(0.1)

        def follow():
            s = socket.create_connection(("127.0.0.1", PORT))
            s.sendall(b"GET /v1/changes?since=now HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(1)
            while not stop.is_set():
                try:
                    counts["followed"] += s.recv(65536).count(b'"seq"')
                except socket.timeout:
                    pass

        threads = [threading.Thread(target=t, daemon=True) for t in (hits, misses, ingest, follow)]
        for t in threads:
            t.start()
        samples = []
        started = time.time()
        store = os.path.join(work, ".droid/store.redb")
        print(f"{'minute':>7} {'RSS MiB':>8} {'store MiB':>10} {'hits':>9} {'misses':>8} {'events':>9} {'followed':>9}")
        while time.time() - started < MINUTES * 60:
            time.sleep(SAMPLE_S)
            rss = rss_mib(droid.pid)
            samples.append(rss)
            size = os.path.getsize(store) / 2**20 if os.path.exists(store) else 0
            print(f"{(time.time() - started) / 60:7.1f} {rss:8.1f} {size:10.1f} {counts['hits']:9d} "
                  f"{counts['misses']:8d} {counts['events']:9d} {counts['followed']:9d}", flush=True)
        stop.set()
        third = max(1, len(samples) // 3)
        first, last = samples[:third], samples[-third:]
        print(f"RSS mean of the first third {sum(first) / len(first):.1f} MiB, "
              f"of the last third {sum(last) / len(last):.1f} MiB; max {max(samples):.1f} MiB")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
