"""Converge a backend to the reference stack's desired state with plain boto3, and tear it down."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote

from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from harness.assume import ClientFactory, assumed
from harness.stack import notification
from harness.stack.desired import (Bucket, DesiredState, Function, LogGroup, Names, Permission, Queue, Role, Rule,
                                   StackOutputs, Subscription, Topic, Trail)

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
DELETED = "deleted"
ABSENT = "absent"
_RANK = {None: 0, UNCHANGED: 1, ABSENT: 1, UPDATED: 2, CREATED: 3, DELETED: 3}

# IAM is eventually consistent: a role created or changed seconds ago can be refused for about a minute.
IAM_PROPAGATION_DEADLINE = 120.0
IAM_PROPAGATION_WAIT = 3.0
# SQS refuses a queue name for 60 seconds after DeleteQueue.
QUEUE_RECREATE_DEADLINE = 90.0
QUEUE_RECREATE_WAIT = 5.0
FUNCTION_WAITER = {"Delay": 2, "MaxAttempts": 150}

_LAMBDA_ROLE_NOT_READY = (("InvalidParameterValueException", "cannot be assumed by Lambda"),)
_TRAIL_ROLE_NOT_READY = (
    ("InvalidCloudWatchLogsRoleArnException", "Access denied"),
    ("InvalidCloudWatchLogsLogGroupArnException", "Access denied"),
)
_QUEUE_DELETED_RECENTLY = (
    ("AWS.SimpleQueueService.QueueDeletedRecently", ""),
    ("QueueDeletedRecently", ""),
)
_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
# A role created moments ago cannot be assumed yet on AWS (IAM is eventually consistent).
_ROLE_NOT_ASSUMABLE_YET = (("AccessDenied", "is not authorized to perform: sts:AssumeRole"),)
KEY_DELETION_WINDOW_DAYS = 7  # the shortest AWS allows: a torn-down stack's key is gone a week later

# CreateTrail parameter -> the GetTrail field that reports it.
TRAIL_SETTINGS = {
    "S3BucketName": "S3BucketName",
    "IsMultiRegionTrail": "IsMultiRegionTrail",
    "IncludeGlobalServiceEvents": "IncludeGlobalServiceEvents",
    "EnableLogFileValidation": "LogFileValidationEnabled",
    "CloudWatchLogsLogGroupArn": "CloudWatchLogsLogGroupArn",
    "CloudWatchLogsRoleArn": "CloudWatchLogsRoleArn",
}
# PutMetricAlarm parameter -> the value DescribeAlarms implies when it leaves the field out (as remediate_alarms).
ALARM_DEFAULTS = {
    "AlarmDescription": "",
    "ActionsEnabled": True,
    "OKActions": [],
    "AlarmActions": [],
    "InsufficientDataActions": [],
    "MetricName": None,
    "Namespace": None,
    "Statistic": None,
    "ExtendedStatistic": None,
    "Dimensions": [],
    "Period": None,
    "Unit": None,
    "EvaluationPeriods": None,
    "DatapointsToAlarm": None,
    "Threshold": None,
    "ComparisonOperator": None,
    "TreatMissingData": "missing",
    "EvaluateLowSampleCountPercentile": None,
    "Metrics": [],
    "ThresholdMetricId": None,
}
# metricTransformations field -> the value DescribeMetricFilters implies when it leaves it out (as remediate_alarms).
TRANSFORMATION_DEFAULTS = {
    "metricName": None,
    "metricNamespace": None,
    "metricValue": None,
    "defaultValue": None,
    "dimensions": {},
    "unit": "None",
}


class DeployError(RuntimeError):
    """The backend holds something the stack cannot converge (a name owned elsewhere, a refused entry)."""


@dataclass
class DeployReport:
    """Per resource (logical id) "created", "updated", "unchanged", "deleted" or "absent", plus each change made."""

    resources: dict[str, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    outputs: StackOutputs | None = None
    notes: list[str] = field(default_factory=list)  # what is worth saying but changed nothing (an adopted detector)

    @property
    def changed(self) -> bool:
        return any(status not in (UNCHANGED, ABSENT) for status in self.resources.values())

    def note(self, resource: str, status: str, change: str | None = None) -> None:
        if _RANK[status] >= _RANK[self.resources.get(resource)]:
            self.resources[resource] = status
        if change:
            self.changes.append(change)

    def __str__(self) -> str:
        return "\n".join(f"{resource}: {status}" for resource, status in self.resources.items())


def deploy(client: ClientFactory, desired: DesiredState) -> DeployReport:
    """Create what is missing, update what drifted, remove what the desired state lacks; touch nothing else."""
    aws = functools.cache(client)
    report = DeployReport()
    log_role_changed = _ensure_role(aws("iam"), desired.log_role, report, "log_role")
    _ensure_log_group(aws("logs"), desired.log_group, report)
    _ensure_bucket(aws("s3"), desired.bucket, desired, report)
    _ensure_trail(aws("cloudtrail"), desired, report, role_changed=log_role_changed)
    key_arn = _ensure_key(aws("kms"), desired.key, report)
    break_glass_changed = _ensure_role(aws("iam"), desired.break_glass_role, report, "break_glass_role")
    break_glass = _break_glass(aws, desired, break_glass_changed)
    for topic_key, topic in (("topic", desired.topic), ("fallback_topic", desired.fallback_topic)):
        _ensure_topic(aws("sns"), topic, report, key=topic_key, break_glass=break_glass)
    if desired.muted_topic is not None:
        _ensure_topic(aws("sns"), desired.muted_topic, report, key="muted_topic", break_glass=break_glass)
    queue_url = _ensure_queue(aws("sqs"), desired.queue, report)
    tickets_url = _ensure_queue(aws("sqs"), desired.tickets_queue, report, key="tickets_queue")
    for index, sub in enumerate(desired.subscriptions):
        _ensure_subscription(aws("sns"), sub, report, key="subscription" if index == 0 else "subscriptions")
    from harness.stack import deploy_applogs  # here: it builds on this module's helpers

    # Application logging before the CIS filters exist: its VPC, gateway, route and bucket policy calls trip none.
    edge = deploy_applogs.converge(aws, desired, report)
    from harness.stack import deploy_infra, deploy_scaling  # here: they build on this module's helpers

    # Parts 4 and 5 before the CIS filters too: their VPC, security group, route, recorder and IAM calls would trip
    # CIS 4.4/4.9/4.10/4.13/4.14 on every first deploy. The trail exists, so the Config rules find it.
    infra_ids = deploy_infra.converge(aws, desired, report)
    workload_ids = deploy_scaling.converge(aws, desired, report, network=infra_ids)  # in part 4's monitored VPC
    # Each remediation (the trail's, the CIS alarms', the chain's guard) is keyed in the report by a prefix.
    remediations = {"": (desired.function, desired.rule), "alarms_": (desired.alarms_function, desired.alarms_rule),
                    "sns_": (desired.guard_function, desired.sns_rule)}
    for key, (fn, _) in remediations.items():
        if fn is not None:
            role_changed = _ensure_role(aws("iam"), fn.role, report, f"{key}function_role")
            _ensure_function(aws("lambda"), fn, report, role_changed=role_changed, key=f"{key}function")
            for permission in fn.permissions:
                _ensure_permission(aws("lambda"), fn, permission, report, key=f"{key}permission")
    # The CIS controls after the deploy's own trail and IAM changes, before the rules: where records arrive at once,
    # a first deploy neither trips CIS 4.4/4.5 itself nor reports its own PutMetricAlarm calls as tampering.
    _ensure_metric_filters(aws("logs"), desired, report)
    _ensure_alarms(aws("cloudwatch"), desired, report)
    for key, (_, rule) in remediations.items():
        _ensure_rule(aws("events"), rule, report, key=f"{key}rule")
    for rule in (desired.alarm_state_rule, desired.guard_schedule_rule):
        _ensure_rule(aws("events"), rule, report, key="sns_rule")
    for key, owned in _remediation_names(desired.names).items():
        if remediations[key][0] is None:
            _remove_function(aws, owned.function, owned.role, report, key)
    if desired.muted_topic is None:  # the alarms notify the security topic again: the muted one can go
        _remove_topic(aws("sns"), _muted_topic_arn(desired), report, break_glass)
    report.outputs = replace(desired.outputs(), sink_queue_url=queue_url, tickets_queue_url=tickets_url,
                             topic_key_arn=key_arn, **edge, **infra_ids, **workload_ids)
    return report


def _break_glass(aws: ClientFactory, desired: DesiredState, role_changed: bool) -> ClientFactory:
    """Clients as the break-glass role, assumed on first use (only reshaping a protected topic needs them)."""
    role = desired.break_glass_role

    @functools.cache
    def session() -> ClientFactory:
        assume = functools.partial(assumed, aws, role.arn, "gameday-deploy")
        return _while_iam_propagates(assume, role_changed, _ROLE_NOT_ASSUMABLE_YET)

    return lambda service: session()(service)


def _remove_function(aws: ClientFactory, function_name: str, role_name: str, report: DeployReport, key: str) -> None:
    lam = aws("lambda")
    if _exists(lambda: lam.get_function_configuration(FunctionName=function_name)):
        lam.delete_function(FunctionName=function_name)
        report.note(f"{key}function", DELETED, f"DeleteFunction {function_name}")
    iam = aws("iam")
    if _exists(lambda: iam.get_role(RoleName=role_name)):
        _delete_role(iam, role_name, report, f"{key}function_role")


def _muted_topic_arn(desired: DesiredState) -> str:
    """The muted topic's ARN, deployed or not: the security topic's, another name (same partition, region, account)."""
    return desired.topic.arn.rsplit(":", 1)[0] + f":{desired.names.muted_topic}"


def _remove_topic(sns: Any, arn: str, report: DeployReport, break_glass: ClientFactory,
                  key: str = "muted_topic") -> None:
    try:
        sns.get_topic_attributes(TopicArn=arn)  # DeleteTopic succeeds on a missing topic
    except ClientError as exc:
        if _code(exc) != "NotFound":
            raise
        if key != "muted_topic":  # the muted topic is sabotage-only: reported only when there was one
            report.note(key, ABSENT)
        return
    break_glass("sns").delete_topic(TopicArn=arn)  # the topic policy refuses everyone else
    report.note(key, DELETED, f"DeleteTopic {arn.rsplit(':', 1)[1]}")


def teardown(client: ClientFactory, desired: DesiredState) -> DeployReport:
    """Remove everything the stack's names own, whatever the sabotage mode; already-missing parts are "absent"."""
    aws = functools.cache(client)
    names = desired.names
    report = DeployReport()
    from harness.stack import deploy_applogs

    deploy_applogs.teardown(aws, desired, report)  # first: its rule must not report the deletions that follow
    from harness.stack import deploy_infra, deploy_scaling

    deploy_scaling.teardown(aws, desired, report)  # before part 4's: the workload runs in its VPC
    deploy_infra.teardown(aws, desired, report)  # before the trail and topics: its rules go first of all
    ev, lam, logs, iam = aws("events"), aws("lambda"), aws("logs"), aws("iam")
    sns, sqs, ct, s3, cw = aws("sns"), aws("sqs"), aws("cloudtrail"), aws("s3"), aws("cloudwatch")

    def rule(name: str) -> Callable[[], None]:
        def remove() -> None:
            ids = [t["Id"] for t in _paginate(ev, "list_targets_by_rule", "Targets", Rule=name)]
            if ids:
                ev.remove_targets(Rule=name, Ids=ids)
            ev.delete_rule(Name=name)

        return remove

    for name in (names.alarm_state_rule, names.guard_schedule_rule):
        _delete(report, "sns_rule", f"DeleteRule {name}", rule(name), "ResourceNotFoundException")
    for key, owned in _remediation_names(names).items():
        _delete(report, f"{key}rule", f"DeleteRule {owned.rule}", rule(owned.rule), "ResourceNotFoundException")
        _delete(report, f"{key}function", f"DeleteFunction {owned.function}",
                functools.partial(lam.delete_function, FunctionName=owned.function), "ResourceNotFoundException")
        _delete(report, f"{key}function_logs", f"DeleteLogGroup {owned.log_group}",
                functools.partial(logs.delete_log_group, logGroupName=owned.log_group), "ResourceNotFoundException")
    roles = [(f"{key}function_role", owned.role) for key, owned in _remediation_names(names).items()]
    for key, role_name in [*roles, ("log_role", names.log_role)]:
        if _exists(lambda: iam.get_role(RoleName=role_name)):
            _delete_role(iam, role_name, report, key)
        else:
            report.note(key, ABSENT)

    alarm_names = [c.alarm.name for c in desired.controls] + [desired.delivery_failures_alarm.name]

    def alarms() -> None:
        # AWS refuses the whole DeleteAlarms if one name is missing (moto does not): delete those that exist.
        found = [a["AlarmName"] for a in _paginate(cw, "describe_alarms", "MetricAlarms", AlarmNames=alarm_names)]
        if not found:
            raise _not_found("ResourceNotFound")
        cw.delete_alarms(AlarmNames=found)

    _delete(report, "alarms", f"DeleteAlarms {names.cis_prefix}*", alarms, "ResourceNotFound")

    def subscriptions() -> None:
        gone = 0
        for topic in {sub.topic_arn for sub in desired.subscriptions}:
            wanted = {(sub.protocol, sub.endpoint) for sub in desired.subscriptions if sub.topic_arn == topic}
            try:
                listed = list(_paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=topic))
            except ClientError as exc:
                if _code(exc) != "NotFound":
                    raise
                continue
            for sub in listed:
                # A pending subscription cannot be deleted (AWS drops it after 48 hours): it goes with its topic.
                if (sub["Protocol"], sub["Endpoint"]) in wanted and sub["SubscriptionArn"] != "PendingConfirmation":
                    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
                    gone += 1
        if not gone:
            raise _not_found("NotFound")

    _delete(report, "subscription", "Unsubscribe the stack's subscriptions", subscriptions, "NotFound")
    for key, queue in (("queue", names.queue), ("tickets_queue", names.tickets_queue)):
        _delete(report, key, f"DeleteQueue {queue}",
                functools.partial(_delete_queue, sqs, queue), *_NO_QUEUE)
    break_glass = _break_glass(aws, desired, role_changed=False)
    for key, topic in (("topic", desired.topic), ("fallback_topic", desired.fallback_topic)):
        _remove_topic(sns, topic.arn, report, break_glass, key=key)
    _remove_topic(sns, _muted_topic_arn(desired), report, break_glass)  # sabotage-only: reported only if there was one
    _delete(report, "key", f"ScheduleKeyDeletion {names.key_alias}",
            functools.partial(_delete_key, aws("kms"), names.key_alias), "NotFoundException")
    if _exists(lambda: iam.get_role(RoleName=names.break_glass_role)):
        _delete_role(iam, names.break_glass_role, report, "break_glass_role")
    else:
        report.note("break_glass_role", ABSENT)

    def trail() -> None:
        ct.get_trail(Name=names.trail)  # moto's DeleteTrail succeeds on a missing trail
        ct.delete_trail(Name=names.trail)

    _delete(report, "trail", f"DeleteTrail {names.trail}", trail, "TrailNotFoundException")
    filter_names = {c.metric_filter.name for c in desired.controls}

    def metric_filters() -> None:
        # moto's DeleteMetricFilter succeeds on a missing filter: delete only those listed.
        found = [
            f["filterName"]
            for f in _paginate(logs, "describe_metric_filters", "metricFilters", logGroupName=names.log_group)
            if f["filterName"] in filter_names
        ]
        if not found:
            raise _not_found("ResourceNotFoundException")
        for name in sorted(found):
            logs.delete_metric_filter(logGroupName=names.log_group, filterName=name)

    _delete(report, "metric_filters", f"DeleteMetricFilter {names.cis_prefix}*", metric_filters,
            "ResourceNotFoundException")
    _delete(report, "log_group", f"DeleteLogGroup {names.log_group}",
            lambda: logs.delete_log_group(logGroupName=names.log_group), "ResourceNotFoundException")
    _delete(report, "bucket", f"DeleteBucket {names.bucket}", lambda: _delete_bucket(s3, names.bucket),
            "NoSuchBucket", "404")
    return report


