#!/usr/bin/env bash
# `make bench`: the function benchmarks.
#   1. criterion, per function: CPU per record of decode + validate + request building
#      (target ≤ 5 µs/record), batches of 100 and 1,000;
#   2. lambda-bench, per function: the release binary against a local Lambda Runtime API and the
#      stand-ins: init (target ≤ 20 ms), CPU per record with the SDK call (≤ 290 µs), peak RSS
#      (≤ 24 MiB). JSON reports in target/bench/.
#   3. lambda-bench --init-only for the fleet API's function: 20 cold starts, process start to
#      the first poll of the runtime API (target ≤ 30 ms at p99).
# Results depend on the machine and its load: run on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export ROBOFLEET_VENV=${ROBOFLEET_VENV:-$root/.venv}
run_dir=$root/.run/bench-$$
trap '"$root/tools/standins.sh" stop "$run_dir"; rm -rf "$run_dir"' EXIT INT TERM
mkdir -p target/bench

echo "==> release binaries"
cargo build --release -p lambda-bench
# The functions of the registry (crates/fleet-local/src/functions.rs), one per line.
functions=$(target/release/lambda-bench --list)
init_functions=$(target/release/lambda-bench --list-init)
packages=()
for fn in $functions; do packages+=(-p "$fn"); done
init_packages=()
for fn in $init_functions; do init_packages+=(-p "$fn"); done
cargo build --release ${packages[@]+"${packages[@]}"} ${init_packages[@]+"${init_packages[@]}"}

echo "==> criterion benches (decode + validate + request building)"
cargo bench ${packages[@]+"${packages[@]}"} --bench decode -- --warm-up-time 2 --measurement-time 5 \
  2>&1 | tee target/bench/criterion.txt | grep -E '^[a-z]|time:|thrpt:'

# The AWS front (moto inside) serves HTTP keep-alive (waitress), as DynamoDB does.
"$root/tools/standins.sh" start "$run_dir"
# shellcheck disable=SC1091
. "$run_dir/env"
for fn in $functions; do
  echo "==> lambda-bench $fn"
  target/release/lambda-bench --function "$fn" --batches "${BENCH_BATCHES:-5}" \
    --report "target/bench/lambda-$fn.json" --log "target/bench/lambda-$fn.log"
done
for fn in $init_functions; do
  echo "==> lambda-bench --init-only $fn"
  target/release/lambda-bench --function "$fn" --init-only --runs "${BENCH_COLD_STARTS:-20}" \
    --report "target/bench/lambda-$fn-init.json" --log "target/bench/lambda-$fn.log"
done
echo "reports: target/bench/criterion.txt, target/bench/lambda-*.json"
