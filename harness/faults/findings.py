"""Faults that make the security services speak about an instance: GuardDuty, Inspector, SSM patch compliance."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from harness.errors import HarnessBroken
from harness.faults import Fault
from harness.poll import wait_for
from harness.probes import Probe, all_of
from harness.probes import scaling as probes

__all__ = ["vulnerable_library", "missing_security_updates"]

GUARDDUTY_IAM = ("guardduty:ListDetectors", "guardduty:ListFindings", "guardduty:GetFindings",
                 "guardduty:ArchiveFindings", "guardduty:CreateSampleFindings", "ssm:SendCommand")
# What an instance resolves to make GuardDuty report the DNS finding (the domains amazon-guardduty-tester uses).
DNS_TRIGGERS = {"CryptoCurrency:EC2/BitcoinTool.B!DNS": "donate.v2.xmrig.com"}
GUARDDUTY_DEADLINE_S = 1200.0  # a real DNS finding takes minutes to reach GuardDuty's API
CVE = "CVE-2023-38545"  # curl's SOCKS5 heap overflow, CVSS 9.8: CRITICAL
PACKAGE, VERSION = "curl", "8.3.0-1.amzn2023.0.1"


# -- GuardDuty, for the CPU faults -------------------------------------------------------------------------


def guardduty_snapshot(aws: Any, finding_type: str) -> dict:
    """The detector and the active findings of the type that already exist (revert leaves those alone)."""
    gd = aws.client("guardduty")
    detectors = gd.list_detectors().get("DetectorIds", [])
    if not detectors:
        raise LookupError(f"no GuardDuty detector in {aws.region}: nothing would report {finding_type}")
    return {"detector": detectors[0], "earlier": _active(aws, detectors[0], finding_type)}


def raise_guardduty(aws: Any, finding_type: str, instance: str, snapshot: dict) -> None:
    """GuardDuty reports the type on the instance: the endpoint's detection hook, or on AWS the instance resolves a
    mining pool's name (what amazon-guardduty-tester does) and the finding is awaited."""
    detections = getattr(aws, "detections", None)
    if detections is not None:
        if detections.guardduty(finding_type, instance) is None:
            raise HarnessBroken(f"GuardDuty has no enabled detector in {aws.region}: {finding_type} cannot be raised")
        return
    domain = DNS_TRIGGERS.get(finding_type)
    if domain is None:
        raise HarnessBroken(f"no safe trigger makes GuardDuty report {finding_type} on {instance}; "
                            f"CreateSampleFindings would name a placeholder instance")
    aws.client("ssm").send_command(DocumentName="AWS-RunShellScript", InstanceIds=[instance],
                                   Comment=f"gameday: resolve {domain} so GuardDuty reports {finding_type}",
                                   Parameters={"commands": [f"dig +short {domain} || nslookup {domain}"]})
    found = wait_for(lambda: _on_instance(aws, snapshot["detector"], finding_type, instance),
                     timeout=GUARDDUTY_DEADLINE_S, interval=15.0, describe=f"{finding_type} on {instance}")
    if not found:
        raise HarnessBroken(f"GuardDuty did not report {finding_type} on {instance} within "
                            f"{GUARDDUTY_DEADLINE_S:g} s (is DNS logging reaching it?)")


def archive_guardduty(aws: Any, finding_type: str, snapshot: dict) -> None:
    """Archive the findings of the type this fault caused (those active before are left as they were)."""
    detectors = aws.client("guardduty").list_detectors().get("DetectorIds", [])
    if snapshot["detector"] not in detectors:
        return  # the detector and its findings are gone
    ours = [f for f in _active(aws, snapshot["detector"], finding_type) if f not in snapshot["earlier"]]
    for start in range(0, len(ours), 50):
        aws.client("guardduty").archive_findings(DetectorId=snapshot["detector"], FindingIds=ours[start:start + 50])


def _active(aws: Any, detector: str, finding_type: str) -> list[str]:
    gd, ids, token = aws.client("guardduty"), [], ""
    while True:
        page = gd.list_findings(DetectorId=detector, MaxResults=50, **({"NextToken": token} if token else {}),
                                FindingCriteria={"Criterion": {"type": {"Eq": [finding_type]},
                                                               "service.archived": {"Eq": ["false"]}}})
        ids += page.get("FindingIds", [])
        token = page.get("NextToken", "")
        if not token:
            return ids


def _on_instance(aws: Any, detector: str, finding_type: str, instance: str) -> bool:
    ids = aws.client("guardduty").list_findings(DetectorId=detector, FindingCriteria={"Criterion": {
        "type": {"Eq": [finding_type]}, "resource.instanceDetails.instanceId": {"Eq": [instance]},
        "service.archived": {"Eq": ["false"]}}}).get("FindingIds", [])
    return bool(ids)


