"""CloudTrail's decisions: which trails log a record, and the 90-day event history behind LookupEvents."""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Iterable

from harness.emulator.motoadapter import TrailView

# AWS keeps 90 days of management events; a bounded deque keeps a long `gameday up` from growing forever.
HISTORY_LIMIT = 50_000

_LOOKUP_KEYS = {
    "EventId": lambda r: [r["eventID"]],
    "EventName": lambda r: [r["eventName"]],
    "ReadOnly": lambda r: ["true" if r.get("readOnly") else "false"],
    "Username": lambda r: [_username(r)],
    "EventSource": lambda r: [r["eventSource"]],
    "AccessKeyId": lambda r: [r.get("userIdentity", {}).get("accessKeyId", "")],
    "ResourceName": lambda r: [res["ResourceName"] for res in _resources(r)],
    "ResourceType": lambda r: [res["ResourceType"] for res in _resources(r)],
}


# Known difference: insight selectors and organization trails are not emulated.
def selects(trail: TrailView, record: dict) -> bool:
    """Whether a trail's event selectors include a record (basic or advanced selectors, as AWS evaluates them)."""
    if trail.advanced_event_selectors:
        return any(_advanced_matches(sel, record) for sel in trail.advanced_event_selectors)
    if not trail.event_selectors:
        # A trail with no selectors logs all management events (AWS's default selector).
        return record.get("eventCategory") == "Management"
    return any(_basic_matches(sel, record) for sel in trail.event_selectors)


def logging_trails(before: Iterable[TrailView], after: Iterable[TrailView], record: dict) -> list[TrailView]:
    """Trails that log this record: logging and selecting it before or after the call.

    Before-or-after is what makes StopLogging (and a selector change that excludes
    management events) record itself, while calls made later are not recorded.
    """
    region = record["awsRegion"]
    chosen: dict[str, TrailView] = {}
    for view in list(before) + list(after):
        if view.arn in chosen or not view.logging or not view.covers_region(region):
            continue
        if selects(view, record):
            chosen[view.arn] = view
    return list(chosen.values())


def _basic_matches(selector: dict, record: dict) -> bool:
    rw = selector.get("ReadWriteType", "All")
    read_only = bool(record.get("readOnly"))
    if rw == "ReadOnly" and not read_only or rw == "WriteOnly" and read_only:
        return False
    if record.get("eventCategory") == "Management":
        if not selector.get("IncludeManagementEvents", True):
            return False
        return record["eventSource"] not in selector.get("ExcludeManagementEventSources", [])
    for resource in selector.get("DataResources", []):
        if _data_resource_matches(resource, record):
            return True
    return False


def _data_resource_matches(resource: dict, record: dict) -> bool:
    kind = resource.get("Type")
    arns = [r.get("ARN", "") for r in record.get("resources", []) if r.get("type") == kind]
    for value in resource.get("Values", []):
        # "arn:aws:s3" (all buckets) and "arn:aws:s3:::bucket/" prefixes select by prefix, as AWS does.
        if any(arn.startswith(value) for arn in arns):
            return True
    return False


def _advanced_matches(selector: dict, record: dict) -> bool:
    fields = {
        "eventCategory": [record.get("eventCategory", "")],
        "readOnly": ["true" if record.get("readOnly") else "false"],
        "eventSource": [record.get("eventSource", "")],
        "eventName": [record.get("eventName", "")],
        "eventType": [record.get("eventType", "")],
        "resources.type": [r.get("type", "") for r in record.get("resources", [])],
        "resources.ARN": [r.get("ARN", "") for r in record.get("resources", [])],
    }
    for field in selector.get("FieldSelectors", []):
        values = fields.get(field["Field"], [""])
        if not any(_field_condition(field, v) for v in values):
            return False
    return True


def _field_condition(field: dict, value: str) -> bool:
    tests = {
        "Equals": lambda xs: value in xs,
        "StartsWith": lambda xs: any(value.startswith(x) for x in xs),
        "EndsWith": lambda xs: any(value.endswith(x) for x in xs),
        "NotEquals": lambda xs: value not in xs,
        "NotStartsWith": lambda xs: not any(value.startswith(x) for x in xs),
        "NotEndsWith": lambda xs: not any(value.endswith(x) for x in xs),
    }
    return all(tests[op](xs) for op, xs in field.items() if op in tests)


class EventHistory:
    """CloudTrail Event history: every management event, trail or no trail, as AWS keeps it."""

    def __init__(self, limit: int = HISTORY_LIMIT):
        self._records: deque[dict] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(self, record: dict) -> None:
        if record.get("eventCategory") == "Management":
            with self._lock:
                self._records.append(record)

    def lookup(self, params: dict) -> dict:
        """Serve LookupEvents: newest first, one lookup attribute, time window, MaxResults/NextToken."""
        attrs = params.get("LookupAttributes") or []
        if len(attrs) > 1:
            raise LookupError("InvalidLookupAttributesException", "You can only specify one lookup attribute.")
        start = _as_datetime(params.get("StartTime"))
        end = _as_datetime(params.get("EndTime"))
        limit = min(int(params.get("MaxResults") or 50), 50)
        offset = int(base64.b64decode(params["NextToken"]).decode()) if params.get("NextToken") else 0
        with self._lock:
            snapshot = list(self._records)
        hits = []
        for record in reversed(snapshot):
            at = datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            if start and at < start or end and at > end:
                continue
            if attrs:
                key, want = attrs[0]["AttributeKey"], attrs[0]["AttributeValue"]
                if want not in _LOOKUP_KEYS[key](record):
                    continue
            hits.append((at, record))
        page = hits[offset : offset + limit]
        result: dict = {"Events": [_lookup_event(at, r) for at, r in page]}
        if offset + limit < len(hits):
            result["NextToken"] = base64.b64encode(str(offset + limit).encode()).decode()
        return result


def _lookup_event(at: datetime, record: dict) -> dict:
    event = {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": "true" if record.get("readOnly") else "false",
        "EventTime": at.timestamp(),
        "EventSource": record["eventSource"],
        "Username": _username(record),
        "Resources": _resources(record),
        "CloudTrailEvent": json.dumps(record),
    }
    key = record.get("userIdentity", {}).get("accessKeyId")
    if key:
        event["AccessKeyId"] = key
    return event


def _username(record: dict) -> str:
    ident = record.get("userIdentity", {})
    if ident.get("type") == "AssumedRole":
        return ident.get("arn", "").rsplit("/", 1)[-1]
    return ident.get("userName") or ident.get("type", "")


def _resources(record: dict) -> list[dict]:
    # Known difference: AWS names resources for most services; we name the ones the stack watches.
    params = record.get("requestParameters") or {}
    source = record.get("eventSource")
    if source == "cloudtrail.amazonaws.com" and "name" in params:
        return [{"ResourceType": "AWS::CloudTrail::Trail", "ResourceName": params["name"]}]
    if source == "s3.amazonaws.com" and "bucketName" in params:
        return [{"ResourceType": "AWS::S3::Bucket", "ResourceName": params["bucketName"]}]
    return []


def _as_datetime(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = str(value)
    try:
        return datetime.fromtimestamp(float(text), tz=timezone.utc)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
