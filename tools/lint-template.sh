#!/usr/bin/env bash
# Lints template.yaml and samconfig.toml four ways; each must be clean:
#   1. cfn-lint                      (CloudFormation schema and best-practice rules)
#   2. sam validate --lint           (SAM transform + cfn-lint on the transformed template)
#   3. checkov (its own venv)        (security policies; every skip is justified inline in the
#                                     resource's Metadata.checkov.skip with a comment)
#   4. tools/check_samconfig.py      (SAM CLI's own parser on every environment's
#                                     parameter_overrides, as `sam deploy --config-env` runs it)
# Offline: no credentials, a fixed region, telemetry and checkov's platform download off.
# Values inside SAM Events are NOT checked by any of these: the Rust tests in
# crates/fleet-template and tests/tests/template.rs check them.
#
# Usage: tools/lint-template.sh [template]       (default: template.yaml at the repo root)
# Env:   ROBOFLEET_VENV (default .venv), ROBOFLEET_CHECKOV_VENV (default .venv-checkov)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
template=${1:-$root/template.yaml}
venv=${ROBOFLEET_VENV:-$root/.venv}
checkov_venv=${ROBOFLEET_CHECKOV_VENV:-$root/.venv-checkov}

export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
# checkov: never call home (the guidelines download fails offline and only adds links).
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false

for tool in "$venv/bin/cfn-lint" "$venv/bin/sam" "$checkov_venv/bin/checkov"; do
  if [ ! -x "$tool" ]; then
    echo "lint-template: $tool is missing; create the venvs first (make venv)" >&2
    exit 2
  fi
done

failed=0
step() {
  local name=$1; shift
  local start=$SECONDS
  if out=$("$@" 2>&1); then
    printf 'ok    %-14s (%ss)\n' "$name" $((SECONDS - start))
  else
    printf 'FAIL  %-14s (%ss)\n%s\n' "$name" $((SECONDS - start)) "$out"
    failed=1
  fi
}

step samconfig "$venv/bin/python" "$root/tools/check_samconfig.py" "$root/samconfig.toml" "$template"
step cfn-lint "$venv/bin/cfn-lint" "$template"
# `sam validate` exits 0 even with some warnings; --lint makes cfn-lint findings fatal.
step sam-validate "$venv/bin/sam" validate --lint --region us-east-1 --template-file "$template"
# checkov prints results to stdout and exits non-zero on any failed check.
step checkov "$checkov_venv/bin/checkov" --file "$template" --framework cloudformation \
  --quiet --compact --skip-download

if [ "$failed" -ne 0 ]; then
  echo "lint-template: failed; fix the findings above (or, for checkov, add a justified skip)" >&2
  exit 1
fi
echo "lint-template: clean"
