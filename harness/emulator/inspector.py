"""Inspector2 package-vulnerability findings on EC2 instances: stored, served by ListFindings, sent as events."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from harness.emulator import motoadapter as moto
from harness.emulator.events import envelope

Response = tuple[int, dict[str, str], bytes]

DETAIL_TYPE = "Inspector2 Finding"
SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNTRIAGED")
# The Inspector score a severity gets when no CVSS vector is given (within each level's documented range).
SCORE = {"INFORMATIONAL": 0.0, "LOW": 3.3, "MEDIUM": 5.5, "HIGH": 7.5, "CRITICAL": 9.8, "UNTRIAGED": 0.0}
MAX_RESULTS = 100
# filterCriteria string filters -> where the finding keeps the value.
_STRING_FIELDS = {
    "findingArn": ("findingArn",), "awsAccountId": ("awsAccountId",), "findingType": ("type",),
    "severity": ("severity",), "findingStatus": ("status",), "title": ("title",),
    "resourceType": ("resources", "type"), "resourceId": ("resources", "id"),
    "vulnerabilityId": ("packageVulnerabilityDetails", "vulnerabilityId"),
    "vulnerabilitySource": ("packageVulnerabilityDetails", "source"),
    "vendorSeverity": ("packageVulnerabilityDetails", "vendorSeverity"),
    "fixAvailable": ("fixAvailable",), "exploitAvailable": ("exploitAvailable",),
    "ec2InstanceImageId": ("resources", "details", "awsEc2Instance", "imageId"),
    "ec2InstanceVpcId": ("resources", "details", "awsEc2Instance", "vpcId"),
    "ec2InstanceSubnetId": ("resources", "details", "awsEc2Instance", "subnetId"),
}
_SORT_FIELDS = {"AWS_ACCOUNT_ID": "awsAccountId", "FINDING_TYPE": "type", "FINDING_STATUS": "status",
                "FIRST_OBSERVED_AT": "firstObservedAt", "LAST_OBSERVED_AT": "lastObservedAt",
                "INSPECTOR_SCORE": "inspectorScore", "SEVERITY": "severity"}


class Inspector:
    """Inspector2 findings per account and region; the plane creates them through `report` (a test hook)."""

    def __init__(self, *, enqueue: Callable[..., None]):
        self._enqueue = enqueue  # Plane._enqueue
        self._findings: dict[tuple[str, str], list[dict]] = {}
        self._lock = threading.Lock()

    def report(self, account: str, region: str, *, instance_id: str, cve: str, severity: str = "HIGH",
               package: str = "openssl", version: str = "1.0.2k") -> dict | None:
        """A PACKAGE_VULNERABILITY finding on an instance; None when Inspector does not scan EC2 there.

        Raises ValueError for an unknown severity, LookupError for an instance that does not exist.
        """
        severity = severity.upper()
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}")
        details = moto.ec2_instance_details(account, region, instance_id)
        if details is None:
            raise LookupError(f"instance {instance_id} does not exist in {account}/{region}")
        if not moto.inspector2_scans_ec2(account, region):
            return None
        now = datetime.now(timezone.utc).timestamp()
        finding = _document(account, region, details, cve=cve, severity=severity, package=package,
                            version=version, at=now)
        with self._lock:
            self._findings.setdefault((account, region), []).append(finding)
        # Known difference: Inspector's publication delay is undocumented; the event leaves at once.
        self._enqueue("event", (envelope(source="aws.inspector2", detail_type=DETAIL_TYPE,
                                         detail=_event_form(finding), account=account, region=region,
                                         resources=[instance_id]), "default"))
        return copy.deepcopy(finding)

    def list_findings(self, body: bytes, account: str, region: str) -> Response:
        """ListFindings (POST /findings/list): string filters, sort, pages of up to 100."""
        try:
            params = json.loads(body or b"{}")
            size = params.get("maxResults", 50)
            token = params.get("nextToken") or "0"
            if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS or not token.isdigit():
                raise ValueError("maxResults or nextToken")
            criteria = params.get("filterCriteria") or {}
            unknown = set(criteria) - set(_STRING_FIELDS)
            if unknown:
                # Known difference: only string filters are emulated; others are refused, never ignored.
                raise ValueError(f"filterCriteria {sorted(unknown)} are not emulated")
            with self._lock:
                found = [copy.deepcopy(f) for f in self._findings.get((account, region), [])
                         if all(_passes(f, name, filters) for name, filters in criteria.items())]
        except (ValueError, AttributeError, TypeError) as exc:
            return 400, {"Content-Type": "application/json", "x-amzn-ErrorType": "ValidationException"}, \
                json.dumps({"message": f"Invalid request: {exc}"}).encode()
        sort = params.get("sortCriteria")
        if sort and sort.get("field") in _SORT_FIELDS:
            field = _SORT_FIELDS[sort["field"]]
            rank = (lambda f: SEVERITIES.index(f["severity"])) if field == "severity" else (lambda f: f[field])
            found.sort(key=rank, reverse=sort.get("sortOrder") == "DESC")
        start = int(token)
        page = found[start:start + size]
        out: dict[str, Any] = {"findings": page}
        if start + size < len(found):
            out["nextToken"] = str(start + size)
        return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()


def _document(account: str, region: str, details: dict, *, cve: str, severity: str, package: str, version: str,
              at: float) -> dict:
    """A finding as ListFindings returns it (timestamps in epoch seconds, the REST-JSON form)."""
    nic = (details.get("networkInterfaces") or [{}])[0]
    score = SCORE[severity]
    return {
        "awsAccountId": account,
        "findingArn": f"arn:{moto.PARTITION}:inspector2:{region}:{account}:finding/{uuid.uuid4().hex}",
        "type": "PACKAGE_VULNERABILITY",
        "title": f"{cve} - {package}",
        "description": f"{cve}: a vulnerability in {package} {version}.",
        "severity": severity,
        "status": "ACTIVE",
        "inspectorScore": score,
        "firstObservedAt": at,
        "lastObservedAt": at,
        "updatedAt": at,
        "fixAvailable": "NO",
        "exploitAvailable": "NO",
        "remediation": {"recommendation": {"text": "None Provided"}},
        "packageVulnerabilityDetails": {
            "vulnerabilityId": cve,
            "source": "NVD",
            "sourceUrl": f"https://nvd.nist.gov/vuln/detail/{cve}",
            "vendorSeverity": severity,
            "cvss": [],
            "referenceUrls": [],
            "relatedVulnerabilities": [],
            "vulnerablePackages": [{"name": package, "version": version, "packageManager": "OS",
                                    "fixedInVersion": "NotAvailable"}],
        },
        "resources": [{
            "type": "AWS_EC2_INSTANCE",
            "id": details["instanceId"],
            "partition": moto.PARTITION,
            "region": region,
            "tags": {t["key"]: t["value"] for t in details.get("tags", [])},
            "details": {"awsEc2Instance": {
                "type": details.get("instanceType"),
                "imageId": details.get("imageId"),
                "ipV4Addresses": [ip for ip in (nic.get("privateIpAddress"), nic.get("publicIp")) if ip],
                "vpcId": nic.get("vpcId"),
                "subnetId": nic.get("subnetId"),
                "platform": (details.get("platform") or "LINUX").upper(),
                "iamInstanceProfileArn": (details.get("iamInstanceProfile") or {}).get("arn") or None,
            }},
        }],
    }


def _event_form(finding: dict) -> dict:
    """The finding as its event carries it: Inspector's events write dates like "Apr 1, 2022, 4:38:07 PM"."""
    event = copy.deepcopy(finding)
    for key in ("firstObservedAt", "lastObservedAt", "updatedAt"):
        when = datetime.fromtimestamp(event[key], tz=timezone.utc)
        event[key] = f"{when:%b} {when.day}, {when.year}, {when.hour % 12 or 12}:{when:%M:%S %p}"
    return event


def _passes(finding: dict, name: str, filters: list[dict]) -> bool:
    """Any EQUALS or PREFIX filter may match; every NOT_EQUALS filter must hold."""
    values = _values(finding, _STRING_FIELDS[name])
    positive = [f for f in filters if f["comparison"] in ("EQUALS", "PREFIX")]
    for f in filters:
        if f["comparison"] == "NOT_EQUALS" and f["value"] in values:
            return False
    return not positive or any(v == f["value"] if f["comparison"] == "EQUALS" else v.startswith(f["value"])
                               for f in positive for v in values)


def _values(node: Any, path: tuple[str, ...]) -> list[str]:
    if not path:
        return [str(node)] if node is not None else []
    items = node if isinstance(node, list) else [node]
    return [v for item in items if isinstance(item, dict) and path[0] in item for v in _values(item[path[0]], path[1:])]
