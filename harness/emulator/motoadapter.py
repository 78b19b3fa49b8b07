"""The only module that reads or changes moto's internal state (pinned to moto 5.2.x)."""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.session
from moto.awslambda.models import lambda_backends
from moto.core import utils as moto_utils
from moto.core.base_backend import AccountSpecificBackend
from moto.cloudtrail.models import cloudtrail_backends
from moto.events.models import events_backends
from moto.events.utils import EventTemplateParser
from moto.iam.models import get_account_id_from, iam_backends
from moto.logs.models import logs_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends
from moto.sts.models import sts_backends

from harness.emulator import apicall, records

PARTITION = "aws"


@dataclass(frozen=True)
class TrailView:
    """What the recorder needs to know about one trail at one instant."""

    arn: str
    name: str
    home_region: str
    multi_region: bool
    logging: bool
    event_selectors: tuple[dict, ...]
    advanced_event_selectors: tuple[dict, ...]
    log_group_arn: str | None

    def covers_region(self, region: str) -> bool:
        return self.multi_region or self.home_region == region


@dataclass(frozen=True)
class RuleView:
    """An EventBridge rule with what delivery needs."""

    name: str
    arn: str
    state: str
    targets: tuple[dict, ...]
    schedule: str
    _rule: Any

    def matches(self, flat_event: dict) -> bool:
        """`flat_event`: flatten_arrays(event), once per event (moto's matcher does not descend into arrays of
        objects; EventBridge's view of them is the flattened one)."""
        # A schedule-only rule has no pattern: moto's matcher would take every event, AWS takes none.
        if not self._rule.event_pattern.get_pattern():
            return False
        return self._rule.event_pattern.matches_event(flat_event)


def flatten_arrays(value: Any) -> Any:
    """EventBridge's view of arrays of objects: each field's values from every element, gathered in one list.

    A pattern {"a": {"b": [1]}} matches {"a": [{"b": 2}, {"b": 1}]}; keys of one pattern object are matched
    independently (AWS does not require them to hold in the same array element).
    """
    if isinstance(value, dict):
        return {key: flatten_arrays(item) for key, item in value.items()}
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        flat: Any = None
        for item in value:
            item = flatten_arrays(item)
            flat = item if flat is None else _gather(flat, item)
        return [] if flat is None else flat
    return value


def _gather(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        merged = dict(a)
        for key, item in b.items():
            merged[key] = _gather(merged[key], item) if key in merged else item
        return merged
    if isinstance(a, dict) or isinstance(b, dict):  # an object and scalars at one path: patterns address the object
        return a if isinstance(a, dict) else b
    return (a if isinstance(a, list) else [a]) + (b if isinstance(b, list) else [b])


_moto_session: boto3.Session | None = None


def share_loaders() -> botocore.session.Session:
    """A botocore session for the harness's clients whose model loader moto and the recorder share.

    moto builds a new loader for every model it reads, and a session of its own for region lists: with the
    recorder's and the clients' loaders, each JSON model was parsed three or four times (about 0.5 s of a deploy).
    """
    global _moto_session
    if _moto_session is None:
        moto_utils.create_loader = functools.cache(moto_utils.create_loader)  # moto's own loader adds its extras
        _moto_session = boto3.Session(botocore_session=_sharing_session())
        AccountSpecificBackend.get_session = classmethod(lambda cls: _moto_session)
    return _sharing_session()


def _sharing_session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("data_loader", apicall.LOADER)
    return session


def account_for_access_key(access_key_id: str | None) -> str:
    return get_account_id_from(access_key_id or "")


def trails(account_id: str) -> list[TrailView]:
    """Every trail of the account, in every region (a multi-region trail is stored once)."""
    views = []
    for region, backend in cloudtrail_backends[account_id].items():
        for trail in list(backend.trails.values()):
            views.append(
                TrailView(
                    arn=trail.arn,
                    name=trail.trail_name,
                    home_region=trail.region_name,
                    multi_region=bool(trail.is_multi_region),
                    logging=trail.status.is_logging,
                    event_selectors=tuple(json.loads(json.dumps(trail.event_selectors))),
                    advanced_event_selectors=tuple(
                        json.loads(json.dumps(trail.advanced_event_selectors))
                    ),
                    log_group_arn=trail.cw_log_group_arn or None,
                )
            )
    return views


def rules(account_id: str, region: str, bus: str = "default") -> list[RuleView]:
    backend = events_backends[account_id][region]
    event_bus = backend.event_buses.get(bus)
    if event_bus is None:
        return []
    return [
        RuleView(r.name, r.arn, r.state, tuple(dict(t) for t in r.targets), r.scheduled_expression or "", r)
        for r in list(event_bus.rules.values())
    ]


def has_event_bus(account_id: str, region: str, bus: str) -> bool:
    return bus in events_backends[account_id][region].event_buses


def transform_input(target: dict, event: dict) -> str:
    """Apply a target's Input, InputPath or InputTransformer to an event (the payload AWS sends)."""
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        from jsonpath_ng.ext import parse

        found = [m.value for m in parse(target["InputPath"]).find(event)]
        return json.dumps(found[0] if found else None)
    transformer = target.get("InputTransformer")
    if transformer:
        # Known difference: moto's template parser only supports JSON templates, not text ones.
        return json.dumps(
            EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=event,
            )
        )
    return json.dumps(event)


def sns_publish(topic_arn: str, message: str, subject: str | None = None, *, publisher: str | None = None) -> str:
    """Publish as an AWS service would (`publisher` is its principal, e.g. cloudwatch.amazonaws.com)."""
    account, region = _account_region(topic_arn)
    token = _publisher.set(publisher)
    try:
        return sns_backends[account][region].publish(message, arn=topic_arn, subject=subject)
    finally:
        _publisher.reset(token)


