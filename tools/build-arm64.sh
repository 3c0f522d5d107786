#!/usr/bin/env bash
# Builds every function of template.yaml as an arm64 (Graviton) `bootstrap`, offline.
#
#   tools/build-arm64.sh          sam build --beta-features (BuildMethod rust-cargolambda):
#                                 one `cargo lambda build --release --arm64 --bin <Binary>` per
#                                 function, output in .aws-sam/build/<Function>/bootstrap, and
#                                 .aws-sam/build/template.yaml ready for `sam deploy`.
#   tools/build-arm64.sh --cargo  cargo lambda build only (no SAM): every binary named in the
#                                 template, output in target/lambda/<binary>/bootstrap.
#
# Needs: the project venv (cargo-lambda, sam, ziglang: zig is found through `python3 -m ziglang`
# when .venv/bin is first on PATH), and `rustup target add aarch64-unknown-linux-gnu`.
# A clean release build takes minutes on 2 cores; a warm one takes seconds.
# Ends with a table of binaries, sizes and ELF machine, and fails if one is not aarch64.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${ROBOFLEET_VENV:-$root/.venv}
mode=sam
[ "${1:-}" = "--cargo" ] && mode=cargo

export PATH="$venv/bin:$PATH" SAM_CLI_TELEMETRY=0
cd "$root"

if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  echo "build-arm64: run 'rustup target add aarch64-unknown-linux-gnu' first" >&2
  exit 2
fi

# Function logical id and binary, from the template (Metadata.BuildProperties.Binary).
functions=()
while IFS= read -r line; do functions+=("$line"); done < <(python3 - "$root/template.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
# Resources are two-space indented logical ids; a Binary line belongs to the last one seen.
current = None
for line in text.splitlines():
    m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
    if m:
        current = m.group(1)
    m = re.match(r"^\s+Binary:\s*([A-Za-z0-9_-]+)\s*$", line)
    if m and current:
        print(f"{current} {m.group(1)}")
PY
)
if [ "${#functions[@]}" -eq 0 ]; then
  echo "build-arm64: no BuildProperties.Binary found in template.yaml" >&2
  exit 2
fi

start=$SECONDS
if [ "$mode" = sam ]; then
  sam build --beta-features --template-file template.yaml
else
  bins=()
  for f in ${functions[@]+"${functions[@]}"}; do bins+=(--bin "${f#* }"); done
  cargo lambda build --release --arm64 ${bins[@]+"${bins[@]}"}
fi
elapsed=$((SECONDS - start))

# ELF e_machine at offset 18: 0xB7 = aarch64.
machine() {
  python3 -c 'import sys,struct; d=open(sys.argv[1],"rb").read(20); print({0xb7:"aarch64",0x3e:"x86_64"}.get(struct.unpack("<H",d[18:20])[0],"other") if d[:4]==b"\x7fELF" else "not-elf")' "$1"
}

status=0
printf '\n%-24s %-16s %10s  %s\n' function binary bytes machine
for f in ${functions[@]+"${functions[@]}"}; do
  logical=${f% *}; bin=${f#* }
  if [ "$mode" = sam ]; then path=.aws-sam/build/$logical/bootstrap; else path=target/lambda/$bin/bootstrap; fi
  if [ ! -f "$path" ]; then
    printf '%-24s %-16s %10s  %s\n' "$logical" "$bin" - "missing: $path"; status=1; continue
  fi
  arch=$(machine "$path")
  printf '%-24s %-16s %10s  %s\n' "$logical" "$bin" "$(stat -c %s "$path")" "$arch"
  [ "$arch" = aarch64 ] || status=1
done
echo "build-arm64: $mode build took ${elapsed}s"
exit $status
