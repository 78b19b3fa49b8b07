"""The catalog's contract: every scenario is complete, and every scenario fails when the stack is sabotaged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.scenario import Scenario, load_catalog, run_order

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog(ROOT / "scenarios")
# What each negative control must name in its failure.
EXPECTED = {"detection": "detection missing", "remediation": "remediation missing",
            "prevention": "prevention missing"}
TRACED = "gameday trace"  # the tracer's acceptance scenarios: they detect through a trace, not a notification
# Negative controls that must also say why they failed: the miner was only autoscaled, then left unisolated.
REASONS = {("cpu-spike-cryptomining", "detection"): ("meanwhile group", "scaled out"),
           ("cpu-spike-cryptomining", "remediation"): ("quarantined", "not only"),
           # The Config path's own remediation was missed, with the EventBridge path held: the trail stayed stopped.
           ("cloudtrail-disabled-config-path", "remediation"): ("StartTrailLogging", "IsLogging=False")}


def expected_failure(scenario: Scenario, mode: str) -> str:
    """How a negative control must fail: a trace scenario finds the sabotaged chain broken before it breaks a hop."""
    if scenario.feature == TRACED and mode == "detection":
        return "steady state violated"
    return EXPECTED[mode]


def test_catalog_is_not_empty():
    assert len(CATALOG) >= 4


def test_a_real_account_skips_what_only_an_emulated_one_allows_and_says_why():
    from harness.backends.aws import AwsBackend

    scenario = next(s for s, _, _ in CATALOG if s.id == "root-mfa-disabled")
    missing = [c.value for c in scenario.requires if c not in AwsBackend.capabilities]
    assert missing and "will not touch the root user's MFA" in " ".join(missing)


@pytest.mark.parametrize("scenario,path,doc", CATALOG, ids=[s.id for s, _, _ in CATALOG])
def test_every_scenario_is_complete(scenario: Scenario, path: Path, doc: str):
    assert path.stem == "test_" + scenario.id.replace("-", "_"), "file name must match the scenario id"
    assert doc, "a scenario file starts with a docstring saying what it breaks"
    assert scenario.mitre, "a MITRE ATT&CK mapping"
    assert scenario.detect_within > 0 and (scenario.remediate_within is None or scenario.remediate_within > 0)
    assert "detection" in scenario.negative_controls
    source = path.read_text()
    assert f"def test_{scenario.id.replace('-', '_')}(" in source
    for forbidden in ("import moto", "from moto", "import allure", "from allure", "harness.backends",
                      "harness.emulator", "time.sleep"):
        assert forbidden not in source, f"scenarios never use {forbidden}"


def run_scenarios(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "GAMEDAY_JOURNAL": str(tmp_path / "journal.jsonl"),
           "GAMEDAY_REPORTS_DIR": str(tmp_path / "reports")}
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A healthy run and both negative controls, at once (independent processes, each with its endpoint)."""
    runs = {}
    remediating = [str(path.relative_to(ROOT)) for s, path, _ in CATALOG if "remediation" in s.negative_controls]
    preventing = [str(path.relative_to(ROOT)) for s, path, _ in CATALOG if "prevention" in s.negative_controls]
    # Detection can only be declared missing once its SLA has passed: a faster clock keeps that run short.
    # The runs whose SLAs must hold share two cores with the rest of the suite: a slower clock gives the
    # emulator's own work (counted as AWS time) room; `pytest scenarios/` checks the default scale alone.
    options = {"detection": ["scenarios/", "--gameday-sabotage=detection", "--gameday-time-scale=600"],
               "remediation": [*remediating, "--gameday-sabotage=remediation", "--gameday-time-scale=30"],
               "prevention": [*preventing, "--gameday-sabotage=prevention", "--gameday-time-scale=30"],
               "healthy": ["scenarios/", "--gameday-time-scale=20"]}
    for mode, args in options.items():
        tmp = tmp_path_factory.mktemp(mode)
        runs[mode] = (tmp, run_scenarios(tmp, *args))
    results = {}
    for mode, (tmp, proc) in runs.items():
        out, _ = proc.communicate(timeout=600)
        summary = json.loads((tmp / "reports" / "summary.json").read_text())
        results[mode] = (proc.returncode, out, summary, tmp)
    return results


NEGATIVE = [(s, mode) for s, _, _ in CATALOG for mode in s.negative_controls]