def sqs_send(queue_arn: str, body: str) -> None:
    account, region = _account_region(queue_arn)
    sqs_backends[account][region].send_message(
        queue_name=queue_arn.rsplit(":", 1)[1], message_body=body
    )


def put_log_lines(log_group: str, stream: str, lines: list[tuple[int, str]], *, account_id: str, region: str, create_group: bool = False) -> bool:
    """Append (timestamp_ms, message) lines to a log group; False if the group does not exist."""
    backend = logs_backends[account_id][region]
    if log_group not in backend.groups:
        if not create_group:
            return False
        backend.create_log_group(log_group, tags={})
    group = backend.groups[log_group]
    if stream not in group.streams:
        backend.create_log_stream(log_group, stream)
    backend.put_log_events(
        log_group, stream, [{"timestamp": ts, "message": msg} for ts, msg in sorted(lines)]
    )
    return True


def log_group_name_from_arn(arn: str) -> str:
    # CloudTrail takes "arn:aws:logs:region:acct:log-group:NAME:*".
    name = arn.split(":log-group:", 1)[1]
    return name[:-2] if name.endswith(":*") else name


def get_function(account_id: str, region: str, name_or_arn: str) -> Any | None:
    backend = lambda_backends[account_id][region]
    try:
        return backend.get_function(name_or_arn, None)
    except Exception:  # moto raises its own UnknownFunctionException
        return None


def function_fields(fn: Any) -> dict:
    """The stored configuration and code of a Lambda function."""
    return {
        "name": fn.function_name,
        "arn": fn.function_arn,
        "handler": fn.handler,
        "runtime": fn.run_time or "",
        "code_zip": fn.code_bytes,
        "code_sha256": fn.code_sha_256,
        "environment": dict(fn.environment_vars or {}),
        "timeout_s": float(fn.timeout),
        "memory_mb": int(fn.memory_size),
        "role": fn.role,
    }


def throttled(fn: Any) -> bool:
    """Reserved concurrency 0: Lambda runs none of the function's invocations (how AWS pauses a function)."""
    return fn.reserved_concurrency is not None and int(fn.reserved_concurrency) == 0


def mint_role_credentials(role_arn: str, session_name: str, region: str) -> dict[str, str]:
    """Temporary credentials for an execution role, as Lambda gets from STS."""
    account = role_arn.split(":")[4]
    role = sts_backends[account][PARTITION].assume_role(
        region_name=region,
        role_session_name=session_name,
        role_arn=role_arn,
        policy="",
        duration=43200,
        external_id="",
    )
    return {
        "AWS_ACCESS_KEY_ID": role.access_key_id,
        "AWS_SECRET_ACCESS_KEY": role.secret_access_key,
        "AWS_SESSION_TOKEN": role.session_token,
    }


def user_identity(access_key_id: str | None) -> dict:
    """The CloudTrail userIdentity behind an access key, from moto's IAM and STS state."""
    account = account_for_access_key(access_key_id)
    key = access_key_id or ""
    assumed = sts_backends[account][PARTITION].get_assumed_role_from_access_key(key)
    if assumed is not None:
        role_name = assumed.role_arn.split("/")[-1]
        role_id = assumed.user_id.split(":")[0]
        issued = assumed.expiration.replace(tzinfo=timezone.utc)
        return records.assumed_role_identity(
            account_id=assumed.account_id,
            role_name=role_name,
            role_id=role_id,
            session_name=assumed.session_name,
            access_key_id=key,
            issued_at=issued if issued < datetime.now(timezone.utc) else datetime.now(timezone.utc),
        )
    user = iam_backends[account][PARTITION].get_user_from_access_key_id(key)
    if user is not None:
        return records.iam_user_identity(
            account_id=account, user_name=user.name, user_id=user.id, access_key_id=key
        )
    # moto accepts any key and names its caller "moto" (sts GetCallerIdentity says user/moto).
    digest = hashlib.sha1(key.encode()).hexdigest().upper()[:17]
    return records.iam_user_identity(
        account_id=account, user_name="moto", user_id=f"AIDA{digest}", access_key_id=key
    )


_AWS_POLICY_ARN = "arn:aws:iam::aws:policy/"


def remember_response_methods() -> None:
    """moto lists a response class's methods (inspect.getmembers) on every request to find the action's handler.

    The list changes only when a method is added (this module serves operations moto lacks that way), so it is
    remembered per class and number of attributes.
    """
    from moto.core import responses

    if getattr(responses.method_names_from_class, "_gameday_cached", False):
        return
    listing = responses.method_names_from_class
    known: dict[tuple[type, int], list[str]] = {}

    def method_names(cls: type) -> list[str]:
        key = (cls, len(vars(cls)))
        if key not in known:
            known[key] = listing(cls)
        return known[key]

    method_names._gameday_cached = True  # type: ignore[attr-defined]
    responses.method_names_from_class = method_names


def forget_every_account() -> None:
    """Drop every resource moto holds: a new endpoint is a new, empty AWS (moto keeps its state per process)."""
    from moto.core.base_backend import BackendDict

    BackendDict.reset()


def serve_aws_managed_policies_on_demand() -> None:
    """Every AWS managed policy exists, as on AWS, but moto builds one only when a call names it.

    moto either loads none of them or all ~1,300 for each account (seconds per account); loading the one a call
    names keeps start-up fast and AttachRolePolicy/GetPolicy faithful.
    """
    from moto.iam.models import IAMBackend

    if getattr(IAMBackend, "_gameday_lazy_policies", False):
        return
    for name in ("attach_role_policy", "detach_role_policy", "attach_user_policy", "attach_group_policy",
                 "get_policy", "get_policy_version"):
        original = getattr(IAMBackend, name)

        def named(self, policy_arn, *args, _original=original, **kwargs):
            _load_aws_policy(self, policy_arn)
            return _original(self, policy_arn, *args, **kwargs)

        setattr(IAMBackend, name, named)
    IAMBackend._gameday_lazy_policies = True


