"""The README's quick start is exactly two commands, and they are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from harness.scenario import load_catalog, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quick_start_is_two_commands_one_for_the_game_day_one_for_the_tests():
    commands = quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert commands[0].endswith("pytest scenarios/")
    assert "'.[test]'" in commands[1]


def test_ci_runs_the_readme_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in quick_start_commands():
        assert command in ci


def test_readme_scenario_table_is_the_generated_one():
    assert markdown_table(load_catalog(ROOT / "scenarios")) in (ROOT / "README.md").read_text()
