"""Tests for deadline-bound polling."""
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import HarnessBroken
from harness.poll import interval_for, is_transient, wait_for


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "DescribeTrails")


class Recorder:
    """A probe that replays scripted results (values or exceptions) and notes when each call began."""

    def __init__(self, *script, then=None):
        self.script = list(script)
        self.then = then
        self.starts: list[float] = []

    def __call__(self):
        self.starts.append(time.monotonic())
        step = self.script.pop(0) if self.script else self.then
        if isinstance(step, BaseException):
            raise step
        return step


def test_returns_the_first_truthy_value():
    probe = Recorder(None, 0, [], {"eventName": "StopLogging"})
    assert wait_for(probe, timeout=0.3, interval=0.005, describe="sink") == {"eventName": "StopLogging"}
    assert len(probe.starts) == 4


def test_returns_none_at_the_deadline_with_every_attempt_started_before_it():
    probe = Recorder(then=False)
    timeout, interval = 0.2, 0.03
    began = time.monotonic()
    assert wait_for(probe, timeout=timeout, interval=interval, describe="sink") is None
    took = time.monotonic() - began
    offsets = [start - began for start in probe.starts]
    assert timeout - 0.002 <= took <= timeout + interval
    assert offsets[-1] < timeout + 0.001
    # The window is covered to its end, so a late-but-in-time event is still seen.
    assert offsets[-1] > timeout - interval
    assert len(probe.starts) >= 5


def test_zero_timeout_makes_exactly_one_attempt():
    probe = Recorder(then=None)
    assert wait_for(probe, timeout=0, interval=0.01, describe="sink") is None
    assert len(probe.starts) == 1


@pytest.mark.parametrize(
    "transient",
    [
        client_error("Throttling"),
        client_error("ThrottlingException"),
        client_error("RequestLimitExceeded"),
        client_error("ServiceUnavailable"),
        client_error("InternalError"),
        client_error("InternalFailure"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=lambda exc: exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__,
)
def test_transient_errors_are_retried(transient):
    probe = Recorder(transient, transient, then="restored")
    assert is_transient(transient)
    assert wait_for(probe, timeout=0.3, interval=0.005, describe="trail status") == "restored"
    assert len(probe.starts) == 3


def test_transient_error_until_the_deadline_is_broken():
    throttled = client_error("Throttling")
    probe = Recorder(then=throttled)
    with pytest.raises(HarnessBroken, match=r"^trail status: .*Throttling") as caught:
        wait_for(probe, timeout=0.05, interval=0.005, describe="trail status")
    assert caught.value.__cause__ is throttled
    assert len(probe.starts) > 1


def test_transient_error_followed_by_a_clean_miss_is_just_a_miss():
    probe = Recorder(client_error("Throttling"), then=None)
    assert wait_for(probe, timeout=0.05, interval=0.005, describe="sink") is None
    assert len(probe.starts) > 2


@pytest.mark.parametrize("fatal", [client_error("AccessDenied"), client_error("TrailNotFoundException"), KeyError("x")])
def test_other_errors_propagate_at_once(fatal):
    probe = Recorder(fatal, then=True)
    with pytest.raises(type(fatal)) as caught:
        wait_for(probe, timeout=0.3, interval=0.005, describe="sink")
    assert caught.value is fatal
    assert len(probe.starts) == 1
    assert not is_transient(fatal)


def test_rejects_nonsense_arguments():
    with pytest.raises(ValueError, match="interval"):
        wait_for(lambda: True, timeout=1, interval=0, describe="sink")


@pytest.mark.parametrize(("timeout", "interval"), [(0, 0.005), (0.1, 0.005), (10, 0.2), (50, 1.0), (3600, 1.0)])
def test_interval_for_examples(timeout, interval):
    assert interval_for(timeout) == pytest.approx(interval)


@given(st.floats(min_value=0, max_value=1e6))
def test_interval_for_stays_clamped(timeout):
    assert 0.005 <= interval_for(timeout) <= 1.0
