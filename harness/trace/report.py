"""The trace's report: its hops in chain order, the canary's, the verdict, the exit code and the table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

OK, BROKEN, SKIPPED, UNKNOWN = "ok", "broken", "skipped", "unknown"
# What a scenario counts against a hop: broken, or the harness could not see it (a hop skipped because an earlier
# resource is missing is neither).
TROUBLE = (BROKEN, UNKNOWN)
HOP_IDS = (
    "trail.exists", "trail.logging", "trail.selectors", "trail.delivery", "filter.exists", "filter.matches",
    "alarm.exists", "alarm.actions_enabled", "alarm.can_fire", "alarm.targets_topic", "alarm.history",
    "topic.exists", "topic.policy", "topic.kms", "subscriptions.exist", "subscriptions.confirmed",
    "subscriptions.filter", "subscriptions.delivery", "rules.enabled",
)
CANARY_HOP_IDS = ("canary.written", "canary.metric", "canary.alarm", "canary.published", "canary.received")


@dataclass
class Hop:
    id: str
    title: str
    status: str  # ok, broken, skipped, unknown
    evidence: str
    fix: str = ""
    wall_ms: float | None = None  # canary hops: when it happened, after the write
    aws_s: float | None = None


@dataclass
class Canary:
    status: str  # ok (arrived), broken (a hop never happened), skipped (not sent), unknown (could not tell)
    evidence: str
    hops: list[Hop] = field(default_factory=list)
    deadline_wall_s: float | None = None
    deadline_aws_s: float | None = None

    @property
    def arrived(self) -> bool:
        return self.status == OK


@dataclass
class TraceReport:
    control: str
    alarm: str
    backend: str
    hops: list[Hop]
    advice: list[str]
    canary: Canary | None = None

    @property
    def chain(self) -> list[Hop]:
        """Every hop in chain order, the canary's last."""
        return self.hops + (self.canary.hops if self.canary else [])

    @property
    def first_broken(self) -> Hop | None:
        return next((h for h in self.chain if h.status == BROKEN), None)

    @property
    def healthy(self) -> bool:
        return all(h.status == OK for h in self.hops) and (self.canary is None or self.canary.arrived)

    @property
    def exit_code(self) -> int:
        """0 healthy; 1 a hop is broken (the canary's too); 2 the harness could not see (a hop or canary unknown)."""
        if self.healthy:
            return 0
        if self.first_broken is None and (any(h.status == UNKNOWN for h in self.chain)
                                          or self.canary is not None and self.canary.status == UNKNOWN):
            return 2
        return 1

    def to_json(self) -> str:
        data = asdict(self)
        data.update(healthy=self.healthy, exit_code=self.exit_code,
                    first_broken=self.first_broken.id if self.first_broken else None)
        return json.dumps(data, indent=1, default=str)


# -- the table ---------------------------------------------------------------------------------------

_MARKS = {OK: "ok", BROKEN: "BROKEN", SKIPPED: "skipped", UNKNOWN: "UNKNOWN"}


def render(report: TraceReport) -> str:
    """The report as an engineer reads it: one row per hop, the fix under each broken one, then the advice."""
    lines = [f"gameday trace: CIS {report.control}, alarm {report.alarm} ({report.backend})", ""]
    lines += _rows(report.hops)
    if report.canary is not None:
        lines += ["", f"canary: {report.canary.evidence}"]
        lines += _rows(report.canary.hops, latency=True)
    first = report.first_broken
    lines += ["", f"first broken hop: {first.id}: {first.evidence}" if first else
              "every hop is ok" if report.healthy else "no hop is broken, but some could not be checked"]
    lines += ["", "not checked (no API can see these):"] + [f"  - {item}" for item in report.advice]
    return "\n".join(lines)


def _rows(hops: list[Hop], latency: bool = False) -> list[str]:
    width = max([len(h.id) for h in hops] + [3])
    lines = []
    for h in hops:
        when = f"{h.wall_ms:>8.1f} ms {h.aws_s:>8.1f} s AWS  " if latency and h.wall_ms is not None else \
            " " * 26 if latency else ""
        lines.append(f"{h.id:<{width}}  {_MARKS[h.status]:<7}  {when}{h.evidence}")
        if h.fix and h.status != OK:
            lines.append(f"{'':<{width}}  {'':<7}  {' ' * len(when)}fix: {h.fix}")
    return lines