def function_zip(module_path: Path, bundle: Mapping[str, str | bytes] | None = None) -> bytes:
    """A deterministic zip (fixed timestamps and modes, sorted, stored) so CodeSha256 only moves with the code.

    `bundle` adds generated files (name -> content) at the zip's root, next to the module.
    """
    path = Path(module_path)
    if path.is_dir():
        files = {
            p.relative_to(path).as_posix(): p.read_bytes()
            for p in path.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }
    else:
        files = {path.name: path.read_bytes()}
    for name, content in (bundle or {}).items():
        if name in files:
            raise ValueError(f"bundled file {name} would replace {name} from {path}")
        files[name] = content.encode() if isinstance(content, str) else bytes(content)
    buffer = io.BytesIO()
    # Stored, not deflated: the bytes then do not depend on the zlib version of the machine deploying.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            archive.writestr(info, files[name])
    return buffer.getvalue()


def code_sha256(code: bytes) -> str:
    """The CodeSha256 Lambda reports for a zip."""
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


def _ensure_role(iam: Any, role: Role, report: DeployReport, key: str) -> bool:
    try:
        current = iam.get_role(RoleName=role.name)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust_policy))
        report.note(key, CREATED, f"CreateRole {role.name}")
        inline, attached = set(), []
    else:
        report.note(key, UNCHANGED)
        if not same_policy(current["AssumeRolePolicyDocument"], role.trust_policy):
            iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=json.dumps(role.trust_policy))
            report.note(key, UPDATED, f"UpdateAssumeRolePolicy {role.name}")
        inline = set(_paginate(iam, "list_role_policies", "PolicyNames", RoleName=role.name))
        attached = list(_paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role.name))
    for name, document in role.inline_policies.items():
        if name in inline:
            stored = iam.get_role_policy(RoleName=role.name, PolicyName=name)["PolicyDocument"]
            if same_policy(stored, document):
                continue
        iam.put_role_policy(RoleName=role.name, PolicyName=name, PolicyDocument=json.dumps(document))
        report.note(key, UPDATED, f"PutRolePolicy {role.name}/{name}")
    for name in sorted(inline - set(role.inline_policies)):
        iam.delete_role_policy(RoleName=role.name, PolicyName=name)
        report.note(key, UPDATED, f"DeleteRolePolicy {role.name}/{name}")
    for policy in attached:
        if policy["PolicyArn"] not in role.managed_policies:
            iam.detach_role_policy(RoleName=role.name, PolicyArn=policy["PolicyArn"])
            report.note(key, UPDATED, f"DetachRolePolicy {role.name} {policy['PolicyArn']}")
    for arn in sorted(set(role.managed_policies) - {policy["PolicyArn"] for policy in attached}):
        iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
        report.note(key, UPDATED, f"AttachRolePolicy {role.name} {arn}")
    return report.resources[key] != UNCHANGED


