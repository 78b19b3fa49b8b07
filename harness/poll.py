"""Polling through tenacity with hard wall-clock deadlines."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)
from tenacity.wait import wait_base

from harness.errors import HarnessBroken

T = TypeVar("T")

TRANSIENT_CODES = frozenset({
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
})
TRANSIENT_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError)
# A ramped wait_for sleeps this share of the time waited so far between attempts, never less than RAMP_FIRST_S.
RAMP_SHARE = 0.5
RAMP_FIRST_S = 0.01


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection trouble, throttling, 5xx-style codes."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in TRANSIENT_CODES


def interval_for(timeout: float) -> float:
    """Poll interval for a timeout: 1/50 of it, clamped to [5 ms, 1 s]."""
    return min(max(timeout / 50, 0.005), 1.0)


class _wait_until(wait_base):
    """wait_fixed (or a ramp up to it), shortened so the next attempt still starts inside the budget."""

    def __init__(self, interval: float, budget: float, ramp: bool = False) -> None:
        self.fixed = wait_fixed(interval)
        self.interval = interval
        self.budget = budget
        self.ramp = ramp

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self.fixed(retry_state)
        if self.ramp:
            # Sleep a share of the time already waited: a condition that holds soon is seen soon, a slow one is
            # still polled no more often than every `interval` once the wait has grown long.
            wait = min(self.interval, max(RAMP_FIRST_S, retry_state.seconds_since_start * RAMP_SHARE))
        return max(0.0, min(wait, self.budget - retry_state.seconds_since_start))


def wait_for(probe: Callable[[], T], *, timeout: float, interval: float, describe: str,
             ramp: bool = False) -> T | None:
    """Call probe until it returns something truthy; None once the deadline passes.

    Transient errors are retried until the deadline, then raised as HarnessBroken;
    any other error propagates at once. With `ramp`, the first retries come sooner
    and the pause grows with the time waited, up to `interval`.
    """
    if timeout < 0 or interval <= 0:
        raise ValueError(f"{describe}: timeout must be >= 0 and interval > 0, got {timeout}, {interval}")
    # The last attempt is aimed this far before the deadline so sleep jitter cannot push it past.
    budget = max(0.0, timeout - min(interval / 10, 0.001))
    started = time.monotonic()
    attempts = 0
    last_error: BaseException | None = None

    def attempt() -> T | None:
        nonlocal attempts, last_error
        if attempts and time.monotonic() - started >= timeout:
            return None
        attempts += 1
        try:
            value = probe()
        except BaseException as exc:
            last_error = exc
            raise
        last_error = None
        return value

    def give_up(retry_state: RetryCallState) -> None:
        if last_error is not None:
            raise HarnessBroken(f"{describe}: {last_error}") from last_error
        return None

    retrying = Retrying(
        stop=stop_after_delay(budget),
        wait=_wait_until(interval, budget, ramp),
        retry=retry_if_result(lambda value: not value) | retry_if_exception(is_transient),
        retry_error_callback=give_up,
    )
    return retrying(attempt)
