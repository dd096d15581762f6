#!/usr/bin/env bash
# Installs the servers the tests start for themselves (PostgreSQL's server
# programs, nats-server) when they are missing, with apt-get, and moto's
# S3-compatible server with pip. Installing creates no
# cluster and starts nothing: every test initialises its own in a temporary
# folder, on a free loopback port, and stops it by PID. Safe to run again.
set -euo pipefail

have_postgres() {
    [ -n "${DROID_PG_BIN:-}" ] && [ -x "$DROID_PG_BIN/postgres" ] && return 0
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
# moto's S3-compatible server for the backup tests comes from pip.
have_moto() { python3 -c "import moto.server, flask_cors" 2>/dev/null; }
have_moto || python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)

install_moto() {
    have_moto && return 0
    python3 -m pip install --quiet --user "moto[server]" 2>/dev/null \
        || python3 -m pip install --quiet --user --break-system-packages "moto[server]"
}

if [ ${#missing[@]} -eq 0 ]; then
    install_moto
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "servers: install ${missing[*]} (the tests start their own servers from it)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
# The package would create and start a cluster of its own; the tests need none.
conf=/etc/postgresql-common/createcluster.conf
if [ -f "$conf" ]; then
    $sudo sed -i 's/^#\?[[:space:]]*create_main_cluster.*/create_main_cluster = false/' "$conf"
else
    $sudo mkdir -p "$(dirname "$conf")"
    echo "create_main_cluster = false" | $sudo tee "$conf" >/dev/null
fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
install_moto
