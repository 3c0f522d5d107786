#!/usr/bin/env bash
# Pipeline benchmark: drive the local stack with `robofleet sim --mode steady` at increasing
# rates and measure, per step: the publish rate, the pipeline's processing rate, how long the
# backlog took to drain, p99 publish-to-visible latency, and the CPU time each process spent per
# 1,000 messages (broker, stack = rules engine + shadow service + pollers + functions in-process,
# moto, osmem, the simulator itself).
#
# It starts its own moto + osmem (so other users of the shared stand-ins do not pollute the
# figures), a mosquitto broker (so the broker's CPU is its own), and a stack held up by the
# ignored test `bench_hold_stack` in tests/tests/sim_e2e.rs.
#
#   crates/fleet-sim/bench/pipeline.sh                 # default rates
#   RATES="200 1000 2000" DURATION=30s crates/fleet-sim/bench/pipeline.sh
#   RATES="100:1 200:1 400:1" crates/fleet-sim/bench/pipeline.sh   # RATE:MISSION_SHARE, the moto-bound mission path
#
# Output: a table on stdout and one JSON report per step in $OUT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
RATES=${RATES:-"250 500 1000 2000"}
DURATION=${DURATION:-20s}
ROBOTS=${ROBOTS:-200}
MISSION_SHARE=${MISSION_SHARE:-0}
GRACE=${GRACE:-120s}
OUT=${OUT:-$ROOT/target/bench/sim}
PROFILE=${PROFILE:-release}   # release: the figures mean something; debug: quick check of the script
CARGO_FLAGS=(); BIN=$ROOT/target/debug
if [ "$PROFILE" = release ]; then CARGO_FLAGS=(--release); BIN=$ROOT/target/release; fi
RUN=$ROOT/.run/bench-sim-$$
mkdir -p "$OUT" "$RUN"
HZ=$(getconf CLK_TCK)

cleanup() {
  touch "$RUN/stop"
  [ -n "${HOLD_PID:-}" ] && wait "$HOLD_PID" 2>/dev/null || true
  [ -n "${MOSQ_PID:-}" ] && kill "$MOSQ_PID" 2>/dev/null || true
  "$ROOT/tools/standins.sh" stop "$RUN/standins" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "==> building robofleet and the stack holder"
(cd "$ROOT" && cargo build -q ${CARGO_FLAGS[@]+"${CARGO_FLAGS[@]}"} -p robofleet-cli)
# Run the holder's test binary itself: no rebuild in between if someone edits the tree.
HOLDER=$(cd "$ROOT" && cargo test ${CARGO_FLAGS[@]+"${CARGO_FLAGS[@]}"} -p robofleet-e2e --test sim_e2e --no-run 2>&1 \
  | sed -n 's/.*Executable tests\/sim_e2e.rs (\(.*\))/\1/p' | tail -n1)
[ -n "$HOLDER" ] || { echo "could not build the stack holder (tests/tests/sim_e2e.rs)"; exit 1; }
cp "$ROOT/$HOLDER" "$RUN/stack-holder"

echo "==> own aws front (moto inside) + osmem"
"$ROOT/tools/standins.sh" start "$RUN/standins" >/dev/null
# shellcheck disable=SC1091
. "$RUN/standins/env"
MOTO_PID=$(cat "$RUN/standins/front.pid") # the front runs moto in-process
OSMEM_PID=$(cat "$RUN/standins/osmem.pid")

echo "==> mosquitto"
MQTT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 0\npersistence false\n' "$MQTT_PORT" > "$RUN/mosquitto.conf"
/usr/sbin/mosquitto -c "$RUN/mosquitto.conf" >"$RUN/mosquitto.log" 2>&1 &
MOSQ_PID=$!

echo "==> stack"
(cd "$ROOT/tests" && BENCH_STACK_FILE="$RUN/stack.json" BENCH_STOP_FILE="$RUN/stop" \
  BENCH_MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT" \
  "$RUN/stack-holder" --ignored --exact bench_hold_stack --nocapture >"$RUN/stack.log" 2>&1) &
HOLD_PID=$!
for _ in $(seq 1 240); do [ -s "$RUN/stack.json" ] && break; sleep 0.5; done
[ -s "$RUN/stack.json" ] || { echo "the stack did not start; see $RUN/stack.log"; exit 1; }
field() { python3 -c "import json,sys; print(json.load(open('$RUN/stack.json'))['$1'] or '')"; }
STACK_PID=$(field pid)

ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

printf '\n%-9s %9s %9s %8s %8s %8s  %s\n' "target" "pub/s" "proc/s" "drain_s" "p99_ms" "lost" "CPU ms per 1,000 messages (broker stack front+moto osmem sim)"
for step in $RATES; do
  # A step is RATE or RATE:MISSION_SHARE.
  rate=${step%%:*}; share=$MISSION_SHARE
  [ "$step" != "$rate" ] && share=${step#*:}
  before_broker=$(ticks "$MOSQ_PID"); before_stack=$(ticks "$STACK_PID")
  before_moto=$(ticks "$MOTO_PID"); before_osmem=$(ticks "$OSMEM_PID")
  report="$OUT/steady-$rate-share$share.json"
  start_sim=$(date +%s.%N)
  set +e
  /usr/bin/time -f '%U %S' -o "$RUN/sim.time" "$BIN/robofleet" sim --mode steady \
    --robots "$ROBOTS" --rate "$rate" --duration "$DURATION" --mission-share "$share" \
    --connect-rate 500 --commands 0 --verify --grace "$GRACE" --latency-every 20 \
    --prefix "bench-$rate-$$" --report "$report" \
    --broker "mqtt://127.0.0.1:$MQTT_PORT" --aws-endpoint-url "$ROBOFLEET_TEST_AWS_ENDPOINT" \
    --opensearch-url "$(field opensearch)" --missions-table "$(field table)" \
    --robots-alias "$(field alias)" --rejects-queue-url "$(field rejects)" >"$RUN/sim-$rate.log" 2>&1
  set -e
  python3 - "$report" "$RUN/sim.time" "$HZ" "$step" \
    "$(( $(ticks "$MOSQ_PID") - before_broker ))" "$(( $(ticks "$STACK_PID") - before_stack ))" \
    "$(( $(ticks "$MOTO_PID") - before_moto ))" "$(( $(ticks "$OSMEM_PID") - before_osmem ))" <<'PY'
import json, sys
report, timef, hz, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
broker, stack, moto, osmem = (int(x) / hz for x in sys.argv[5:9])
r = json.load(open(report))
u, s = (float(x) for x in open(timef).read().split()[-2:])
msgs = max(r["published"]["total"], 1) / 1000.0
per = lambda cpu: f"{cpu * 1000 / msgs:7.0f}"
p99 = r["latency_ms"]["p99"]
proc = r["rate"]["processed_per_s"]
drain = r["drained_after_s"]
print(f"{rate:>9} {r['rate']['published_per_s']:9.0f} {'-' if proc is None else round(proc):>9} "
      f"{'-' if drain is None else round(drain, 1):>8} {'-' if p99 is None else round(p99):>8} "
      f"{r['lost'] + r['lost_revs']:>8}  {per(broker)} {per(stack)} {per(moto)} {per(osmem)} {per(u + s)}"
      f"{'' if not r['problems'] else '   ' + '; '.join(r['problems'])}")
PY
  [ $? -eq 0 ] || echo "$step: no report (see $RUN/sim-$rate.log)"
done
echo
echo "reports: $OUT; logs: $RUN"
