# Source this during development: starts osmem and the AWS front (moto inside) once (reused while
# alive) and exports ROBOFLEET_TEST_AWS_ENDPOINT, ROBOFLEET_TEST_OPENSEARCH_URL,
# ROBOFLEET_TEST_OSMEM_URL and ROBOFLEET_VENV (tools/standins.sh).
#   source tools/dev-env.sh
_rf_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_rf_dir=$_rf_root/.run/dev-standins
if [ -f "$_rf_dir/env" ] && kill -0 "$(cat "$_rf_dir/front.pid" 2>/dev/null)" 2>/dev/null \
   && kill -0 "$(cat "$_rf_dir/osmem.pid" 2>/dev/null)" 2>/dev/null; then
  :
else
  "$_rf_root/tools/standins.sh" stop "$_rf_dir" >/dev/null 2>&1
  "$_rf_root/tools/standins.sh" start "$_rf_dir"
fi
. "$_rf_dir/env"
export PATH="$_rf_root/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
unset _rf_root _rf_dir