def _ensure_log_group(logs: Any, group: LogGroup, report: DeployReport, key: str = "log_group") -> None:
    """The log group with its retention (every part of the stack keeps its logs this way)."""
    found = [
        g for g in _paginate(logs, "describe_log_groups", "logGroups", logGroupNamePrefix=group.name)
        if g["logGroupName"] == group.name
    ]
    if found:
        report.note(key, UNCHANGED)
        retention = found[0].get("retentionInDays")
    else:
        logs.create_log_group(logGroupName=group.name)
        report.note(key, CREATED, f"CreateLogGroup {group.name}")
        retention = None
    if retention != group.retention_days:
        logs.put_retention_policy(logGroupName=group.name, retentionInDays=group.retention_days)
        report.note(key, UPDATED, f"PutRetentionPolicy {group.name} {group.retention_days}")


def _ensure_bucket(s3: Any, bucket: Bucket, desired: DesiredState, report: DeployReport, *, key: str = "bucket",
                   ownership: str | None = None) -> bool:
    """The bucket, its policy (if it has one) and its object ownership; True if anything was created or changed."""
    try:
        s3.head_bucket(Bucket=bucket.name, ExpectedBucketOwner=desired.account_id)
    except ClientError as exc:
        if _code(exc) == "403":
            raise DeployError(f"bucket {bucket.name} exists but this account does not own it") from exc
        if _code(exc) not in ("404", "NoSuchBucket"):
            raise
        location = {} if desired.region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": desired.region}}
        s3.create_bucket(Bucket=bucket.name, **location)
        report.note(key, CREATED, f"CreateBucket {bucket.name}")
        created = True
    else:
        report.note(key, UNCHANGED)
        created = False
    if ownership:
        try:
            rules = s3.get_bucket_ownership_controls(Bucket=bucket.name)["OwnershipControls"]["Rules"]
        except ClientError as exc:
            if _code(exc) != "OwnershipControlsNotFoundError":
                raise
            rules = []
        if [r.get("ObjectOwnership") for r in rules] != [ownership]:
            s3.put_bucket_ownership_controls(Bucket=bucket.name,
                                             OwnershipControls={"Rules": [{"ObjectOwnership": ownership}]})
            report.note(key, UPDATED, f"PutBucketOwnershipControls {bucket.name} {ownership}")
    if bucket.policy:
        stored = None if created else _bucket_policy(s3, bucket.name)
        if stored is None or not same_policy(stored, bucket.policy):
            s3.put_bucket_policy(Bucket=bucket.name, Policy=json.dumps(bucket.policy))
            report.note(key, UPDATED, f"PutBucketPolicy {bucket.name}")
    return report.resources[key] != UNCHANGED


