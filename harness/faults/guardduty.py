"""Faults on GuardDuty: disable or delete the region's detector, and make it report a sample finding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.faults import Fault
from harness.probes import Probe
from harness.probes import guardduty as probes

__all__ = ["disable_detector", "delete_detector", "sample_finding"]


@dataclass(frozen=True)
class DisableDetector(Fault):
    """UpdateDetector Enable=false: the detector stays but analyses nothing."""

    name = "guardduty.disable_detector"
    iam_actions = ("guardduty:ListDetectors", "guardduty:GetDetector", "guardduty:UpdateDetector")

    def describe(self) -> str:
        return "UpdateDetector Enable=false on the region's GuardDuty detector"

    def steady(self) -> Probe:
        return probes.enabled()

    def snapshot(self, aws: Any) -> dict | None:
        found = probes.detector(aws)
        if found is None:
            raise LookupError(f"no GuardDuty detector in {aws.region}: nothing to disable")
        return {"detector": found[0], "status": found[1]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("guardduty").update_detector(DetectorId=snapshot["detector"], Enable=False)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        found = probes.detector(aws)
        if found is not None and found[1] != "ENABLED" and snapshot["status"] == "ENABLED":
            aws.client("guardduty").update_detector(DetectorId=found[0], Enable=True)


@dataclass(frozen=True)
class DeleteDetector(Fault):
    """DeleteDetector: GuardDuty stops and its findings are gone."""

    name = "guardduty.delete_detector"
    iam_actions = ("guardduty:ListDetectors", "guardduty:GetDetector", "guardduty:DeleteDetector",
                   "guardduty:CreateDetector", "guardduty:TagResource", "iam:CreateServiceLinkedRole")

    def describe(self) -> str:
        return "DeleteDetector on the region's GuardDuty detector"

    def steady(self) -> Probe:
        return probes.enabled()

    def snapshot(self, aws: Any) -> dict | None:
        found = probes.detector(aws)
        if found is None:
            raise LookupError(f"no GuardDuty detector in {aws.region}: nothing to delete")
        detail = aws.client("guardduty").get_detector(DetectorId=found[0])
        return {"detector": found[0], "status": found[1],
                "FindingPublishingFrequency": detail.get("FindingPublishingFrequency"),
                "Features": [_feature(f) for f in detail.get("Features") or []], "Tags": detail.get("Tags") or {}}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("guardduty").delete_detector(DetectorId=snapshot["detector"])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "delete_detector needs its snapshot to revert"
        if probes.detector(aws) is not None:
            return  # remediation already recreated it
        params: dict[str, Any] = {"Enable": snapshot["status"] == "ENABLED"}
        for key in ("FindingPublishingFrequency", "Features", "Tags"):
            if snapshot.get(key):
                params[key] = snapshot[key]
        aws.client("guardduty").create_detector(**params)


@dataclass(frozen=True)
class SampleFinding(Fault):
    """CreateSampleFindings of one finding type: GuardDuty reports it as it would a real one (marked sample)."""

    finding_type: str
    name = "guardduty.sample_finding"
    iam_actions = ("guardduty:ListDetectors", "guardduty:GetDetector", "guardduty:CreateSampleFindings",
                   "guardduty:ListFindings", "guardduty:GetFindings", "guardduty:ArchiveFindings")

    def describe(self) -> str:
        return f"CreateSampleFindings of {self.finding_type}"

    def steady(self) -> Probe:
        return probes.enabled()

    def snapshot(self, aws: Any) -> dict | None:
        found = probes.detector(aws)
        if found is None:
            raise LookupError(f"no GuardDuty detector in {aws.region}: nothing would report a finding")
        return {"detector": found[0], "earlier": self._samples(aws, found[0])}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("guardduty").create_sample_findings(DetectorId=snapshot["detector"],
                                                       FindingTypes=[self.finding_type])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Archive the sample findings this fault made (earlier ones are left as they were)."""
        assert snapshot is not None
        found = probes.detector(aws)
        if found is None or found[0] != snapshot["detector"]:
            return  # the detector and its findings are gone
        ours = [f for f in self._samples(aws, found[0]) if f not in snapshot["earlier"]]
        gd = aws.client("guardduty")
        for i in range(0, len(ours), 50):
            gd.archive_findings(DetectorId=found[0], FindingIds=ours[i:i + 50])

    def _samples(self, aws: Any, detector: str) -> list[str]:
        """Unarchived sample findings of this type (filtered here: criteria support differs between backends)."""
        gd = aws.client("guardduty")
        ids: list[str] = []
        kwargs: dict[str, Any] = {"DetectorId": detector, "MaxResults": 50}
        while True:
            page = gd.list_findings(**kwargs)
            ids += page.get("FindingIds", [])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        out = []
        for i in range(0, len(ids), 50):
            for f in gd.get_findings(DetectorId=detector, FindingIds=ids[i:i + 50]).get("Findings", []):
                service = f.get("Service") or {}
                if f.get("Type") == self.finding_type and not service.get("Archived") and _is_sample(service):
                    out.append(f["Id"])
        return out


disable_detector = DisableDetector
delete_detector = DeleteDetector
sample_finding = SampleFinding


def _feature(feature: dict) -> dict:
    """A GetDetector feature as CreateDetector takes it."""
    out = {"Name": feature["Name"], "Status": feature["Status"]}
    if feature.get("AdditionalConfiguration"):
        out["AdditionalConfiguration"] = [{"Name": c["Name"], "Status": c["Status"]}
                                          for c in feature["AdditionalConfiguration"]]
    return out


def _is_sample(service: dict) -> bool:
    """GetFindings carries the sample flag as JSON text in AdditionalInfo.Value ({"sample": true})."""
    info = service.get("AdditionalInfo") or {}
    try:
        value = json.loads(info.get("Value") or "{}")
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("sample") is True
