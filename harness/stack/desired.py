"""The reference stack's desired state: every name, ARN and setting, derived from account, region and prefix."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SABOTAGE_MODES = ("detection", "remediation")
MIN_LOG_RETENTION_DAYS = 365
FUNCTION_SOURCE = Path(__file__).with_name("functions") / "remediate_cloudtrail.py"
FUNCTION_ENV_VAR = "GAMEDAY_DESIRED"
TOPIC_TARGET_ID = "security-topic"
FUNCTION_TARGET_ID = "remediate"

# CloudTrail calls that blind the trail, split by the request parameter that names the trail.
TRAIL_TAMPERING_BY_NAME = ("StopLogging", "DeleteTrail", "UpdateTrail")
TRAIL_TAMPERING_BY_TRAIL_NAME = ("PutEventSelectors",)  # real records carry requestParameters.trailName
BUCKET_TAMPERING = ("PutBucketLifecycle", "DeleteBucketPolicy")  # CloudTrail's names for the S3 calls

_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


@dataclass(frozen=True)
class Names:
    """Every name the stack owns for a prefix, deployed or not (teardown and sabotage remove by name)."""

    bucket: str
    log_group: str
    log_role: str
    trail: str
    topic: str
    queue: str
    function: str
    function_role: str
    function_log_group: str
    rule: str


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    trust_policy: dict[str, Any]
    inline_policies: dict[str, dict[str, Any]]  # policy name -> document


@dataclass(frozen=True)
class Bucket:
    name: str
    arn: str
    policy: dict[str, Any]


@dataclass(frozen=True)
class LogGroup:
    name: str
    arn: str  # without the ":*" suffix CloudTrail wants
    retention_days: int


@dataclass(frozen=True)
class Trail:
    name: str
    arn: str
    bucket_name: str
    multi_region: bool
    include_global_service_events: bool
    log_file_validation: bool
    log_group_arn: str  # with ":*", as CreateTrail requires
    role_arn: str
    event_selectors: tuple[dict[str, Any], ...]

    def create_params(self) -> dict[str, Any]:
        """Keyword arguments for CreateTrail (UpdateTrail takes the same ones)."""
        return {
            "Name": self.name,
            "S3BucketName": self.bucket_name,
            "IsMultiRegionTrail": self.multi_region,
            "IncludeGlobalServiceEvents": self.include_global_service_events,
            "EnableLogFileValidation": self.log_file_validation,
            "CloudWatchLogsLogGroupArn": self.log_group_arn,
            "CloudWatchLogsRoleArn": self.role_arn,
        }


@dataclass(frozen=True)
class Topic:
    name: str
    arn: str
    policy: dict[str, Any]


@dataclass(frozen=True)
class Queue:
    name: str
    arn: str
    url: str  # the AWS form; a deploy reports the backend's own URL
    policy: dict[str, Any]


@dataclass(frozen=True)
class Subscription:
    topic_arn: str
    protocol: str
    endpoint: str
    raw_message_delivery: bool


@dataclass(frozen=True)
class Permission:
    statement_id: str
    action: str
    principal: str
    source_arn: str


@dataclass(frozen=True)
class Function:
    name: str
    arn: str
    role: Role
    runtime: str
    handler: str
    timeout: int
    source: Path
    environment: dict[str, str]
    permission: Permission


@dataclass(frozen=True)
class Target:
    id: str
    arn: str


@dataclass(frozen=True)
class Rule:
    name: str
    arn: str
    event_bus: str
    description: str
    pattern: dict[str, Any]
    state: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class StackOutputs:
    """Names and ARNs scenarios need; `gameday up` prints them and users with their own stack write theirs."""

    trail_name: str
    trail_arn: str
    bucket_name: str
    log_group_name: str
    log_group_arn: str
    topic_arn: str
    sink_queue_url: str
    sink_queue_arn: str
    rule_name: str
    function_name: str | None = None
    function_arn: str | None = None
    sabotage: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StackOutputs:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"stack outputs are not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("stack outputs must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown stack output field(s): {', '.join(unknown)}")
        required = {f.name for f in fields(cls) if f.default is not None}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"missing stack output field(s): {', '.join(missing)}")
        return cls(**data)


@dataclass(frozen=True)
class DesiredState:
    account_id: str
    region: str
    prefix: str
    sabotage: str | None
    names: Names
    bucket: Bucket
    log_group: LogGroup
    log_role: Role
    trail: Trail
    topic: Topic
    queue: Queue
    subscription: Subscription
    function: Function | None  # None when sabotaged without remediation
    rule: Rule

    def outputs(self) -> StackOutputs:
        return StackOutputs(
            trail_name=self.trail.name,
            trail_arn=self.trail.arn,
            bucket_name=self.bucket.name,
            log_group_name=self.log_group.name,
            log_group_arn=self.log_group.arn,
            topic_arn=self.topic.arn,
            sink_queue_url=self.queue.url,
            sink_queue_arn=self.queue.arn,
            rule_name=self.rule.name,
            function_name=self.function.name if self.function else None,
            function_arn=self.function.arn if self.function else None,
            sabotage=self.sabotage,
        )


def desired_state(
    *, account_id: str, region: str, prefix: str = "gameday", sabotage: str | None = None
) -> DesiredState:
    """The reference stack for one account and region; `sabotage` removes its detection or its remediation."""
    if sabotage is not None and sabotage not in SABOTAGE_MODES:
        raise ValueError(f"sabotage must be None, 'detection' or 'remediation', not {sabotage!r}")
    if not _ACCOUNT.match(account_id):
        raise ValueError(f"account_id must be 12 digits, not {account_id!r}")
    if not _REGION.match(region):
        raise ValueError(f"region does not look like an AWS region: {region!r}")
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"prefix must be 1-20 lowercase letters, digits or inner hyphens (it names buckets), not {prefix!r}"
        )
    partition = _partition(region)
    names = Names(
        bucket=f"{prefix}-trail-logs-{account_id}-{region}",
        log_group=f"/{prefix}/cloudtrail",
        log_role=f"{prefix}-cloudtrail-to-logs",
        trail=f"{prefix}-trail",
        topic=f"{prefix}-security",
        queue=f"{prefix}-sink",
        function=f"{prefix}-remediate-cloudtrail",
        function_role=f"{prefix}-remediation",
        function_log_group=f"/aws/lambda/{prefix}-remediate-cloudtrail",
        rule=f"{prefix}-cloudtrail-tampering",
    )
    if len(names.bucket) > 63:
        raise ValueError(f"bucket name {names.bucket!r} is longer than S3's 63 characters: use a shorter prefix")

    def arn(service: str, resource: str, *, regional: bool = True) -> str:
        return f"arn:{partition}:{service}:{region if regional else ''}:{account_id}:{resource}"

    trail_arn = arn("cloudtrail", f"trail/{names.trail}")
    bucket_arn = f"arn:{partition}:s3:::{names.bucket}"
    log_group_arn = arn("logs", f"log-group:{names.log_group}")
    log_role_arn = arn("iam", f"role/{names.log_role}", regional=False)
    topic_arn = arn("sns", names.topic)
    queue_arn = arn("sqs", names.queue)
    rule_arn = arn("events", f"rule/{names.rule}")
    function_arn = arn("lambda", f"function:{names.function}")

    bucket = Bucket(names.bucket, bucket_arn, _bucket_policy(bucket_arn, account_id, trail_arn))
    log_group = LogGroup(names.log_group, log_group_arn, MIN_LOG_RETENTION_DAYS)
    log_role = Role(
        name=names.log_role,
        arn=log_role_arn,
        trust_policy=_trust("cloudtrail.amazonaws.com"),
        inline_policies={
            "deliver-to-log-group": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DeliverTrailEvents",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": f"{log_group_arn}:*",
                    }
                ],
            }
        },
    )
    trail = Trail(
        name=names.trail,
        arn=trail_arn,
        bucket_name=names.bucket,
        multi_region=True,
        include_global_service_events=True,
        log_file_validation=True,
        log_group_arn=f"{log_group_arn}:*",
        role_arn=log_role_arn,
        event_selectors=({"ReadWriteType": "All", "IncludeManagementEvents": True},),
    )
    topic = Topic(names.topic, topic_arn, _topic_policy(topic_arn, account_id))
    queue = Queue(
        name=names.queue,
        arn=queue_arn,
        url=f"https://sqs.{region}.amazonaws.com/{account_id}/{names.queue}",
        policy={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowSecurityTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        },
    )
    subscription = Subscription(topic_arn, "sqs", queue_arn, raw_message_delivery=False)

    function = None
    if sabotage != "remediation":
        function = Function(
            name=names.function,
            arn=function_arn,
            role=_function_role(names, arn, trail_arn, bucket_arn, log_role_arn),
            runtime="python3.12",
            handler="remediate_cloudtrail.handler",
            timeout=30,
            source=FUNCTION_SOURCE,
            environment={FUNCTION_ENV_VAR: _function_desired(trail, bucket)},
            permission=Permission(
                statement_id=f"{names.rule}-invoke",
                action="lambda:InvokeFunction",
                principal="events.amazonaws.com",
                source_arn=rule_arn,
            ),
        )
    targets = []
    if sabotage != "detection":
        targets.append(Target(TOPIC_TARGET_ID, topic_arn))
    if function is not None:
        targets.append(Target(FUNCTION_TARGET_ID, function_arn))
    rule = Rule(
        name=names.rule,
        arn=rule_arn,
        event_bus="default",
        description=f"Gameday: tampering with trail {names.trail} or its bucket",
        pattern=_tampering_pattern(trail, names.bucket),
        state="ENABLED",
        targets=tuple(targets),
    )
    return DesiredState(
        account_id=account_id,
        region=region,
        prefix=prefix,
        sabotage=sabotage,
        names=names,
        bucket=bucket,
        log_group=log_group,
        log_role=log_role,
        trail=trail,
        topic=topic,
        queue=queue,
        subscription=subscription,
        function=function,
        rule=rule,
    )


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _trust(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def _bucket_policy(bucket_arn: str, account_id: str, trail_arn: str) -> dict[str, Any]:
    source = {"aws:SourceArn": trail_arn}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AWSCloudTrailAclCheck",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:GetBucketAcl",
                "Resource": bucket_arn,
                "Condition": {"StringEquals": source},
            },
            {
                "Sid": "AWSCloudTrailWrite",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/AWSLogs/{account_id}/*",
                "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", **source}},
            },
        ],
    }


def _topic_policy(topic_arn: str, account_id: str) -> dict[str, Any]:
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "SNS:GetTopicAttributes",
                    "SNS:SetTopicAttributes",
                    "SNS:AddPermission",
                    "SNS:RemovePermission",
                    "SNS:DeleteTopic",
                    "SNS:Subscribe",
                    "SNS:ListSubscriptionsByTopic",
                    "SNS:Publish",
                ],
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
            },
            {
                "Sid": "AllowEventBridgePublish",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                # Only this account's rules: the confused-deputy guard AWS recommends.
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ],
    }


def _function_role(names: Names, arn: Any, trail_arn: str, bucket_arn: str, log_role_arn: str) -> Role:
    own_logs = arn("logs", f"log-group:{names.function_log_group}")
    return Role(
        name=names.function_role,
        arn=arn("iam", f"role/{names.function_role}", regional=False),
        trust_policy=_trust("lambda.amazonaws.com"),
        inline_policies={
            "remediate-cloudtrail": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ReconcileTrail",
                        "Effect": "Allow",
                        "Action": [
                            "cloudtrail:CreateTrail",
                            "cloudtrail:GetEventSelectors",
                            "cloudtrail:GetTrail",
                            "cloudtrail:GetTrailStatus",
                            "cloudtrail:PutEventSelectors",
                            "cloudtrail:StartLogging",
                            "cloudtrail:UpdateTrail",
                        ],
                        "Resource": trail_arn,
                    },
                    {
                        # CreateTrail/UpdateTrail hand the CloudWatch Logs role to CloudTrail.
                        "Sid": "PassLogsRoleToCloudTrail",
                        "Effect": "Allow",
                        "Action": "iam:PassRole",
                        "Resource": log_role_arn,
                        "Condition": {"StringEquals": {"iam:PassedToService": "cloudtrail.amazonaws.com"}},
                    },
                    {
                        "Sid": "ReconcileTrailBucket",
                        "Effect": "Allow",
                        "Action": [
                            "s3:GetBucketPolicy",
                            "s3:GetLifecycleConfiguration",
                            "s3:PutBucketPolicy",
                            "s3:PutLifecycleConfiguration",
                        ],
                        "Resource": bucket_arn,
                    },
                    {
                        "Sid": "OwnLogs",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": [own_logs, f"{own_logs}:*"],
                    },
                ],
            }
        },
    )


def _function_desired(trail: Trail, bucket: Bucket) -> str:
    return json.dumps(
        {
            "trail": trail.create_params(),
            "event_selectors": list(trail.event_selectors),
            "bucket": bucket.name,
            "bucket_policy": bucket.policy,
            "min_log_retention_days": MIN_LOG_RETENTION_DAYS,
        },
        separators=(",", ":"),
    )


def _tampering_pattern(trail: Trail, bucket_name: str) -> dict[str, Any]:
    trail_ids = [trail.name, trail.arn]
    return {
        "detail-type": ["AWS API Call via CloudTrail"],
        "$or": [
            {
                "source": ["aws.cloudtrail"],
                "detail": {
                    "eventName": list(TRAIL_TAMPERING_BY_NAME),
                    "requestParameters": {"name": trail_ids},
                },
            },
            {
                "source": ["aws.cloudtrail"],
                "detail": {
                    "eventName": list(TRAIL_TAMPERING_BY_TRAIL_NAME),
                    "requestParameters": {"trailName": trail_ids},
                },
            },
            {
                "source": ["aws.s3"],
                "detail": {
                    "eventName": list(BUCKET_TAMPERING),
                    "requestParameters": {"bucketName": [bucket_name]},
                },
            },
        ],
    }
