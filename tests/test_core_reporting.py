"""Tests for Allure reporting: inner pytest runs write results we inspect."""
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import reporting
from harness.errors import ConfigError

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

META = SimpleNamespace(
    id="cloudtrail-stop-logging", title="Stop the trail", epic="Defense evasion",
    feature="CloudTrail", story="StopLogging", severity="critical", mitre=["T1562.008", "T1078"],
)

PASSING = '''
from types import SimpleNamespace

from harness import reporting

META = SimpleNamespace(
    id="cloudtrail-stop-logging", title="Stop the trail", epic="Defense evasion",
    feature="CloudTrail", story="StopLogging", severity="critical", mitre=["T1562.008", "T1078"],
)


def test_scenario():
    reporting.label_scenario(META, backend="embedded", latency_profile="instant")
    with reporting.phase("inject: cloudtrail.stop_logging"):
        reporting.attach_json("fault", {"trail": "gameday-trail"})
    reporting.attach_text("sink message", "StopLogging seen")
    reporting.parameter("region", "us-east-1")
'''

FAILING = '''
from harness import reporting


def test_detection():
    with reporting.phase("detect: StopLogging"):
        assert False, "detection missing: nothing reached the sink"
'''


def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str, outcome: str) -> dict:
    """Run source as a test file in a fresh pytest with allure; return its single result."""
    # A subprocess keeps the inner allure listener away from any outer --alluredir run.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_inner=source)
    results_dir = pytester.path / "allure-results"
    run = pytester.runpytest_subprocess("-p", "no:gameday", "-p", "no:cacheprovider", f"--alluredir={results_dir}")
    run.assert_outcomes(**{outcome: 1})
    [result_file] = results_dir.glob("*-result.json")
    result = json.loads(result_file.read_text())
    result["_dir"] = results_dir
    return result


def test_allure_result_holds_labels_step_attachment_and_parameter(pytester, monkeypatch):
    result = run_inner(pytester, monkeypatch, PASSING, "passed")
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {
        ("scenario", "cloudtrail-stop-logging"), ("severity", "blocker"), ("epic", "Defense evasion"),
        ("feature", "CloudTrail"), ("story", "StopLogging"), ("tag", "T1562.008"), ("tag", "T1078"),
        ("backend", "embedded"), ("latency_profile", "instant"),
    } <= labels
    assert result["name"] == "Stop the trail"
    links = {link["url"] for link in result["links"]}
    assert links == {
        "https://attack.mitre.org/techniques/T1562/008/", "https://attack.mitre.org/techniques/T1078/",
    }
    [step] = result["steps"]
    assert step["name"] == "inject: cloudtrail.stop_logging" and step["status"] == "passed"
    [fault] = step["attachments"]
    assert fault["name"] == "fault" and fault["type"] == "application/json"
    assert json.loads((result["_dir"] / fault["source"]).read_text()) == {"trail": "gameday-trail"}
    [text] = result["attachments"]
    assert (result["_dir"] / text["source"]).read_text() == "StopLogging seen"
    parameters = {p["name"]: p["value"] for p in result["parameters"]}
    assert parameters == {"backend": "'embedded'", "latency_profile": "'instant'", "region": "'us-east-1'"}


def test_a_failing_phase_fails_its_step(pytester, monkeypatch):
    result = run_inner(pytester, monkeypatch, FAILING, "failed")
    [step] = result["steps"]
    assert result["status"] == "failed"
    assert (step["name"], step["status"]) == ("detect: StopLogging", "failed")
    assert "detection missing" in result["statusDetails"]["message"]


def test_phase_records_the_timeline_outside_allure():
    reporting.reset_timeline()
    with reporting.phase("inject: cloudtrail.stop_logging"):
        pass
    with pytest.raises(RuntimeError), reporting.phase("revert: cloudtrail.stop_logging"):
        raise RuntimeError("backend down")
    with pytest.raises(AssertionError), reporting.phase("detect: StopLogging"):
        raise AssertionError("detection missing")
    entries = reporting.timeline()
    assert [(e["phase"], e["outcome"]) for e in entries] == [
        ("inject: cloudtrail.stop_logging", "passed"),
        ("revert: cloudtrail.stop_logging", "broken"),
        ("detect: StopLogging", "failed"),
    ]
    assert all(e["start"] <= e["stop"] for e in entries)
    assert entries[0]["stop"] <= entries[1]["start"]
    reporting.reset_timeline()
    assert reporting.timeline() == []


def test_timeline_returns_copies():
    reporting.reset_timeline()
    with reporting.phase("steady-state: before"):
        pass
    reporting.timeline()[0]["phase"] = "tampered"
    assert reporting.timeline()[0]["phase"] == "steady-state: before"


def test_helpers_are_harmless_outside_an_allure_run():
    reporting.label_scenario(META, backend="aws", latency_profile="aws")
    reporting.attach_json("snapshot", {"when": object()})
    reporting.attach_text("note", "text")
    reporting.parameter("region", "eu-west-1")
    assert reporting.SEVERITY_LEVELS["critical"].value == "blocker"


@pytest.mark.parametrize(
    ("severity", "level"), [("critical", "blocker"), ("high", "critical"), ("medium", "normal"), ("low", "minor")],
)
def test_severity_mapping(severity, level):
    assert reporting.SEVERITY_LEVELS[severity].value == level


def test_unknown_severity_is_a_config_error():
    with pytest.raises(ConfigError, match="severity 'urgent'"):
        reporting.label_scenario(SimpleNamespace(**{**vars(META), "severity": "urgent"}))


@pytest.mark.parametrize(
    ("technique", "url"),
    [
        ("T1562.008", "https://attack.mitre.org/techniques/T1562/008/"),
        ("T1078", "https://attack.mitre.org/techniques/T1078/"),
    ],
)
def test_mitre_url(technique, url):
    assert reporting.mitre_url(technique) == url


@pytest.mark.parametrize("technique", ["1562.008", "T1562/008", "T15", "t1078"])
def test_malformed_mitre_id_is_a_config_error(technique):
    with pytest.raises(ConfigError, match="T1234"):
        reporting.mitre_url(technique)
