#!/usr/bin/env python3
"""Flags bash features newer than bash 3.2, the /bin/bash of macOS, in the project's scripts.

Operators run tools/*.sh on their laptops; there is no bash 3.2 here to run them with, so this
lint looks for what 3.2 lacks or does differently:

- associative arrays (`declare -A`, `local -A`, `typeset -A`) and namerefs (`-n`): bash 4.0/4.3;
- `mapfile` / `readarray`, `coproc`, `|&`, `&>>`, `;&` / `;;&` in `case`: bash 4.0;
- case conversion `${x,,}` `${x^^}` `${x,}` `${x^}`, and `${x@Q}`-style transformations: 4.0/4.4;
- `[[ -v name ]]`, `wait -n`, negative array subscripts `${a[-1]}`: 4.2/4.3;
- `$EPOCHSECONDS` / `$EPOCHREALTIME`: bash 5;
- `"${arr[@]}"` of an array that may be empty, under `set -u`: bash before 4.4 stops with
  "unbound variable". Write `${arr[@]+"${arr[@]}"}` (expands to nothing when empty).

Usage: tools/lint_bash32.py [FILE...]   (default: every tracked *.sh, and .ci/run)
Exit status: 0 clean, 1 findings (file:line: what, and the bash-3.2 way).
"""

import re
import subprocess
import sys
from pathlib import Path

RULES = [
    (re.compile(r"\b(declare|local|typeset|readonly)\s+(-[a-zA-Z]*A[a-zA-Z]*)\b"),
     "associative array (bash 4.0): use two plain arrays or a case statement"),
    (re.compile(r"\b(declare|local|typeset)\s+-[a-zA-Z]*n[a-zA-Z]*\s"),
     "nameref (bash 4.3): pass the name and use eval carefully, or restructure"),
    (re.compile(r"(^|[;&|({\s])(mapfile|readarray)\b"),
     "mapfile/readarray (bash 4.0): use `while IFS= read -r line; do arr+=(\"$line\"); done`"),
    (re.compile(r"(^|[;&|\s])coproc\b"), "coproc (bash 4.0)"),
    (re.compile(r"\|&"), "`|&` (bash 4.0): use `2>&1 |`"),
    (re.compile(r"&>>"), "`&>>` (bash 4.0): use `>>file 2>&1`"),
    (re.compile(r";;&|(?<!;);&"), "case fall-through `;&` / `;;&` (bash 4.0)"),
    (re.compile(r"\$\{[#!]?[A-Za-z_][A-Za-z_0-9]*(\[[^]]*\])?(,,|\^\^|,|\^)[^}]*\}"),
     "case conversion `${x,,}` / `${x^^}` (bash 4.0): use `tr '[:upper:]' '[:lower:]'`"),
    (re.compile(r"\$\{[A-Za-z_][A-Za-z_0-9]*(\[[^]]*\])?@[QEPAKaUuLk]\}"),
     "parameter transformation `${x@Q}` (bash 4.4)"),
    (re.compile(r"\[\[\s+-v\s"), "`[[ -v name ]]` (bash 4.2): use `[ -n \"${name+set}\" ]`"),
    (re.compile(r"\bwait\s+-n\b"), "`wait -n` (bash 4.3)"),
    (re.compile(r"\$\{[A-Za-z_][A-Za-z_0-9]*\[-[0-9]+\]\}"),
     "negative array subscript (bash 4.3): use `${a[${#a[@]}-1]}`"),
    (re.compile(r"\bEPOCH(SECONDS|REALTIME)\b"), "$EPOCHSECONDS / $EPOCHREALTIME (bash 5): use `date +%s`"),
    (re.compile(r"\bshopt\s+-s\s+(globstar|lastpipe|autocd|dirspell|checkjobs)\b"),
     "shopt option newer than bash 3.2"),
]

# "${arr[@]}" (or ${arr[*]}) outside the guarded form ${arr[@]+"${arr[@]}"}.
ARRAY_EXPANSION = re.compile(r"\$\{([A-Za-z_][A-Za-z_0-9]*)\[[@*]\]\}")
GUARDED_FORM = re.compile(r'\$\{([A-Za-z_][A-Za-z_0-9]*)\[[@*]\]\+"\$\{\1\[[@*]\]\}"\}')


def strip_comment(line: str) -> str:
    """The line without a trailing comment (a `#` that starts a word, outside quotes)."""
    out, quote = [], None
    prev = " "
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and prev in " \t;":
            break
        out.append(ch)
        prev = ch
    return "".join(out)


def heredoc_end(line: str):
    m = re.search(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z_0-9]*)\1", line)
    return m.group(2) if m else None


def lint(path: Path) -> list[str]:
    findings = []
    text = path.read_text()
    uses_nounset = re.search(r"^\s*set\s+-[a-zA-Z]*u", text, re.M) is not None
    in_heredoc = None
    for n, raw in enumerate(text.splitlines(), 1):
        if in_heredoc:
            if raw.strip() == in_heredoc:
                in_heredoc = None
            continue
        if n == 1 and raw.startswith("#!"):
            continue
        line = strip_comment(raw)
        in_heredoc = heredoc_end(line)
        for pattern, why in RULES:
            if pattern.search(line):
                findings.append(f"{path}:{n}: {why}")
        if uses_nounset:
            unguarded = GUARDED_FORM.sub("", line)
            for m in ARRAY_EXPANSION.finditer(unguarded):
                name = m.group(1)
                findings.append(
                    f"{path}:{n}: `${{{name}[@]}}` under set -u fails on an empty array before bash 4.4: "
                    f"write ${{{name}[@]+\"${{{name}[@]}}\"}}"
                )
    return findings


def default_files(root: Path) -> list[Path]:
    tracked = subprocess.run(
        ["git", "ls-files", "*.sh", ".ci/run"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    return [root / f for f in tracked]


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    files = [Path(a) for a in argv[1:]] or default_files(root)
    findings = [f for path in files for f in lint(path)]
    for f in findings:
        print(f)
    if findings:
        print(f"lint-bash32: {len(findings)} finding(s) in {len(files)} script(s)", file=sys.stderr)
        return 1
    print(f"lint-bash32: {len(files)} script(s) use only bash 3.2 features")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
