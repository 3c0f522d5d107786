#!/usr/bin/env bash
# Fuzzes everything that reads bytes a robot sent (fuzz/fuzz_targets, docs/fuzzing.md) with
# cargo-fuzz and libFuzzer on the nightly toolchain, and reports inputs run and crashes.
#
#   tools/fuzz.sh                               every target, 2,500,000 inputs each
#   RUNS=100000 tools/fuzz.sh mission shadow    some targets, fewer inputs
#   REPORT=target/fuzz-report.json tools/fuzz.sh
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); cargo-fuzz is built once
# into .tools/ (pinned). The corpus starts from the sample events in events/ and grows in
# .run/fuzz/corpus/<target>; a crash leaves its input in .run/fuzz/artifacts/<target>/ and
# fails the run: reproduce with
#   cargo +nightly fuzz run --fuzz-dir fuzz <target> .run/fuzz/artifacts/<target>/crash-...
# Builds are optimised with debug assertions on (an overflow panics instead of wrapping) and no
# sanitizer: the workspace forbids `unsafe`, so AddressSanitizer would only slow the search.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
runs=${RUNS:-2500000}
report=${REPORT:-target/fuzz/report.json}
all_targets="mission shadow presence kinesis_record"
targets=${*:-$all_targets}
fuzz_version=0.13.2
work=.run/fuzz

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 2
fi
if ! .tools/bin/cargo-fuzz --version 2>/dev/null | grep -q "$fuzz_version"; then
  echo "==> building cargo-fuzz $fuzz_version into .tools/ (once)"
  cargo install cargo-fuzz --version "$fuzz_version" --locked --root .tools
fi
export PATH="$root/.tools/bin:$PATH"

echo "==> seeding the corpus from events/"
python3 - "$work/corpus" <<'PY'
import base64, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for fn, target in (("mission-ingest", "mission"), ("shadow-indexer", "shadow")):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    for path in sorted(pathlib.Path("events", fn).glob("*.json")):
        event = json.loads(path.read_text())
        for i, r in enumerate(event.get("Records", [])):
            data = r.get("kinesis", {}).get("data")
            if isinstance(data, str):
                try:
                    (d / f"{path.stem}-{i}").write_bytes(b"\0" + base64.b64decode(data))
                except ValueError:
                    pass
        (out / "kinesis_record").mkdir(parents=True, exist_ok=True)
        (out / "kinesis_record" / f"{fn}-{path.stem}").write_bytes(path.read_bytes())
(out / "presence").mkdir(parents=True, exist_ok=True)
PY

mkdir -p "$(dirname "$report")"
results=()
failed=0
total_runs=0
started=$SECONDS
for t in $targets; do
  mkdir -p "$work/artifacts/$t"
  log=$work/$t.log
  echo "==> $t: $runs inputs"
  t0=$SECONDS
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer none --debug-assertions "$t" \
    "$work/corpus/$t" -- -runs="$runs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1 || status=$?
  secs=$((SECONDS - t0))
  executed=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n1)
  crashes=$(find "$work/artifacts/$t" -type f | wc -l | tr -d ' ')
  corpus=$(find "$work/corpus/$t" -type f | wc -l | tr -d ' ')
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 | awk '{print $2}' || true)
  if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
    failed=1
    echo "FAIL  $t: exit $status, $crashes crash input(s) in $work/artifacts/$t; the log is $log" >&2
    grep -E 'panicked|ERROR|SUMMARY' "$log" | head -n 5 >&2 || true
  fi
  executed=${executed:-0}
  total_runs=$((total_runs + executed))
  printf 'ok    %-15s %10s inputs in %4ss, coverage %s edges, corpus %s, crashes %s\n' \
    "$t" "$executed" "$secs" "${cov:-?}" "$corpus" "$crashes"
  results+=("{\"target\":\"$t\",\"inputs\":$executed,\"seconds\":$secs,\"coverage_edges\":${cov:-0},\"corpus\":$corpus,\"crashes\":$crashes,\"exit_status\":$status}")
done

joined=$(IFS=,; echo "${results[*]+"${results[*]}"}")
cat >"$report" <<JSON
{"toolchain":"$(rustc +nightly --version)","cargo_fuzz":"$fuzz_version","runs_per_target":$runs,"total_inputs":$total_runs,"seconds":$((SECONDS - started)),"targets":[$joined]}
JSON
echo
echo "fuzz: $total_runs inputs over $(echo "$targets" | wc -w | tr -d ' ') target(s) in $((SECONDS - started))s; $([ $failed = 0 ] && echo "no crashes" || echo "CRASHES, see above"); report $report"
exit "$failed"
