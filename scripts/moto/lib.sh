# shellcheck shell=bash
# Helpers to run a moto server for the AWS tests. Source this file, then:
#   moto_start            # starts moto on 127.0.0.1 on a free port, waits until it answers,
#                         # exports SWITCHYARD_MOTO_ENDPOINT, and stops it on exit (trap)
#   moto_reset            # wipes moto's state between test groups
#   moto_stop             # stops it now (also run by the trap)
# Needs moto[server] in the project virtualenv (.venv); scripts/test-aws installs it.

MOTO_ROOT="${MOTO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
MOTO_VENV="${MOTO_VENV:-$MOTO_ROOT/.venv}"
MOTO_PID=""

moto_free_port() {
    "$MOTO_VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# HTTP status of a moto-api call (000 when nothing answers).
moto_http() {
    "$MOTO_VENV/bin/python" - "$@" <<'PY'
import sys, urllib.request
method, url = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(urllib.request.Request(url, method=method, data=b"" if method == "POST" else None), timeout=5) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

moto_stop() {
    if [ -n "$MOTO_PID" ] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
    MOTO_PID=""
}

moto_start() {
    if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
        echo "moto_server not found in $MOTO_VENV: run scripts/test-aws (it installs moto[server])" >&2
        return 1
    fi
    local port log deadline
    port="$(moto_free_port)"
    log="${MOTO_LOG:-$MOTO_ROOT/target/moto.log}"
    mkdir -p "$(dirname "$log")"
    "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    MOTO_PID=$!
    trap moto_stop EXIT
    trap 'moto_stop; exit 130' INT TERM
    export SWITCHYARD_MOTO_ENDPOINT="http://127.0.0.1:$port"
    # Wait for moto to answer, with a deadline; fail with its log if it never does.
    deadline=$((SECONDS + 60))
    until [ "$(moto_http GET "$SWITCHYARD_MOTO_ENDPOINT/moto-api/")" = "200" ]; do
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "moto exited before it was ready; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "moto did not answer on $SWITCHYARD_MOTO_ENDPOINT within 60 s; its log:" >&2
            cat "$log" >&2
            moto_stop
            return 1
        fi
        sleep 0.2
    done
    echo "moto is ready on $SWITCHYARD_MOTO_ENDPOINT (pid $MOTO_PID, log $log)"
}

moto_reset() {
    local status
    status="$(moto_http POST "$SWITCHYARD_MOTO_ENDPOINT/moto-api/reset")"
    if [ "$status" != "200" ]; then
        echo "moto reset failed (HTTP $status)" >&2
        return 1
    fi
}
