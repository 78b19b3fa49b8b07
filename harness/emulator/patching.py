"""SSM Compliance as the plane serves it (moto has none): compliance items, summaries and their state change events."""

from __future__ import annotations

import copy
import json
import re
import threading
from datetime import datetime, timezone
from typing import Any, Callable

from harness.emulator import motoadapter as moto
from harness.emulator.events import envelope

Response = tuple[int, dict[str, str], bytes]

DETAIL_TYPE = "Configuration Compliance State Change"
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNSPECIFIED")  # most severe first
STATUSES = ("COMPLIANT", "NON_COMPLIANT")
RESOURCE_TYPES = ("ManagedInstance",)  # the only type PutComplianceItems accepts
_TYPE = re.compile(r"^([A-Za-z0-9_\-]\w+|Custom:[a-zA-Z0-9_\-]\w+)$")
MAX_ITEMS = 10000
_JSON = {"Content-Type": "application/x-amz-json-1.1"}
# ListComplianceItems / ListResourceComplianceSummaries filter keys -> the item or summary field they test.
_ITEM_KEYS = {"ComplianceType": "ComplianceType", "Status": "Status", "Severity": "Severity", "Id": "Id",
              "Title": "Title", "ExecutionId": "ExecutionId", "ExecutionType": "ExecutionType"}
_SUMMARY_KEYS = {"ComplianceType": "ComplianceType", "Status": "Status", "OverallSeverity": "OverallSeverity",
                 "ResourceId": "ResourceId", "ResourceType": "ResourceType"}