@functools.cache
def _aws_policy_data() -> dict:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


def _load_aws_policy(backend: Any, arn: str) -> None:
    if not isinstance(arn, str) or not arn.startswith(_AWS_POLICY_ARN) or arn in backend.managed_policies:
        return
    from moto.iam.models import AWSManagedPolicy

    data = _aws_policy_data()
    name = arn.rsplit("/", 1)[-1]
    if name in data:
        policy = AWSManagedPolicy.from_data(name, backend.account_id, backend.region_name, data[name])
        if policy.arn == arn:  # the path matters: service-role/AWS_ConfigRole is not AWS_ConfigRole
            backend.managed_policies[arn] = policy


def create_operator_user(account_id: str, user_name: str) -> dict[str, str]:
    """An IAM user with an access key for the harness itself, so its calls have a real identity."""
    backend = iam_backends[account_id][PARTITION]
    if user_name not in backend.users:
        backend.create_user(region_name="us-east-1", user_name=user_name, path="/", tags=[])
    user = backend.users[user_name]
    # moto's state is per process: a second endpoint in the same process reuses the key (AWS allows two).
    key = user.access_keys[0] if user.access_keys else backend.create_access_key(user_name)
    return {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}


def _account_region(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    return parts[4], parts[3]


# -- CloudWatch Logs ingestion, metrics and alarms --------------------------------------

_log_listener: list = [None]


def listen_to_log_ingestion(callback) -> None:
    """Route every batch stored in any log group to callback(account, region, group, stream, events).

    moto's own subscription delivery ignores filter patterns and needs Docker for Lambda, so the
    plane takes it over. moto's state is per process: one listener (the newest plane) at a time.
    """
    from moto.logs.models import LogStream

    if not getattr(LogStream, "_gameday_hooked", False):
        original = LogStream.put_log_events

        def put_log_events(self, log_events):
            token = original(self, log_events)
            listener = _log_listener[0]
            if listener is not None:
                listener(self.account_id, self.region, self.log_group.name, self.log_stream_name,
                         [dict(e) for e in log_events])
            return token

        LogStream.put_log_events = put_log_events
        LogStream._send_log_events = lambda self, **kwargs: None
        LogStream._gameday_hooked = True
    _log_listener[0] = callback


def stop_listening_to_log_ingestion(callback) -> None:
    if _log_listener[0] is callback:
        _log_listener[0] = None


def metric_filters(account_id: str, region: str, log_group: str) -> list[dict]:
    backend = logs_backends[account_id][region]
    return [dict(f) for f in backend.filters.get_matching_filters(log_group_name=log_group)]


def replace_metric_filter(account_id: str, region: str, log_group: str, name: str) -> None:
    """PutMetricFilter replaces a same-named filter on AWS; moto appends a duplicate: keep only the newest."""
    filters = logs_backends[account_id][region].filters.metric_filters
    same = [f for f in filters if f["logGroupName"] == log_group and f["filterName"] == name]
    for stale in same[:-1]:
        filters.remove(stale)


def subscription_filters(account_id: str, region: str, log_group: str) -> list[dict]:
    group = logs_backends[account_id][region].groups.get(log_group)
    if group is None:
        return []
    return [{"filterName": f.name, "filterPattern": f.filter_pattern, "destinationArn": f.destination_arn}
            for f in list(group.subscription_filters.values())]


def put_metric(account_id: str, region: str, namespace: str, name: str, value: float, *,
               dimensions: dict[str, str] | None = None, unit: str | None = None,
               timestamp: datetime | None = None) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    at = (timestamp or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    datum: dict[str, Any] = {"MetricName": name, "Value": float(value),
                             "Dimensions": [{"Name": k, "Value": v} for k, v in (dimensions or {}).items()],
                             "Timestamp": at}  # moto keeps naive UTC datetimes
    if unit:
        datum["Unit"] = unit
    cloudwatch_backends[account_id][region].put_metric_data(namespace, [datum])


def metric_points(account_id: str, region: str, namespace: str, name: str, dimensions: dict[str, str],
                  since: float) -> list[tuple[float, float]]:
    """(epoch seconds, value) of one metric (exact dimensions) since an epoch time."""
    from moto.cloudwatch.models import MetricAggregatedDatum, cloudwatch_backends

    want = sorted(dimensions.items())
    points = []
    for datum in list(cloudwatch_backends[account_id][region].metric_data):
        if datum.namespace != namespace or datum.name != name:
            continue
        if sorted((d.name, d.value) for d in datum.dimensions) != want:
            continue
        at = datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=timezone.utc)
        epoch = at.timestamp()
        if epoch < since:
            continue
        if isinstance(datum, MetricAggregatedDatum):
            # Known difference: a StatisticSet counts as its mean, SampleCount times.
            mean = datum.sum_stat / datum.sample_count if datum.sample_count else 0.0
            points.extend([(epoch, mean)] * int(datum.sample_count))
        else:
            points.append((epoch, float(datum.value)))
    return points


def alarms(account_id: str, region: str) -> list[Any]:
    from moto.cloudwatch.models import cloudwatch_backends

    return [a for a in list(cloudwatch_backends[account_id][region].alarms.values()) if a.rule is None]


def alarm_fields(alarm: Any) -> dict:
    return {
        "name": alarm.name, "arn": alarm.alarm_arn, "namespace": alarm.namespace, "metric_name": alarm.metric_name,
        "dimensions": tuple(sorted((d.name, d.value) for d in alarm.dimensions)),
        "period": int(alarm.period or 60), "evaluation_periods": int(alarm.evaluation_periods),
        "datapoints_to_alarm": int(alarm.datapoints_to_alarm) if alarm.datapoints_to_alarm else None,
        "threshold": float(alarm.threshold), "comparison": alarm.comparison_operator,
        "statistic": alarm.statistic or None, "extended_statistic": alarm.extended_statistic or None,
        "treat_missing_data": alarm.treat_missing_data or "missing", "unit": alarm.unit,
    }


def alarm_state(alarm: Any) -> dict:
    return {"value": alarm.state_value, "reason": alarm.state_reason, "reason_data": alarm.state_reason_data,
            "actions_enabled": bool(alarm.actions_enabled), "alarm_actions": list(alarm.alarm_actions or []),
            "ok_actions": list(alarm.ok_actions or []),
            "insufficient_data_actions": list(alarm.insufficient_data_actions or []),
            "description": alarm.description,
            "updated": alarm.configuration_updated_timestamp}


def set_alarm_state(alarm: Any, value: str, reason: str, reason_data: str) -> None:
    alarm.update_state(reason, reason_data, value)


def alarm_state_replaced(alarm: Any, value: str, reason: str) -> str | None:
    """The state a change to (value, reason) replaced, read back through moto's log of updates (newest last,
    each holding the state it replaced), so evaluations that ran since do not hide it; None if never set."""
    after = (alarm.state_value, alarm.state_reason)
    for kind, old_reason, _, old_value, _ in reversed(alarm.history):
        if kind != "StateUpdate":
            continue
        if after == (value, reason):
            return old_value
        after = (old_value, old_reason)
    return None


def serve_operation(service: str, operation: str, handler) -> None:
    """Add an operation moto lacks to its response class, so moto serializes it in the caller's protocol."""
    from moto.core.responses import ActionResult

    classes = {"cloudwatch": ("moto.cloudwatch.responses", "CloudWatchResponse")}
    module_name, class_name = classes[service]
    import importlib

    cls = getattr(importlib.import_module(module_name), class_name)
    method = "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")

    def serve(self):
        return ActionResult(handler(self.current_account, self.region, self._get_params()))

    setattr(cls, method, serve)


