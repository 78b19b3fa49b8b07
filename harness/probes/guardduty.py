"""Probes of GuardDuty: the region's detector and its findings."""

from __future__ import annotations

from typing import Any

from harness.probes import Probe

__all__ = ["enabled"]


def enabled() -> Probe:
    """The region has a GuardDuty detector and it is enabled (a region holds at most one)."""

    def check(aws: Any) -> tuple[bool, str]:
        found = detector(aws)
        if found is None:
            return False, f"no GuardDuty detector in {aws.region}"
        detector_id, status = found
        return status == "ENABLED", f"GuardDuty detector {detector_id} is {status}"

    return Probe("GuardDuty is enabled", check, ("guardduty:ListDetectors", "guardduty:GetDetector"))


def detector(aws: Any) -> tuple[str, str] | None:
    """The region's detector id and status, or None."""
    gd = aws.client("guardduty")
    ids = gd.list_detectors().get("DetectorIds", [])
    if not ids:
        return None
    return ids[0], gd.get_detector(DetectorId=ids[0]).get("Status", "?")