@pytest.mark.parametrize("scenario,mode", NEGATIVE, ids=[f"{s.id}-{m}" for s, m in NEGATIVE])
def test_every_scenario_fails_its_negative_controls(runs, mode: str, scenario: Scenario):
    returncode, out, summary, _ = runs[mode]
    assert returncode == 1, out[-3000:]
    result = next(r for r in summary["results"] if r["scenario"] == scenario.id)
    assert result["verdict"] == "failed", result
    assert result["reason"].startswith(expected_failure(scenario, mode)), result["reason"]
    for needed in REASONS.get((scenario.id, mode), ()):
        assert needed in result["reason"], result["reason"]
    if scenario.feature == TRACED:  # and it names the hop the sabotage broke
        assert "alarm.targets_topic" in result["reason"] or "rules.enabled" in result["reason"], result["reason"]


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_negative_controls_leave_nothing_applied(runs, mode: str):
    *_, tmp = runs[mode]
    from harness.journal import Journal

    assert Journal(tmp / "journal.jsonl").open_entries() == []


@pytest.mark.parametrize("scenario", [s for s, _, _ in CATALOG], ids=[s.id for s, _, _ in CATALOG])
def test_every_scenario_passes_on_the_healthy_stack_within_its_slas(runs, scenario: Scenario):
    returncode, out, summary, _ = runs["healthy"]
    assert returncode == 0, out[-3000:]
    result = next(r for r in summary["results"] if r["scenario"] == scenario.id)
    assert result["verdict"] == "passed"
    sla = result["sla"]
    assert 0 <= sla["ttd_aws_s"] <= scenario.detect_within
    if scenario.remediate_within is not None:
        assert 0 <= sla["ttr_aws_s"] <= scenario.remediate_within
    assert sla["ttd_wall_s"] == pytest.approx(sla["ttd_aws_s"] / sla["time_scale"], abs=0.002)
    events = [e["event"] for e in result["timeline"]]
    assert ("refused" in events) == scenario.prevents  # the prevention check comes first
    events = [e for e in events if e not in ("refused", "confirmed by the endpoint's owner")]
    detected = "trace named the hop" if scenario.feature == TRACED else "notification received"
    assert events[:3] == ["steady state before", "injected", detected]
    assert events[-2:] == ["reverted", "steady state after"]
    assert ("restored" in events) == (scenario.remediate_within is not None)


def test_the_catalog_runs_in_run_order(runs):
    *_, summary, _ = runs["healthy"]
    collected = [s for s, path, _ in sorted(CATALOG, key=lambda item: item[1].name)]  # pytest's file order
    assert [r["scenario"] for r in summary["results"]] == [s.id for s in run_order(collected)]


def test_the_false_positive_guard_scales_out_and_watches_the_sink_for_its_window(runs):
    *_, summary, _ = runs["healthy"]
    result = next(r for r in summary["results"] if r["scenario"] == "cpu-spike-legitimate-load")
    events = [e["event"] for e in result["timeline"]]
    assert events.index("notification received") < events.index("observed") < events.index("no notification")


@pytest.mark.parametrize("scenario", [s for s, _, _ in CATALOG], ids=[s.id for s, _, _ in CATALOG])
def test_allure_results_are_evidence_an_auditor_can_read(runs, scenario: Scenario):
    *_, tmp = runs["healthy"]
    results = [json.loads(p.read_text()) for p in (tmp / "reports" / "allure-results").glob("*-result.json")]
    result = next(r for r in results if {"name": "scenario", "value": scenario.id} in r["labels"])
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {("epic", scenario.epic), ("feature", scenario.feature), ("story", scenario.story)} <= labels
    assert {("tag", t) for t in scenario.mitre} <= labels and any(n == "severity" for n, _ in labels)
    steps = [step["name"].split(":")[0] for step in result["steps"]]
    steps = [name for i, name in enumerate(steps) if i == 0 or name != steps[i - 1]]  # a remediation may take steps
    expected = ["steady state before", "inject", "detect", "remediate", "revert", "steady state after"]
    if scenario.remediate_within is None:
        expected.remove("remediate")
    if scenario.prevents:
        expected.insert(0, "prevent")
    assert steps == expected
    assert all(step["start"] <= step["stop"] for step in result["steps"])
    detect = next(step for step in result["steps"] if step["name"].startswith("detect"))
    evidence = "trace" if scenario.feature == TRACED else "matched notification"
    assert [a["name"] for a in detect["attachments"]] == [evidence]
    assert "timeline" in [a["name"] for a in result["attachments"]]
    params = {p["name"] for p in result["parameters"]}
    assert {"TTD (AWS s)", "TTD (wall s)"} <= params
    assert ({"TTR (AWS s)", "TTR (wall s)"} <= params) == (scenario.remediate_within is not None)
