"""Probes of the workload: its Auto Scaling group at rest, the scale-outs an alarm caused, isolated instances."""

from __future__ import annotations

import re
import time
from typing import Any

from harness.probes import Probe

__all__ = ["at_rest", "scaled_out", "quarantined", "not_stressed", "patched", "group_instances"]

_CHANGE = re.compile(r"a monitor alarm (?P<alarm>\S+) in state ALARM triggered policy (?P<policy>\S+) changing the "
                     r"desired capacity from (?P<old>\d+) to (?P<new>\d+)")
STRESS_DOCUMENT = "AWSFIS-Run-CPU-Stress"
CLOCK_SKEW_S = 1.0  # the harness's clock against Auto Scaling's activity times


def _group(aws: Any, name: str) -> dict | None:
    found = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return found[0] if found else None


def group_instances(aws: Any, name: str) -> list[str]:
    """The group's instances in service, in the order Auto Scaling lists them."""
    group = _group(aws, name)
    return [i["InstanceId"] for i in (group or {}).get("Instances", []) if i["LifecycleState"] == "InService"]


def _security_groups(aws: Any, instances: list[str]) -> dict[str, list[str]]:
    if not instances:
        return {}
    found = aws.client("ec2").describe_instances(InstanceIds=instances)["Reservations"]
    return {i["InstanceId"]: [g["GroupName"] for g in i.get("SecurityGroups", [])] for r in found
            for i in r["Instances"]}


def at_rest(group: str, capacity: int, quarantine_group: str) -> Probe:
    """The group holds `capacity` instances in service, as desired, and none of them is isolated."""

    def check(aws: Any) -> tuple[bool, str]:
        found = _group(aws, group)
        if found is None:
            return False, f"Auto Scaling group {group} does not exist"
        serving = group_instances(aws, group)
        if found["DesiredCapacity"] != capacity or len(serving) != capacity:
            return False, (f"group {group} wants {found['DesiredCapacity']} and serves with {len(serving)} "
                           f"instances, not {capacity}")
        isolated = [i for i, names in _security_groups(aws, serving).items() if quarantine_group in names]
        if isolated:
            return False, f"group {group} serves with isolated instances {', '.join(isolated)}"
        return True, f"group {group} at rest: {', '.join(serving)}"

    return Probe(f"group {group} at rest with {capacity} instances",
                 check, ("autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"))


def scaled_out(group: str, alarm: str, *, since: float | None = None, within_s: float = 3600.0) -> Probe:
    """The alarm made the group scale out after `since` (epoch seconds; else within the last `within_s` AWS
    seconds), as its scaling activities tell."""

    def check(aws: Any) -> tuple[bool, str]:
        start = since - CLOCK_SKEW_S if since is not None else time.time() - within_s / getattr(aws, "time_scale", 1.0)
        activities = aws.client("autoscaling").describe_scaling_activities(
            AutoScalingGroupName=group, MaxRecords=50)["Activities"]
        for activity in activities:
            match = _CHANGE.search(activity.get("Cause", ""))
            if match and match["alarm"] == alarm and int(match["new"]) > int(match["old"]) and \
                    activity["StartTime"].timestamp() >= start:
                return True, f"group {group} scaled out {match['old']} -> {match['new']} on {alarm} " \
                             f"({activity['Description']})"
        return False, f"group {group} did not scale out on {alarm}"

    return Probe(f"{alarm} scaled group {group} out", check, ("autoscaling:DescribeScalingActivities",))