# -- SNS: the plane delivers what moto's topics receive ------------------------------------

_sns_listener: list = [None]
# The AWS service publishing through sns_publish, seen by the hooked Topic.publish on the same thread.
_publisher: contextvars.ContextVar[str | None] = contextvars.ContextVar("gameday_sns_publisher", default=None)


@dataclass(frozen=True)
class Publication:
    """One message a topic accepted, with who published it (an AWS service principal, or None for API callers)."""

    topic_arn: str
    message_id: str
    message: str
    subject: str | None
    attributes: dict
    group_id: str | None
    deduplication_id: str | None
    structure: str | None
    publisher: str | None


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription as delivery needs it; `owner` is the account that subscribed."""

    arn: str
    topic_arn: str
    protocol: str
    endpoint: str
    owner: str
    pending: bool
    _sub: Any


@dataclass(frozen=True)
class TopicView:
    arn: str
    policy: dict
    kms_key_id: str


def listen_to_sns(on_publish, on_subscribe) -> None:
    """Route every topic publish to on_publish(Publication) and every Subscribe to on_subscribe(view, created).

    moto delivers at once to every subscription, confirmed or not, fails the Publish when a queue is gone,
    and confirms every subscription; the plane takes delivery and confirmation over. One listener at a time.
    """
    from moto.core.responses import ActionResult
    from moto.core.utils import ensure_boolean
    from moto.sns.models import SNSBackend, Subscription, Topic
    from moto.sns.responses import SNSResponse

    if not getattr(Topic, "_gameday_hooked", False):
        publish, subscribe, respond = Topic.publish, SNSBackend.subscribe, SNSResponse.subscribe

        def topic_publish(self, message, subject=None, message_attributes=None, group_id=None,
                          deduplication_id=None, message_structure=None):
            listener = _sns_listener[0]
            if listener is None:
                return publish(self, message, subject, message_attributes, group_id, deduplication_id,
                               message_structure)
            _check_structure(message_structure, message)
            message_id = str(uuid.uuid4())
            listener[0](Publication(self.arn, message_id, message, subject, dict(message_attributes or {}),
                                    group_id, deduplication_id, message_structure, _publisher.get()))
            self.sent_notifications.append((message_id, message, subject, message_attributes, group_id))
            return message_id

        def backend_subscribe(self, topic_arn, endpoint, protocol):
            created = self._find_subscription(topic_arn, endpoint, protocol) is None
            sub = subscribe(self, topic_arn, endpoint, protocol)
            listener = _sns_listener[0]
            if listener is not None:
                listener[1](_subscription_view(sub), created)
            return sub

        def response_subscribe(self):
            result = respond(self)
            sub = self.backend.subscriptions.get(result.result["SubscriptionArn"])
            if sub is not None and sub.attributes.get("PendingConfirmation") and \
                    not ensure_boolean(self._get_param("ReturnSubscriptionArn") or "false"):
                return ActionResult({"SubscriptionArn": "pending confirmation"})  # AWS's answer until confirmed
            return result

        Topic.publish, SNSBackend.subscribe = topic_publish, backend_subscribe
        SNSResponse.subscribe = response_subscribe
        # ListSubscriptions* name a pending subscription "PendingConfirmation" instead of its ARN, as AWS does.
        Subscription.SubscriptionArn = property(
            lambda s: "PendingConfirmation" if s.attributes.get("PendingConfirmation") else s.arn)
        Topic._gameday_hooked = True
    _sns_listener[0] = (on_publish, on_subscribe)


def _check_structure(structure: str | None, message: str) -> None:
    """AWS refuses MessageStructure=json without a JSON object holding "default" (moto checks per subscription)."""
    from moto.sns.exceptions import InvalidParameterValue

    if structure != "json":
        return
    try:
        body = json.loads(message)
    except ValueError:
        raise InvalidParameterValue(
            "Invalid parameter: Message Structure - JSON message body failed to parse") from None
    if not isinstance(body, dict) or "default" not in body:
        raise InvalidParameterValue("Invalid parameter: Message Structure - No default entry in JSON message body")


def stop_listening_to_sns(on_publish) -> None:
    if _sns_listener[0] is not None and _sns_listener[0][0] == on_publish:
        _sns_listener[0] = None


def sns_topic(topic_arn: str) -> TopicView | None:
    account, region = _account_region(topic_arn)
    topic = sns_backends[account][region].topics.get(topic_arn)
    if topic is None:
        return None
    return TopicView(topic.arn, topic._policy_json, topic.kms_master_key_id or "")


def _subscription_view(sub: Any) -> SubscriptionView:
    return SubscriptionView(sub.arn, sub.topic.arn, sub.protocol, sub.endpoint, sub.owner,
                            bool(sub.attributes.get("PendingConfirmation")), sub)


def sns_subscriptions(topic_arn: str) -> list[SubscriptionView]:
    """Every subscription of a topic (moto's own listing stops at its first page of 100)."""
    account, region = _account_region(topic_arn)
    backend = sns_backends[account][region]
    return [_subscription_view(s) for s in list(backend.subscriptions.values()) if s.topic.arn == topic_arn]


def sns_subscription(arn: str) -> SubscriptionView | None:
    account, region = _account_region(arn)
    sub = sns_backends[account][region].subscriptions.get(arn)
    return None if sub is None else _subscription_view(sub)


def sns_set_pending(arn: str, pending: bool) -> None:
    """PendingConfirmation on or off; ConfirmationWasAuthenticated follows (the plane confirms by API)."""
    account, region = _account_region(arn)
    sub = sns_backends[account][region].subscriptions.get(arn)
    if sub is not None:
        sub.attributes["PendingConfirmation"] = pending
        sub.attributes["ConfirmationWasAuthenticated"] = not pending


def sns_delete_subscription(arn: str) -> None:
    account, region = _account_region(arn)
    sns_backends[account][region].unsubscribe(arn)


def sns_filter_matches(sub: SubscriptionView, pub: Publication) -> bool:
    """The subscription's filter policy (MessageAttributes or MessageBody scope), by moto's matcher."""
    matcher = sub._sub._filter_policy_matcher
    return matcher is None or matcher.matches(pub.attributes, pub.message)


def sns_message_for(sub: SubscriptionView, pub: Publication) -> str:
    """The message this protocol gets: MessageStructure=json picks its key, or "default"."""
    if pub.structure == "json":
        return sub._sub._parse_message_structure(pub.message, sub.protocol)
    return pub.message


def sns_envelope(sub: SubscriptionView, pub: Publication) -> dict:
    """The signed notification document SNS sends to HTTP, e-mail-json and SQS endpoints (moto's format)."""
    return sub._sub.get_post_data(sns_message_for(sub, pub), pub.message_id, pub.subject,
                                  message_attributes=pub.attributes or None)


def sns_to_sqs(sub: SubscriptionView, pub: Publication) -> None:
    """moto's own SQS delivery (envelope, RawMessageDelivery); LookupError when the queue is gone."""
    from moto.sqs.exceptions import QueueDoesNotExist

    try:
        # The filter policy was applied by the plane; moto's check repeats it harmlessly.
        sub._sub.publish(pub.message, pub.message_id, subject=pub.subject, message_attributes=pub.attributes,
                         group_id=pub.group_id, deduplication_id=pub.deduplication_id,
                         message_structure=pub.structure)
    except QueueDoesNotExist as exc:
        raise LookupError(f"queue {sub.endpoint} does not exist") from exc


def sqs_send_if_exists(queue_arn: str, body: str) -> bool:
    from moto.sqs.exceptions import QueueDoesNotExist

    try:
        sqs_send(queue_arn, body)
    except QueueDoesNotExist:
        return False
    return True


# -- KMS --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyView:
    arn: str
    state: str
    policy: dict | None
    aws_managed: bool


def kms_key(account_id: str, region: str, key_id: str) -> KeyView | None:
    """A key by id, key ARN, alias name or alias ARN (in the ARN's account and region when given)."""
    from moto.kms.models import kms_backends

    if key_id.startswith("arn:"):
        account_id, region = _account_region(key_id)
    alias = "alias/" + key_id.split(":alias/", 1)[1] if ":alias/" in key_id else key_id
    if alias.startswith("alias/aws/"):
        # AWS managed keys exist once named (moto lacks alias/aws/sns); no key policy of theirs can be changed.
        return KeyView(f"arn:aws:kms:{region}:{account_id}:{alias}", "Enabled", None, True)
    backend = kms_backends[account_id][region]
    try:
        key = backend.keys[backend.any_id_to_key_id(key_id)]
    except (KeyError, TypeError, AttributeError):
        return None
    try:
        policy = json.loads(key.policy)
    except (TypeError, ValueError):
        policy = None
    return KeyView(key.arn, key.key_state, policy, False)


# -- GuardDuty findings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorView:
    """A GuardDuty detector as findings need it."""

    id: str
    enabled: bool
    publishing_frequency: str


def guardduty_detectors(account_id: str, region: str) -> list[DetectorView]:
    """The region's detectors (GuardDuty allows one per account and region)."""
    from moto.guardduty.models import guardduty_backends

    return [DetectorView(d.id, bool(d.enabled), d.finding_publish_freq)
            for d in list(guardduty_backends[account_id][region].detectors.values())]


def guardduty_detector(account_id: str, region: str, detector_id: str) -> DetectorView | None:
    return next((d for d in guardduty_detectors(account_id, region) if d.id == detector_id), None)


def ec2_instance_details(account_id: str, region: str, instance_id: str) -> dict | None:
    """GuardDuty's instanceDetails for a stored instance; None if it does not exist."""
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.models import ec2_backends

    try:
        instance = ec2_backends[account_id][region].get_instance(instance_id)
    except InvalidInstanceIdError:
        return None
    profile = instance.iam_instance_profile or {}
    launched = instance.launch_time.replace(tzinfo=timezone.utc) if isinstance(instance.launch_time, datetime) \
        else None
    return {
        "instanceId": instance.id,
        "instanceType": instance.instance_type,
        "instanceState": instance._state.name,
        "imageId": instance.image_id,
        "availabilityZone": instance._placement.zone,
        "launchTime": launched.strftime("%Y-%m-%dT%H:%M:%S.000Z") if launched else None,
        "platform": instance.platform,
        "iamInstanceProfile": {"arn": profile.get("Arn", ""), "id": profile.get("Id", "")} if profile else None,
        "networkInterfaces": [{
            "networkInterfaceId": nic.id,
            "privateIpAddress": nic.private_ip_address,
            "privateDnsName": getattr(nic, "private_dns_name", None),
            "publicIp": nic.public_ip,
            "subnetId": nic.subnet.id if nic.subnet else None,
            "vpcId": nic.subnet.vpc_id if nic.subnet else None,
            "securityGroups": [{"groupId": g.id, "groupName": g.name} for g in nic.group_set],
        } for nic in list(instance.nics.values())],
        "tags": [{"key": t["key"], "value": t["value"]} for t in instance.get_tags()],
        "productCodes": [],
    }


def inspector2_scans_ec2(account_id: str, region: str) -> bool:
    """Inspector's EC2 scanning is enabled for the account in the region."""
    from moto.inspector2.models import inspector2_backends

    status = inspector2_backends[account_id][region].account_status.get(account_id)
    return status is not None and status.ec2 == "ENABLED"


# -- Config, EC2, IAM, GuardDuty detectors: what Config rules read ---------------------------------


@dataclass(frozen=True)
class ConfigRuleView:
    """A stored Config rule as the evaluators need it."""

    name: str
    arn: str
    rule_id: str
    owner: str
    identifier: str
    parameters: dict
    frequency: str | None
    scope: dict


def config_rules(account_id: str, region: str) -> list[ConfigRuleView]:
    from moto.config.models import config_backends

    return [_config_rule_view(r) for r in list(config_backends[account_id][region].config_rules.values())]


def config_rule(account_id: str, region: str, name: str) -> ConfigRuleView | None:
    from moto.config.models import config_backends

    rule = config_backends[account_id][region].config_rules.get(name)
    return None if rule is None else _config_rule_view(rule)


def _config_rule_view(rule: Any) -> ConfigRuleView:
    scope = rule.scope
    scope_view: dict = {}
    if scope is not None:
        if scope.compliance_resource_types:
            scope_view["ComplianceResourceTypes"] = list(scope.compliance_resource_types)
        if scope.compliance_resource_id:
            scope_view["ComplianceResourceId"] = scope.compliance_resource_id
        for key, value in (scope.tags or {}).items():
            scope_view["TagKey"] = key
            if value:
                scope_view["TagValue"] = value
    return ConfigRuleView(rule.config_rule_name, rule.config_rule_arn, rule.config_rule_id, rule.source.owner,
                          rule.source.source_identifier, dict(rule.input_parameters_dict or {}),
                          rule.maximum_execution_frequency or None, scope_view)


def config_recording(account_id: str, region: str, resource_type: str) -> bool:
    """A configuration recorder is recording in the region and its recording group covers the resource type."""
    from moto.config.models import config_backends

    for recorder in list(config_backends[account_id][region].recorders.values()):
        if not recorder.status.recording:
            continue
        group = recorder.recording_group
        if group is None:
            return True
        excluded = (group.exclusion_by_resource_types or {}).get("resourceTypes") or []
        if group.all_supported and resource_type not in excluded:
            if resource_type.startswith("AWS::IAM::"):
                return bool(group.include_global_resource_types)
            return True
        if resource_type in (group.resource_types or []):
            return True
    return False


def trail_details(account_id: str) -> list[dict]:
    """Every trail of the account with what the CloudTrail rules compare against their parameters."""
    views = {v.arn: v for v in trails(account_id)}
    out = []
    for region, backend in cloudtrail_backends[account_id].items():
        for trail in list(backend.trails.values()):
            topic = trail.sns_topic_name or ""
            topic_arn = topic if topic.startswith("arn:") else \
                f"arn:{PARTITION}:sns:{trail.region_name}:{account_id}:{topic}" if topic else ""
            out.append({"view": views.get(trail.arn), "bucket": trail.bucket_name or "", "sns_topic_arn": topic_arn})
    return out


def security_groups(account_id: str, region: str) -> list[dict]:
    """Security groups with their ingress rules flattened to one address range each."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id][region]
    out = []
    for groups in list(backend.groups.values()):
        for group in list(groups.values()):
            rules = [{"protocol": r.ip_protocol, "from": r.from_port, "to": r.to_port,
                      "cidr": r.ip_range.get("CidrIp"), "cidr_v6": r.ip_range.get("CidrIpv6")}
                     for r in list(group.ingress_rules)]
            out.append({"id": group.id, "name": group.name, "vpc_id": group.vpc_id,
                        "tags": dict(backend.tags.get(group.id, {})), "ingress": rules})
    return out


def vpcs(account_id: str, region: str) -> list[dict]:
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account_id][region]
    return [{"id": v.id, "tags": dict(backend.tags.get(v.id, {}))} for v in list(backend.vpcs.values())]


def flow_logs(account_id: str, region: str) -> list[dict]:
    from moto.ec2.models import ec2_backends

    return [{"id": f.id, "resource_id": f.resource_id, "traffic_type": f.traffic_type, "status": f.flow_log_status}
            for f in list(ec2_backends[account_id][region].flow_logs.values())]


def iam_users(account_id: str) -> list[dict]:
    """IAM users (a global resource) with their access keys; CreateDate as epoch seconds."""
    backend = iam_backends[account_id][PARTITION]
    return [{"name": u.name, "id": u.id, "arn": u.arn, "tags": backend.tagger.get_tag_dict_for_resource(u.arn),
             "keys": [{"id": k.access_key_id, "status": k.status,
                       "created": k.create_date.replace(tzinfo=timezone.utc).timestamp()} for k in u.access_keys]}
            for u in list(backend.users.values())]


def age_access_key(account_id: str, user_name: str, key_id: str, days: float) -> str:
    """Backdate an access key's CreateDate (a fact no API can set); the new CreateDate, ISO 8601."""
    from datetime import timedelta

    user = iam_backends[account_id][PARTITION].users.get(user_name)
    key = next((k for k in (user.access_keys if user else []) if k.access_key_id == key_id), None)
    if key is None:
        raise LookupError(f"user {user_name} has no access key {key_id}")
    key.create_date = key.create_date - timedelta(days=days)
    return key.create_date.replace(tzinfo=timezone.utc).isoformat()


def root_mfa_enabled(account_id: str) -> bool:
    return bool(iam_backends[account_id][PARTITION].account_summary._account_mfa_enabled)


def set_root_mfa(account_id: str, enabled: bool) -> None:
    """Root MFA on or off (no API can set it), as GetAccountSummary's AccountMFAEnabled shows it."""
    iam_backends[account_id][PARTITION].account_summary._account_mfa_enabled = int(enabled)


def default_root_mfa_enabled() -> None:
    """Accounts start with root MFA enabled (a well-configured account); moto hard-codes 0."""
    from moto.iam.models import AccountSummary

    if not getattr(AccountSummary, "_gameday_hooked", False):
        original = AccountSummary.__init__

        def init(self, iam_backend):
            original(self, iam_backend)
            self._account_mfa_enabled = 1

        AccountSummary.__init__ = init
        AccountSummary._gameday_hooked = True
    for account_backends in list(iam_backends.values()):
        backend = account_backends.get(PARTITION) if hasattr(account_backends, "get") else None
        if backend is not None:
            backend.account_summary._account_mfa_enabled = 1


def alarm_settings(account_id: str, region: str) -> list[dict]:
    """Metric alarms with their ActionsEnabled flag and tags."""
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[account_id][region]
    return [{"name": a.name, "arn": a.alarm_arn, "actions_enabled": bool(a.actions_enabled),
             "tags": backend.tagger.get_tag_dict_for_resource(a.alarm_arn)} for a in alarms(account_id, region)]


def guardduty_administrator(account_id: str, region: str) -> str | None:
    """The GuardDuty administrator account the region's detector reports to, if any."""
    from moto.guardduty.models import guardduty_backends

    admins = guardduty_backends[account_id][region].admin_account_ids
    return admins[0] if admins else None


def ssm_document(account_id: str, region: str, name: str, version: str | None = None) -> dict | None:
    """An SSM document's type and parsed content (default version unless one is named); None if missing."""
    from moto.ssm.models import ssm_backends

    documents = ssm_backends[account_id][region]._documents.get(name)
    if documents is None:
        return None
    doc = documents.find_by_version(version) if version and version != "$DEFAULT" else None
    doc = doc or (documents.get_latest_version() if version == "$LATEST" else documents.get_default_version())
    return {"name": doc.name, "type": doc.document_type, "version": doc.document_version,
            "content": doc.content_json}


# -- Auto Scaling and EC2 instances ----------------------------------------------------------------


@dataclass(frozen=True)
class InstanceView:
    """An EC2 instance as its metrics and its group need it; `group` is the Auto Scaling group it is in service of."""

    id: str
    state: str
    instance_type: str
    vcpus: int
    detailed_monitoring: bool
    group: str | None
    security_groups: tuple[str, ...]
    subnet_id: str | None
    availability_zone: str


@dataclass(frozen=True)
class GroupView:
    """An Auto Scaling group: its bounds, its capacity and its instances as (id, lifecycle state, protected)."""

    name: str
    arn: str
    min_size: int
    max_size: int
    desired: int
    default_cooldown: int
    instances: tuple[tuple[str, str, bool], ...]
    suspended: tuple[str, ...]


@dataclass(frozen=True)
class PolicyView:
    """A scaling policy as PutScalingPolicy stored it (moto stores Cooldown 300 when it was left unset)."""

    name: str
    arn: str
    group: str
    policy_type: str
    adjustment_type: str | None
    scaling_adjustment: int | None
    cooldown: int | None
    min_adjustment_magnitude: int | None
    step_adjustments: tuple[dict, ...]
    estimated_instance_warmup: int | None


def ec2_instances(account_id: str, region: str) -> list[InstanceView]:
    """Every instance not terminated, with the group whose instances include it."""
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    backend = ec2_backends[account_id][region]
    members = {state.instance.id: group.name
               for group in list(autoscaling_backends[account_id][region].autoscaling_groups.values())
               for state in list(group.instance_states)}
    views = []
    for reservation in list(backend.reservations.values()):
        for instance in list(reservation.instances):
            if instance._state.name == "terminated":
                continue
            info = INSTANCE_TYPES.get(instance.instance_type, {})
            views.append(InstanceView(
                id=instance.id, state=instance._state.name, instance_type=instance.instance_type,
                vcpus=int(info.get("VCpuInfo", {}).get("DefaultVCpus", 1)),
                detailed_monitoring=instance.monitoring_state == "enabled" or _template_monitoring(backend, instance),
                group=members.get(instance.id), security_groups=tuple(g.id for g in instance.security_groups),
                subnet_id=instance._subnet_id, availability_zone=instance._placement.zone))
    return views


def _template_monitoring(backend: Any, instance: Any) -> bool:
    """moto drops a launch template's Monitoring setting at launch; EC2 applies it."""
    tags = {t["key"]: t["value"] for t in instance.get_tags()}
    template = backend.launch_templates.get(tags.get("aws:ec2launchtemplate:id", ""))
    if template is None:
        return False
    try:
        version = template.get_version(tags.get("aws:ec2launchtemplate:version", "$Default"))
    except Exception:  # a deleted version: nothing to say
        return False
    return bool((version.data.get("Monitoring") or {}).get("Enabled"))


def autoscaling_groups(account_id: str, region: str) -> list[GroupView]:
    from moto.autoscaling.models import autoscaling_backends

    return [_group_view(g) for g in list(autoscaling_backends[account_id][region].autoscaling_groups.values())]


def autoscaling_group(account_id: str, region: str, name: str) -> GroupView | None:
    from moto.autoscaling.models import autoscaling_backends

    group = autoscaling_backends[account_id][region].autoscaling_groups.get(name)
    return None if group is None else _group_view(group)


def _group_view(group: Any) -> GroupView:
    return GroupView(
        name=group.name, arn=group.arn, min_size=int(group.min_size or 0), max_size=int(group.max_size or 0),
        desired=int(group.desired_capacity or 0), default_cooldown=int(group.default_cooldown or 300),
        instances=tuple((s.instance.id, s.lifecycle_state, bool(s.protected_from_scale_in))
                        for s in list(group.instance_states)),
        suspended=tuple(p["ProcessName"] for p in group.suspended_processes))


def scaling_policy(account_id: str, region: str, arn: str) -> PolicyView | None:
    """The policy an alarm action names (moto keys policies by name alone, so the ARN is matched whole)."""
    from moto.autoscaling.models import autoscaling_backends

    for policy in list(autoscaling_backends[account_id][region].policies.values()):
        if policy.arn == arn:
            magnitude = policy.min_adjustment_magnitude
            warmup = policy.estimated_instance_warmup
            return PolicyView(
                name=policy.name, arn=policy.arn, group=policy.auto_scaling_group_name,
                policy_type=policy.policy_type or "SimpleScaling", adjustment_type=policy.adjustment_type,
                scaling_adjustment=policy.scaling_adjustment, cooldown=policy.cooldown,
                min_adjustment_magnitude=int(magnitude) if magnitude not in (None, "") else None,
                step_adjustments=tuple(dict(s) for s in policy.step_adjustments or []),
                estimated_instance_warmup=int(warmup) if warmup not in (None, "") else None)
    return None


def set_group_capacity(account_id: str, region: str, name: str, desired: int) -> tuple[list[str], list[str]]:
    """Set a group's desired capacity as Auto Scaling does; the ids of the instances launched and terminated."""
    from moto.autoscaling.models import autoscaling_backends

    backend = autoscaling_backends[account_id][region]
    group = backend.autoscaling_groups[name]
    before = {s.instance.id for s in list(group.instance_states)}
    backend.set_desired_capacity(name, desired)
    after = {s.instance.id for s in list(group.instance_states)}
    return sorted(after - before), sorted(before - after)


def serve_autoscaling_operation(operation: str, handler) -> None:
    """Replace an Auto Scaling operation moto answers emptily (serialized by moto in the query protocol)."""
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    method = "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")

    def serve(self):
        return ActionResult(handler(self.current_account, self.region, self._get_params()))

    setattr(AutoScalingResponse, method, serve)