def _bucket_policy(s3: Any, name: str) -> str | None:
    try:
        return s3.get_bucket_policy(Bucket=name)["Policy"]
    except ClientError as exc:
        if _code(exc) != "NoSuchBucketPolicy":
            raise
        return None


def _ensure_trail(ct: Any, desired: DesiredState, report: DeployReport, *, role_changed: bool) -> None:
    trail: Trail = desired.trail
    params = trail.create_params()
    try:
        current = ct.get_trail(Name=trail.name)["Trail"]
    except ClientError as exc:
        if _code(exc) != "TrailNotFoundException":
            raise
        _while_iam_propagates(lambda: ct.create_trail(**params), role_changed, _TRAIL_ROLE_NOT_READY)
        report.note("trail", CREATED, f"CreateTrail {trail.name}")
    else:
        home = current.get("HomeRegion", desired.region)
        if home != desired.region:
            raise DeployError(f"trail {trail.name} already exists with home region {home}, not {desired.region}")
        report.note("trail", UNCHANGED)
        drifted = [param for param, key in TRAIL_SETTINGS.items() if current.get(key) != params[param]]
        if drifted:
            _while_iam_propagates(lambda: ct.update_trail(**params), role_changed, _TRAIL_ROLE_NOT_READY)
            report.note("trail", UPDATED, f"UpdateTrail {trail.name} ({', '.join(drifted)})")
    if not _same_selectors(ct.get_event_selectors(TrailName=trail.name), trail.event_selectors):
        ct.put_event_selectors(TrailName=trail.name, EventSelectors=list(trail.event_selectors))
        report.note("trail", UPDATED, f"PutEventSelectors {trail.name}")
    if not ct.get_trail_status(Name=trail.name)["IsLogging"]:
        ct.start_logging(Name=trail.name)
        report.note("trail", UPDATED, f"StartLogging {trail.name}")


