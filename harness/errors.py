"""Errors named after what went wrong, and the verdict each one means."""

from __future__ import annotations

import functools


def _aws(seconds: float) -> str:
    """Format AWS-time seconds to ms; whole seconds stay whole ("60", "12.5")."""
    rounded = round(float(seconds), 3)
    return str(int(rounded)) if rounded.is_integer() else str(rounded)


def _wall(seconds: float) -> str:
    """Format wall-clock seconds to ms, always with a decimal ("1.0", "0.06")."""
    return str(round(float(seconds), 3))


class GamedayError(Exception):
    """Bad input or a refusal: str() is one line saying what was wrong and what to do."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(*((problem,) if fix is None else (problem, fix)))
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        text = f"{self.problem}; {self.fix}" if self.fix else self.problem
        # Callers and CI logs grep single lines, so embedded newlines are folded.
        return " ".join(text.split())


class ConfigError(GamedayError):
    """A setting is missing, malformed or contradictory."""


class EndpointUnreachable(GamedayError):
    """The backend's endpoint did not answer."""


class AccountNotAllowed(GamedayError):
    """The AWS account is not on the allowlist, so nothing will be broken in it."""


class UnknownScenario(GamedayError):
    """No scenario has the requested id."""


class ScenarioFailed(AssertionError):
    """Verdict "failed": the monitoring did not do its job."""


class DetectionMissing(ScenarioFailed):
    """No notification reached the sink before the detection deadline."""

    def __init__(self, what: str, limit_aws_s: float, limit_wall_s: float, *, missing: str | None = None) -> None:
        self.what = what
        self.limit_aws_s = limit_aws_s
        self.limit_wall_s = limit_wall_s
        self.missing = missing
        happened = missing or f"no notification about {what} reached the sink"
        super().__init__(
            f"detection missing: {happened} within {_aws(limit_aws_s)} s (AWS time; {_wall(limit_wall_s)} s wall)"
        )

    def __reduce__(self):
        return functools.partial(type(self), missing=self.missing), (self.what, self.limit_aws_s, self.limit_wall_s)


class DetectionSlaBreached(ScenarioFailed):
    """A notification arrived, but later than the detection SLA."""

    def __init__(self, what: str, elapsed_aws_s: float, limit_aws_s: float) -> None:
        self.what = what
        self.elapsed_aws_s = elapsed_aws_s
        self.limit_aws_s = limit_aws_s
        super().__init__(
            f"detection late: notification about {what} took {_aws(elapsed_aws_s)} s, "
            f"SLA is {_aws(limit_aws_s)} s (AWS time)"
        )

    def __reduce__(self):
        return type(self), (self.what, self.elapsed_aws_s, self.limit_aws_s)


class RemediationMissing(ScenarioFailed):
    """The control was not restored before the remediation deadline."""

    def __init__(self, what: str, limit_aws_s: float, limit_wall_s: float) -> None:
        self.what = what
        self.limit_aws_s = limit_aws_s
        self.limit_wall_s = limit_wall_s
        super().__init__(
            f"remediation missing: {what} was not restored within "
            f"{_aws(limit_aws_s)} s (AWS time; {_wall(limit_wall_s)} s wall)"
        )

    def __reduce__(self):
        return type(self), (self.what, self.limit_aws_s, self.limit_wall_s)


class RemediationSlaBreached(ScenarioFailed):
    """The control was restored, but later than the remediation SLA."""

    def __init__(self, what: str, elapsed_aws_s: float, limit_aws_s: float) -> None:
        self.what = what
        self.elapsed_aws_s = elapsed_aws_s
        self.limit_aws_s = limit_aws_s
        super().__init__(
            f"remediation late: {what} was restored after {_aws(elapsed_aws_s)} s, "
            f"SLA is {_aws(limit_aws_s)} s (AWS time)"
        )

    def __reduce__(self):
        return type(self), (self.what, self.elapsed_aws_s, self.limit_aws_s)


class PreventionMissing(ScenarioFailed):
    """A call the stack's policies must refuse went through."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"prevention missing: {what} was not refused")

    def __reduce__(self):
        return type(self), (self.what,)


class UnwantedNotification(ScenarioFailed):
    """A notification the stack must not send arrived (a false positive), within the window watched."""

    def __init__(self, what: str, elapsed_aws_s: float, window_aws_s: float) -> None:
        self.what = what
        self.elapsed_aws_s = elapsed_aws_s
        self.window_aws_s = window_aws_s
        super().__init__(
            f"false positive: a notification about {what} arrived {_aws(elapsed_aws_s)} s after injection, "
            f"in the {_aws(window_aws_s)} s window that must stay quiet (AWS time)"
        )

    def __reduce__(self):
        return type(self), (self.what, self.elapsed_aws_s, self.window_aws_s)


class SteadyStateViolated(ScenarioFailed):
    """The steady-state hypothesis did not hold before or after the fault."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"steady state violated: {what}")

    def __reduce__(self):
        return type(self), (self.what,)


class HarnessBroken(Exception):
    """Verdict "broken": the harness or the backend failed, not the monitoring."""


def verdict_of(exc: BaseException | None) -> str:
    """Map an outcome to "passed", "failed" (an assertion) or "broken" (anything else)."""
    if exc is None:
        return "passed"
    if isinstance(exc, AssertionError):
        return "failed"
    return "broken"
