"""Probes of VPC flow logs."""

from __future__ import annotations

from typing import Any

from harness.probes import Probe

__all__ = ["enabled"]


def enabled(resource_id: str) -> Probe:
    """An active flow log captures the resource's traffic (a VPC, a subnet or a network interface)."""

    def check(aws: Any) -> tuple[bool, str]:
        found = flow_logs_of(aws, resource_id)
        active = [f for f in found if f.get("FlowLogStatus") == "ACTIVE"]
        if not active:
            return False, f"no active flow log on {resource_id} ({len(found)} inactive)"
        where = active[0].get("LogGroupName") or active[0].get("LogDestination", "?")
        return True, (f"flow log {active[0]['FlowLogId']} captures {active[0].get('TrafficType')} traffic "
                      f"of {resource_id} into {where}")

    return Probe(f"{resource_id} has an active flow log", check, ("ec2:DescribeFlowLogs",))


def flow_logs_of(aws: Any, resource_id: str) -> list[dict]:
    """Every flow log of the resource (all pages)."""
    ec2 = aws.client("ec2")
    out: list[dict] = []
    kwargs: dict[str, Any] = {"Filters": [{"Name": "resource-id", "Values": [resource_id]}]}
    while True:
        page = ec2.describe_flow_logs(**kwargs)
        out += page.get("FlowLogs", [])
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]
