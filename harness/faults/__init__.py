"""Faults: each is apply + revert (+ an idempotent flag), registered by the name the journal stores."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from harness.probes import Probe

REGISTRY: dict[str, type["Fault"]] = {}


class Fault:
    """One deliberate break of the monitoring; subclasses are dataclasses of their parameters."""

    name: ClassVar[str]
    iam_actions: ClassVar[tuple[str, ...]] = ()
    idempotent: ClassVar[bool] = True
    settle_within: ClassVar[float] = 0.0  # AWS seconds the steady state may take to hold before injecting

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    @property
    def params(self) -> dict:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def describe(self) -> str:
        return (type(self).__doc__ or self.name).strip().splitlines()[0]

    def steady(self) -> Probe:
        """What holds before the fault and must hold again after revert."""
        raise NotImplementedError

    def precondition(self) -> Probe:
        """What must hold before injecting (by default the steady state)."""
        return self.steady()

    def snapshot(self, aws: Any) -> dict | None:
        """What revert needs to put things back exactly (read-only calls only)."""
        return None

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        raise NotImplementedError

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Idempotent: a no-op when remediation already restored the control."""
        raise NotImplementedError


def rebuild(name: str, params: dict) -> Fault:
    """The fault a journal entry names, for `gameday cleanup` in another process."""
    if name not in REGISTRY:
        raise KeyError(f"unknown fault {name!r} in the journal")
    return REGISTRY[name](**params)


from harness.faults import cis, cloudtrail, cloudwatch, events, sns, trace  # noqa: E402,F401  (the catalog: harness.faults.<service>)
from harness.faults import config, flowlogs, guardduty, iam, network  # noqa: E402,F401
from harness.faults import applogs  # noqa: E402,F401
from harness.faults import cpu, findings  # noqa: E402,F401
