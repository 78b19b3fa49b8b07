"""The SLA clock: time to detect and to remediate, in wall and AWS seconds."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from harness.errors import ConfigError, HarnessBroken


def parse_time_scale(value: str | float) -> float:
    """AWS seconds per wall second: a finite positive number, else ConfigError."""
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = math.nan
    if isinstance(value, bool) or not math.isfinite(scale) or scale <= 0:
        raise ConfigError(
            f"time scale {value!r} is not a positive number",
            "set it to e.g. 1 (real time) or 60 (one wall second stands for a minute of AWS time)",
        )
    return scale


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


@dataclass
class SlaClock:
    """Times detection and remediation from the injection; AWS time = wall time * time_scale."""

    time_scale: float
    injected_at: float | None = None
    skew_warning: str | None = None
    _started_mono: float | None = field(default=None, repr=False)
    _ttd_wall: float | None = field(default=None, repr=False)
    _ttr_wall: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.time_scale = parse_time_scale(self.time_scale)

    def start(self) -> None:
        """Mark the injection: now, as epoch and monotonic time; forgets earlier sightings."""
        self.injected_at = time.time()
        self._started_mono = time.monotonic()
        self._ttd_wall = self._ttr_wall = self.skew_warning = None

    @property
    def elapsed_wall(self) -> float:
        """Wall seconds since start(), immune to clock steps."""
        if self._started_mono is None:
            raise HarnessBroken("SLA clock read before start(); call start() when the fault is injected")
        return time.monotonic() - self._started_mono

    def detected(self, at_epoch: float) -> None:
        """Detection seen at an external epoch timestamp (e.g. the sink message's SentTimestamp / 1000)."""
        self._ttd_wall = self._earliest(self._ttd_wall, self._since_injection(at_epoch, "detection"))

    def remediated(self, at_epoch: float) -> None:
        """Remediation seen at an external epoch timestamp."""
        self._ttr_wall = self._earliest(self._ttr_wall, self._since_injection(at_epoch, "remediation"))

    @property
    def ttd_wall(self) -> float | None:
        return self._ttd_wall

    @property
    def ttr_wall(self) -> float | None:
        return self._ttr_wall

    @property
    def ttd_aws(self) -> float | None:
        return None if self._ttd_wall is None else self.to_aws(self._ttd_wall)

    @property
    def ttr_aws(self) -> float | None:
        return None if self._ttr_wall is None else self.to_aws(self._ttr_wall)

    def wall_limit(self, aws_seconds: float) -> float:
        """Wall seconds that stand for aws_seconds of AWS time."""
        return aws_seconds / self.time_scale

    def to_aws(self, wall: float) -> float:
        """AWS seconds that wall seconds stand for."""
        return wall * self.time_scale

    def summary(self) -> dict:
        """Plain numbers for reports, rounded to ms."""
        injected = None
        if self.injected_at is not None:
            injected = datetime.fromtimestamp(self.injected_at, timezone.utc).isoformat(timespec="milliseconds")
        return {
            "time_scale": self.time_scale,
            "injected_at": injected,
            "ttd_wall_s": _round(self.ttd_wall),
            "ttd_aws_s": _round(self.ttd_aws),
            "ttr_wall_s": _round(self.ttr_wall),
            "ttr_aws_s": _round(self.ttr_aws),
            "skew_warning": self.skew_warning,
        }

    def _since_injection(self, at_epoch: float, event: str) -> float:
        if self.injected_at is None:
            raise HarnessBroken(f"{event} recorded before start(); call start() when the fault is injected")
        elapsed = at_epoch - self.injected_at
        if elapsed < 0:
            # The backend's clock can run behind the harness's; an event cannot precede its cause.
            warning = f"{event} timestamp {-elapsed:.3f} s before injection (clock skew?); clamped to 0"
            self.skew_warning = f"{self.skew_warning}; {warning}" if self.skew_warning else warning
            return 0.0
        return elapsed

    @staticmethod
    def _earliest(current: float | None, new: float) -> float:
        """The first sighting defines the SLA, whatever order sightings are reported in."""
        return new if current is None else min(current, new)
