#!/usr/bin/env bash
# The circuit breaker's chaos scenario with and without the breaker (docs/breaker.md):
# the OpenSearch cluster of a running local stack is frozen (SIGSTOP) while the fleet simulator
# publishes at a steady rate, then thawed. The same test as make test's
# (tests/tests/breaker_chaos.rs), run twice on stand-ins of its own (so the AWS front's count
# of OpenSearch requests is this scenario's alone): once as is, once with every trip rule off.
#
#   crates/fleet-breaker/bench/chaos.sh            # both runs; JSON in target/bench/breaker-chaos.json
#
# Reports, per run: time to open, invocations and OpenSearch requests during the outage, time
# to drain after the thaw, records lost (must be 0).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
RUN=$(mktemp -d)
OUT=$ROOT/target/bench
mkdir -p "$OUT"
cleanup() { "$ROOT/tools/standins.sh" stop "$RUN/standins" >/dev/null 2>&1 || true; rm -rf "$RUN"; }
trap cleanup EXIT INT TERM

echo "==> building the chaos test"
BIN=$(cd "$ROOT" && cargo test -p robofleet-e2e --test breaker_chaos --no-run 2>&1 \
  | sed -n 's/.*Executable tests\/breaker_chaos.rs (\(.*\))/\1/p' | tail -n1)
[ -n "$BIN" ] || { echo "could not build tests/tests/breaker_chaos.rs" >&2; exit 1; }
case "$BIN" in /*) ;; *) BIN=$ROOT/$BIN ;; esac

for mode in on off; do
  echo "==> breaker $mode: own stand-ins"
  "$ROOT/tools/standins.sh" stop "$RUN/standins" >/dev/null 2>&1 || true
  "$ROOT/tools/standins.sh" start "$RUN/standins" >/dev/null
  # shellcheck disable=SC1091
  . "$RUN/standins/env"
  echo "==> breaker $mode: freeze, thaw, verify (about a minute)"
  (cd "$ROOT/tests" && ROBOFLEET_CHAOS_BREAKER=$mode ROBOFLEET_CHAOS_REPORT="$RUN/$mode.json" \
    "$BIN" --exact a_frozen_cluster_opens_the_breaker_pauses_the_stream_and_loses_nothing \
    --nocapture >"$RUN/$mode.log" 2>&1) || { echo "the $mode run failed; its log follows" >&2; tail -n 40 "$RUN/$mode.log" >&2; exit 1; }
done

python3 - "$RUN/on.json" "$RUN/off.json" "$OUT/breaker-chaos.json" <<'PY'
import json, sys
on, off = (json.load(open(p)) for p in sys.argv[1:3])
rows = [
    ("time to open (s)", "time_to_open_s"),
    ("outage (s)", "outage_s"),
    ("invocations during the outage", "invocations_during_outage"),
    ("invocations while open", "invocations_while_open"),
    ("OpenSearch requests during the outage", "opensearch_requests_during_outage"),
    ("time to drain after the thaw (s)", "time_to_drain_s"),
    ("records lost", "records_lost"),
]
def fmt(v):
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))
print(f"\n{'':40} {'breaker on':>12} {'breaker off':>12}")
for label, key in rows:
    print(f"{label:40} {fmt(on.get(key)):>12} {fmt(off.get(key)):>12}")
json.dump({"on": on, "off": off}, open(sys.argv[3], "w"), indent=2)
print(f"\nreport: {sys.argv[3]}")
PY
