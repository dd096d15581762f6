#!/usr/bin/env python3
"""Hostile clients and plugins against a real `droid serve`, with the figures
the hardening work is judged by:

  1. slowloris: 300 connections trickling a request head a byte a second:
     when droid closes them (the header timeout, 10 s by default);
  2. 1,100 idle connections against a droid started under `ulimit -n 1024`:
     how fast /healthz answers, and whether accepts failed;
  3. 20 change-feed subscribers that never read, after 768 changes of 60 KB:
     droid's resident memory before and at its peak, and a hit's latency;
  4. 3,000 tokens with unknown kids of a granted issuer and 3,000 of an
     issuer no grant names: how many key lookups they caused;
  5. cache-hit latency (wrk, 16 connections) alone and while 2 and 16
     CPU-bound plugin calls run.

    bench/hostile.py                 # everything
    ONLY=3 bench/hostile.py          # one step
    PLUGIN_NICE=0 bench/hostile.py   # step 5 with plugin threads at the server's priority
    PLUGIN_THREADS=1 bench/hostile.py   # ... or with one plugin thread

Builds droid (release), the sample provider and the plugins; installs wrk with
apt-get when missing. Everything listens on loopback and is stopped at the end.
"""

import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROID = os.path.join(ROOT, "target/release/droid")
PROVIDER = os.path.join(ROOT, "target/release/sample-provider")
PLUGINS = os.path.join(ROOT, "target/wasm32-wasip2/plugin")
ONLY = os.environ.get("ONLY")
PORT = 18380
PROVIDER_PORT = 18390
processes = []


def run(*args, **kw):
    return subprocess.run(args, check=True, cwd=ROOT, **kw)


def build():
    run("scripts/setup.sh", stdout=subprocess.DEVNULL)
    run("cargo", "build", "--locked", "--release", "-p", "droid-host", "-p", "sample-provider")
    run("cargo", "build", "--locked", "--profile", "plugin", "--target", "wasm32-wasip2",
        "-p", "http-json-adapter", "-p", "hostile-adapter", "-p", "hostile-transformer")
    if shutil.which("wrk") is None:
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", "wrk")


def start(args, log, env=None):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT, env=env)
    processes.append(proc)
    return proc


def wait_for(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"nothing answers at {url}")


def get(path, token=None, port=PORT, timeout=10):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(path, body, token, port=PORT):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metric(series, port=PORT, token=None):
    _, body = get("/metrics", token, port)
    for line in body.decode().splitlines():
        if line.startswith(series):
            return float(line.split()[-1])
    return 0.0


