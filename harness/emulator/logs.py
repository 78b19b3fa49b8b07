"""CloudWatch Logs machinery: metric filters emit metrics, subscription filters deliver what their pattern matches."""

from __future__ import annotations

import base64
import gzip
import json
import logging
from datetime import datetime, timezone
from typing import Callable

from harness.emulator import filterpattern, motoadapter as moto
from harness.emulator.filterpattern import MISSING

log = logging.getLogger("gameday.plane.logs")

EmitMetric = Callable[..., None]


class LogIngest:
    """Runs on every batch of events stored in a log group, from the recorder or from PutLogEvents."""

    def __init__(self, emit_metric: EmitMetric, invoke_lambda: Callable[[str, bytes], None]):
        self._emit = emit_metric
        self._invoke_lambda = invoke_lambda
        self.failures: list[str] = []

    def ingest(self, account: str, region: str, group: str, stream: str, events: list[dict]) -> None:
        filters = moto.metric_filters(account, region, group)
        subscriptions = moto.subscription_filters(account, region, group)
        if not filters and not subscriptions:
            return
        parsed: list[object] = [MISSING] * len(events)
        for f in filters:
            self._apply_metric_filter(account, region, f, events, parsed)
        for sub in subscriptions:
            self._deliver_subscription(account, region, group, stream, sub, events, parsed)

    def _apply_metric_filter(self, account: str, region: str, f: dict, events: list[dict], parsed: list) -> None:
        try:
            pattern = filterpattern.compile(f["filterPattern"])
        except filterpattern.FilterPatternError as exc:  # stored before validation existed: AWS would have refused it
            self.failures.append(f"metric filter {f['filterName']}: {exc}")
            return
        matched_any = False
        for i, event in enumerate(events):
            parsed[i] = _parsed(event["message"], parsed[i], pattern)
            match = pattern.match(event["message"], parsed[i])
            if match is None:
                continue
            matched_any = True
            at = datetime.fromtimestamp(event["timestamp"] / 1000, tz=timezone.utc)
            for t in f["metricTransformations"]:
                value = _metric_value(t["metricValue"], match)
                if value is None:
                    continue
                dims = {name: str(match.value(sel)) for name, sel in (t.get("dimensions") or {}).items()
                        if match.value(sel) is not None}
                self._emit(account, region, t["metricNamespace"], t["metricName"], value, dimensions=dims,
                           unit=t.get("unit"), timestamp=at)
        if not matched_any and events:
            # Known difference: AWS reports defaultValue once per period with ingestion and no match; we
            # report it once per ingested batch with no match.
            at = datetime.fromtimestamp(events[-1]["timestamp"] / 1000, tz=timezone.utc)
            for t in f["metricTransformations"]:
                if t.get("defaultValue") is not None:
                    self._emit(account, region, t["metricNamespace"], t["metricName"], float(t["defaultValue"]),
                               unit=t.get("unit"), timestamp=at)

    def _deliver_subscription(self, account: str, region: str, group: str, stream: str, sub: dict,
                              events: list[dict], parsed: list) -> None:
        pattern = filterpattern.compile(sub["filterPattern"] or "")
        chosen = []
        for i, event in enumerate(events):
            parsed[i] = _parsed(event["message"], parsed[i], pattern)
            if pattern.matches(event["message"], parsed[i]):
                chosen.append({"id": str(event.get("id") or f"{event['timestamp']}{i:08d}"),
                               "timestamp": event["timestamp"], "message": event["message"]})
        if not chosen:
            return
        destination = sub["destinationArn"]
        if destination.split(":")[2] != "lambda":
            # Known difference: Kinesis and Firehose destinations are not emulated.
            self.failures.append(f"subscription {sub['filterName']}: destination {destination} is not emulated")
            return
        data = {"messageType": "DATA_MESSAGE", "owner": account, "logGroup": group, "logStream": stream,
                "subscriptionFilters": [sub["filterName"]], "logEvents": chosen}
        payload = {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}
        try:
            self._invoke_lambda(destination, json.dumps(payload).encode())
        except Exception as exc:  # a broken destination never stops ingestion
            self.failures.append(f"subscription {sub['filterName']}: {exc}")


def _parsed(message: str, current: object, pattern: filterpattern.Pattern) -> object:
    """Decode JSON once per event, and only when a JSON pattern needs it."""
    if current is not MISSING or pattern.kind != "json":
        return current
    try:
        return json.loads(message)
    except ValueError:
        return None


def _metric_value(spec: str, match: filterpattern.Match) -> float | None:
    if spec.startswith("$"):
        raw = match.value(spec)
        try:
            return None if raw is None else float(raw)
        except (TypeError, ValueError):
            return None  # AWS emits nothing for a non-numeric extracted value
    return float(spec)