def ssm_command(account_id: str, region: str, command_id: str) -> dict | None:
    """A Run Command command: its document, parameters, instances and status."""
    from moto.ssm.models import ssm_backends

    found = next((c for c in ssm_backends[account_id][region]._commands if c.command_id == command_id), None)
    if found is None:
        return None
    return {"id": found.command_id, "document": found.document_name, "parameters": dict(found.parameters or {}),
            "instance_ids": list(found.instance_ids), "status": found.status}


def ssm_set_command_status(account_id: str, region: str, command_id: str, status: str) -> bool:
    """Set a command's status and its invocations' (CancelCommand moto lacks); False if there is no such command."""
    from moto.ssm.models import ssm_backends

    found = next((c for c in ssm_backends[account_id][region]._commands if c.command_id == command_id), None)
    if found is None:
        return False
    found.status = found.status_details = status
    for invocation in found.invocations:
        invocation["Status"] = invocation["StatusDetails"] = status
    return True


def answer_put_scaling_policy_like_aws() -> None:
    """moto answers PutScalingPolicy with "PolicyArn", a key its model lacks, so clients got no ARN (AWS: PolicyARN)."""
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    if getattr(AutoScalingResponse, "_gameday_policy_arn", False):
        return
    original = AutoScalingResponse.put_scaling_policy

    def put_scaling_policy(self):
        result = original(self)
        return ActionResult({"PolicyARN": result.result["PolicyArn"], "Alarms": []})

    AutoScalingResponse.put_scaling_policy = put_scaling_policy
    AutoScalingResponse._gameday_policy_arn = True


def forget_metric_points(account_id: str, region: str, namespace: str, before: float) -> int:
    """Drop a namespace's datapoints older than an epoch time; how many went."""
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[account_id][region]
    seen = list(backend.metric_data)
    kept = []
    for datum in seen:
        at = datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=timezone.utc)
        if datum.namespace != namespace or at.timestamp() >= before:
            kept.append(datum)
    if len(kept) < len(seen):
        backend.metric_data[:len(seen)] = kept  # what was put meanwhile sits after them and stays
    return len(seen) - len(kept)
