"""EventBridge delivery: rules matched on a bus, each target delivered on its own (SNS, Lambda, SQS, Logs)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from harness.emulator import motoadapter as moto
from harness.emulator.clock import PlaneClock

log = logging.getLogger("gameday.plane.events")

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# A rule in this state also receives read-only management events (AWS added it in 2023).
ALL_MANAGEMENT_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
SNS_PUBLISHER = "events.amazonaws.com"  # the principal EventBridge publishes to SNS as
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}
# A clock that ran far ahead (huge time scale, a stalled tick) fires at most this many missed runs per rule.
CATCH_UP = 100


@dataclass
class Delivery:
    """One attempt to hand one event to one target."""

    rule: str
    target_id: str
    target_arn: str
    event_id: str
    ok: bool
    error: str | None = None
    at: float = field(default_factory=time.time)


def envelope(*, source: str, detail_type: str, detail: dict, account: str, region: str,
             resources: list[str] | None = None, at: datetime | None = None) -> dict:
    """An event as EventBridge hands it to rules and targets."""
    when = (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": when,
        "region": region,
        "resources": resources or [],
        "detail": detail,
    }


def cloudtrail_envelope(record: dict) -> dict:
    """The "AWS API Call via CloudTrail" event for a record (source is aws.<service>)."""
    service = record["eventSource"].split(".", 1)[0]
    return envelope(
        source=f"aws.{service}",
        detail_type=CLOUDTRAIL_DETAIL_TYPE,
        detail=record,
        account=record["recipientAccountId"],
        region=record["awsRegion"],
        at=datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc),
    )


class EventBus:
    """Delivers events on the account's buses to the targets of matching, enabled rules."""

    def __init__(self, invoke_lambda: Callable[[str, bytes], None], emit_metric: Callable[..., None]):
        self._invoke_lambda = invoke_lambda
        self._emit_metric = emit_metric
        self.deliveries: deque[Delivery] = deque(maxlen=5000)
        self._lock = threading.Lock()

    def put(self, event: dict, bus: str = "default") -> list[Delivery]:
        account, region = event["account"], event["region"]
        read_only_trail_event = (
            event["detail-type"] == CLOUDTRAIL_DETAIL_TYPE
            and event["detail"].get("readOnly") is True
            and event["detail"].get("eventCategory") == "Management"
        )
        done: list[Delivery] = []
        flat = moto.flatten_arrays(event)
        for rule in moto.rules(account, region, bus):
            if rule.state == "DISABLED":
                continue
            if read_only_trail_event and rule.state != ALL_MANAGEMENT_STATE:
                continue
            if not rule.matches(flat):
                continue
            done.extend(self.deliver_to(rule, event))
        return done

    def deliver_to(self, rule: moto.RuleView, event: dict) -> list[Delivery]:
        """Hand an event to each of the rule's targets, counting AWS/Events Invocations and FailedInvocations."""
        done = [self._deliver(rule.name, target, event) for target in rule.targets]
        with self._lock:
            self.deliveries.extend(done)
        # As on AWS, Invocations counts failed invocations too.
        for metric, value in (("Invocations", len(done)), ("FailedInvocations", sum(not d.ok for d in done))):
            if value:
                self._emit_metric(event["account"], event["region"], "AWS/Events", metric, float(value),
                                  dimensions={"RuleName": rule.name}, unit="Count")
        return done

    def _deliver(self, rule: str, target: dict, event: dict) -> Delivery:
        arn = target["Arn"]
        try:
            payload = moto.transform_input(target, event)
            service = arn.split(":")[2]
            if service == "sns":
                moto.sns_publish(arn, payload, publisher=SNS_PUBLISHER)
            elif service == "lambda":
                self._invoke_lambda(arn, payload.encode())
            elif service == "sqs":
                moto.sqs_send(arn, payload)
            elif service == "logs":
                name = moto.log_group_name_from_arn(arn)
                account, region = arn.split(":")[4], arn.split(":")[3]
                ok = moto.put_log_lines(name, event["id"], [(int(time.time() * 1000), payload)],
                                        account_id=account, region=region)
                if not ok:
                    raise LookupError(f"log group {name} does not exist")
            else:
                raise NotImplementedError(f"target type {service} is not emulated")
        except Exception as exc:  # one failing target never stops or repeats the others
            log.warning("rule %s target %s failed: %s", rule, target.get("Id"), exc)
            return Delivery(rule, target.get("Id", ""), arn, event["id"], False, f"{type(exc).__name__}: {exc}")
        return Delivery(rule, target.get("Id", ""), arn, event["id"], True)


