"""The plane's clock: AWS time runs `time_scale` times faster than wall time, from the moment the plane starts."""

from __future__ import annotations

import time


class PlaneClock:
    """Maps wall time to the AWS time that periods, evaluation windows and reasons are measured in.

    At scale 60 a 300 s alarm period lasts 5 wall seconds. Timestamps the plane writes into alarm
    reasons are in this AWS time, so they run ahead of the wall clock (known, intended difference).
    """

    def __init__(self, time_scale: float, origin: float | None = None):
        self.time_scale = time_scale
        self.origin = time.time() if origin is None else origin

    def aws(self, wall: float) -> float:
        return self.origin + (wall - self.origin) * self.time_scale

    def now(self) -> float:
        return self.aws(time.time())