def quarantined(group: str, quarantine_group: str, capacity: int, finding_type: str) -> Probe:
    """Every instance GuardDuty reports `finding_type` on is isolated and out of the group, and the group kept no
    capacity for it (it was not merely autoscaled)."""

    def check(aws: Any) -> tuple[bool, str]:
        flagged = _flagged(aws, finding_type)
        if not flagged:
            return False, f"no active {finding_type} finding names an instance"
        found = _group(aws, group)
        members = {i["InstanceId"] for i in (found or {}).get("Instances", [])}
        size = f"group {group} at {found['DesiredCapacity']}" if found else f"no group {group}"
        groups = _security_groups(aws, flagged)
        for instance in flagged:
            names = groups.get(instance, [])
            if names != [quarantine_group]:
                return False, f"{instance} is in security groups {names}, not only {quarantine_group} ({size})"
            if instance in members:
                return False, f"{instance} is isolated but still in group {group} ({size})"
        if found is not None and found["DesiredCapacity"] > capacity:
            return False, f"group {group} kept the capacity it added: {found['DesiredCapacity']}, not {capacity}"
        return True, f"{', '.join(flagged)} isolated in {quarantine_group} and out of {group} ({size})"

    return Probe(f"instances with {finding_type} quarantined", check,
                 ("guardduty:ListDetectors", "guardduty:ListFindings", "guardduty:GetFindings",
                  "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"))


def _flagged(aws: Any, finding_type: str) -> list[str]:
    """Running instances an active (unarchived) finding of the type names."""
    gd = aws.client("guardduty")
    detectors = gd.list_detectors().get("DetectorIds", [])
    if not detectors:
        return []
    ids = gd.list_findings(DetectorId=detectors[0], FindingCriteria={"Criterion": {
        "type": {"Eq": [finding_type]}, "service.archived": {"Eq": ["false"]}}}, MaxResults=50).get("FindingIds", [])
    if not ids:
        return []
    findings = gd.get_findings(DetectorId=detectors[0], FindingIds=ids)["Findings"]
    named = sorted({((f.get("Resource") or {}).get("InstanceDetails") or {}).get("InstanceId") for f in findings}
                   - {None})
    if not named:
        return []
    alive = aws.client("ec2").describe_instances(Filters=[
        {"Name": "instance-id", "Values": named}, {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return sorted(i["InstanceId"] for r in alive["Reservations"] for i in r["Instances"])


def not_stressed(instances_of: str) -> Probe:
    """No CPU stress command of Gameday's still runs on the group's instances."""

    def check(aws: Any) -> tuple[bool, str]:
        ssm = aws.client("ssm")
        for instance in group_instances(aws, instances_of):
            for command in ssm.list_commands(InstanceId=instance).get("Commands", []):
                if command.get("DocumentName") == STRESS_DOCUMENT and command.get("Status") in ("Pending",
                                                                                                "InProgress"):
                    return False, f"{STRESS_DOCUMENT} {command['CommandId']} runs on {instance}"
        return True, f"no CPU stress runs on {instances_of}"

    return Probe(f"no CPU stress on {instances_of}", check,
                 ("ssm:ListCommands", "autoscaling:DescribeAutoScalingGroups"))


def patched(group: str) -> Probe:
    """No instance of the group reports missing patches (SSM patch compliance)."""

    def check(aws: Any) -> tuple[bool, str]:
        serving = set(group_instances(aws, group))
        ssm, token, behind = aws.client("ssm"), "", []
        while True:
            page = ssm.list_resource_compliance_summaries(**({"NextToken": token} if token else {}), Filters=[
                {"Key": "ComplianceType", "Values": ["Patch"], "Type": "EQUAL"},
                {"Key": "Status", "Values": ["NON_COMPLIANT"], "Type": "EQUAL"}])
            behind += [s["ResourceId"] for s in page.get("ResourceComplianceSummaryItems", [])
                       if s["ResourceId"] in serving]
            token = page.get("NextToken", "")
            if not token:
                break
        if behind:
            return False, f"{', '.join(sorted(behind))} of {group} miss patches"
        return True, f"no instance of {group} misses patches"

    return Probe(f"instances of {group} patched", check,
                 ("ssm:ListResourceComplianceSummaries", "autoscaling:DescribeAutoScalingGroups"))
