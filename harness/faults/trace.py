"""Faults for the tracer's acceptance: break exactly one hop of the chain while the stack's repairs are held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.faults import Fault, held, rebuild
from harness.probes import Probe, all_of

__all__ = ["break_hop"]


@dataclass(frozen=True)
class BreakHop(Fault):
    """Another fault, with the stack's functions throttled (reserved concurrency 0) so nothing repairs it meanwhile.

    Lambda keeps throttled asynchronous events and runs them once the functions may run again, as on AWS.
    """

    hop: str
    inner: dict  # the breaking fault: {"name": ..., "params": ...}
    functions: tuple[str, ...]
    stack: dict  # the stack outputs, for the whole-chain trace before injecting
    also: tuple[str, ...] = ()  # later hops the fault may break too: the trace before it need not show them healthy
    name = "trace.break_hop"
    iam_actions = held.IAM_ACTIONS
    # AWS seconds for an earlier scenario's failed deliveries to age out (15 minutes), or the breaking fault's own.
    @property
    def settle_within(self) -> float:  # type: ignore[override]
        return max(1200.0, self.fault.settle_within)

    @property
    def fault(self) -> Fault:
        return rebuild(self.inner["name"], self.inner["params"])

    def describe(self) -> str:
        return f"{self.fault.describe()} (repairs held)"

    def steady(self) -> Probe:
        return self.fault.steady()

    def precondition(self) -> Probe:
        from harness.stack.desired import StackOutputs
        from harness.trace import trace
        from harness.trace.report import TROUBLE

        stack = StackOutputs(**self.stack)
        # A hop the fault may break as well proves nothing either way afterwards, so it need not be healthy before.
        healthy = "every hop" + (f" but {', '.join(self.also)}" if self.also else "")

        def check(aws: Any) -> tuple[bool, str]:
            report = trace(aws, stack)
            broken = [f"{h.id}: {h.evidence}" for h in report.hops
                      if h.status in TROUBLE and h.id not in self.also]
            return not broken, f"{healthy} is healthy" if not broken else "; ".join(broken)

        # The breaking fault's own precondition too (an alarm that must be able to change state, say).
        return all_of(f"gameday trace reports {healthy} healthy, and the fault can break its hop",
                      Probe(f"gameday trace reports {healthy} healthy", check), self.fault.precondition())

    def snapshot(self, aws: Any) -> dict | None:
        return {"concurrency": held.concurrency(aws, self.functions), "inner": self.fault.snapshot(aws)}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        held.hold(aws, snapshot["concurrency"])
        self.fault.apply(aws, snapshot["inner"])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        try:
            self.fault.revert(aws, snapshot["inner"])
        finally:
            held.release(aws, snapshot["concurrency"])


def break_hop(hop: str, fault: Fault, stack: Any, *, also: tuple[str, ...] = ()) -> BreakHop:
    """`fault` breaks `hop` (and perhaps the later hops `also`); the stack's functions are held meanwhile."""
    from dataclasses import asdict

    from harness.trace.report import HOP_IDS

    unknown = [h for h in (hop, *also) if h not in HOP_IDS]
    if unknown:
        raise ValueError(f"break_hop: {unknown[0]!r} is not a hop of gameday trace (harness.trace.HOP_IDS)")
    early = [h for h in also if HOP_IDS.index(h) <= HOP_IDS.index(hop)]
    if early:
        raise ValueError(f"break_hop: `also` names the hops after {hop} in the chain; {early[0]} is not one")

    functions = tuple(f for f in (stack.function_name, stack.alarms_function_name, stack.sns_function_name) if f)
    return BreakHop(hop=hop, inner={"name": fault.name, "params": fault.params}, functions=functions,
                    stack=asdict(stack), also=tuple(also))
