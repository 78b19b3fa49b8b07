"""Facts: every API answer the hops need, fetched once (and at once) per trace."""

from __future__ import annotations

import json
import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from botocore.exceptions import ClientError

from harness.stack.desired import StackOutputs
from harness.trace.records import OWN_STREAMS, sample_record

HISTORY_WINDOW = timedelta(hours=24)
# Failed deliveries this recent mean a subscriber is failing now: three periods of the stack's delivery alarm.
FAILED_DELIVERY_WINDOW = timedelta(minutes=15)
NOT_FOUND = frozenset({
    "TrailNotFoundException", "ResourceNotFoundException", "ResourceNotFound", "NotFound", "NotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NoSuchEntity",
})


class Missing(LookupError):
    """A resource a hop needs does not exist (its own hop reports it broken; later ones are skipped)."""


def _missing_on_not_found(what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
            raise Missing(f"{what} does not exist") from exc
        raise


def _parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """fn over items at once (each item one API call); exceptions are returned in place, not raised."""
    def safe(item: Any) -> Any:
        try:
            return fn(item)
        except Exception as exc:  # each caller decides what its item's error means
            return exc
    if len(items) <= 1:
        return [safe(i) for i in items]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(safe, items))


class Facts:
    """What the hops read, each fetched by the first hop that needs it while the others wait for it."""

    def __init__(self, aws: Any, stack: StackOutputs, control: str):
        self.aws, self.stack, self.control = aws, stack, control
        self.now = datetime.now(timezone.utc)
        # AWS seconds per wall second: "the last hour" of an emulator at 60x is a wall minute.
        self.scale = float(getattr(aws, "time_scale", 1.0) or 1.0)
        self._lock = threading.Lock()
        self._futures: dict[str, Future] = {}

    def _memo(self, key: str, fetch: Callable[[], Any]) -> Any:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if owner:
                future = self._futures[key] = Future()
        if owner:
            try:
                future.set_result(fetch())
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()

    def client(self, service: str) -> Any:
        return self.aws.client(service)

    def trail(self) -> dict:
        name = self.stack.trail_name
        return self._memo("trail", lambda: _missing_on_not_found(
            f"trail {name}", lambda: self.client("cloudtrail").get_trail(Name=name)["Trail"]))

    def trail_status(self) -> dict:
        self.trail()
        return self._memo("trail_status", lambda: _missing_on_not_found(
            f"trail {self.stack.trail_name}",
            lambda: self.client("cloudtrail").get_trail_status(Name=self.stack.trail_name)))

    def selectors(self) -> dict:
        self.trail()
        return self._memo("selectors", lambda: _missing_on_not_found(
            f"trail {self.stack.trail_name}",
            lambda: self.client("cloudtrail").get_event_selectors(TrailName=self.stack.trail_name)))

    def latest_trail_stream(self) -> dict | None:
        """The log group's most recently written stream that CloudTrail writes (not one of Gameday's own)."""
        def fetch() -> dict | None:
            streams = self.client("logs").describe_log_streams(
                logGroupName=self.stack.log_group_name, orderBy="LastEventTime", descending=True, limit=10)
            return next((s for s in streams.get("logStreams", []) if s["logStreamName"] not in OWN_STREAMS), None)
        return self._memo("stream", lambda: _missing_on_not_found(f"log group {self.stack.log_group_name}", fetch))

    def metric_filter(self) -> dict:
        name = self.stack.metric_filter_names[self.control]

        def fetch() -> dict:
            found = self.client("logs").describe_metric_filters(
                logGroupName=self.stack.log_group_name, filterNamePrefix=name).get("metricFilters", [])
            exact = [f for f in found if f["filterName"] == name]
            if not exact:
                raise Missing(f"metric filter {name} on {self.stack.log_group_name} does not exist")
            return exact[-1]
        return self._memo("filter", lambda: _missing_on_not_found(f"log group {self.stack.log_group_name}", fetch))

    def filter_matches(self) -> list:
        f = self.metric_filter()
        record = sample_record(self.control, account_id=self.aws.account_id, region=self.aws.region)
        return self._memo("filter_matches", lambda: self.client("logs").test_metric_filter(
            filterPattern=f["filterPattern"], logEventMessages=[json.dumps(record)]).get("matches", []))

    def _alarms(self) -> dict[str, dict]:
        """The control's alarm and the stack's delivery alarm (if it names one) that exist, from one DescribeAlarms."""
        names = [self.stack.alarm_names[self.control]] + [n for n in [self.stack.delivery_failures_alarm] if n]
        return self._memo("alarms", lambda: {a["AlarmName"]: a for a in self.client("cloudwatch").describe_alarms(
            AlarmNames=names).get("MetricAlarms", [])})

    def alarm(self) -> dict:
        name = self.stack.alarm_names[self.control]
        found = self._alarms().get(name)
        if found is None:
            raise Missing(f"alarm {name} does not exist")
        return found

    def delivery_alarm(self) -> dict | None:
        """The stack's own alarm on failed deliveries, if it names one and it exists."""
        name = self.stack.delivery_failures_alarm
        return self._alarms().get(name) if name else None

    def action_topics(self) -> dict[str, Exception | None]:
        """Each SNS alarm action but the security topic (topic.exists checks it) -> None, or the error it got."""
        arns = [a for a in self.alarm().get("AlarmActions", [])
                if a.split(":")[2:3] == ["sns"] and a != self.stack.topic_arn]

        def fetch() -> dict[str, Exception | None]:
            answers = _parallel(lambda arn: self.client("sns").get_topic_attributes(TopicArn=arn), arns)
            return {arn: a if isinstance(a, Exception) else None for arn, a in zip(arns, answers, strict=True)}
        return self._memo("action_topics", fetch)

    def alarm_history(self) -> list[dict]:
        alarm = self.alarm()
        window_start = self.now - HISTORY_WINDOW / self.scale
        since = max(window_start, utc(alarm.get("AlarmConfigurationUpdatedTimestamp")) or window_start)
        # botocore sends CloudWatch timestamps (CBOR) in whole seconds: the exact cut is made here.
        return self._memo("history", lambda: [i for i in self.client("cloudwatch").describe_alarm_history(
            AlarmName=alarm["AlarmName"], HistoryItemType="Action", StartDate=since,
            MaxRecords=100).get("AlarmHistoryItems", []) if utc(i["Timestamp"]) >= since])

    def topic(self) -> dict:
        arn = self.stack.topic_arn
        return self._memo("topic", lambda: _missing_on_not_found(
            f"topic {arn}", lambda: self.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]))

    def key(self) -> tuple[dict, str]:
        """The topic key's metadata and its key policy."""
        key_id = self.topic()["KmsMasterKeyId"]

        def fetch() -> tuple[dict, str]:
            kms = self.client("kms")
            meta = _missing_on_not_found(f"KMS key {key_id}", lambda: kms.describe_key(KeyId=key_id)["KeyMetadata"])
            return meta, kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"]
        return self._memo("key", fetch)

    def subscriptions(self) -> list[dict]:
        def fetch() -> list[dict]:
            pages = self.client("sns").get_paginator("list_subscriptions_by_topic").paginate(
                TopicArn=self.stack.topic_arn)
            return [s for page in pages for s in page.get("Subscriptions", [])]
        self.topic()
        return self._memo("subscriptions", lambda: _missing_on_not_found(f"topic {self.stack.topic_arn}", fetch))

    def subscription_attributes(self) -> dict[str, dict | Exception]:
        """Confirmed subscription ARN -> GetSubscriptionAttributes (or the error it got)."""
        arns = [s["SubscriptionArn"] for s in self.subscriptions() if s["SubscriptionArn"].startswith("arn:")]

        def fetch() -> dict[str, dict | Exception]:
            answers = _parallel(lambda arn: self.client("sns").get_subscription_attributes(
                SubscriptionArn=arn)["Attributes"], arns)
            return dict(zip(arns, answers, strict=True))
        return self._memo("sub_attrs", fetch)

    def sink_queue_arn(self) -> str:
        url = self.stack.sink_queue_url
        return self._memo("sink", lambda: _missing_on_not_found(
            f"sink queue {url}", lambda: self.client("sqs").get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]))

    def failed_notifications(self) -> float:
        topic_name = self.stack.topic_arn.rsplit(":", 1)[-1]
        window = FAILED_DELIVERY_WINDOW / self.scale
        return self._memo("failed", lambda: sum(p.get("Sum", 0.0) for p in self.client(
            "cloudwatch").get_metric_statistics(
            Namespace="AWS/SNS", MetricName="NumberOfNotificationsFailed",
            Dimensions=[{"Name": "TopicName", "Value": topic_name}], StartTime=self.now - window,
            EndTime=self.now, Period=max(60, math.ceil(window.total_seconds() / 60) * 60),
            Statistics=["Sum"]).get("Datapoints", [])))

    def rules(self) -> dict[str, tuple[dict, list] | Exception]:
        names = rule_names(self.stack)

        def fetch() -> dict[str, tuple[dict, list] | Exception]:
            if not names:
                return {}
            events = self.client("events")
            # One ListRules answers every rule's State (as DescribeRule does, one call per rule).
            prefix = os.path.commonprefix(names)
            listed = {r["Name"]: r for page in events.get_paginator("list_rules").paginate(
                **({"NamePrefix": prefix} if prefix else {})) for r in page.get("Rules", [])}

            def one(name: str) -> tuple[dict, list]:
                if name not in listed:
                    raise Missing(f"rule {name} does not exist")
                return listed[name], _missing_on_not_found(f"rule {name}", lambda: events.list_targets_by_rule(
                    Rule=name).get("Targets", []))
            return dict(zip(names, _parallel(one, names), strict=True))
        return self._memo("rules", fetch)


def rule_names(stack: StackOutputs) -> list[str]:
    """Every EventBridge rule the stack outputs name (each field ending in rule_name that is set)."""
    return [getattr(stack, f.name) for f in fields(stack) if f.name.endswith("rule_name") and getattr(stack, f.name)]


def utc(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # CloudWatch's "+0000"
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