class ComplianceError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Compliance:
    """Compliance items per resource and compliance type, as PutComplianceItems leaves them."""

    def __init__(self, *, enqueue: Callable[..., None]):
        self._enqueue = enqueue  # Plane._enqueue
        self._held: dict[tuple[str, str], dict[tuple[str, str, str], dict]] = {}
        self._lock = threading.Lock()

    def serve(self, target: str, body: bytes, account: str, region: str) -> Response | None:
        verb = target.rsplit(".", 1)[-1] if target.startswith("AmazonSSM.") else ""
        handler = {"PutComplianceItems": self._put, "ListComplianceItems": self._items,
                   "ListResourceComplianceSummaries": self._resource_summaries,
                   "ListComplianceSummaries": self._summaries}.get(verb)
        if handler is None:
            return None
        try:
            return 200, _JSON, json.dumps(handler(json.loads(body or b"{}"), account, region)).encode()
        except ComplianceError as exc:
            return 400, {**_JSON, "x-amzn-ErrorType": exc.kind}, json.dumps(
                {"__type": exc.kind, "message": str(exc)}).encode()

    # -- PutComplianceItems -----------------------------------------------------------------

    def _put(self, params: dict, account: str, region: str) -> dict:
        resource, kind, compliance = params.get("ResourceId", ""), params.get("ResourceType", ""), \
            params.get("ComplianceType", "")
        if kind not in RESOURCE_TYPES:
            raise ComplianceError("ValidationException", f"ResourceType {kind!r} is not supported")
        if not _TYPE.match(compliance):
            raise ComplianceError("ValidationException", f"ComplianceType {compliance!r} is not valid")
        # Known difference: any instance counts as managed (AWS wants its SSM Agent registered).
        if resource not in {v.id for v in moto.ec2_instances(account, region)}:
            raise ComplianceError("InvalidResourceId", f"The resource ID {resource} is not valid")
        items = params.get("Items") or []
        if len(items) > MAX_ITEMS:
            raise ComplianceError("ComplianceTypeCountLimitExceededException", f"more than {MAX_ITEMS} items")
        summary = params.get("ExecutionSummary") or {}
        if "ExecutionTime" not in summary:
            raise ComplianceError("ValidationException", "ExecutionSummary.ExecutionTime is required")
        for item in items:
            if item.get("Severity") not in SEVERITIES or item.get("Status") not in STATUSES:
                raise ComplianceError("ValidationException", f"item {item.get('Id')}: bad Severity or Status")
        key = (kind, resource, compliance)
        with self._lock:
            held = self._held.setdefault((account, region), {})
            before = held.get(key)
            old_status = _status(before["items"]) if before else None
            kept = {} if params.get("UploadType", "COMPLETE") == "COMPLETE" or before is None else \
                {i.get("Id", ""): i for i in before["items"]}
            for item in items:
                kept[item.get("Id", "")] = {k: item[k] for k in ("Id", "Title", "Severity", "Status", "Details")
                                            if k in item}
            held[key] = {"items": list(kept.values()), "summary": dict(summary)}
            new_status = _status(held[key]["items"])
            severity = _overall(held[key]["items"])
        if new_status != old_status:
            self._enqueue("event", (self._event(account, region, resource, compliance, new_status, severity,
                                                summary), "default"))
        return {}

    def _event(self, account: str, region: str, resource: str, compliance: str, status: str, severity: str,
               summary: dict) -> dict:
        detail: dict[str, Any] = {"resource-type": "managed-instance", "resource-id": resource,
                                  "compliance-status": status.lower(), "compliance-type": compliance}
        if compliance == "Association":
            detail["last-runtime"] = _iso(summary.get("ExecutionTime"))
        else:
            # Known difference: a patch scan's event also names its patch baseline, which these items cannot carry.
            detail["severity"] = severity.lower()
        return envelope(source="aws.ssm", detail_type=DETAIL_TYPE, detail=detail, account=account, region=region,
                        resources=[f"arn:{moto.PARTITION}:ssm:{region}:{account}:managed-instance/{resource}"])

    # -- the listings ------------------------------------------------------------------------

    def _items(self, params: dict, account: str, region: str) -> dict:
        ids = params.get("ResourceIds") or []
        types = params.get("ResourceTypes") or list(RESOURCE_TYPES)
        with self._lock:
            held = copy.deepcopy(self._held.get((account, region), {}))
        found = []
        for (kind, resource, compliance), entry in sorted(held.items()):
            if ids and resource not in ids or kind not in types:
                continue
            summary = entry["summary"]
            for item in entry["items"]:
                row = {"ComplianceType": compliance, "ResourceType": kind, "ResourceId": resource, **item,
                       "ExecutionSummary": _summary(summary)}
                flat = {**row, "ExecutionId": summary.get("ExecutionId"), "ExecutionType": summary.get("ExecutionType")}
                if _passes(flat, params.get("Filters"), _ITEM_KEYS):
                    found.append(row)
        return _page(found, params, "ComplianceItems")

    def _resource_summaries(self, params: dict, account: str, region: str) -> dict:
        found = [s for s in self._rollup(account, region) if _passes(s, params.get("Filters"), _SUMMARY_KEYS)]
        return _page(found, params, "ResourceComplianceSummaryItems")

    def _summaries(self, params: dict, account: str, region: str) -> dict:
        """Per compliance type: how many resources are compliant and non-compliant, by severity."""
        by_type: dict[str, dict] = {}
        for summary in self._rollup(account, region):
            if not _passes(summary, params.get("Filters"), _SUMMARY_KEYS):
                continue
            row = by_type.setdefault(summary["ComplianceType"], {
                "ComplianceType": summary["ComplianceType"],
                "CompliantSummary": {"CompliantCount": 0, "SeveritySummary": _severity_counts([])},
                "NonCompliantSummary": {"NonCompliantCount": 0, "SeveritySummary": _severity_counts([])}})
            part, count = ("CompliantSummary", "CompliantCount") if summary["Status"] == "COMPLIANT" else \
                ("NonCompliantSummary", "NonCompliantCount")
            row[part][count] += 1
            row[part]["SeveritySummary"][_COUNT[summary["OverallSeverity"]]] += 1
        return _page(list(by_type.values()), params, "ComplianceSummaryItems")

    def _rollup(self, account: str, region: str) -> list[dict]:
        with self._lock:
            held = copy.deepcopy(self._held.get((account, region), {}))
        out = []
        for (kind, resource, compliance), entry in sorted(held.items()):
            items = entry["items"]
            good = [i for i in items if i.get("Status") == "COMPLIANT"]
            bad = [i for i in items if i.get("Status") == "NON_COMPLIANT"]
            out.append({
                "ComplianceType": compliance, "ResourceType": kind, "ResourceId": resource,
                "Status": _status(items), "OverallSeverity": _overall(items),
                "ExecutionSummary": _summary(entry["summary"]),
                "CompliantSummary": {"CompliantCount": len(good), "SeveritySummary": _severity_counts(good)},
                "NonCompliantSummary": {"NonCompliantCount": len(bad), "SeveritySummary": _severity_counts(bad)}})
        return out


