"""Tests for the error vocabulary and verdict mapping."""
import pickle

import pytest

from harness.errors import (
    AccountNotAllowed,
    ConfigError,
    DetectionMissing,
    DetectionSlaBreached,
    EndpointUnreachable,
    GamedayError,
    HarnessBroken,
    RemediationMissing,
    RemediationSlaBreached,
    ScenarioFailed,
    SteadyStateViolated,
    UnknownScenario,
    verdict_of,
)

FAILURES = [
    (DetectionMissing("StopLogging of trail t", 60, 1.0), "detection missing"),
    (DetectionSlaBreached("StopLogging of trail t", 75.5, 60), "detection late"),
    (RemediationMissing("logging of trail t", 120, 2.0), "remediation missing"),
    (RemediationSlaBreached("logging of trail t", 130, 120), "remediation late"),
    (SteadyStateViolated("trail t is not logging"), "steady state violated"),
]


def test_detection_missing_message_names_what_and_both_limits():
    exc = DetectionMissing("StopLogging of trail gameday-trail", 60, 1.0)
    assert str(exc) == (
        "detection missing: no notification about StopLogging of trail gameday-trail "
        "reached the sink within 60 s (AWS time; 1.0 s wall)"
    )
    assert (exc.what, exc.limit_aws_s, exc.limit_wall_s) == ("StopLogging of trail gameday-trail", 60, 1.0)


def test_late_messages_carry_elapsed_and_limit():
    detection = DetectionSlaBreached("StopLogging of trail t", 75.5, 60)
    remediation = RemediationSlaBreached("logging of trail t", 130.1234, 120)
    assert "75.5 s" in str(detection) and "60 s" in str(detection)
    assert (detection.elapsed_aws_s, detection.limit_aws_s) == (75.5, 60)
    assert "130.123 s" in str(remediation) and "120 s" in str(remediation)


def test_remediation_missing_keeps_fields():
    exc = RemediationMissing("logging of trail t", 120, 2.0)
    assert (exc.what, exc.limit_aws_s, exc.limit_wall_s) == ("logging of trail t", 120, 2.0)
    assert "within 120 s (AWS time; 2.0 s wall)" in str(exc)


@pytest.mark.parametrize(("exc", "prefix"), FAILURES, ids=[p for _, p in FAILURES])
def test_failures_are_assertions_with_greppable_prefix(exc, prefix):
    assert isinstance(exc, ScenarioFailed)
    assert isinstance(exc, AssertionError)
    assert str(exc).startswith(prefix + ":")
    assert verdict_of(exc) == "failed"


@pytest.mark.parametrize(("exc", "prefix"), FAILURES, ids=[p for _, p in FAILURES])
def test_failures_survive_pickling(exc, prefix):
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)
    assert vars(clone) == vars(exc)


@pytest.mark.parametrize("cls", [ConfigError, EndpointUnreachable, AccountNotAllowed, UnknownScenario])
def test_gameday_errors_are_one_line_with_the_fix(cls):
    exc = cls("account 123456789012 is not\nallowlisted", "add it to [aws] allowed_accounts")
    assert isinstance(exc, GamedayError)
    assert not isinstance(exc, AssertionError)
    assert str(exc) == "account 123456789012 is not allowlisted; add it to [aws] allowed_accounts"
    assert "\n" not in str(exc)
    assert str(pickle.loads(pickle.dumps(exc))) == str(exc)


def test_gameday_error_without_fix_is_just_the_problem():
    assert str(UnknownScenario("no scenario 'x'")) == "no scenario 'x'"


def test_harness_broken_is_never_a_failure():
    assert not issubclass(HarnessBroken, AssertionError)
    assert verdict_of(HarnessBroken("sink queue vanished")) == "broken"


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (None, "passed"),
        (AssertionError("plain assert"), "failed"),
        (ConfigError("bad"), "broken"),
        (RuntimeError("boom"), "broken"),
        (KeyboardInterrupt(), "broken"),
    ],
)
def test_verdict_of(exc, verdict):
    assert verdict_of(exc) == verdict