def _same_selectors(answer: dict[str, Any], desired: tuple[dict[str, Any], ...]) -> bool:
    basic = answer.get("EventSelectors") or []  # empty when advanced selectors replaced them

    def normal(selector: dict[str, Any]) -> dict[str, Any]:
        return {
            "ReadWriteType": selector.get("ReadWriteType", "All"),
            "IncludeManagementEvents": selector.get("IncludeManagementEvents", True),
            "DataResources": _normalise(selector.get("DataResources", [])),
            "ExcludeManagementEventSources": sorted(selector.get("ExcludeManagementEventSources", [])),
        }

    return bool(basic) and [normal(s) for s in basic] == [normal(s) for s in desired]


def _ensure_key(kms: Any, key: notification.Key, report: DeployReport) -> str:
    """The topic's customer managed key, found by its alias; returns its ARN."""
    try:
        meta = kms.describe_key(KeyId=key.alias)["KeyMetadata"]
    except ClientError as exc:
        if _code(exc) != "NotFoundException":
            raise
        meta = kms.create_key(Description=key.description, Policy=json.dumps(key.policy))["KeyMetadata"]
        kms.create_alias(AliasName=key.alias, TargetKeyId=meta["KeyId"])
        report.note("key", CREATED, f"CreateKey {key.alias}")
        return meta["Arn"]
    report.note("key", UNCHANGED)
    if meta.get("KeyState") == "PendingDeletion":
        kms.cancel_key_deletion(KeyId=meta["KeyId"])
        report.note("key", UPDATED, f"CancelKeyDeletion {key.alias}")
    if meta.get("KeyState") in ("Disabled", "PendingDeletion"):
        kms.enable_key(KeyId=meta["KeyId"])
        report.note("key", UPDATED, f"EnableKey {key.alias}")
    stored = kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"]
    if not same_policy(stored, key.policy):
        kms.put_key_policy(KeyId=meta["KeyId"], PolicyName="default", Policy=json.dumps(key.policy))
        report.note("key", UPDATED, f"PutKeyPolicy {key.alias}")
    return meta["Arn"]


def _ensure_topic(sns: Any, topic: Topic, report: DeployReport, *, key: str, break_glass: ClientFactory) -> None:
    wanted = topic.attributes()
    try:
        stored = sns.get_topic_attributes(TopicArn=topic.arn)["Attributes"]
    except ClientError as exc:
        if _code(exc) != "NotFound":
            raise
        arn = sns.create_topic(Name=topic.name, Attributes=wanted)["TopicArn"]
        if arn != topic.arn:
            raise DeployError(f"CreateTopic returned {arn}, expected {topic.arn}")
        report.note(key, CREATED, f"CreateTopic {topic.name}")
        return
    report.note(key, UNCHANGED)
    for name in ("Policy", "KmsMasterKeyId"):
        value = wanted.get(name, "")
        same = same_policy(stored[name], topic.policy) if name == "Policy" and stored.get(name) else \
            stored.get(name, "") == value
        if not same:
            # The topic policy refuses SetTopicAttributes to all but the break-glass role.
            break_glass("sns").set_topic_attributes(TopicArn=topic.arn, AttributeName=name, AttributeValue=value)
            report.note(key, UPDATED, f"SetTopicAttributes {topic.name} {name}")


