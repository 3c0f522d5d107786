#!/usr/bin/env bash
# Start or stop the local stand-ins: osmem-server (OpenSearch) and, in front of it and of moto,
# the AWS front (tools/aws_front: moto in-process, SigV4 verified, IAM evaluated, AWS's size
# limits), each on free loopback ports.
#
#   tools/standins.sh start DIR   starts both, waits until they answer, writes DIR/env (shell exports)
#   tools/standins.sh stop DIR    stops what `start` started (by pid file); safe to call twice
#
# DIR/env exports:
#   ROBOFLEET_TEST_AWS_ENDPOINT     the front's AWS endpoint (every AWS API; /_front/ admin API)
#   ROBOFLEET_TEST_OPENSEARCH_URL   the front's endpoint of the domain robofleet-test (osmem behind)
#   ROBOFLEET_TEST_OSMEM_URL        osmem itself, for what stands behind the front
#   ROBOFLEET_TEST_IOT_DATA_URL     the front's IoT Data Plane endpoint (moto's, until a stack
#                                   puts its shadow service behind an endpoint of its own)
#   ROBOFLEET_VENV                  the venv
# Tools and tests sign as the local developer (access key AKIALOCALDEVELOPER01, secret
# robofleet-local-developer-secret, user robofleet-developer, allowed everything); functions
# get their own role's credentials from the front.
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
  aws_port=$(free_port); front_os_port=$(free_port); iot_port=$(free_port); os_port=$(free_port)
  "$osmem" -addr "127.0.0.1:$os_port" -no-stdin-watch >"$dir/osmem.log" 2>&1 &
  echo $! >"$dir/osmem.pid"
  wait_http "http://127.0.0.1:$os_port/" osmem "$dir/osmem.log"
  "$venv/bin/python" "$root/tools/aws_front" --aws-port "$aws_port" \
    --opensearch-port "$front_os_port" --opensearch-domain robofleet-test \
    --opensearch-backend "http://127.0.0.1:$os_port" --iot-port "$iot_port" \
    --developer-name robofleet-developer \
    --developer AKIALOCALDEVELOPER01:robofleet-local-developer-secret \
    >"$dir/aws-front.log" 2>&1 &
  echo $! >"$dir/front.pid"
  wait_http "http://127.0.0.1:$aws_port/_front/health" aws-front "$dir/aws-front.log"
  cat >"$dir/env" <<ENV
export ROBOFLEET_TEST_AWS_ENDPOINT=http://127.0.0.1:$aws_port
export ROBOFLEET_TEST_OPENSEARCH_URL=http://127.0.0.1:$front_os_port
export ROBOFLEET_TEST_OSMEM_URL=http://127.0.0.1:$os_port
export ROBOFLEET_TEST_IOT_DATA_URL=http://127.0.0.1:$iot_port
export ROBOFLEET_VENV=$venv
ENV
  echo "stand-ins up: aws front http://127.0.0.1:$aws_port (moto inside), opensearch http://127.0.0.1:$front_os_port -> osmem http://127.0.0.1:$os_port"
  ;;
stop)
  for name in front osmem; do
    if [ -f "$dir/$name.pid" ]; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
  ;;
*) echo "usage: standins.sh start|stop DIR" >&2; exit 2 ;;
esac
