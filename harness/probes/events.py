"""Probes of EventBridge rules."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from harness.probes import Probe

__all__ = ["rule_enabled"]


def rule_enabled(rule: str) -> Probe:
    """The rule exists and is enabled."""

    def check(aws: Any) -> tuple[bool, str]:
        try:
            state = aws.client("events").describe_rule(Name=rule)["State"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return False, f"rule {rule} does not exist"
            raise
        return state.startswith("ENABLED"), f"rule {rule} is {state}"

    return Probe(f"rule {rule} is enabled", check, ("events:DescribeRule",))