def _ensure_queue(sqs: Any, queue: Queue, report: DeployReport, *, key: str = "queue") -> str:
    try:
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
    except ClientError as exc:
        if _code(exc) not in _NO_QUEUE:
            raise
        attributes = {"Policy": json.dumps(queue.policy)}
        create = functools.partial(sqs.create_queue, QueueName=queue.name, Attributes=attributes)
        url = _retrying(_QUEUE_DELETED_RECENTLY, QUEUE_RECREATE_DEADLINE, QUEUE_RECREATE_WAIT)(create)["QueueUrl"]
        report.note(key, CREATED, f"CreateQueue {queue.name}")
        return url
    report.note(key, UNCHANGED)
    stored = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
    if not stored or not same_policy(stored, queue.policy):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(queue.policy)})
        report.note(key, UPDATED, f"SetQueueAttributes {queue.name} Policy")
    return url


def _ensure_subscription(sns: Any, sub: Subscription, report: DeployReport, *, key: str = "subscription") -> None:
    raw = "true" if sub.raw_message_delivery else "false"
    found = [
        s for s in _paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=sub.topic_arn)
        if s["Protocol"] == sub.protocol and s["Endpoint"] == sub.endpoint
    ]
    if not found:
        sns.subscribe(
            TopicArn=sub.topic_arn,
            Protocol=sub.protocol,
            Endpoint=sub.endpoint,
            Attributes={"RawMessageDelivery": raw} if sub.protocol in ("sqs", "http", "https") else {},
            ReturnSubscriptionArn=True,
        )
        report.note(key, CREATED, f"Subscribe {sub.protocol} {sub.endpoint}")
        return
    report.note(key, UNCHANGED)
    arn = found[0]["SubscriptionArn"]
    if arn == "PendingConfirmation" or sub.protocol not in ("sqs", "http", "https"):
        return  # a pending subscription waits for its endpoint's owner; raw delivery only applies to these
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    if attributes.get("RawMessageDelivery", "false") != raw:
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue=raw)
        report.note(key, UPDATED, f"SetSubscriptionAttributes {arn} RawMessageDelivery={raw}")
    if attributes.get("FilterPolicy") not in (None, "", "{}"):
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue="{}")
        report.note(key, UPDATED, f"SetSubscriptionAttributes {arn} FilterPolicy={{}}")


def _ensure_function(
    lam: Any, fn: Function, report: DeployReport, *, role_changed: bool, key: str = "function"
) -> None:
    code = function_zip(fn.source, fn.bundle)
    configuration = {
        "Runtime": fn.runtime,
        "Handler": fn.handler,
        "Timeout": fn.timeout,
        "Role": fn.role.arn,
        "Environment": {"Variables": dict(fn.environment)},
    }
    try:
        current = lam.get_function_configuration(FunctionName=fn.name)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        create = functools.partial(lam.create_function, FunctionName=fn.name, Code={"ZipFile": code}, **configuration)
        _while_iam_propagates(create, role_changed, _LAMBDA_ROLE_NOT_READY)
        lam.get_waiter("function_active_v2").wait(FunctionName=fn.name, WaiterConfig=FUNCTION_WAITER)
        report.note(key, CREATED, f"CreateFunction {fn.name}")
        return
    report.note(key, UNCHANGED)
    if current.get("LastUpdateStatus") == "InProgress":
        lam.get_waiter("function_updated_v2").wait(FunctionName=fn.name, WaiterConfig=FUNCTION_WAITER)
    if current.get("CodeSha256") != code_sha256(code):
        lam.update_function_code(FunctionName=fn.name, ZipFile=code)
        lam.get_waiter("function_updated_v2").wait(FunctionName=fn.name, WaiterConfig=FUNCTION_WAITER)
        report.note(key, UPDATED, f"UpdateFunctionCode {fn.name}")
    stored = {
        "Runtime": current.get("Runtime"),
        "Handler": current.get("Handler"),
        "Timeout": current.get("Timeout"),
        "Role": current.get("Role"),
        "Environment": {"Variables": current.get("Environment", {}).get("Variables", {})},
    }
    drifted = [key for key in configuration if stored[key] != configuration[key]]
    if drifted:
        update = functools.partial(lam.update_function_configuration, FunctionName=fn.name, **configuration)
        _while_iam_propagates(update, role_changed, _LAMBDA_ROLE_NOT_READY)
        lam.get_waiter("function_updated_v2").wait(FunctionName=fn.name, WaiterConfig=FUNCTION_WAITER)
        report.note(key, UPDATED, f"UpdateFunctionConfiguration {fn.name} ({', '.join(drifted)})")


def _ensure_permission(lam: Any, fn: Function, perm: Permission, report: DeployReport, *,
                       key: str = "permission") -> None:
    wanted = {
        "Sid": perm.statement_id,
        "Effect": "Allow",
        "Principal": {"Service": perm.principal},
        "Action": perm.action,
        "Resource": fn.arn,
        "Condition": {"ArnLike": {"AWS:SourceArn": perm.source_arn}},
    }
    try:
        statements = json.loads(lam.get_policy(FunctionName=fn.name)["Policy"]).get("Statement", [])
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        statements = []
    found = [s for s in statements if s.get("Sid") == perm.statement_id]
    if found and all(same_policy(s, wanted) for s in found):
        report.note(key, UNCHANGED)
        return
    for _ in found:
        lam.remove_permission(FunctionName=fn.name, StatementId=perm.statement_id)
    lam.add_permission(
        FunctionName=fn.name,
        StatementId=perm.statement_id,
        Action=perm.action,
        Principal=perm.principal,
        SourceArn=perm.source_arn,
    )
    report.note(key, UPDATED if found else CREATED, f"AddPermission {fn.name} {perm.statement_id}")


