# What both quickstarts share (sourced by examples/*/run.sh): the build
# profile, starting and stopping background processes, waiting for a URL,
# and showing a command with its output.

profile="${QUICKSTART_PROFILE:-release}"
case "$profile" in
    release) out=target/release ;;
    dev) out=target/debug ;;
    *) echo "QUICKSTART_PROFILE must be release or dev" >&2; exit 2 ;;
esac

# Builds droid, the sample provider and the example plugins, and copies the
# plugins into the folder $1.
build_all() {
    echo "==> building droid and the sample provider ($profile)"
    cargo build --locked --profile "$profile" -p droid-host -p sample-provider
    echo "==> building the example plugins for wasm32-wasip2"
    cargo build --locked --profile plugin --target wasm32-wasip2 -p http-json-adapter -p ticket-transformer
    mkdir -p "$1"
    cp target/wasm32-wasip2/plugin/http_json_adapter.wasm target/wasm32-wasip2/plugin/ticket_transformer.wasm "$1/"
}

# Background processes started with `started $!`, stopped on exit.
pids=()
started() { pids+=("$1"); }
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Waits until URL $1 answers with a success, naming $2 if it never does.
wait_for() {
    local url=$1 name=$2
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$name did not come up at $url" >&2
    exit 1
}

# Prints a command (tokens hidden) and runs it.
show() {
    echo
    echo "\$ $*" | sed -E 's/Bearer [A-Za-z0-9._-]+/Bearer $TOKEN/'
    "$@"
    echo
}
