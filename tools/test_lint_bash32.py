#!/usr/bin/env python3
"""tools/lint_bash32.py flags each bash-4 feature, and accepts the bash-3.2 ways (defect 14)."""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lint_bash32  # noqa: E402


def findings(body: str) -> list[str]:
    f = tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False)
    f.write("#!/usr/bin/env bash\nset -euo pipefail\n" + body + "\n")
    f.close()
    return lint_bash32.lint(Path(f.name))


class LintBash32(unittest.TestCase):
    def test_each_bash4_feature_is_flagged(self):
        cases = {
            "declare -A seen=()": "associative array",
            "local -A m": "associative array",
            "mapfile -t lines < f": "mapfile",
            "cat f | readarray x": "mapfile",
            'echo "${name,,}"': "case conversion",
            'echo "${name^^}"': "case conversion",
            "cmd |& tee log": "|&",
            "cmd &>> log": "&>>",
            "coproc worker { cat; }": "coproc",
            "[[ -v HOME ]] && echo": "-v name",
            "wait -n": "wait -n",
            'echo "${a[-1]}"': "negative array subscript",
            "echo $EPOCHSECONDS": "EPOCHSECONDS",
            'curl "${token[@]}" x': "empty array",
        }
        for line, why in cases.items():
            with self.subTest(line=line):
                found = findings(line)
                self.assertEqual(len(found), 1, found)
                self.assertIn(why, found[0])

    def test_bash32_forms_and_comments_pass(self):
        ok = "\n".join([
            'curl ${token[@]+"${token[@]}"} x',
            'for f in ${files[@]+"${files[@]}"}; do echo "$f"; done',
            'echo "$@" "${#arr[@]}"',
            "lower=$(printf '%s' \"$x\" | tr '[:upper:]' '[:lower:]')",
            "# a comment may say mapfile or declare -A",
            "cat <<'PY'",
            "d = {}  # declare -A inside a heredoc is not bash",
            "PY",
        ])
        self.assertEqual(findings(ok), [])

    def test_the_repository_scripts_are_clean(self):
        root = Path(__file__).resolve().parent.parent
        found = [f for p in lint_bash32.default_files(root) for f in lint_bash32.lint(p)]
        self.assertEqual(found, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
