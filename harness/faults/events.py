"""Faults on EventBridge: a rule that reports or repairs tampering, switched off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.faults import Fault
from harness.probes import Probe
from harness.probes import events as probes

__all__ = ["disable_rule"]


@dataclass(frozen=True)
class DisableRule(Fault):
    """DisableRule on one of the stack's rules."""

    rule: str
    name = "events.disable_rule"
    iam_actions = ("events:DescribeRule", "events:DisableRule", "events:EnableRule")

    def describe(self) -> str:
        return f"DisableRule {self.rule}"

    def steady(self) -> Probe:
        return probes.rule_enabled(self.rule)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("events").disable_rule(Name=self.rule)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        if not self.steady()(aws)[0]:
            aws.client("events").enable_rule(Name=self.rule)


disable_rule = DisableRule