_COUNT = {"CRITICAL": "CriticalCount", "HIGH": "HighCount", "MEDIUM": "MediumCount", "LOW": "LowCount",
          "INFORMATIONAL": "InformationalCount", "UNSPECIFIED": "UnspecifiedCount"}


def _status(items: list[dict]) -> str:
    return "NON_COMPLIANT" if any(i.get("Status") == "NON_COMPLIANT" for i in items) else "COMPLIANT"


def _overall(items: list[dict]) -> str:
    """The most severe severity among the non-compliant items (among all items when none is non-compliant)."""
    pool = [i for i in items if i.get("Status") == "NON_COMPLIANT"] or items
    ranks = [SEVERITIES.index(i["Severity"]) for i in pool if i.get("Severity") in SEVERITIES]
    return SEVERITIES[min(ranks)] if ranks else "UNSPECIFIED"


def _severity_counts(items: list[dict]) -> dict:
    counts = {name: 0 for name in _COUNT.values()}
    for item in items:
        counts[_COUNT.get(item.get("Severity"), "UnspecifiedCount")] += 1
    return counts


def _summary(summary: dict) -> dict:
    out = {"ExecutionTime": _epoch(summary.get("ExecutionTime"))}
    for key in ("ExecutionId", "ExecutionType"):
        if summary.get(key):
            out[key] = summary[key]
    return out


def _passes(row: dict, filters: list[dict] | None, keys: dict[str, str]) -> bool:
    """Every filter holds: EQUAL / NOT_EQUAL / BEGIN_WITH / LESS_THAN / GREATER_THAN on one of its values."""
    for f in filters or []:
        field = keys.get(f.get("Key", ""))
        if field is None:
            raise ComplianceError("ValidationException", f"filter key {f.get('Key')!r} is not supported")
        value, wanted, kind = str(row.get(field, "")), f.get("Values") or [], f.get("Type", "EQUAL")
        tests = {"EQUAL": lambda w: value == w, "NOT_EQUAL": lambda w: value != w,
                 "BEGIN_WITH": lambda w: value.startswith(w), "LESS_THAN": lambda w: value < w,
                 "GREATER_THAN": lambda w: value > w}
        if kind not in tests:
            raise ComplianceError("ValidationException", f"filter type {kind!r} is not supported")
        hold = any(tests[kind](w) for w in wanted)
        if kind == "NOT_EQUAL":
            hold = all(tests[kind](w) for w in wanted)
        if not hold:
            return False
    return True


def _page(rows: list[dict], params: dict, key: str) -> dict:
    size = int(params.get("MaxResults") or 50)
    if not 1 <= size <= 50:
        raise ComplianceError("ValidationException", "MaxResults must be between 1 and 50")
    token = params.get("NextToken") or "0"
    if not str(token).isdigit():
        raise ComplianceError("InvalidNextToken", "The specified token is not valid")
    start = int(token)
    out: dict[str, Any] = {key: rows[start:start + size]}
    if start + size < len(rows):
        out["NextToken"] = str(start + size)
    return out


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return datetime.now(timezone.utc).timestamp()


def _iso(value: Any) -> str:
    return datetime.fromtimestamp(_epoch(value), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
