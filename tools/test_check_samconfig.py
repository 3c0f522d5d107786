#!/usr/bin/env python3
"""tools/check_samconfig.py: SAM CLI's parser refuses what `sam deploy` refuses (defect 1)."""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_samconfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


def config(overrides: str) -> Path:
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(f"version = 0.1\n[dev.deploy.parameters]\nparameter_overrides = [{overrides}]\n")
    f.close()
    return Path(f.name)


class CheckSamconfig(unittest.TestCase):
    def test_the_repository_samconfig_parses(self):
        self.assertEqual(check_samconfig.check(ROOT / "samconfig.toml", TEMPLATE), [])

    def test_an_empty_unquoted_value_is_refused_as_sam_deploy_refuses_it(self):
        findings = check_samconfig.check(config('"RuleSuffix="'), TEMPLATE)
        self.assertEqual(len(findings), 1, findings)
        self.assertIn("RuleSuffix= is not a valid format", findings[0])

    def test_a_quoted_empty_value_is_accepted(self):
        self.assertEqual(check_samconfig.check(config("'RuleSuffix=\"\"'"), TEMPLATE), [])

    def test_an_unknown_parameter_is_named(self):
        findings = check_samconfig.check(config('"RuleSufix=_dev"'), TEMPLATE)
        self.assertEqual(findings, [f"{findings[0].split(' ')[0]} [dev]: RuleSufix is not a parameter of template.yaml"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