def _ensure_rule(ev: Any, rule: Rule, report: DeployReport, *, key: str = "rule") -> None:
    trigger = {"ScheduleExpression": rule.schedule} if rule.schedule else {"EventPattern": json.dumps(rule.pattern)}
    settings = {"Name": rule.name, "EventBusName": rule.event_bus, **trigger, "State": rule.state,
                "Description": rule.description}
    try:
        current = ev.describe_rule(Name=rule.name, EventBusName=rule.event_bus)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        ev.put_rule(**settings)
        report.note(key, CREATED, f"PutRule {rule.name}")
        targets = []
    else:
        report.note(key, UNCHANGED)
        drifted = []
        if json.loads(current.get("EventPattern") or "null") != rule.pattern:
            drifted.append("EventPattern")
        if current.get("ScheduleExpression") != rule.schedule:
            drifted.append("ScheduleExpression")
        if current.get("State") != rule.state:
            drifted.append("State")
        if current.get("Description", "") != rule.description:
            drifted.append("Description")
        if drifted:
            ev.put_rule(**settings)
            report.note(key, UPDATED, f"PutRule {rule.name} ({', '.join(drifted)})")
        targets = list(_paginate(ev, "list_targets_by_rule", "Targets", Rule=rule.name, EventBusName=rule.event_bus))
    wanted = {t.id: {"Id": t.id, "Arn": t.arn} for t in rule.targets}
    stored = {t["Id"]: t for t in targets}
    extra = sorted(set(stored) - set(wanted))
    if extra:
        _check_entries(ev.remove_targets(Rule=rule.name, EventBusName=rule.event_bus, Ids=extra), "RemoveTargets")
        report.note(key, UPDATED, f"RemoveTargets {rule.name} ({', '.join(extra)})")
    put = [target for target_id, target in wanted.items() if stored.get(target_id) != target]
    if put:
        _check_entries(ev.put_targets(Rule=rule.name, EventBusName=rule.event_bus, Targets=put), "PutTargets")
        report.note(key, UPDATED, f"PutTargets {rule.name} ({', '.join(t['Id'] for t in put)})")


def _ensure_metric_filters(logs: Any, desired: DesiredState, report: DeployReport) -> None:
    group = desired.log_group.name
    found: dict[str, list[dict[str, Any]]] = {}
    for stored in _paginate(logs, "describe_metric_filters", "metricFilters", logGroupName=group):
        found.setdefault(stored["filterName"], []).append(stored)
    report.note("metric_filters", UNCHANGED)
    for control in desired.controls:
        wanted = control.metric_filter.put_params()
        name = wanted["filterName"]
        stored = found.get(name, [])
        if not stored:
            logs.put_metric_filter(**wanted)
            report.note("metric_filters", CREATED, f"PutMetricFilter {name}")
            continue
        drifted = {field for entry in stored for field in _filter_drift(entry, wanted)}
        fields = [field for field in ("filterPattern", "metricTransformations") if field in drifted]
        fields = fields or (["duplicated"] if len(stored) > 1 else [])
        if fields:
            _replace_filter(logs, wanted)
            report.note("metric_filters", UPDATED, f"PutMetricFilter {name} ({', '.join(fields)})")


def _replace_filter(logs: Any, params: dict[str, Any]) -> None:
    group, name = params["logGroupName"], params["filterName"]
    logs.put_metric_filter(**params)
    # moto 5.2 appends on PutMetricFilter instead of replacing: then leave exactly one filter of that name.
    listed = _paginate(logs, "describe_metric_filters", "metricFilters", logGroupName=group, filterNamePrefix=name)
    same = [f for f in listed if f["filterName"] == name]
    if len(same) > 1:
        for _ in same:
            logs.delete_metric_filter(logGroupName=group, filterName=name)
        logs.put_metric_filter(**params)