class Droid:
    """A droid with authentication, its keys and config in a temporary folder."""

    def __init__(self, work, port=PORT, ulimit=None, nice=None, threads=None):
        self.work, self.port = work, port
        keys = os.path.join(work, "keys")
        if not os.path.exists(keys):
            run(DROID, "keygen", "--issuer", "reader", "--repository", keys,
                "--private-key", os.path.join(work, "reader.key"), stdout=subprocess.DEVNULL)
        plugins = os.path.join(work, "plugins")
        os.makedirs(plugins, exist_ok=True)
        for name in ["http_json_adapter.wasm", "hostile_adapter.wasm", "hostile_transformer.wasm"]:
            shutil.copy(os.path.join(PLUGINS, name), plugins)
        config = os.path.join(work, f"droid-{port}.toml")
        with open(config, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{port}"
feed_send_timeout_ms = 60000
write_timeout_ms = 60000

[auth]
audience = "droid"
key_repositories = ["keys"]
admins = ["reader"]

[plugins]
dir = "plugins"
cache_dir = ".droid/cache"
watch = false

[runtime]
{f'plugin_nice = {nice}' if nice is not None else ''}
{f'plugin_threads = {threads}' if threads is not None else ''}

[store]
path = ".droid/store-{port}.redb"

[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:{PROVIDER_PORT}/sites"
readers = ["reader"]

[record_types.bad]
mode = "read-through"
adapter = "hostile_adapter.wasm"
base_url = "http://127.0.0.1:{PROVIDER_PORT}/sites"
readers = ["reader"]
max_in_flight = 32
limits = {{ deadline_ms = 10000 }}
http = {{ request_timeout_ms = 1000 }}
cache = {{ error = {{ enabled = false }} }}

[record_types.big]
mode = "ingested"
transformer = "hostile_transformer.wasm"
readers = ["reader"]

[sources.bulk]
record_type = "big"
publishers = ["reader"]
""")
        self.log = open(os.path.join(work, f"droid-{port}.log"), "w")
        args = [DROID, "serve", "--config", config]
        if ulimit:
            args = ["sh", "-c", f'ulimit -n {ulimit} && exec "$0" "$@"'] + args
        self.proc = start(args, self.log)
        wait_for(f"http://127.0.0.1:{port}/healthz")
        self.pid = self.proc.pid if not ulimit else self.proc.pid  # exec keeps the pid

    def token(self):
        out = subprocess.run([DROID, "token", "--key", os.path.join(self.work, "reader.key"),
                              "--audience", "droid"], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def forged(issuer, kid):
    """A token naming `kid` whose signature nobody checks: the kid is unknown."""
    enc = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()
    now = int(time.time())
    header = {"alg": "ES256", "typ": "JWT", "kid": kid}
    claims = {"iss": issuer, "aud": "droid", "iat": now, "exp": now + 300, "jti": kid}
    return f"{enc(header)}.{enc(claims)}.c2lnbmF0dXJl"


def slowloris(droid):
    print("\n1. slowloris: 300 connections sending a request head a byte a second")
    conns, started = [], time.time()
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", droid.port))
        s.sendall(b"GET /v1/entity/site/site-0001 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        s.setblocking(False)
        conns.append(s)
    closed = {}
    while len(closed) < len(conns) and time.time() - started < 60:
        time.sleep(1)
        for i, s in enumerate(conns):
            if i in closed:
                continue
            try:
                s.send(b"a")
                if s.recv(1) == b"":
                    closed[i] = time.time() - started
            except BlockingIOError:
                pass
            except OSError:
                closed[i] = time.time() - started
    times = sorted(closed.values())
    status, _ = get("/healthz")
    print(f"   closed {len(times)} of 300; after {times[0]:.1f} s (first), "
          f"{statistics.median(times):.1f} s (median), {times[-1]:.1f} s (last); /healthz {status}")
    for s in conns:
        s.close()


def idle_flood(work):
    print("\n2. 1,100 idle connections against droid under ulimit -n 1024")
    droid = Droid(work, port=PORT + 1, ulimit=1024)
    conns = [socket.create_connection(("127.0.0.1", droid.port)) for _ in range(1100)]
    time.sleep(0.5)
    samples = []
    for _ in range(5):
        t = time.time()
        status, _ = get("/healthz", port=droid.port, timeout=10)
        samples.append((status, (time.time() - t) * 1000))
    evicted = metric('droid_connections_closed_total{listener="api",reason="evicted"}', droid.port)
    accept_errors = open(droid.log.name).read().count("Too many open files")
    print(f"   /healthz: {', '.join(f'{s} in {ms:.1f} ms' for s, ms in samples)}; "
          f"{evicted:.0f} idle connections evicted for new ones; "
          f"'Too many open files' in the log: {accept_errors}")
    for s in conns:
        s.close()
    droid.stop()


def stalled_feed(droid, token):
    print("\n3. 20 change-feed subscribers that never read, after 768 changes of 60 KB")
    for batch in range(24):
        events = [{"id": f"p{batch}-{i}", "kind": "big", "tenant": "t", "occurred_at": 1,
                   "payload": {"key": f"k{batch}-{i}", "n": 60000}} for i in range(32)]
        status, body = post("/v1/ingest/bulk", json.dumps(events), droid.token())
        assert status == 200, body
    time.sleep(1)
    before = rss_mib(droid.pid)
    subscribers = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", droid.port))
        s.sendall(f"GET /v1/changes?since=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        subscribers.append(s)
    peak, slowest = before, 0.0
    for _ in range(16):
        time.sleep(0.5)
        peak = max(peak, rss_mib(droid.pid))
        t = time.time()
        get("/v1/entity/site/site-0001", token)
        slowest = max(slowest, (time.time() - t) * 1000)
    held = metric('droid_feed_buffered_bytes{part="subscribers"}', token=token) / 2**20
    print(f"   RSS {before:.0f} MiB before, {peak:.0f} MiB at the peak; the subscribers "
          f"held {held:.1f} MiB of the 64 MiB budget; slowest hit meanwhile {slowest:.1f} ms")
    for s in subscribers:
        s.close()


def unknown_kids(droid):
    print("\n4. 3,000 tokens with unknown kids of a granted issuer, 3,000 of an ungranted one")
    before = sum(metric(f'droid_auth_key_fetches_total{{outcome="{o}"}}') for o in ["found", "missing", "failed"])
    codes = {}
    started = time.time()
    for i in range(3000):
        for issuer in ["reader", "shop"]:
            status, body = get("/v1/entity/site/site-0001", forged(issuer, f"{issuer}/unknown-{i}"))
            code = json.loads(body)["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
    elapsed = time.time() - started
    after = sum(metric(f'droid_auth_key_fetches_total{{outcome="{o}"}}') for o in ["found", "missing", "failed"])
    print(f"   {after - before:.0f} key lookups for 6,000 requests in {elapsed:.1f} s; answers: {codes}")


def cpu_isolation(droid, token):
    print("\n5. cache-hit latency (wrk, 16 connections, 10 s) while CPU-bound plugin calls run")
    get("/v1/entity/site/site-0001", token)
    counter = [0]

    def burner(stop):
        while not stop.is_set():
            counter[0] += 1
            get(f"/v1/entity/bad/spin-{1000 + counter[0] % 1000000}", token, timeout=30)

    for calls in [0, 2, 16]:
        stop = threading.Event()
        threads = [threading.Thread(target=burner, args=(stop,)) for _ in range(calls)]
        for t in threads:
            t.start()
        time.sleep(1 if calls else 0)
        out = subprocess.run(["wrk", "-t1", "-c16", "-d10s", "--latency", "-H", f"Authorization: Bearer {token}",
                              f"http://127.0.0.1:{droid.port}/v1/entity/site/site-0001"],
                             capture_output=True, text=True, check=True).stdout
        stop.set()
        for t in threads:
            t.join()
        p50 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("50%"))
        p99 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("99%"))
        rate = next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec"))
        print(f"   {calls:2d} plugin calls burning CPU: {rate} hits/s, p50 {p50}, p99 {p99}")


def main():
    build()
    work = tempfile.mkdtemp(prefix="droid-hostile-")
    try:
        log = open(os.path.join(work, "provider.log"), "w")
        start([PROVIDER, "--listen", f"127.0.0.1:{PROVIDER_PORT}", "--records", "1000"], log)
        wait_for(f"http://127.0.0.1:{PROVIDER_PORT}/healthz")
        nice, threads = os.environ.get("PLUGIN_NICE"), os.environ.get("PLUGIN_THREADS")
        droid = Droid(work, nice=int(nice) if nice else None, threads=int(threads) if threads else None)
        token = droid.token()
        if ONLY in (None, "1"):
            slowloris(droid)
        if ONLY in (None, "2"):
            idle_flood(work)
        if ONLY in (None, "3"):
            stalled_feed(droid, token)
        if ONLY in (None, "4"):
            unknown_kids(droid)
        if ONLY in (None, "5"):
            cpu_isolation(droid, token)
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
