#!/usr/bin/env bash
# Memory of idle simulated robots: `robofleet sim` (release build, or BENCH_PROFILE=debug) with N robots connected to a
# mosquitto broker and (nearly) silent for a minute; the process's peak RSS is sampled from
# /proc and compared with a one-robot run. Writes target/bench/sim-memory.json.
#   tools/bench-sim-memory.sh [N]     # default: as many as the open-file limit allows
# Linux only (/proc); needs mosquitto (make mosquitto) and an open-file limit above N.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
limit=$(ulimit -n)
n=${1:-$((limit - 256))}
port=${BENCH_MQTT_PORT:-18831}
dir=$(mktemp -d)
trap 'kill "$mq" 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM

# BENCH_PROFILE=debug measures the debug build instead (no release build of the workspace).
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ]; then cargo build --release --bin robofleet; else cargo build --bin robofleet; fi
bin=${CARGO_TARGET_DIR:-target}/$profile/robofleet
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\n' "$port" >"$dir/mq.conf"
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$dir/mq.conf" >"$dir/mq.log" 2>&1 &
mq=$!
sleep 1

# Peak RSS (kB) of one idle run of $1 robots.
peak_rss() {
  local robots=$1 peak=0 rss pid
  "$bin" sim --mode steady --robots "$robots" --rate 1 --duration 60s \
    --mission-share 0 --commands 0 --connect-rate 2000 \
    --broker "mqtt://127.0.0.1:$port" --prefix "mem$robots" >"$dir/sim-$robots.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    if [ "${rss:-0}" -gt "$peak" ]; then peak=$rss; fi
    sleep 1
  done
  wait "$pid" || { echo "the run of $robots robots failed:" >&2; tail -5 "$dir/sim-$robots.log" >&2; exit 1; }
  echo "$peak"
}

echo "==> 1 robot (baseline)"
base=$(peak_rss 1)
echo "==> $n robots"
full=$(peak_rss "$n")
connected=$(grep -oE 'connected +[0-9]+ robots' "$dir/sim-$n.log" | grep -oE '[0-9]+' | head -1)
per=$(( (full - base) * 1024 / n ))
mkdir -p target/bench
printf '{"profile": "%s", "robots": %s, "connected": %s, "baselinePeakRssKiB": %s, "peakRssKiB": %s, "bytesPerSession": %s, "targetBytesPerSession": 16384}\n' \
  "$profile" "$n" "${connected:-0}" "$base" "$full" "$per" | tee target/bench/sim-memory.json
echo "$n robots: $(( full / 1024 )) MiB peak, $per bytes per session (target 16384)"