def put_events_entries(entries: list[dict], *, account: str, region: str) -> tuple[list[tuple[dict, str]], list[dict]]:
    """Validate PutEvents entries as AWS does; returns (events to deliver with their bus, result entries)."""
    accepted: list[tuple[dict, str]] = []
    results: list[dict] = []
    for entry in entries:
        missing = next((k for k in ("Source", "DetailType", "Detail") if not entry.get(k)), None)
        if missing:
            results.append({"ErrorCode": "InvalidArgument",
                            "ErrorMessage": f"Parameter {missing} is not valid. Reason: {missing} is a required argument."})
            continue
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            results.append({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
            continue
        bus = (entry.get("EventBusName") or "default").rsplit("/", 1)[-1]
        if not moto.has_event_bus(account, region, bus):
            results.append({"ErrorCode": "InvalidArgument",
                            "ErrorMessage": f"Event bus {bus} does not exist."})
            continue
        at = entry.get("Time")
        when = datetime.fromtimestamp(float(at), tz=timezone.utc) if at else None
        event = envelope(source=entry["Source"], detail_type=entry["DetailType"], detail=detail,
                         account=account, region=region, resources=entry.get("Resources"), at=when)
        accepted.append((event, bus))
        results.append({"EventId": event["id"]})
    return accepted, results


class Schedules:
    """Rules with a rate() schedule fire on the plane's clock (AWS time): first one interval after they are
    created or enabled, then every interval, with AWS's "Scheduled Event" envelope."""

    def __init__(self, clock: PlaneClock, note_failure: Callable[[str], None]):
        self.clock = clock
        self._note_failure = note_failure
        self._next: dict[str, tuple[str, float]] = {}  # rule ARN -> (its expression, AWS time of its next run)
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def arm(self, account: str, region: str, name: str) -> None:
        """PutRule or EnableRule: the first run is one interval from now."""
        for rule in moto.rules(account, region):
            interval = self._interval(rule) if rule.name == name and rule.state != "DISABLED" else None
            if interval:
                with self._lock:
                    self._next[rule.arn] = (rule.schedule, self.clock.now() + interval)

    def due(self, places: list[tuple[str, str]]) -> list[tuple[moto.RuleView, dict]]:
        """The runs due by now, each a rule and its event; rules seen for the first time are armed."""
        now, fired, seen = self.clock.now(), [], set()
        with self._lock:
            for account, region in places:
                for rule in moto.rules(account, region):  # schedules live on the default bus only
                    interval = self._interval(rule) if rule.state != "DISABLED" else None
                    if not interval:
                        continue
                    seen.add(rule.arn)
                    expression, at = self._next.get(rule.arn, ("", 0.0))
                    if expression != rule.schedule:
                        self._next[rule.arn] = (rule.schedule, now + interval)
                        continue
                    for _ in range(CATCH_UP):
                        if at > now:
                            break
                        fired.append((rule, scheduled_event(rule, account, region, at)))
                        at += interval
                    if at <= now:  # more runs missed than CATCH_UP: skip the rest
                        at = now + interval
                    self._next[rule.arn] = (expression, at)
            for arn in set(self._next) - seen:  # deleted or disabled: enabling again re-arms
                del self._next[arn]
        return fired

    def _interval(self, rule: moto.RuleView) -> int | None:
        if not rule.schedule:
            return None
        match = _RATE.match(rule.schedule)
        if match is None:
            if rule.arn not in self._warned:
                self._warned.add(rule.arn)
                # Known difference: cron() schedules are not emulated; the rule never fires.
                self._note_failure(f"rule {rule.name}: cron schedules are not emulated ({rule.schedule})")
            return None
        return int(match.group(1)) * _UNIT_S[match.group(2).rstrip("s")]


def scheduled_event(rule: moto.RuleView, account: str, region: str, at: float) -> dict:
    """The event a scheduled rule sends its targets; `at` is the scheduled AWS time."""
    return envelope(source="aws.events", detail_type="Scheduled Event", detail={}, account=account, region=region,
                    resources=[rule.arn], at=datetime.fromtimestamp(at, tz=timezone.utc))
