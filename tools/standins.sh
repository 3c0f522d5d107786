#!/usr/bin/env bash
# Start or stop the local stand-ins (moto server and osmem-server) on free loopback ports.
#
#   tools/standins.sh start DIR   starts both, waits until they answer, writes DIR/env (shell exports)
#   tools/standins.sh stop DIR    stops what `start` started (by pid file); safe to call twice
#   MOTO_KEEPALIVE=1 tools/standins.sh start DIR   moto with HTTP keep-alive (tools/moto_server.py)
#
# The venv comes from $ROBOFLEET_VENV (default: .venv beside this script's parent).
set -euo pipefail
cmd=${1:?usage: standins.sh start|stop DIR}
dir=${2:?usage: standins.sh start|stop DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${ROBOFLEET_VENV:-$root/.venv}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url name logfile
  for _ in $(seq 1 150); do
    if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1).read()
PY
    sleep 0.2
  done
  echo "error: $2 did not answer at $1 within 30 s; its log follows" >&2
  tail -n 30 "$3" >&2 || true
  return 1
}

case "$cmd" in
start)
  mkdir -p "$dir"
  [ -x "$venv/bin/moto_server" ] || { echo "error: $venv/bin/moto_server is missing: run 'make venv' first" >&2; exit 1; }
  osmem=$(ls "$venv"/lib/python3.*/site-packages/osmem_server/bin/osmem-server 2>/dev/null | head -n1)
  [ -n "$osmem" ] || { echo "error: osmem-server binary not found in $venv: run 'make venv' first" >&2; exit 1; }
  moto_port=$(free_port); os_port=$(free_port)
  # moto through tools/moto_server.py: moto's own server with its Kinesis shard made O(1);
  # MOTO_KEEPALIVE=1 serves it with HTTP keep-alive (waitress) instead (the function benchmark).
  keepalive=(); [ "${MOTO_KEEPALIVE:-0}" = 1 ] && keepalive=(--keepalive)
  "$venv/bin/python" "$root/tools/moto_server.py" "${keepalive[@]}" -H 127.0.0.1 -p "$moto_port" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  "$osmem" -addr "127.0.0.1:$os_port" -no-stdin-watch >"$dir/osmem.log" 2>&1 &
  echo $! >"$dir/osmem.pid"
  wait_http "http://127.0.0.1:$moto_port/moto-api/" moto "$dir/moto.log"
  wait_http "http://127.0.0.1:$os_port/" osmem "$dir/osmem.log"
  cat >"$dir/env" <<ENV
export ROBOFLEET_TEST_AWS_ENDPOINT=http://127.0.0.1:$moto_port
export ROBOFLEET_TEST_OPENSEARCH_URL=http://127.0.0.1:$os_port
export ROBOFLEET_VENV=$venv
ENV
  echo "stand-ins up: moto http://127.0.0.1:$moto_port, osmem http://127.0.0.1:$os_port"
  ;;
stop)
  for name in moto osmem; do
    if [ -f "$dir/$name.pid" ]; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
  ;;
*) echo "usage: standins.sh start|stop DIR" >&2; exit 2 ;;
esac
