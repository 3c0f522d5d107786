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

echo "==> cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee "$run_dir/cargo-test.log"
status=${PIPESTATUS[0]}

echo "==> the moto launcher's shard methods against moto's own (tools/test_moto_server.py)"
"$ROBOFLEET_VENV/bin/python" "$root/tools/test_moto_server.py" 2>&1 | tee "$run_dir/moto-patch.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
py_passed=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' "$run_dir/moto-patch.log")
py_failed=$(grep -c -E '^(FAIL|ERROR):' "$run_dir/moto-patch.log" || true)

echo "==> template lints"
lint_status=0
"$root/tools/lint-template.sh" || lint_status=$?

# Only libtest's summary lines count: `test result: ok. 12 passed; 0 failed; ...`.
passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$run_dir/cargo-test.log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$run_dir/cargo-test.log" | awk '{s+=$6} END {print s+0}')
passed=$((passed + ${py_passed:-0} - ${py_failed:-0})) failed=$((failed + ${py_failed:-0}))
echo
echo "template lints: $([ $lint_status = 0 ] && echo clean || echo FAILED); took $((SECONDS - started))s"
echo "tests: $passed passed, $failed failed"
[ "$status" = 0 ] && [ "$lint_status" = 0 ] && [ "$fmt_status" = 0 ]
