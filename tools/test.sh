#!/usr/bin/env bash
# `make test`: starts moto + osmem on free ports for the whole run, runs every Rust test against
# them, then the template lints; stops the stand-ins on any exit, failure included.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export ROBOFLEET_VENV=${ROBOFLEET_VENV:-$root/.venv}
export PATH="$ROBOFLEET_VENV/bin:$PATH" SAM_CLI_TELEMETRY=0
run_dir=$root/.run/test-$$
mkdir -p "$run_dir"
cleanup() {
  "$root/tools/standins.sh" stop "$run_dir" || true
  rm -rf "$run_dir"
}
trap cleanup EXIT INT TERM

started=$SECONDS
"$root/tools/standins.sh" start "$run_dir"
# shellcheck disable=SC1091
. "$run_dir/env"

echo "==> cargo fmt --check"
fmt_status=0
cargo fmt --all -- --check >/dev/null || { fmt_status=1; echo "cargo fmt --check: files need formatting (run cargo fmt --all)"; }

echo "==> cargo build --workspace --bins, then cargo test --workspace"
# Failures are counted and reported at the end, not fatal here (set -e would stop the run).
set +e
# The end-to-end tests run every function's binary. `cargo test` builds a package's binaries
# only when that package has integration tests of its own, so build them all first.
cargo build --workspace --bins 2>&1 | tee "$run_dir/cargo-test.log"
status=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then
  cargo test --workspace --no-fail-fast 2>&1 | tee -a "$run_dir/cargo-test.log"
  status=${PIPESTATUS[0]}
fi
set -e

echo "==> the tools' own tests (tools/test_*.py)"
py_passed=0 py_failed=0
for t in "$root"/tools/test_*.py; do
  log=$run_dir/$(basename "$t" .py).log
  if "$ROBOFLEET_VENV/bin/python" "$t" >"$log" 2>&1; then
    echo "ok    $(basename "$t") ($(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' "$log") tests)"
  else
    status=1
    echo "FAIL  $(basename "$t")"; cat "$log"
  fi
  ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' "$log")
  bad=$(grep -c -E '^(FAIL|ERROR):' "$log" || true)
  py_passed=$((py_passed + ${ran:-0} - ${bad:-0})); py_failed=$((py_failed + ${bad:-0}))
done

echo "==> template lints"
lint_status=0
"$root/tools/lint-template.sh" || lint_status=$?
echo "==> scripts run on bash 3.2 (tools/lint_bash32.py)"
"$ROBOFLEET_VENV/bin/python" "$root/tools/lint_bash32.py" || lint_status=1

# Only libtest's summary lines count: `test result: ok. 12 passed; 0 failed; ...`.
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$run_dir/cargo-test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$run_dir/cargo-test.log" | awk '{s+=$6} END {print s+0}')
passed=$((passed + py_passed)) failed=$((failed + py_failed))
echo
echo "lints (template, samconfig, bash 3.2): $([ $lint_status = 0 ] && echo clean || echo FAILED); took $((SECONDS - started))s"
echo "tests: $passed passed, $failed failed"
[ "$status" = 0 ] && [ "$lint_status" = 0 ] && [ "$fmt_status" = 0 ]
