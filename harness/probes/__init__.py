"""Probes: observations used for steady state, detection and remediation; each returns (holds, evidence)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Check = Callable[[Any], tuple[bool, str]]


@dataclass(frozen=True)
class Probe:
    """A named yes/no observation of the target, with the evidence behind the answer."""

    description: str
    check: Check
    iam_actions: tuple[str, ...] = ()

    def __call__(self, aws: Any) -> tuple[bool, str]:
        return self.check(aws)


def all_of(description: str, *probes: Probe) -> Probe:
    """Holds when every probe holds; the evidence names the first that does not."""

    def check(aws: Any) -> tuple[bool, str]:
        notes = []
        for probe in probes:
            ok, evidence = probe(aws)
            if not ok:
                return False, f"{probe.description}: {evidence}"
            notes.append(evidence)
        return True, "; ".join(notes)

    return Probe(description, check, tuple(a for p in probes for a in p.iam_actions))


from harness.probes import cloudtrail, cloudwatch, events, sns  # noqa: E402,F401  (the catalog: harness.probes.<service>)
from harness.probes import config, flowlogs, guardduty, iam, network  # noqa: E402,F401
from harness.probes import applogs  # noqa: E402,F401
from harness.probes import scaling  # noqa: E402,F401
