"""`gameday trace`: walk the alarm notification chain as an engineer would and name the first broken hop."""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from harness.emulator.alarms import AlarmSpec, Evaluation, sns_notification
from harness.errors import ConfigError, EndpointUnreachable, HarnessBroken
from harness.poll import interval_for, wait_for
from harness.stack.desired import CIS_CONTROLS, StackOutputs, desired_state

__all__ = ["trace", "TraceReport", "Hop", "Canary", "HOP_IDS", "CANARY_HOP_IDS", "sample_record", "render",
           "open_target", "check_control", "filter_drops", "alarm_notification", "send_canary"]

OK, BROKEN, SKIPPED, UNKNOWN = "ok", "broken", "skipped", "unknown"
HOP_IDS = (
    "trail.exists", "trail.logging", "trail.selectors", "trail.delivery", "filter.exists", "filter.matches",
    "alarm.exists", "alarm.actions_enabled", "alarm.can_fire", "alarm.targets_topic", "alarm.history",
    "topic.exists", "topic.policy", "topic.kms", "subscriptions.exist", "subscriptions.confirmed",
    "subscriptions.filter", "subscriptions.delivery", "rules.enabled",
)
CANARY_HOP_IDS = ("canary.written", "canary.metric", "canary.alarm", "canary.published", "canary.received")
# A canary is sent only when everything it needs up to the alarm's action is healthy.
CANARY_NEEDS = HOP_IDS[:HOP_IDS.index("alarm.targets_topic") + 1]
CANARY_STREAM = "gameday-canary"
CANARY_USER = "gameday-canary"
CANARY_AGENT = "gameday-canary/1.0 (synthetic record written by `gameday trace --canary`)"
# Streams Gameday writes itself: they must not pass for CloudTrail's own delivery.
OWN_STREAMS = (CANARY_STREAM, "gameday-synthetic-records")
DELIVERY_WINDOW_S = 3600  # a trail that delivered nothing for an hour of a live account is not delivering
HISTORY_WINDOW = timedelta(hours=24)
# Failed deliveries this recent mean a subscriber is failing now: three periods of the stack's delivery alarm.
FAILED_DELIVERY_WINDOW = timedelta(minutes=15)
FAILED_ACTION = "Failed to execute action"
AWS_MANAGED_SNS_KEY = "alias/aws/sns"
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")
KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Topic-policy actions a Deny must cover (AWS's topic policies cannot name Unsubscribe), then those reported too.
PROTECTED = ("sns:DeleteTopic", "sns:SetTopicAttributes")
ALSO_PROTECTED = ("sns:RemovePermission", "sns:AddPermission")
ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
_NOT_FOUND = frozenset({
    "TrailNotFoundException", "ResourceNotFoundException", "ResourceNotFound", "NotFound", "NotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NoSuchEntity",
})
_MISSING = object()


# -- the report ------------------------------------------------------------------------------


@dataclass
class Hop:
    id: str
    title: str
    status: str  # ok, broken, skipped, unknown
    evidence: str
    fix: str = ""
    wall_ms: float | None = None  # canary hops: when it happened, after the write
    aws_s: float | None = None


@dataclass
class Canary:
    status: str  # ok (arrived), broken (a hop never happened), skipped (not sent), unknown (could not tell)
    evidence: str
    hops: list[Hop] = field(default_factory=list)
    deadline_wall_s: float | None = None
    deadline_aws_s: float | None = None

    @property
    def arrived(self) -> bool:
        return self.status == OK


@dataclass
class TraceReport:
    control: str
    alarm: str
    backend: str
    hops: list[Hop]
    advice: list[str]
    canary: Canary | None = None

    @property
    def chain(self) -> list[Hop]:
        """Every hop in chain order, the canary's last."""
        return self.hops + (self.canary.hops if self.canary else [])

    @property
    def first_broken(self) -> Hop | None:
        return next((h for h in self.chain if h.status == BROKEN), None)

    @property
    def healthy(self) -> bool:
        return all(h.status == OK for h in self.hops) and (self.canary is None or self.canary.arrived)

    @property
    def exit_code(self) -> int:
        """0 healthy; 1 a hop is broken (the canary's too); 2 the harness could not see (a hop or canary unknown)."""
        if self.healthy:
            return 0
        if self.first_broken is None and (any(h.status == UNKNOWN for h in self.chain)
                                          or self.canary is not None and self.canary.status == UNKNOWN):
            return 2
        return 1

    def to_json(self) -> str:
        data = asdict(self)
        data.update(healthy=self.healthy, exit_code=self.exit_code,
                    first_broken=self.first_broken.id if self.first_broken else None)
        return json.dumps(data, indent=1, default=str)


# -- the tampering record each CIS control exists to catch -----------------------------------

# control -> (eventSource, eventName, fields); the rest of the record is what every real record has.
_TAMPERING = {
    "4.1": ("ec2.amazonaws.com", "RunInstances", {
        "errorCode": "Client.UnauthorizedOperation",
        "errorMessage": "You are not authorized to perform this operation.",
        "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-0gamedaycanary", "minCount": 1,
                                                           "maxCount": 1}]}, "instanceType": "t3.micro"}}),
    "4.2": ("signin.amazonaws.com", "ConsoleLogin", {
        "eventType": "AwsConsoleSignIn", "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                                "MFAUsed": "No"}}),
    "4.3": ("iam.amazonaws.com", "CreateAccessKey", {"root": True}),
    "4.4": ("iam.amazonaws.com", "PutUserPolicy", {"requestParameters": {
        "userName": CANARY_USER, "policyName": "gameday-canary", "policyDocument": "{}"}}),
    "4.5": ("cloudtrail.amazonaws.com", "StopLogging", {"requestParameters": {"name": "gameday-canary-trail"}}),
    "4.6": ("signin.amazonaws.com", "ConsoleLogin", {
        "eventType": "AwsConsoleSignIn", "errorMessage": "Failed authentication",
        "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                                "MFAUsed": "No"}}),
    "4.7": ("kms.amazonaws.com", "DisableKey", {"requestParameters": {
        "keyId": "00000000-0000-4000-8000-00000ca9a71e"}}),
    "4.8": ("s3.amazonaws.com", "PutBucketPolicy", {"requestParameters": {
        "bucketName": "gameday-canary-bucket", "Host": "gameday-canary-bucket.s3.amazonaws.com", "policy": ""}}),
    "4.9": ("config.amazonaws.com", "StopConfigurationRecorder", {"requestParameters": {
        "configurationRecorderName": "gameday-canary"}}),
    "4.10": ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", {"requestParameters": {
        "groupId": "sg-0gamedaycanary", "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
             "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}}),
    "4.11": ("ec2.amazonaws.com", "CreateNetworkAclEntry", {"requestParameters": {
        "networkAclId": "acl-0gamedaycanary", "ruleNumber": 100, "egress": False, "ruleAction": "allow",
        "icmpTypeCode": {}, "portRange": {"from": 22, "to": 22}, "aclProtocol": "6", "cidrBlock": "0.0.0.0/0"}}),
    "4.12": ("ec2.amazonaws.com", "CreateInternetGateway", {"requestParameters": {}}),
    "4.13": ("ec2.amazonaws.com", "CreateRoute", {"requestParameters": {
        "routeTableId": "rtb-0gamedaycanary", "destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-0gamedaycanary"}}),
    "4.14": ("ec2.amazonaws.com", "ModifyVpcAttribute", {"requestParameters": {
        "vpcId": "vpc-0gamedaycanary", "enableDnsHostnames": {"value": True}}}),
    "4.15": ("organizations.amazonaws.com", "CreateOrganizationalUnit", {"requestParameters": {
        "parentId": "r-gmdy", "name": "gameday-canary"}}),
}
CONTROL_IDS = tuple(c["id"] for c in CIS_CONTROLS["controls"])


def check_control(control: str, stack: StackOutputs | None = None) -> None:
    """ConfigError (one line) unless the control is a CIS monitoring control the stack monitors."""
    if control not in CONTROL_IDS:
        raise ConfigError(f"unknown control {control!r}; choose one of {CONTROL_IDS[0]}-{CONTROL_IDS[-1]} "
                          f"(CIS monitoring controls)")
    if stack is not None and (control not in stack.alarm_names or control not in stack.metric_filter_names):
        raise ConfigError(f"the stack names no alarm or metric filter for control {control}; "
                          f"add it to alarm_names and metric_filter_names in the stack file")


def sample_record(control: str, *, account_id: str, region: str, canary: bool = False) -> dict:
    """A CloudTrail record shaped like a real one (tests/fixtures/cloudtrail) for the call the control catches."""
    source, name, fields = _TAMPERING[control]
    user = CANARY_USER if canary else "gameday-trace"
    identity = {"type": "IAMUser", "principalId": "AIDAGAMEDAYCANARY0001",
                "arn": f"arn:aws:iam::{account_id}:user/{user}", "accountId": account_id,
                "accessKeyId": "AKIAGAMEDAYCANARY001", "userName": user}
    if fields.get("root"):
        identity = {"type": "Root", "principalId": account_id, "arn": f"arn:aws:iam::{account_id}:root",
                    "accountId": account_id, "accessKeyId": "AKIAGAMEDAYCANARY001"}
    record = {
        "eventVersion": "1.10", "userIdentity": identity,
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source, "eventName": name, "awsRegion": region, "sourceIPAddress": "192.0.2.10",
        "userAgent": CANARY_AGENT if canary else "gameday-trace", "requestParameters": None,
        "responseElements": None, "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()), "readOnly": False,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": account_id,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"},
    }
    record.update({k: v for k, v in fields.items() if k != "root"})  # known keys keep their place
    return record


# -- facts: every API answer, fetched once ---------------------------------------------------


class Missing(LookupError):
    """A resource a hop needs does not exist (its own hop reports it broken; later ones are skipped)."""


def _missing_on_not_found(what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
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
        since = max(window_start, _utc(alarm.get("AlarmConfigurationUpdatedTimestamp")) or window_start)
        # botocore sends CloudWatch timestamps (CBOR) in whole seconds: the exact cut is made here.
        return self._memo("history", lambda: [i for i in self.client("cloudwatch").describe_alarm_history(
            AlarmName=alarm["AlarmName"], HistoryItemType="Action", StartDate=since,
            MaxRecords=100).get("AlarmHistoryItems", []) if _utc(i["Timestamp"]) >= since])

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


# -- the hops ----------------------------------------------------------------------------------

Verdict = tuple[str, str, str]  # status, evidence, fix


def ok(evidence: str) -> Verdict:
    return OK, evidence, ""


def broken(evidence: str, fix: str) -> Verdict:
    return BROKEN, evidence, fix


def check_trail_exists(f: Facts) -> Verdict:
    try:
        trail = f.trail()
    except Missing as exc:
        return broken(f"{exc} (GetTrail)", f"recreate it: aws cloudtrail create-trail --name {f.stack.trail_name} "
                      f"--s3-bucket-name {f.stack.bucket_name} --is-multi-region-trail (or redeploy the stack)")
    scope = "multi-region" if trail.get("IsMultiRegionTrail") else f"single-region ({trail.get('HomeRegion')})"
    return ok(f"trail {trail['Name']} exists, {scope}")


def check_trail_logging(f: Facts) -> Verdict:
    status = f.trail_status()
    if status.get("IsLogging"):
        return ok(f"IsLogging true since {status.get('StartLoggingTime') or status.get('TimeLoggingStarted')}")
    stopped = status.get("StopLoggingTime") or status.get("TimeLoggingStopped") or "an unknown time"
    return broken(f"IsLogging false: logging stopped at {stopped} (GetTrailStatus)",
                  f"aws cloudtrail start-logging --name {f.stack.trail_name}")


def check_trail_selectors(f: Facts) -> Verdict:
    answer = f.selectors()
    record = sample_record(f.control, account_id=f.aws.account_id, region=f.aws.region)
    advanced, basic = answer.get("AdvancedEventSelectors") or [], answer.get("EventSelectors") or []
    fix = (f"aws cloudtrail put-event-selectors --trail-name {f.stack.trail_name} --event-selectors "
           "'[{\"ReadWriteType\":\"All\",\"IncludeManagementEvents\":true}]'")
    if advanced:
        chosen = [s.get("Name") or "unnamed" for s in advanced if _advanced_selects(s, record)]
        if chosen:
            return ok(f"advanced selector {chosen[0]!r} logs management write events like {record['eventName']}")
        return broken(f"no advanced event selector logs management write events such as {record['eventName']} "
                      f"({record['eventSource']})", fix)
    for selector in basic:
        if _basic_selects(selector, record):
            return ok(f"management events selected (ReadWriteType {selector.get('ReadWriteType', 'All')})")
    if not basic:
        return broken("the trail has no event selectors (GetEventSelectors)", fix)
    return broken(f"no event selector logs management write events such as {record['eventName']}: "
                  f"{json.dumps(basic)}", fix)


def _basic_selects(selector: dict, record: dict) -> bool:
    if not selector.get("IncludeManagementEvents", True):
        return False
    if selector.get("ReadWriteType", "All") not in ("All", "WriteOnly" if not record["readOnly"] else "ReadOnly"):
        return False
    return record["eventSource"] not in (selector.get("ExcludeManagementEventSources") or [])


def _advanced_selects(selector: dict, record: dict) -> bool:
    """Every field selector holds for the record (fields a management record lacks are data-event fields)."""
    values = {"eventCategory": record["eventCategory"], "readOnly": str(record["readOnly"]).lower(),
              "eventSource": record["eventSource"], "eventName": record["eventName"], "eventType": record["eventType"]}
    for fs in selector.get("FieldSelectors", []):
        value = values.get(fs.get("Field"))
        if value is None:
            return False
        tests = {
            "Equals": lambda v, xs: v in xs, "NotEquals": lambda v, xs: v not in xs,
            "StartsWith": lambda v, xs: any(v.startswith(x) for x in xs),
            "NotStartsWith": lambda v, xs: not any(v.startswith(x) for x in xs),
            "EndsWith": lambda v, xs: any(v.endswith(x) for x in xs),
            "NotEndsWith": lambda v, xs: not any(v.endswith(x) for x in xs),
        }
        for op, test in tests.items():
            if op in fs and not test(value, fs[op]):
                return False
    return True


def check_trail_delivery(f: Facts) -> Verdict:
    trail = f.trail()
    target = (trail.get("CloudWatchLogsLogGroupArn") or "").removesuffix(":*")
    fix_target = (f"aws cloudtrail update-trail --name {f.stack.trail_name} --cloud-watch-logs-log-group-arn "
                  f"{f.stack.log_group_arn}:* --cloud-watch-logs-role-arn <role CloudTrail assumes to write logs>")
    if not target:
        return broken("the trail sends nothing to CloudWatch Logs (no CloudWatchLogsLogGroupArn)", fix_target)
    if target != f.stack.log_group_arn and target.split(":log-group:")[-1] != f.stack.log_group_name:
        return broken(f"the trail sends to {target}, not to the stack's log group {f.stack.log_group_name}",
                      fix_target)
    try:
        stream = f.latest_trail_stream()
    except Missing as exc:
        return broken(f"{exc} (DescribeLogStreams)", f"aws logs create-log-group --log-group-name "
                      f"{f.stack.log_group_name}, then {fix_target}")
    fix_role = (f"check that {trail.get('CloudWatchLogsRoleArn') or 'the trail role'} trusts cloudtrail.amazonaws.com "
                f"and allows logs:CreateLogStream and logs:PutLogEvents on {f.stack.log_group_arn}:*")
    if stream is None:
        return broken(f"log group {f.stack.log_group_name} has no stream from CloudTrail", fix_role)
    last_ms = stream.get("lastIngestionTime") or stream.get("lastEventTimestamp") or 0
    age = f.now.timestamp() - last_ms / 1000
    when = datetime.fromtimestamp(last_ms / 1000, timezone.utc).isoformat(timespec="seconds")
    if age > DELIVERY_WINDOW_S:
        return broken(f"the last CloudTrail event reached {f.stack.log_group_name} at {when}, "
                      f"{age / 60:.0f} min ago", fix_role)
    return ok(f"stream {stream['logStreamName']} received an event {max(age, 0):.0f} s ago ({when})")


def check_filter_exists(f: Facts) -> Verdict:
    try:
        mf = f.metric_filter()
    except Missing as exc:
        return broken(f"{exc} (DescribeMetricFilters)", _put_filter_command(f))
    t = (mf.get("metricTransformations") or [{}])[0]
    return ok(f"filter {mf['filterName']} emits {t.get('metricNamespace')}/{t.get('metricName')}")


def check_filter_matches(f: Facts) -> Verdict:
    mf = f.metric_filter()
    record = sample_record(f.control, account_id=f.aws.account_id, region=f.aws.region)
    if not f.filter_matches():
        return broken(f"pattern {mf['filterPattern']!r} does not match a real-shaped {record['eventName']} record "
                      f"(TestMetricFilter)", _put_filter_command(f))
    transformations = mf.get("metricTransformations") or []
    try:
        alarm = f.alarm()
    except Missing:
        return ok(f"pattern matches a {record['eventName']} record (alarm missing: metric not compared)")
    watched = (alarm.get("Namespace"), alarm.get("MetricName"))
    emitted = [(t.get("metricNamespace"), t.get("metricName")) for t in transformations]
    if watched not in emitted:
        return broken(f"filter emits {', '.join('/'.join(map(str, e)) for e in emitted) or 'no metric'}, the alarm "
                      f"watches {'/'.join(map(str, watched))}", _put_filter_command(f))
    return ok(f"pattern matches a {record['eventName']} record and emits the alarm's metric {'/'.join(watched)}")


def _put_filter_command(f: Facts) -> str:
    cis = next(c for c in CIS_CONTROLS["controls"] if c["id"] == f.control)
    try:
        namespace, metric = f.alarm()["Namespace"], f.alarm()["MetricName"]
    except Missing:
        namespace, metric = CIS_CONTROLS["alarm"]["namespace"], cis["metricName"]
    return (f"aws logs put-metric-filter --log-group-name {f.stack.log_group_name} --filter-name "
            f"{f.stack.metric_filter_names[f.control]} --filter-pattern '{cis['filterPattern']}' "
            f"--metric-transformations metricName={metric},metricNamespace={namespace},metricValue=1")


def check_alarm_exists(f: Facts) -> Verdict:
    try:
        alarm = f.alarm()
    except Missing as exc:
        return broken(f"{exc} (DescribeAlarms)", _put_alarm_command(f, None))
    return ok(f"alarm {alarm['AlarmName']} exists, state {alarm.get('StateValue')}")


def check_alarm_actions_enabled(f: Facts) -> Verdict:
    alarm = f.alarm()
    if not alarm.get("ActionsEnabled"):
        return broken("ActionsEnabled is false: the alarm changes state but notifies nobody",
                      f"aws cloudwatch enable-alarm-actions --alarm-names {alarm['AlarmName']}")
    if not alarm.get("AlarmActions"):
        return broken("AlarmActions is empty: ALARM notifies nobody", _put_alarm_command(f, alarm))
    return ok(f"actions enabled: {', '.join(alarm['AlarmActions'])}")


def check_alarm_can_fire(f: Facts) -> Verdict:
    alarm = f.alarm()
    if alarm.get("Metrics"):
        return UNKNOWN, "the alarm uses metric math: Gameday checks single-metric alarms only", ""
    fix = _put_alarm_command(f, alarm)
    problems = []
    try:
        t = (f.metric_filter().get("metricTransformations") or [{}])[0]
    except Missing:
        t = {}
    if t and (t.get("metricNamespace"), t.get("metricName")) != (alarm.get("Namespace"), alarm.get("MetricName")):
        problems.append(f"it watches {alarm.get('Namespace')}/{alarm.get('MetricName')}, the filter emits "
                        f"{t.get('metricNamespace')}/{t.get('metricName')}")
    if t and alarm.get("Dimensions") and not t.get("dimensions"):
        problems.append(f"it watches dimensions {alarm['Dimensions']} the filter never emits")
    if alarm.get("Unit") and t and t.get("unit", "None") != alarm["Unit"]:
        problems.append(f"it watches unit {alarm['Unit']}, the filter emits {t.get('unit', 'None')}")
    problems += _one_event_fires(alarm, t.get("metricValue", "1"))
    m, n = alarm.get("DatapointsToAlarm") or alarm.get("EvaluationPeriods", 1), alarm.get("EvaluationPeriods", 1)
    if not 1 <= m <= n:
        problems.append(f"DatapointsToAlarm {m} is not between 1 and EvaluationPeriods {n}")
    elif m > 1:
        problems.append(f"it needs {m} breaching periods of {alarm.get('Period')} s out of {n}; one event fills one")
    if problems:
        return broken("; ".join(problems), fix)
    return ok(f"one matching event reaches {alarm.get('Statistic') or alarm.get('ExtendedStatistic')} "
              f"{_OPERATORS.get(alarm['ComparisonOperator'], alarm['ComparisonOperator'])} {alarm['Threshold']:g} "
              f"in {alarm.get('Period')} s")


_OPERATORS = {"GreaterThanOrEqualToThreshold": ">=", "GreaterThanThreshold": ">",
              "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<="}


def _one_event_fires(alarm: dict, metric_value: str) -> list[str]:
    """Problems that keep one matching event (one datapoint of metric_value) from crossing the threshold."""
    op, threshold, period = alarm["ComparisonOperator"], float(alarm["Threshold"]), alarm.get("Period")
    statistic = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
    if op not in ("GreaterThanOrEqualToThreshold", "GreaterThanThreshold"):
        return [f"it fires when {statistic} is {_OPERATORS.get(op, op)} {threshold:g}: matching events only raise it"]
    if statistic == "SampleCount":
        value = 1.0
    else:
        try:
            value = float(metric_value)
        except ValueError:  # the filter extracts its value from the event: cannot tell from here
            return []
    if statistic in ("Sum", "SampleCount"):
        if value <= 0:
            return [f"each event adds {value:g}: {statistic} never rises to {threshold:g}"]
        needed = math.ceil(threshold / value) if op == "GreaterThanOrEqualToThreshold" else \
            math.floor(threshold / value) + 1
        if needed > 1:
            return [f"it needs {needed:.0f} matching events in {period} s (threshold {threshold:g}, "
                    f"each event adds {value:g})"]
        return []
    fires = value >= threshold if op == "GreaterThanOrEqualToThreshold" else value > threshold
    return [] if fires else [f"one event's value {value:g} never reaches {statistic} {_OPERATORS[op]} {threshold:g}"]


def _put_alarm_command(f: Facts, alarm: dict | None) -> str:
    cis = next(c for c in CIS_CONTROLS["controls"] if c["id"] == f.control)
    defaults = CIS_CONTROLS["alarm"]
    a = alarm or {}
    return (f"aws cloudwatch put-metric-alarm --alarm-name {f.stack.alarm_names[f.control]} "
            f"--metric-name {a.get('MetricName') or cis['metricName']} "
            f"--namespace {a.get('Namespace') or defaults['namespace']} --statistic Sum "
            f"--period {a.get('Period') or defaults['period']} --evaluation-periods 1 --threshold 1 "
            f"--comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data notBreaching "
            f"--alarm-actions {f.stack.topic_arn}")


def check_alarm_targets_topic(f: Facts) -> Verdict:
    alarm = f.alarm()
    actions = alarm.get("AlarmActions", [])
    problems = []
    if f.stack.topic_arn not in actions:
        problems.append(f"the alarm actions {actions} do not include the security topic {f.stack.topic_arn}")
    for arn, error in f.action_topics().items():
        if error is None:
            continue
        if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in _NOT_FOUND:
            problems.append(f"action topic {arn} does not exist")
        else:
            return UNKNOWN, f"GetTopicAttributes {arn}: {error}", _permission_fix(error)
    if problems:
        return broken("; ".join(problems), _put_alarm_command(f, alarm))
    return ok(f"actions include {f.stack.topic_arn}; every other action topic exists")


def check_alarm_history(f: Facts) -> Verdict:
    alarm = f.alarm()
    failed = [i for i in f.alarm_history() if i.get("HistorySummary", "").startswith(FAILED_ACTION)]
    if not failed:
        return ok("no failed action in the last 24 h of AWS time (or since the alarm was last configured)")
    latest = failed[0]
    summary = latest["HistorySummary"]
    if "kms" in summary.lower():
        fix = (f"let cloudwatch.amazonaws.com use the topic's key: allow kms:Decrypt and kms:GenerateDataKey* in "
               f"{f.stack.topic_key_arn or 'the topic key'}'s key policy")
    elif "not exist" in summary.lower() or "notfound" in summary.lower().replace(" ", ""):
        fix = _put_alarm_command(f, alarm)
    else:
        fix = "fix what the error names; the next state change retries the action"
    return broken(f"{len(failed)} failed action(s); latest at {latest.get('Timestamp')}: \"{summary}\"", fix)


def check_topic_exists(f: Facts) -> Verdict:
    try:
        attrs = f.topic()
    except Missing as exc:
        name = f.stack.topic_arn.rsplit(":", 1)[-1]
        return broken(f"{exc} (GetTopicAttributes)", f"aws sns create-topic --name {name}, then re-subscribe its "
                      "subscribers and point the alarms at it (or redeploy the stack)")
    return ok(f"topic {attrs.get('TopicArn', f.stack.topic_arn)} exists")


def check_topic_policy(f: Facts) -> Verdict:
    statements = _statements(f.topic().get("Policy"))
    role = f.stack.break_glass_role_arn
    fix = (f"add to {f.stack.topic_arn}'s policy a Deny of {', '.join(PROTECTED + ALSO_PROTECTED)} for Principal "
           f"AWS * with Condition ArnNotEquals aws:PrincipalArn {role or '<break-glass role ARN>'} "
           f"(aws sns set-topic-attributes --attribute-name Policy)")
    for service in PUBLISHERS:
        denying = [s for s in statements if s.get("Effect") == "Deny" and _acts_on(s, "sns:Publish")
                   and (_names_service(s, service) or _everyone(s) and not s.get("Condition"))]
        if denying:
            return broken(f"statement {denying[0].get('Sid', '(no Sid)')!r} denies sns:Publish to {service}",
                          f"remove that statement from {f.stack.topic_arn}'s policy")
    if role is None:
        return broken("the stack outputs name no break_glass_role_arn: nothing shows the topic is protected from "
                      "deletion, and no one is named to repair it", fix + "; then set break_glass_role_arn in "
                      "the stack file")
    guards = [s for s in statements if s.get("Effect") == "Deny" and (_everyone(s) or "NotPrincipal" in s)]
    exempting = [s for s in guards if _exempts(s, role)]
    denied = [a for a in PROTECTED + ALSO_PROTECTED if any(_acts_on(s, a) for s in exempting)]
    missing = [a for a in PROTECTED if a not in denied]
    if missing:
        locking = [s for s in guards if not _exempts(s, role) and any(_acts_on(s, a) for a in PROTECTED)]
        why = f"; statement {locking[0].get('Sid', '(no Sid)')!r} locks out {role} too" if locking else ""
        return broken(f"no Deny exempting {role} covers {', '.join(missing)}{why}", fix)
    return ok(f"denies {', '.join(denied)} to all but {role}")


def _statements(policy: str | dict | None) -> list[dict]:
    doc = json.loads(policy) if isinstance(policy, str) and policy else policy or {}
    statements = doc.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _acts_on(statement: dict, action: str) -> bool:
    """IAM action matching: wildcards, case-insensitive, NotAction inverted."""
    def covered(patterns: Any) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in _as_list(patterns))
    if "NotAction" in statement:
        return not covered(statement["NotAction"])
    return covered(statement.get("Action"))


def _everyone(statement: dict) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or isinstance(principal, dict) and "*" in _as_list(principal.get("AWS"))


def _names_service(statement: dict, service: str) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or isinstance(principal, dict) and service in _as_list(principal.get("Service"))


def _exempts(statement: dict, role: str) -> bool:
    """The statement spares `role`: NotPrincipal names it, or a negated condition on aws:PrincipalArn does."""
    if isinstance(statement.get("NotPrincipal"), dict) and role in _as_list(statement["NotPrincipal"].get("AWS")):
        return True
    for operator, tests in (statement.get("Condition") or {}).items():
        if "Not" not in operator.split(":")[-1]:
            continue
        for key, values in tests.items():
            if key.lower() == "aws:principalarn" and any(fnmatch.fnmatchcase(role, v) for v in _as_list(values)):
                return True
    return False


def check_topic_kms(f: Facts) -> Verdict:
    key_id = f.topic().get("KmsMasterKeyId")
    if not key_id:
        return ok("not encrypted")
    if key_id in (AWS_MANAGED_SNS_KEY, f"arn:aws:kms:{f.aws.region}:{f.aws.account_id}:{AWS_MANAGED_SNS_KEY}"):
        return broken(f"the topic uses the AWS managed key {AWS_MANAGED_SNS_KEY}, whose policy cannot let CloudWatch "
                      "publish", f"encrypt it with a customer managed key: aws sns set-topic-attributes --topic-arn "
                      f"{f.stack.topic_arn} --attribute-name KmsMasterKeyId --attribute-value <key ARN>")
    try:
        meta, policy = f.key()
    except Missing as exc:
        return broken(f"the topic's {exc}", f"point the topic at an existing key: aws sns set-topic-attributes "
                      f"--topic-arn {f.stack.topic_arn} --attribute-name KmsMasterKeyId --attribute-value <key ARN>")
    if meta.get("KeyManager") == "AWS":
        return broken(f"{key_id} is an AWS managed key: its policy cannot let CloudWatch publish",
                      "encrypt the topic with a customer managed key")
    if meta.get("KeyState") != "Enabled":
        command = "cancel-key-deletion" if meta.get("KeyState") == "PendingDeletion" else "enable-key"
        return broken(f"key {meta['KeyId']} is {meta.get('KeyState')}", f"aws kms {command} --key-id {meta['KeyId']}")
    statements = _statements(policy)
    lacking = [f"{service} {action}*" if action.endswith("DataKey") else f"{service} {action}"
               for service in PUBLISHERS for action in KEY_ACTIONS if not _key_allows(statements, service, action)]
    if lacking:
        return broken(f"key policy of {meta['KeyId']} does not allow {', '.join(lacking)}",
                      f"add an Allow of kms:Decrypt and kms:GenerateDataKey* for Service {', '.join(PUBLISHERS)} "
                      f"to the key policy: aws kms put-key-policy --key-id {meta['KeyId']} --policy-name default "
                      "--policy file://key-policy.json")
    return ok(f"key {meta['KeyId']} is enabled and lets {', '.join(PUBLISHERS)} use it")


def _key_allows(statements: list[dict], service: str, action: str) -> bool:
    def applies(s: dict) -> bool:
        return _names_service(s, service) and _acts_on(s, action)
    denied = any(s.get("Effect") == "Deny" and applies(s) for s in statements)
    return not denied and any(s.get("Effect") == "Allow" and applies(s) for s in statements)


def check_subscriptions_exist(f: Facts) -> Verdict:
    subs = f.subscriptions()
    if not subs:
        return broken("the topic has no subscriptions: notifications go nowhere",
                      f"aws sns subscribe --topic-arn {f.stack.topic_arn} --protocol sqs "
                      f"--notification-endpoint {f.stack.sink_queue_arn}")
    try:
        sink = f.sink_queue_arn()
    except Missing as exc:
        return broken(f"the {exc}", f"aws sqs create-queue --queue-name {f.stack.sink_queue_arn.rsplit(':', 1)[-1]}, "
                      f"then subscribe it to {f.stack.topic_arn}")
    if not any(s.get("Protocol") == "sqs" and s.get("Endpoint") == sink for s in subs):
        return broken(f"the sink queue {sink} is not subscribed ({len(subs)} other subscription(s))",
                      f"aws sns subscribe --topic-arn {f.stack.topic_arn} --protocol sqs --notification-endpoint "
                      f"{sink}")
    endpoints = ", ".join(f"{s.get('Protocol')} {s.get('Endpoint')}" for s in subs)
    return ok(f"{len(subs)} subscription(s), the sink among them: {endpoints}")


def check_subscriptions_confirmed(f: Facts) -> Verdict:
    attrs = f.subscription_attributes()
    pending = [s["Endpoint"] for s in f.subscriptions() if s["SubscriptionArn"] == "PendingConfirmation"]
    for s in f.subscriptions():
        answer = attrs.get(s["SubscriptionArn"])
        if isinstance(answer, dict) and answer.get("PendingConfirmation") == "true":
            pending.append(s["Endpoint"])
        elif isinstance(answer, Exception):
            return UNKNOWN, f"GetSubscriptionAttributes {s['SubscriptionArn']}: {answer}", _permission_fix(answer)
    if pending:
        return broken(f"pending confirmation: {', '.join(pending)}",
                      f"confirm the subscription from the message sent to {pending[0]} (unconfirmed subscriptions are "
                      "deleted after 48 hours; an e-mail endpoint is suspended back to PendingConfirmation when it "
                      "gets more than 10 messages a second)")
    return ok(f"all {len(f.subscriptions())} subscription(s) confirmed")


def check_subscriptions_filter(f: Facts) -> Verdict:
    attrs = f.subscription_attributes()
    body: dict | None = None
    for s in f.subscriptions():
        answer = attrs.get(s["SubscriptionArn"])
        if isinstance(answer, Exception):
            return UNKNOWN, f"GetSubscriptionAttributes {s['SubscriptionArn']}: {answer}", _permission_fix(answer)
        if not answer or not answer.get("FilterPolicy"):
            continue
        policy = json.loads(answer["FilterPolicy"])
        scope = answer.get("FilterPolicyScope") or "MessageAttributes"
        if scope == "MessageBody":
            body = body if body is not None else alarm_notification(f.alarm(), f.aws)
            dropped_by = filter_drops(policy, body)
        else:  # alarm notifications carry no message attributes
            dropped_by = filter_drops(policy, {})
        if dropped_by is not None:
            return broken(f"{s['Protocol']} {s['Endpoint']}: {scope} filter policy {answer['FilterPolicy']} drops the "
                          f"ALARM notification (at {dropped_by})",
                          f"aws sns set-subscription-attributes --subscription-arn {s['SubscriptionArn']} "
                          "--attribute-name FilterPolicy --attribute-value '{}'")
    return ok("no subscription filter policy drops an ALARM notification")


def alarm_notification(alarm: dict, aws: Any) -> dict:
    """The JSON body CloudWatch publishes for this alarm going to ALARM (the plane's builder, real-shaped)."""
    spec = AlarmSpec(
        name=alarm["AlarmName"], arn=alarm["AlarmArn"], namespace=alarm.get("Namespace", ""),
        metric_name=alarm.get("MetricName", ""),
        dimensions=tuple((d["Name"], d["Value"]) for d in alarm.get("Dimensions", [])),
        period=alarm.get("Period", 300), evaluation_periods=alarm.get("EvaluationPeriods", 1),
        datapoints_to_alarm=alarm.get("DatapointsToAlarm"), threshold=float(alarm.get("Threshold", 1)),
        comparison=alarm.get("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
        statistic=alarm.get("Statistic"), extended_statistic=alarm.get("ExtendedStatistic"),
        treat_missing_data=alarm.get("TreatMissingData", "missing"), unit=alarm.get("Unit"))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    evaluation = Evaluation("ALARM", f"Threshold Crossed: 1 datapoint [1.0] was greater than or equal to the "
                            f"threshold ({spec.threshold}).", {}, True)
    return sns_notification(spec, old_state="OK", evaluation=evaluation, account_id=aws.account_id, region=aws.region,
                            actions={"ALARM": alarm.get("AlarmActions", []), "OK": alarm.get("OKActions", []),
                                     "INSUFFICIENT_DATA": alarm.get("InsufficientDataActions", [])},
                            description=alarm.get("AlarmDescription"), updated_at=now, state_change_time=now)


def filter_drops(policy: dict, doc: Any, path: str = "") -> str | None:
    """Where an SNS filter policy drops the message (its first failing key), or None when the message passes."""
    for key, rule in policy.items():
        if key == "$or":
            if all(filter_drops(alternative, doc, path) is not None for alternative in rule):
                return f"{path}$or"
            continue
        here = f"{path}{key}"
        value = doc.get(key, _MISSING) if isinstance(doc, dict) else _MISSING
        if isinstance(rule, dict):  # a nested body key: any object below it may match
            candidates = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)] or [{}]
            if all(filter_drops(rule, v, f"{here}.") is not None for v in candidates):
                return here
        elif not any(_condition(c, value) for c in (rule if isinstance(rule, list) else [rule])):
            return here
    return None


def _condition(cond: Any, value: Any) -> bool:
    """One SNS filter condition against a value (lists match when any element does)."""
    values = value if isinstance(value, list) else [value]
    if isinstance(cond, dict):
        (op, arg), = cond.items()
        if op == "exists":
            return (value is not _MISSING) == bool(arg)
        if value is _MISSING:
            return False
        strings = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if op == "prefix":
            return any(v.startswith(arg) for v in strings)
        if op == "suffix":
            return any(v.endswith(arg) for v in strings)
        if op == "equals-ignore-case":
            return any(v.lower() == str(arg).lower() for v in strings)
        if op == "anything-but":
            return any(not _excluded(arg, v) for v in values)
        if op == "numeric":
            return any(_numeric(arg, v) for v in numbers)
        if op == "cidr":
            return any(_in_cidr(arg, v) for v in strings)
        return False  # an operator this evaluator does not know: assume it drops, and say where
    if value is _MISSING:
        return False
    if isinstance(cond, bool) or cond is None:
        return any(v is cond for v in values)
    if isinstance(cond, (int, float)):
        return any(isinstance(v, (int, float)) and not isinstance(v, bool) and v == cond for v in values)
    return any(v == cond for v in values)


def _excluded(arg: Any, v: Any) -> bool:
    if isinstance(arg, dict):
        (op, x), = arg.items()
        return isinstance(v, str) and (v.startswith(x) if op == "prefix" else v.endswith(x) if op == "suffix"
                                       else v.lower() in [s.lower() for s in _as_list(x)])
    return v in (arg if isinstance(arg, list) else [arg])


def _numeric(arg: list, v: float) -> bool:
    tests = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
             ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    return all(tests[arg[i]](v, float(arg[i + 1])) for i in range(0, len(arg) - 1, 2))


def _in_cidr(arg: str, v: str) -> bool:
    try:
        return ipaddress.ip_address(v) in ipaddress.ip_network(arg, strict=False)
    except ValueError:
        return False


def check_subscriptions_delivery(f: Facts) -> Verdict:
    alarm = f.delivery_alarm()
    if alarm is not None:
        # The stack watches its own deliveries: its alarm says whether they are failing now, period by period.
        if alarm.get("StateValue") == "ALARM":
            return broken(f"alarm {alarm['AlarmName']} is in ALARM: {alarm.get('StateReason', '')}",
                          f"find the failing endpoint among aws sns list-subscriptions-by-topic --topic-arn "
                          f"{f.stack.topic_arn} (queue policy, Lambda permission, key grant, HTTPS endpoint up)")
        return ok(f"alarm {alarm['AlarmName']} on AWS/SNS NumberOfNotificationsFailed is {alarm.get('StateValue')}")
    failed = f.failed_notifications()
    if failed:
        return broken(f"AWS/SNS NumberOfNotificationsFailed is {failed:g} for {f.stack.topic_arn.rsplit(':', 1)[-1]} "
                      "in the last 15 minutes of AWS time: a subscriber refuses deliveries",
                      f"find the failing endpoint among aws sns list-subscriptions-by-topic --topic-arn "
                      f"{f.stack.topic_arn} (queue policy, Lambda permission, key grant, HTTPS endpoint up)")
    return ok("no failed notification in the last 15 minutes of AWS time (AWS/SNS NumberOfNotificationsFailed)")


def check_rules_enabled(f: Facts) -> Verdict:
    problems, fixes, fine = [], [], []
    notifying = {f.stack.rule_name, f.stack.alarms_rule_name, f.stack.sns_rule_name}  # the tampering rules
    for name, answer in f.rules().items():
        if isinstance(answer, Missing):
            problems.append(f"rule {name} does not exist")
            fixes.append(f"recreate rule {name} (redeploy the stack)")
        elif isinstance(answer, Exception):
            return UNKNOWN, f"ListTargetsByRule {name}: {answer}", _permission_fix(answer)
        else:
            rule, targets = answer
            if rule.get("State") not in ENABLED_STATES:
                problems.append(f"rule {name} is {rule.get('State')}")
                fixes.append(f"aws events enable-rule --name {name}")
            elif not targets:
                problems.append(f"rule {name} has no targets")
                fixes.append(f"aws events put-targets --rule {name} "
                             f"--targets Id=security-topic,Arn={f.stack.topic_arn}")
            elif name in notifying and not any(":sns:" in t.get("Arn", "") for t in targets):
                # A tampering rule whose only target repairs quietly: what it catches reaches nobody.
                problems.append(f"rule {name} notifies no SNS topic")
                fixes.append(f"aws events put-targets --rule {name} "
                             f"--targets Id=security-topic,Arn={f.stack.fallback_topic_arn or f.stack.topic_arn}")
            else:
                fine.append(name)
    if problems:
        return broken("; ".join(problems), fixes[0])
    return ok(f"{len(fine)} rule(s) enabled with targets: {', '.join(fine)}")


def _permission_fix(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"let this caller run {error.operation_name} (the trace only reads), then retry"
    return "check the endpoint and credentials, then retry"


HOPS: tuple[tuple[str, str, Callable[[Facts], Verdict]], ...] = (
    ("trail.exists", "the trail exists", check_trail_exists),
    ("trail.logging", "the trail is logging", check_trail_logging),
    ("trail.selectors", "management write events are selected", check_trail_selectors),
    ("trail.delivery", "the trail delivers to the log group", check_trail_delivery),
    ("filter.exists", "the control's metric filter exists", check_filter_exists),
    ("filter.matches", "the filter matches the tampering record", check_filter_matches),
    ("alarm.exists", "the alarm exists", check_alarm_exists),
    ("alarm.actions_enabled", "the alarm's actions are enabled", check_alarm_actions_enabled),
    ("alarm.can_fire", "one event can fire the alarm", check_alarm_can_fire),
    ("alarm.targets_topic", "the alarm notifies the security topic", check_alarm_targets_topic),
    ("alarm.history", "no alarm action failed", check_alarm_history),
    ("topic.exists", "the security topic exists", check_topic_exists),
    ("topic.policy", "the topic policy protects it", check_topic_policy),
    ("topic.kms", "publishers can use the topic's key", check_topic_kms),
    ("subscriptions.exist", "the topic has subscribers, the sink among them", check_subscriptions_exist),
    ("subscriptions.confirmed", "every subscription is confirmed", check_subscriptions_confirmed),
    ("subscriptions.filter", "no filter policy drops the alarm", check_subscriptions_filter),
    ("subscriptions.delivery", "deliveries are not failing", check_subscriptions_delivery),
    ("rules.enabled", "the stack's EventBridge rules are enabled", check_rules_enabled),
)
assert tuple(h[0] for h in HOPS) == HOP_IDS


def _run_hop(hop_id: str, title: str, check: Callable[[Facts], Verdict], facts: Facts) -> Hop:
    try:
        status, evidence, fix = check(facts)
    except Missing as exc:  # something an earlier hop reports broken
        status, evidence, fix = SKIPPED, f"not checked: {exc}", ""
    except (ClientError, BotoCoreError, HarnessBroken) as exc:  # the harness could not see: not the stack's fault
        status, evidence, fix = UNKNOWN, f"{type(exc).__name__}: {exc}", _permission_fix(exc)
    return Hop(hop_id, title, status, evidence, fix)


# -- the trace -----------------------------------------------------------------------------------


def trace(aws: Any, stack: StackOutputs, *, control: str = "4.5", canary: bool = False,
          canary_timeout: float | None = None) -> TraceReport:
    """Check every hop of the control's notification chain (all of them, at once); optionally send a canary."""
    check_control(control, stack)
    facts = Facts(aws, stack, control)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="gameday-trace") as pool:
        futures = [pool.submit(_run_hop, hop_id, title, check, facts) for hop_id, title, check in HOPS]
        hops = [future.result() for future in futures]
    report = TraceReport(control=control, alarm=stack.alarm_names[control], backend=aws.name, hops=hops,
                         advice=advice(stack))
    if canary:
        report.canary = send_canary(aws, stack, report, timeout=canary_timeout)
    return report


def advice(stack: StackOutputs) -> list[str]:
    """What no API can show: listed for a human to check, never reported as checked."""
    inbox = stack.oncall_email or "the on-call mailbox"
    items = [
        f"Mail filters: make sure mail from no-reply@sns.amazonaws.com reaches {inbox} and is not filtered to spam "
        "or a folder nobody reads.",
        "Pager escalation: check who is paged when the first responder does not acknowledge, and that the schedule "
        "has someone on call now.",
        f"A reader: a delivered notification nobody reads is a silent chain; make sure someone owns {inbox}"
        + (" and the tickets queue." if stack.tickets_queue_url else "."),
    ]
    if stack.fallback_topic_arn:
        items.append(f"Fallback path: {stack.fallback_topic_arn} is not traced here; check it pages through a "
                     "channel independent of the security topic.")
    return items


# -- the canary ------------------------------------------------------------------------------------


def canary_deadline_aws(alarm: dict) -> float:
    """AWS seconds a canary may take: the alarm's evaluation range plus one period, plus a minute of delivery."""
    return float(alarm.get("Period", 300)) * (alarm.get("EvaluationPeriods", 1) + 1) + 60


def send_canary(aws: Any, stack: StackOutputs, report: TraceReport, *, timeout: float | None = None) -> Canary:
    """Write one tampering record to the log group and watch it become a metric, an alarm and a message in the sink."""
    blockers = [h for h in report.hops if h.id in CANARY_NEEDS and h.status != OK]
    if blockers:
        return Canary(SKIPPED if any(h.status == BROKEN for h in blockers) else UNKNOWN,
                      f"not sent: {blockers[0].id} is {blockers[0].status}; a canary cannot pass it")
    try:
        alarm = aws.client("cloudwatch").describe_alarms(AlarmNames=[report.alarm])["MetricAlarms"][0]
    except (ClientError, BotoCoreError, IndexError) as exc:
        return Canary(UNKNOWN, f"not sent: cannot read alarm {report.alarm}: {exc}")
    if alarm.get("StateValue") == "ALARM":
        return Canary(UNKNOWN, f"not sent: alarm already in ALARM since {alarm.get('StateUpdatedTimestamp')}: a canary "
                      "cannot show a transition; run it again once the alarm is back to OK")
    scale = float(getattr(aws, "time_scale", 1.0) or 1.0)
    deadline_aws = canary_deadline_aws(alarm)
    deadline = timeout if timeout is not None else deadline_aws / scale
    watch = _CanaryWatch(aws, stack, alarm, scale)
    try:
        watch.write(report.control)
        if watch.written:
            wait_for(watch.observe, timeout=deadline, interval=interval_for(deadline), describe="canary", ramp=True)
    except (ClientError, BotoCoreError, HarnessBroken) as exc:
        watch.error = exc
    finally:
        watch.release()
    return watch.result(deadline, deadline * scale)


class _CanaryWatch:
    """The canary's observations, relative to the moment its record was written."""

    STEPS = (
        ("canary.written", "the record is written to the log group"),
        ("canary.metric", "the metric filter emits a datapoint"),
        ("canary.alarm", "the alarm goes to ALARM"),
        ("canary.published", "the topic publishes the notification"),
        ("canary.received", "the sink receives it"),
    )

    def __init__(self, aws: Any, stack: StackOutputs, alarm: dict, scale: float):
        self.aws, self.stack, self.alarm, self.scale = aws, stack, alarm, scale
        self.seen: dict[str, tuple[float, str]] = {}  # step -> (wall seconds after the write, evidence)
        self.held: list[str] = []  # receipt handles of other messages, hidden while the canary looks
        self.error: BaseException | None = None
        self.failed_action: str | None = None  # the alarm history's words when publishing to the topic failed
        self.t0 = 0.0
        self.baseline = 0.0

    @property
    def written(self) -> bool:
        return "canary.written" in self.seen

    def write(self, control: str) -> None:
        logs = self.aws.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=self.stack.log_group_name, logStreamName=CANARY_STREAM)
        self.baseline = self._datapoints()
        record = sample_record(control, account_id=self.aws.account_id, region=self.aws.region, canary=True)
        self.t0 = time.time()
        logs.put_log_events(logGroupName=self.stack.log_group_name, logStreamName=CANARY_STREAM,
                            logEvents=[{"timestamp": int(self.t0 * 1000), "message": json.dumps(record)}])
        self._saw("canary.written", time.time(), f"PutLogEvents to {self.stack.log_group_name}/{CANARY_STREAM} "
                  f"(eventID {record['eventID']})")

    def observe(self) -> bool:
        """One look at every step not seen yet; True once the sink has the notification."""
        if "canary.metric" not in self.seen and self._datapoints() > self.baseline:
            self._saw("canary.metric", time.time(), f"{self.alarm['Namespace']}/{self.alarm['MetricName']} has a new "
                      "datapoint (GetMetricStatistics)")
        if "canary.alarm" not in self.seen or "canary.published" not in self.seen:
            self._look_at_history()
        self._look_at_sink()
        return "canary.received" in self.seen or self.failed_action is not None

    def _saw(self, step: str, at: float, evidence: str) -> None:
        self.seen[step] = (max(at - self.t0, 0.0), evidence)

    def _datapoints(self) -> float:
        start = datetime.fromtimestamp(self.t0 or time.time(), timezone.utc).replace(second=0, microsecond=0)
        answer = self.aws.client("cloudwatch").get_metric_statistics(
            Namespace=self.alarm["Namespace"], MetricName=self.alarm["MetricName"],
            Dimensions=self.alarm.get("Dimensions", []), StartTime=start - timedelta(minutes=1),
            EndTime=start + timedelta(hours=1), Period=60, Statistics=["SampleCount"])
        return sum(p.get("SampleCount", 0.0) for p in answer.get("Datapoints", []))

    def _look_at_history(self) -> None:
        """The alarm's own record of going to ALARM and of publishing to the topic (its Action items)."""
        items = self.aws.client("cloudwatch").describe_alarm_history(
            AlarmName=self.alarm["AlarmName"], StartDate=datetime.fromtimestamp(self.t0, timezone.utc),
            ScanBy="TimestampAscending", MaxRecords=100).get("AlarmHistoryItems", [])
        for item in items:
            summary, at = item.get("HistorySummary", ""), _utc(item["Timestamp"]).timestamp()
            if at < self.t0:  # StartDate went out in whole seconds
                continue
            if item.get("HistoryItemType") == "StateUpdate" and summary.endswith("to ALARM") \
                    and "canary.alarm" not in self.seen:
                self._saw("canary.alarm", at, f"\"{summary}\" at {item['Timestamp']} (DescribeAlarmHistory)")
            elif item.get("HistoryItemType") == "Action" and self.stack.topic_arn in summary \
                    and "canary.published" not in self.seen:
                if summary.startswith(FAILED_ACTION):
                    self.failed_action = f"\"{summary}\" at {item['Timestamp']}"
                else:
                    self._saw("canary.published", at, f"\"{summary}\" at {item['Timestamp']} (DescribeAlarmHistory)")

    def _look_at_sink(self) -> None:
        sqs = self.aws.client("sqs")
        answer = sqs.receive_message(QueueUrl=self.stack.sink_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                     AttributeNames=["SentTimestamp"])
        for message in answer.get("Messages", []):
            envelope, notification = _notification_of(message["Body"])
            if not self._is_ours(notification):
                self.held.append(message["ReceiptHandle"])
                continue
            sqs.delete_message(QueueUrl=self.stack.sink_queue_url, ReceiptHandle=message["ReceiptHandle"])
            if envelope.get("Timestamp"):  # SNS's own time for the message dates the publish best
                self._saw("canary.published", _utc(envelope["Timestamp"]).timestamp(),
                          f"SNS message {envelope.get('MessageId')} published at {envelope['Timestamp']}")
            sent = int(message["Attributes"]["SentTimestamp"]) / 1000
            self._saw("canary.received", sent, f"in {self.stack.sink_queue_url} at SentTimestamp "
                      f"{datetime.fromtimestamp(sent, timezone.utc).isoformat(timespec='milliseconds')}, read "
                      f"{time.time() - self.t0:.3f} s after the write")
            return

    def _is_ours(self, notification: Any) -> bool:
        if not isinstance(notification, dict) or notification.get("AlarmName") != self.alarm["AlarmName"] \
                or notification.get("NewStateValue") != "ALARM":
            return False
        changed = _utc(notification.get("StateChangeTime"))
        return changed is not None and changed.timestamp() >= self.t0 - 1.0  # 1 s of clock skew with AWS

    def release(self) -> None:
        """Make the other messages the canary looked past visible again, for whoever reads the sink."""
        sqs = self.aws.client("sqs")
        for handle in self.held:
            with contextlib.suppress(ClientError):
                sqs.change_message_visibility(QueueUrl=self.stack.sink_queue_url, ReceiptHandle=handle,
                                              VisibilityTimeout=0)
        self.held.clear()

    def result(self, deadline_wall: float, deadline_aws: float) -> Canary:
        metric, moved = self.seen.get("canary.metric"), self.seen.get("canary.alarm")
        if metric and moved and metric[0] > moved[0]:
            # The metric's time is when a poll saw it; the alarm it moved dates it more closely.
            self.seen["canary.metric"] = (moved[0], f"{metric[1]}, emitted by the time the alarm moved")
        hops = []
        last_seen = max((i for i, (step, _) in enumerate(self.STEPS) if step in self.seen), default=-1)
        first_missing = True
        for i, (step, title) in enumerate(self.STEPS):
            if step in self.seen:
                after, evidence = self.seen[step]
                hops.append(Hop(step, title, OK, evidence, wall_ms=round(after * 1000, 1),
                                aws_s=round(after * self.scale, 3)))
            elif i < last_seen:
                hops.append(Hop(step, title, UNKNOWN, "not observed, yet a later hop happened"))
            elif self.error is not None and first_missing:
                hops.append(Hop(step, title, UNKNOWN, f"{type(self.error).__name__}: {self.error}",
                                _permission_fix(self.error)))
                first_missing = False
            elif first_missing:
                evidence = f"never happened within {deadline_wall:g} s wall ({deadline_aws:g} s AWS)"
                if step == "canary.published" and self.failed_action:
                    evidence = f"the alarm could not publish: {self.failed_action}"
                hops.append(Hop(step, title, BROKEN, evidence, _CANARY_FIXES[step]))
                first_missing = False
            else:
                hops.append(Hop(step, title, SKIPPED, "not reached"))
        statuses = {h.status for h in hops}
        status = OK if statuses == {OK} else BROKEN if BROKEN in statuses else UNKNOWN
        arrived = self.seen.get("canary.received")
        evidence = (f"arrived in {arrived[0] * 1000:.0f} ms wall ({arrived[0] * self.scale:.1f} s AWS)" if arrived
                    else f"did not arrive within {deadline_wall:g} s wall ({deadline_aws:g} s AWS)")
        return Canary(status, evidence, hops, round(deadline_wall, 3), round(deadline_aws, 3))


_CANARY_FIXES = {
    "canary.written": "check the log group exists and this caller may run logs:PutLogEvents",
    "canary.metric": "the filter did not turn the record into a metric: compare its pattern with the record "
                     "(aws logs test-metric-filter)",
    "canary.alarm": "the metric did not move the alarm: check its period, statistic and threshold "
                    "(aws cloudwatch describe-alarms)",
    "canary.published": "the alarm fired but nothing was published: check the alarm history's Action items, the "
                        "topic policy and the topic key",
    "canary.received": "the topic published but the sink got nothing: check the sink's subscription, its filter "
                       "policy and the queue policy",
}


def _notification_of(body: str) -> tuple[dict, Any]:
    """(SNS envelope, the alarm message) of an SQS body; raw delivery has no envelope."""
    try:
        outer = json.loads(body)
    except ValueError:
        return {}, None
    if isinstance(outer, dict) and outer.get("Type") == "Notification":
        try:
            return outer, json.loads(outer.get("Message", ""))
        except ValueError:
            return outer, None
    return {}, outer


def _utc(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # CloudWatch's "+0000"
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# -- where to trace --------------------------------------------------------------------------------


@contextlib.contextmanager
def open_target(settings: Any) -> Iterator[tuple[Any, StackOutputs]]:
    """The backend and stack to trace: a fresh embedded endpoint with the reference stack, or an existing one."""
    if settings.backend == "embedded" and not settings.endpoint:
        from harness.session import start_session

        session = start_session(settings, warm=False)  # a trace never invokes the stack's functions
        try:
            yield session.backend, session.stack
        finally:
            session.close()
        return
    aws = _attach(settings)
    try:
        yield aws, _stack_of(aws, settings)
    finally:
        aws.stop()


def _attach(settings: Any) -> Any:
    from harness import backends
    from harness.backends.embedded import AttachedEmbedded

    unreachable = EndpointUnreachable(f"cannot reach {settings.endpoint or settings.backend}",
                                      "start it (`gameday up`) or fix --endpoint")
    if settings.backend == "embedded":
        if not _serving(settings.endpoint):  # at once, not after botocore's retries
            raise unreachable
        aws = AttachedEmbedded(settings, settings.endpoint.rstrip("/"))
    else:
        aws = backends.create(settings)
    try:
        aws.start()
    except (BotoCoreError, ClientError) as exc:
        raise EndpointUnreachable(f"{unreachable.problem} ({exc})", unreachable.fix) from None
    return aws


def _serving(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/_gameday/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stack_of(aws: Any, settings: Any) -> StackOutputs:
    """The stack file's outputs, or the reference stack's for the configured prefix (with the real sink URL)."""
    if settings.stack_file:
        try:
            return StackOutputs.from_json(Path(settings.stack_file).read_text())
        except ValueError as exc:
            raise ConfigError(f"stack file {settings.stack_file}: {exc}", "fix it (the shape `gameday up` prints)") \
                from None
    desired = desired_state(account_id=aws.account_id, region=aws.region, prefix=settings.stack_prefix)
    try:
        url = aws.client("sqs").get_queue_url(QueueName=desired.names.queue)["QueueUrl"]
    except ClientError:  # a missing sink is a hop to report, not a reason not to trace
        url = desired.queue.url
    return replace(desired.outputs(), sink_queue_url=url)


# -- the table ---------------------------------------------------------------------------------------

_MARKS = {OK: "ok", BROKEN: "BROKEN", SKIPPED: "skipped", UNKNOWN: "UNKNOWN"}


def render(report: TraceReport) -> str:
    """The report as an engineer reads it: one row per hop, the fix under each broken one, then the advice."""
    lines = [f"gameday trace: CIS {report.control}, alarm {report.alarm} ({report.backend})", ""]
    lines += _rows(report.hops)
    if report.canary is not None:
        lines += ["", f"canary: {report.canary.evidence}"]
        lines += _rows(report.canary.hops, latency=True)
    first = report.first_broken
    lines += ["", f"first broken hop: {first.id}: {first.evidence}" if first else
              "every hop is ok" if report.healthy else "no hop is broken, but some could not be checked"]
    lines += ["", "not checked (no API can see these):"] + [f"  - {item}" for item in report.advice]
    return "\n".join(lines)


def _rows(hops: list[Hop], latency: bool = False) -> list[str]:
    width = max([len(h.id) for h in hops] + [3])
    lines = []
    for h in hops:
        when = f"{h.wall_ms:>8.1f} ms {h.aws_s:>8.1f} s AWS  " if latency and h.wall_ms is not None else \
            " " * 26 if latency else ""
        lines.append(f"{h.id:<{width}}  {_MARKS[h.status]:<7}  {when}{h.evidence}")
        if h.fix and h.status != OK:
            lines.append(f"{'':<{width}}  {'':<7}  {' ' * len(when)}fix: {h.fix}")
    return lines
