#!/usr/bin/env python3
"""Checks samconfig.toml with SAM CLI's own code, offline, in about a second.

For every environment with `deploy.parameters.parameter_overrides`, runs SAM CLI's parser
(samcli.cli.types.CfnParameterOverridesType, what `sam deploy --config-env ENV` applies to the
value) and checks that each key is a parameter of the template. SAM CLI refuses an empty
unquoted value such as `RuleSuffix=` before it sends anything; write `RuleSuffix=""`.

Usage: tools/check_samconfig.py [samconfig.toml] [template.yaml]
Exit status: 0 clean, 1 findings (printed one per line).
"""

import sys
import tomllib
from pathlib import Path

import click
from samcli.cli.types import CfnParameterOverridesType
from samcli.yamlhelper import yaml_parse


def template_parameters(template: Path) -> set[str]:
    doc = yaml_parse(template.read_text())
    return set((doc.get("Parameters") or {}).keys())


def check(config: Path, template: Path) -> list[str]:
    findings = []
    known = template_parameters(template)
    doc = tomllib.loads(config.read_text())
    checked = 0
    for env, table in doc.items():
        if not isinstance(table, dict):  # version = 0.1
            continue
        overrides = ((table.get("deploy") or {}).get("parameters") or {}).get("parameter_overrides")
        if overrides is None:
            continue
        checked += 1
        try:
            parsed = CfnParameterOverridesType().convert(overrides, None, None)
        except click.BadParameter as e:
            findings.append(f"{config.name} [{env}]: SAM CLI refuses parameter_overrides: {e.message}")
            continue
        for key in parsed:
            if key not in known:
                findings.append(f"{config.name} [{env}]: {key} is not a parameter of {template.name}")
    if checked == 0:
        findings.append(f"{config.name}: no environment has deploy parameter_overrides")
    return findings


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    config = Path(argv[1]) if len(argv) > 1 else root / "samconfig.toml"
    template = Path(argv[2]) if len(argv) > 2 else root / "template.yaml"
    findings = check(config, template)
    for f in findings:
        print(f)
    if not findings:
        print(f"{config.name}: every environment's parameter_overrides parse as SAM CLI parses them")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