def _filter_drift(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    drifted = []
    if current.get("filterPattern", "") != desired["filterPattern"]:
        drifted.append("filterPattern")
    transformations = [_transformation(t) for t in current.get("metricTransformations", [])]
    if transformations != [_transformation(t) for t in desired["metricTransformations"]]:
        drifted.append("metricTransformations")
    return drifted


def _transformation(transformation: dict[str, Any]) -> dict[str, Any]:
    settings = {key: transformation.get(key, default) for key, default in TRANSFORMATION_DEFAULTS.items()}
    settings["dimensions"] = settings["dimensions"] or {}
    return settings


def _ensure_alarms(cw: Any, desired: DesiredState, report: DeployReport) -> None:
    alarms = [c.alarm for c in desired.controls] + [desired.delivery_failures_alarm]
    found = {a["AlarmName"]: a for a in _paginate(cw, "describe_alarms", "MetricAlarms",
                                                  AlarmNames=[a.name for a in alarms])}
    report.note("alarms", UNCHANGED)
    disabled = []
    for alarm in alarms:
        wanted = alarm.put_params()
        name = wanted["AlarmName"]
        if name not in found:
            cw.put_metric_alarm(**wanted)
            report.note("alarms", CREATED, f"PutMetricAlarm {name}")
            continue
        drifted = _alarm_drift(found[name], wanted)
        if drifted == ["ActionsEnabled"] and wanted["ActionsEnabled"]:
            disabled.append(name)
        elif drifted:
            cw.put_metric_alarm(**wanted)
            report.note("alarms", UPDATED, f"PutMetricAlarm {name} ({', '.join(drifted)})")
    if disabled:
        cw.enable_alarm_actions(AlarmNames=disabled)
        report.note("alarms", UPDATED, f"EnableAlarmActions {', '.join(disabled)}")


def _alarm_drift(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """The PutMetricAlarm parameters whose stored value (a DescribeAlarms entry) differs from `desired`."""
    stored, wanted = _alarm_settings(current), _alarm_settings(desired)
    return [key for key in ALARM_DEFAULTS if stored[key] != wanted[key]]


def _alarm_settings(alarm: dict[str, Any]) -> dict[str, Any]:
    settings = {key: alarm.get(key, default) for key, default in ALARM_DEFAULTS.items()}
    for key in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        settings[key] = sorted(settings[key] or [])
    settings["Dimensions"] = sorted((d["Name"], d["Value"]) for d in settings["Dimensions"] or [])
    settings["Metrics"] = settings["Metrics"] or []
    if settings["Threshold"] is not None:
        settings["Threshold"] = float(settings["Threshold"])
    if settings["DatapointsToAlarm"] == settings["EvaluationPeriods"]:  # the same as unset: "all of them"
        settings["DatapointsToAlarm"] = None
    return settings


class _Owned(NamedTuple):
    rule: str
    function: str
    role: str
    log_group: str


def _remediation_names(names: Names) -> dict[str, _Owned]:
    """Report key prefix -> the names each remediation owns, deployed or not."""
    return {
        "": _Owned(names.rule, names.function, names.function_role, names.function_log_group),
        "alarms_": _Owned(names.alarms_rule, names.alarms_function, names.alarms_function_role,
                          names.alarms_function_log_group),
        "sns_": _Owned(names.sns_rule, names.guard_function, names.guard_function_role,
                       names.guard_function_log_group),
    }


def _check_entries(answer: dict[str, Any], operation: str) -> None:
    if answer.get("FailedEntryCount"):
        raise DeployError(f"{operation} refused entries: {answer.get('FailedEntries')}")


def _delete_role(iam: Any, name: str, report: DeployReport, key: str) -> None:
    for policy in _paginate(iam, "list_role_policies", "PolicyNames", RoleName=name):
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for policy in _paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name):
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    iam.delete_role(RoleName=name)
    report.note(key, DELETED, f"DeleteRole {name}")


def _delete_queue(sqs: Any, name: str) -> None:
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])


def _delete_key(kms: Any, alias: str) -> None:
    key_id = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    kms.delete_alias(AliasName=alias)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_WINDOW_DAYS)


def _delete_bucket(s3: Any, name: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        objects = [
            {"Key": o["Key"], "VersionId": o["VersionId"]}
            for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(objects), 1000):
            s3.delete_objects(Bucket=name, Delete={"Objects": objects[start:start + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=name)


def _delete(report: DeployReport, key: str, change: str, remove: Callable[[], Any], *missing: str) -> None:
    try:
        remove()
    except ClientError as exc:
        if _code(exc) not in missing:
            raise
        report.note(key, ABSENT)
    else:
        report.note(key, DELETED, change)


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ClientError as exc:
        if _code(exc) in ("ResourceNotFoundException", "NoSuchEntity"):
            return False
        raise
    return True


def _while_iam_propagates(call: Callable[[], Any], role_changed: bool, errors: tuple[tuple[str, str], ...]) -> Any:
    if not role_changed:  # an old role that is refused is a real misconfiguration: fail fast
        return call()
    return _retrying(errors, IAM_PROPAGATION_DEADLINE, IAM_PROPAGATION_WAIT)(call)


def _retrying(errors: tuple[tuple[str, str], ...], deadline: float, wait: float) -> Retrying:
    def transient(exc: BaseException) -> bool:
        return isinstance(exc, ClientError) and any(
            _code(exc) == code and text in exc.response.get("Error", {}).get("Message", "") for code, text in errors
        )

    return Retrying(
        retry=retry_if_exception(transient), stop=stop_after_delay(deadline), wait=wait_fixed(wait), reraise=True
    )


def _paginate(client: Any, operation: str, key: str, **params: Any) -> Iterator[Any]:
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**params):
            yield from page.get(key, [])
    else:
        yield from getattr(client, operation)(**params).get(key, [])


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _not_found(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "not found"}}, "Lookup")


def same_policy(stored: Any, desired: Any) -> bool:
    """True if two policy documents (dicts, JSON or URL-encoded JSON) say the same thing."""
    return _normalise(_document(stored)) == _normalise(_document(desired))


def _document(value: Any) -> Any:
    if isinstance(value, str):
        text = value if value.lstrip().startswith("{") else unquote(value)  # IAM answers URL-encoded
        return json.loads(text)
    return value


def _normalise(value: Any, key: str | None = None) -> Any:
    """Sorted, singleton lists as scalars, actions lower-cased: the freedoms AWS takes when it stores a policy."""
    if isinstance(value, dict):
        return {k: _normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = sorted((_normalise(v, key) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return items[0] if len(items) == 1 else items
    if key in ("Action", "NotAction") and isinstance(value, str):
        return value.lower()
    return value