# -- Inspector -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VulnerableLibrary(Fault):
    """Inspector finds a critical package vulnerability on one instance of the group."""

    group: str
    capacity: int
    quarantine_group: str
    cve: str = CVE
    package: str = PACKAGE
    version: str = VERSION
    name = "findings.vulnerable_library"
    iam_actions = ("autoscaling:DescribeAutoScalingGroups", "autoscaling:TerminateInstanceInAutoScalingGroup",
                   "ec2:DescribeInstances", "inspector2:ListFindings")

    def describe(self) -> str:
        return f"Inspector reports {self.cve} ({self.package} {self.version}, CRITICAL) on an instance of {self.group}"

    def steady(self) -> Probe:
        return probes.at_rest(self.group, self.capacity, self.quarantine_group)

    def snapshot(self, aws: Any) -> dict | None:
        serving = probes.group_instances(aws, self.group)
        if not serving:
            raise LookupError(f"group {self.group} has no instance in service: nothing to make vulnerable")
        return {"instance": serving[0]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        detections = getattr(aws, "detections", None)
        if detections is None:
            raise HarnessBroken(f"backend {aws.name} cannot make Inspector report {self.cve} on demand")
        if detections.inspector(snapshot["instance"], cve=self.cve, severity="CRITICAL", package=self.package,
                                version=self.version) is None:
            raise HarnessBroken(f"Inspector does not scan EC2 in {aws.region}: {self.cve} cannot be reported")

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Replace the instance with a fresh one from the launch template (how a vulnerable instance is fixed)."""
        assert snapshot is not None
        if snapshot["instance"] in probes.group_instances(aws, self.group):
            aws.client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=snapshot["instance"], ShouldDecrementDesiredCapacity=False)


# -- SSM patch compliance --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingSecurityUpdates(Fault):
    """An instance of the group reports critical security updates missing (SSM patch compliance)."""

    group: str
    capacity: int
    quarantine_group: str
    missing: int = 2
    name = "findings.missing_security_updates"
    iam_actions = ("autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances", "ssm:ListComplianceItems",
                   "ssm:ListResourceComplianceSummaries", "ssm:PutComplianceItems")

    def describe(self) -> str:
        return f"{self.missing} critical security updates missing on an instance of {self.group}"

    def steady(self) -> Probe:
        return all_of(f"group {self.group} at rest and patched", probes.at_rest(
            self.group, self.capacity, self.quarantine_group), probes.patched(self.group))

    def snapshot(self, aws: Any) -> dict | None:
        serving = probes.group_instances(aws, self.group)
        if not serving:
            raise LookupError(f"group {self.group} has no instance in service: nothing to leave unpatched")
        items, token = [], ""
        while True:
            page = aws.client("ssm").list_compliance_items(
                ResourceIds=[serving[0]], ResourceTypes=["ManagedInstance"], **({"NextToken": token} if token else {}),
                Filters=[{"Key": "ComplianceType", "Values": ["Patch"], "Type": "EQUAL"}])
            items += [{k: i[k] for k in ("Id", "Title", "Severity", "Status", "Details") if i.get(k)}
                      for i in page.get("ComplianceItems", [])]
            token = page.get("NextToken", "")
            if not token:
                return {"instance": serving[0], "items": items}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        scan = uuid.uuid4().hex[:8]
        missing = [{"Id": f"ALAS2023-GAMEDAY-{scan}-{n}", "Title": f"gameday-drill-security-update-{n}",
                    "Severity": "CRITICAL", "Status": "NON_COMPLIANT",
                    "Details": {"Classification": "Security", "PatchState": "Missing"}} for n in range(self.missing)]
        _put(aws, snapshot["instance"], snapshot["items"] + missing, f"gameday-{scan}")

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """The instance's patch compliance as it was (a scan that finds nothing missing when it held nothing)."""
        assert snapshot is not None
        running = aws.client("ec2").describe_instances(Filters=[
            {"Name": "instance-id", "Values": [snapshot["instance"]]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
        if running["Reservations"]:
            _put(aws, snapshot["instance"], snapshot["items"], "gameday-revert")


def _put(aws: Any, instance: str, items: list[dict], execution: str) -> None:
    aws.client("ssm").put_compliance_items(
        ResourceId=instance, ResourceType="ManagedInstance", ComplianceType="Patch", UploadType="COMPLETE",
        ExecutionSummary={"ExecutionTime": datetime.now(timezone.utc), "ExecutionId": execution,
                          "ExecutionType": "Command"},
        Items=items, ItemContentHash=str(int(time.time())))


def vulnerable_library(group: str, *, capacity: int, quarantine_group: str, cve: str = CVE) -> VulnerableLibrary:
    return VulnerableLibrary(group, capacity, quarantine_group, cve)


def missing_security_updates(group: str, *, capacity: int, quarantine_group: str,
                             missing: int = 2) -> MissingSecurityUpdates:
    return MissingSecurityUpdates(group, capacity, quarantine_group, missing)
