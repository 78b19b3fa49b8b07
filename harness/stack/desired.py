"""The reference stack's desired state: every name, ARN and setting, derived from account, region and prefix."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.stack import notification

if TYPE_CHECKING:
    from harness.stack.applogs import AppLogs
    from harness.stack.infra import Infra
    from harness.stack.scaling import Workload

SABOTAGE_MODES = ("detection", "remediation", "prevention")
MIN_LOG_RETENTION_DAYS = 365
FUNCTION_SOURCE = Path(__file__).with_name("functions") / "remediate_cloudtrail.py"
FUNCTION_ENV_VAR = "GAMEDAY_DESIRED"
TOPIC_TARGET_ID = "security-topic"
FUNCTION_TARGET_ID = "remediate"
CIS_CONTROLS_FILE = Path(__file__).with_name("cis-monitoring-controls.json")
ALARMS_FUNCTION_SOURCE = Path(__file__).with_name("functions") / "remediate_alarms.py"
# Fifteen alarms and filters overflow Lambda's 4 KB environment: the zip carries them, the variable names the file.
ALARMS_DESIRED_FILE = "desired.json"
CIS_TREAT_MISSING_DATA = "notBreaching"  # no matching calls in a period is the normal, healthy state

# CloudTrail calls that blind the trail, split by the request parameter that names the trail.
TRAIL_TAMPERING_BY_NAME = ("StopLogging", "DeleteTrail", "UpdateTrail")
TRAIL_TAMPERING_BY_TRAIL_NAME = ("PutEventSelectors",)  # real records carry requestParameters.trailName
BUCKET_TAMPERING = ("PutBucketLifecycle", "DeleteBucketPolicy")  # CloudTrail's names for the S3 calls
# CloudWatch and CloudWatch Logs calls that blind the CIS controls, split by the request parameter naming the target.
ALARM_TAMPERING_BY_NAMES = ("DeleteAlarms", "DisableAlarmActions")  # requestParameters.alarmNames, a list
ALARM_TAMPERING_BY_NAME = ("PutMetricAlarm",)  # requestParameters.alarmName
FILTER_TAMPERING = ("DeleteMetricFilter", "PutMetricFilter")  # requestParameters.logGroupName and .filterName

_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


def _load_controls() -> dict[str, Any]:
    data = json.loads(CIS_CONTROLS_FILE.read_text())
    ids = [c["id"] for c in data["controls"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{CIS_CONTROLS_FILE.name} repeats a control id")
    return data


CIS_CONTROLS = _load_controls()


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
    alarms_function: str
    alarms_function_role: str
    alarms_function_log_group: str
    alarms_rule: str
    cis_prefix: str  # every CIS metric filter and alarm name starts with it
    muted_topic: str  # where the CIS alarms notify when detection is sabotaged: a topic nobody reads
    key_alias: str
    fallback_topic: str
    tickets_queue: str
    break_glass_role: str
    guard_function: str
    guard_function_role: str
    guard_function_log_group: str
    sns_rule: str
    alarm_state_rule: str
    guard_schedule_rule: str
    delivery_failures_alarm: str


@dataclass(frozen=True)
class Role:
    name: str
    arn: str
    trust_policy: dict[str, Any]
    inline_policies: dict[str, dict[str, Any]]  # policy name -> document
    managed_policies: tuple[str, ...] = ()  # ARNs of the managed policies attached, exactly


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
    kms_key: str | None = None  # KmsMasterKeyId, as an alias

    def attributes(self) -> dict[str, str]:
        """CreateTopic/SetTopicAttributes attributes (a topic without a key has no KmsMasterKeyId)."""
        found = {"Policy": json.dumps(self.policy)}
        if self.kms_key:
            found["KmsMasterKeyId"] = self.kms_key
        return found


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
    bundle: dict[str, str] = field(default_factory=dict)  # file name -> text, zipped next to the handler
    more_permissions: tuple[Permission, ...] = ()  # further rules that invoke it

    @property
    def permissions(self) -> tuple[Permission, ...]:
        return (self.permission, *self.more_permissions)


@dataclass(frozen=True)
class MetricFilter:
    name: str
    log_group_name: str
    pattern: str
    metric_name: str
    metric_namespace: str
    metric_value: str

    def put_params(self) -> dict[str, Any]:
        """Keyword arguments for PutMetricFilter."""
        return {
            "logGroupName": self.log_group_name,
            "filterName": self.name,
            "filterPattern": self.pattern,
            "metricTransformations": [
                {
                    "metricName": self.metric_name,
                    "metricNamespace": self.metric_namespace,
                    "metricValue": self.metric_value,
                }
            ],
        }


@dataclass(frozen=True)
class Alarm:
    name: str
    arn: str
    description: str
    metric_name: str
    namespace: str
    statistic: str
    period: int
    evaluation_periods: int
    threshold: float
    comparison_operator: str
    treat_missing_data: str
    actions_enabled: bool
    alarm_actions: tuple[str, ...]
    dimensions: tuple[tuple[str, str], ...] = ()

    def put_params(self) -> dict[str, Any]:
        """Keyword arguments for PutMetricAlarm (a put overwrites every setting it leaves out)."""
        extra = {"Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions]} if self.dimensions else {}
        return {
            **extra,
            "AlarmName": self.name,
            "AlarmDescription": self.description,
            "ActionsEnabled": self.actions_enabled,
            "AlarmActions": list(self.alarm_actions),
            "MetricName": self.metric_name,
            "Namespace": self.namespace,
            "Statistic": self.statistic,
            "Period": self.period,
            "EvaluationPeriods": self.evaluation_periods,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison_operator,
            "TreatMissingData": self.treat_missing_data,
        }


@dataclass(frozen=True)
class CisControl:
    """One CIS AWS Foundations monitoring control: a metric filter on the trail's log group and its alarm."""

    id: str
    title: str
    metric_filter: MetricFilter
    alarm: Alarm


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
    pattern: dict[str, Any] | None
    state: str
    targets: tuple[Target, ...]
    schedule: str | None = None  # ScheduleExpression, for a rule that runs on a clock instead of a pattern


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
    alarm_names: dict[str, str] = field(default_factory=dict)  # CIS control id -> alarm name
    metric_filter_names: dict[str, str] = field(default_factory=dict)  # CIS control id -> filter name
    alarms_function_name: str | None = None
    alarms_rule_name: str | None = None
    # The notification chain (part 3): optional, so a user's own stack without them still loads.
    fallback_topic_arn: str | None = None  # the independent path: pages when the security topic itself is broken
    topic_key_arn: str | None = None  # the KMS key encrypting the security topic
    break_glass_role_arn: str | None = None  # the only principal the topic policy lets delete or reshape the topic
    tickets_queue_url: str | None = None  # a second subscriber of the security topic (the ticketing integration)
    oncall_email: str | None = None  # the e-mail subscription of the security topic
    sns_function_name: str | None = None
    sns_rule_name: str | None = None  # tampering with the topics and subscriptions
    alarm_state_rule_name: str | None = None  # alarm state changes, audited for failed actions
    delivery_failures_alarm: str | None = None  # AWS/SNS NumberOfNotificationsFailed on the security topic
    # Application logging (part 4): optional as well.
    alb_arn: str | None = None  # the edge ALB whose access logs must stay on
    alb_logs_bucket: str | None = None
    distribution_id: str | None = None  # the CloudFront distribution whose standard logs must stay on
    cf_logs_bucket: str | None = None
    app_log_groups: list[str] = field(default_factory=list)  # application log groups, the ECS app's first
    app_logging_rule_name: str | None = None
    # Config, flow logs, GuardDuty, network and launch guards (part 4, harness.stack.infra): optional as well.
    config_recorder_name: str | None = None
    config_rule_names: dict[str, str] = field(default_factory=dict)  # managed rule identifier -> rule name
    config_bucket_name: str | None = None  # the delivery channel's bucket
    trail_logging_document: str | None = None  # SSM document the CLOUD_TRAIL_ENABLED remediation runs
    infra_function_name: str | None = None
    infra_rule_name: str | None = None  # tampering with the recorder, its rules, flow logs or the detector
    network_rule_name: str | None = None  # SSH/RDP opened to the internet, routes to an internet gateway
    launch_rule_name: str | None = None  # instances of unexpected types or regions
    compliance_rule_name: str | None = None  # the stack's Config rules finding NON_COMPLIANT resources
    guardduty_rule_name: str | None = None  # high-severity GuardDuty findings
    guardduty_detector_id: str | None = None
    vpc_id: str | None = None  # the monitored network's ids, generated at deploy
    subnet_id: str | None = None
    eni_id: str | None = None
    route_table_id: str | None = None
    security_group_id: str | None = None
    flow_log_group_name: str | None = None
    flow_log_ids: dict[str, str] = field(default_factory=dict)  # "vpc"/"subnet"/"eni" -> flow log id
    allowed_regions: list[str] = field(default_factory=list)  # where instances may run
    allowed_instance_types: list[str] = field(default_factory=list)
    # The workload scaled on CPU and its classifier (part 5, harness.stack.scaling): optional as well.
    workload_group_name: str | None = None  # the Auto Scaling group
    workload_alarm_name: str | None = None  # its CPU alarm, whose action is the scale-out policy
    workload_capacity: int | None = None  # the group's desired capacity at rest
    workload_security_group_name: str | None = None
    quarantine_group_name: str | None = None  # the isolation security group (no rules)
    classifier_function_name: str | None = None
    ops_topic_arn: str | None = None  # where the classifier reports load (nobody in security reads it)
    ops_queue_url: str | None = None  # the harness's inbox on the ops topic

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
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"missing stack output field(s): {', '.join(missing)}")
        groups = data.get("app_log_groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("stack output app_log_groups must be a list of log group names")
        for key in ("allowed_regions", "allowed_instance_types"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"stack output {key} must be a list of names")
        for key, what in (("config_rule_names", "managed rule identifiers to rule names"),
                          ("flow_log_ids", '"vpc", "subnet" and "eni" to flow log ids')):
            value = data.get(key, {})
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ValueError(f"stack output {key} must map {what}")
        for key in ("alarm_names", "metric_filter_names"):
            value = data.get(key, {})
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ValueError(f"stack output {key} must map CIS control ids to names")
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
    controls: tuple[CisControl, ...]
    alarms_function: Function | None  # None when sabotaged without remediation
    alarms_rule: Rule
    muted_topic: Topic | None  # only when sabotaged without detection
    key: notification.Key
    fallback_topic: Topic
    tickets_queue: Queue
    subscriptions: tuple[Subscription, ...]  # every subscription of the chain; `subscription` is the sink's
    break_glass_role: Role
    guard_function: Function  # kept when remediation is sabotaged, reporting only
    sns_rule: Rule
    alarm_state_rule: Rule
    guard_schedule_rule: Rule
    delivery_failures_alarm: Alarm
    oncall_email: str
    applogs: AppLogs  # the application-logging part (harness.stack.applogs)
    infra: Infra  # Config, flow logs, GuardDuty, network and launch guards (harness.stack.infra)
    workload: Workload  # the workload scaled on CPU and its load-or-attack classifier (harness.stack.scaling)

    @property
    def topics(self) -> tuple[Topic, ...]:
        """The topics the chain notifies through (the muted one is not one of them)."""
        return (self.topic, self.fallback_topic)

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
            alarm_names={c.id: c.alarm.name for c in self.controls},
            metric_filter_names={c.id: c.metric_filter.name for c in self.controls},
            alarms_function_name=self.alarms_function.name if self.alarms_function else None,
            alarms_rule_name=self.alarms_rule.name,
            fallback_topic_arn=self.fallback_topic.arn,
            break_glass_role_arn=self.break_glass_role.arn,
            tickets_queue_url=self.tickets_queue.url,
            oncall_email=self.oncall_email,
            sns_function_name=self.guard_function.name,
            sns_rule_name=self.sns_rule.name,
            alarm_state_rule_name=self.alarm_state_rule.name,
            delivery_failures_alarm=self.delivery_failures_alarm.name,
            **self.applogs.outputs(),
            **self.infra.outputs(),
            **self.workload.outputs(),
        )


def desired_state(
    *, account_id: str, region: str, prefix: str = "gameday", sabotage: str | None = None,
    oncall_email: str = notification.DEFAULT_ONCALL_EMAIL, allowed_regions: tuple[str, ...] | None = None,
    allowed_instance_types: tuple[str, ...] | None = None,
) -> DesiredState:
    """The reference stack for one account and region; `sabotage` removes its detection, remediation or prevention.

    Instances may run in `allowed_regions` (default: this region) with `allowed_instance_types` (default: infra's).
    """
    if sabotage is not None and sabotage not in SABOTAGE_MODES:
        raise ValueError(f"sabotage must be None or one of {', '.join(SABOTAGE_MODES)}, not {sabotage!r}")
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
        alarms_function=f"{prefix}-remediate-alarms",
        alarms_function_role=f"{prefix}-remediate-alarms",
        alarms_function_log_group=f"/aws/lambda/{prefix}-remediate-alarms",
        alarms_rule=f"{prefix}-alarm-tampering",
        cis_prefix=f"{prefix}-cis-",
        muted_topic=f"{prefix}-security-muted",
        key_alias=f"alias/{prefix}-security-topic",
        fallback_topic=f"{prefix}-security-fallback",
        tickets_queue=f"{prefix}-tickets",
        break_glass_role=f"{prefix}-break-glass",
        guard_function=f"{prefix}-remediate-sns",
        guard_function_role=f"{prefix}-remediate-sns",
        guard_function_log_group=f"/aws/lambda/{prefix}-remediate-sns",
        sns_rule=f"{prefix}-sns-tampering",
        alarm_state_rule=f"{prefix}-alarm-state",
        guard_schedule_rule=f"{prefix}-sns-guard-schedule",
        delivery_failures_alarm=f"{prefix}-security-delivery-failures",
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
    fallback_arn = arn("sns", names.fallback_topic)
    break_glass_arn = arn("iam", f"role/{names.break_glass_role}", regional=False)
    guard_role_arn = arn("iam", f"role/{names.guard_function_role}", regional=False)

    def protected_policy(at: str) -> dict[str, Any]:
        return notification.topic_policy(at, account_id, exempt=(break_glass_arn, guard_role_arn),
                                         protect=sabotage != "prevention")

    key = notification.Key(names.key_alias, f"Gameday: encrypts the security topic {names.topic}",
                           notification.key_policy(account_id, partition))
    topic = Topic(names.topic, topic_arn, protected_policy(topic_arn), kms_key=names.key_alias)
    # Unencrypted on purpose: the independent path must not share the primary topic's key (or its failure).
    fallback_topic = Topic(names.fallback_topic, fallback_arn, protected_policy(fallback_arn))
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
                    "Condition": {"ArnEquals": {"aws:SourceArn": [topic_arn, fallback_arn]}},
                }
            ],
        },
    )
    subscription = Subscription(topic_arn, "sqs", queue_arn, raw_message_delivery=False)
    tickets_arn = arn("sqs", names.tickets_queue)
    tickets_queue = Queue(
        name=names.tickets_queue,
        arn=tickets_arn,
        url=f"https://sqs.{region}.amazonaws.com/{account_id}/{names.tickets_queue}",
        policy={"Version": "2012-10-17", "Statement": [{
            "Sid": "AllowSecurityTopic", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": tickets_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]},
    )
    subscriptions = (
        subscription,
        Subscription(fallback_arn, "sqs", queue_arn, raw_message_delivery=False),
        Subscription(topic_arn, "sqs", tickets_arn, raw_message_delivery=False),
        Subscription(topic_arn, "email", oncall_email, raw_message_delivery=False),
    )

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

    # Without detection the CIS alarms stay armed but notify a topic nobody reads: whatever they would have
    # caught then goes unseen, while probes of the alarms themselves still find them intact.
    muted_topic = None
    alarm_actions = (topic_arn,)
    if sabotage == "detection":
        muted_arn = arn("sns", names.muted_topic)
        # The same policy as the chain's topics, unprotected: nobody reads it, so nobody needs to keep it.
        muted_topic = Topic(names.muted_topic, muted_arn,
                            notification.topic_policy(muted_arn, account_id, exempt=(), protect=False))
        alarm_actions = (muted_arn,)
    controls = tuple(
        _cis_control(control, CIS_CONTROLS["alarm"], names, log_group.name, alarm_actions, arn)
        for control in CIS_CONTROLS["controls"]
    )
    alarms_rule_arn = arn("events", f"rule/{names.alarms_rule}")
    alarms_function = None
    if sabotage != "remediation":
        alarms_desired = _alarms_desired(controls)
        alarms_function = Function(
            name=names.alarms_function,
            arn=arn("lambda", f"function:{names.alarms_function}"),
            role=_alarms_function_role(names, arn, controls, log_group_arn),
            runtime="python3.12",
            handler="remediate_alarms.handler",
            timeout=60,
            source=ALARMS_FUNCTION_SOURCE,
            environment={FUNCTION_ENV_VAR: json.dumps(
                {"file": ALARMS_DESIRED_FILE, "sha256": hashlib.sha256(alarms_desired.encode()).hexdigest()},
                separators=(",", ":"),
            )},
            permission=Permission(
                statement_id=f"{names.alarms_rule}-invoke",
                action="lambda:InvokeFunction",
                principal="events.amazonaws.com",
                source_arn=alarms_rule_arn,
            ),
            bundle={ALARMS_DESIRED_FILE: alarms_desired},
        )
    alarms_targets = []
    if sabotage != "detection":
        alarms_targets.append(Target(TOPIC_TARGET_ID, topic_arn))
    if alarms_function is not None:
        alarms_targets.append(Target(FUNCTION_TARGET_ID, alarms_function.arn))
    alarms_rule = Rule(
        name=names.alarms_rule,
        arn=alarms_rule_arn,
        event_bus="default",
        description=f"Gameday: tampering with the CIS alarms or metric filters {names.cis_prefix}*",
        pattern=_alarm_tampering_pattern(names.cis_prefix, log_group.name),
        state="ENABLED",
        targets=tuple(alarms_targets),
    )
    from harness.stack import applogs, infra, scaling  # here, not at the top: they build on this module's dataclasses

    chain = _notification_chain(names, arn, alarm_prefix=f"{prefix}-", sabotage=sabotage, topic=topic,
                                fallback_topic=fallback_topic, key=key, subscriptions=subscriptions,
                                muted_arn=muted_topic.arn if muted_topic else None)
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
        controls=controls,
        alarms_function=alarms_function,
        alarms_rule=alarms_rule,
        muted_topic=muted_topic,
        key=key,
        fallback_topic=fallback_topic,
        tickets_queue=tickets_queue,
        subscriptions=subscriptions,
        oncall_email=oncall_email,
        **chain,
        applogs=applogs.desired(account_id=account_id, region=region, prefix=prefix, partition=partition,
                                sabotage=sabotage, topic_arn=topic_arn, function_names=tuple(
                                    fn.name for fn in (function, alarms_function, chain["guard_function"]) if fn)),
        infra=infra.infra_state(account_id=account_id, region=region, prefix=prefix, partition=partition,
                                sabotage=sabotage, arn=arn, topic_arn=topic_arn, trail_name=trail.name,
                                trail_arn=trail_arn, trail_bucket=names.bucket, allowed_regions=allowed_regions,
                                allowed_instance_types=allowed_instance_types or infra.DEFAULT_INSTANCE_TYPES),
        workload=scaling.desired(account_id=account_id, region=region, prefix=prefix, partition=partition,
                                 sabotage=sabotage, topic_arn=topic_arn,
                                 muted_arn=muted_topic.arn if muted_topic else None, arn=arn),
    )


def _notification_chain(names: Names, arn: Any, *, alarm_prefix: str, sabotage: str | None, topic: Topic,
                        fallback_topic: Topic, key: notification.Key, subscriptions: tuple[Subscription, ...],
                        muted_arn: str | None) -> dict[str, Any]:
    """The guard, its rules, the delivery-failure alarm and the break-glass role (part 3's additions)."""
    topic_arns = [topic.arn, fallback_topic.arn]
    # Without detection, whatever the chain's own monitors find goes to the muted topic: nobody is told.
    report_topic = muted_arn or fallback_topic.arn
    break_glass = Role(
        name=names.break_glass_role,
        arn=arn("iam", f"role/{names.break_glass_role}", regional=False),
        trust_policy={"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": arn("iam", "root", regional=False)}, "Action": "sts:AssumeRole"}]},
        inline_policies={"reshape-security-topics": notification.break_glass_policy(topic_arns)},
    )
    guard_role = Role(
        name=names.guard_function_role,
        arn=arn("iam", f"role/{names.guard_function_role}", regional=False),
        trust_policy=_trust("lambda.amazonaws.com"),
        inline_policies={"remediate-sns": notification.guard_role_policy(
            arn, names.guard_function_log_group, topic_arns, alarm_prefix, names.key_alias, report_topic)},
    )
    rule_arns = {name: arn("events", f"rule/{name}")
                 for name in (names.sns_rule, names.alarm_state_rule, names.guard_schedule_rule)}
    text = notification.guard_desired(
        key=key,
        topics=[{"name": t.name, "arn": t.arn, "attributes": t.attributes()} for t in (topic, fallback_topic)],
        # SNS refuses RawMessageDelivery on an e-mail subscription, even "false" (deploy leaves it out too).
        subscriptions=[{"topic_arn": s.topic_arn, "protocol": s.protocol, "endpoint": s.endpoint,
                        "attributes": {"RawMessageDelivery": "true" if s.raw_message_delivery else "false"}
                        if s.protocol in ("sqs", "http", "https") else {}}
                       for s in subscriptions],
        report_topic=report_topic,
        remediate=sabotage != "remediation",
        alarm_prefix=alarm_prefix,
    )
    permissions = [Permission(statement_id=f"{name}-invoke", action="lambda:InvokeFunction",
                              principal="events.amazonaws.com", source_arn=rule_arn)
                   for name, rule_arn in rule_arns.items()]
    guard = Function(
        name=names.guard_function,
        arn=arn("lambda", f"function:{names.guard_function}"),
        role=guard_role,
        runtime="python3.12",
        handler="remediate_sns.handler",
        timeout=60,
        source=notification.GUARD_SOURCE,
        environment={FUNCTION_ENV_VAR: notification.guard_environment(text)},
        permission=permissions[0],
        more_permissions=tuple(permissions[1:]),
        bundle={notification.GUARD_DESIRED_FILE: text},
    )
    guard_target = Target(FUNCTION_TARGET_ID, guard.arn)
    sns_targets = (guard_target,) if sabotage == "detection" else (Target("fallback-topic", fallback_topic.arn),
                                                                  guard_target)
    return {
        "break_glass_role": break_glass,
        "guard_function": guard,
        "sns_rule": Rule(names.sns_rule, rule_arns[names.sns_rule], "default",
                         f"Gameday: tampering with the security topics {topic.name}, {fallback_topic.name}",
                         notification.sns_tampering_pattern(topic_arns), "ENABLED", sns_targets),
        "alarm_state_rule": Rule(names.alarm_state_rule, rule_arns[names.alarm_state_rule], "default",
                                 f"Gameday: alarms {alarm_prefix}* in ALARM, audited for failed actions",
                                 notification.alarm_state_pattern(alarm_prefix), "ENABLED", (guard_target,)),
        "guard_schedule_rule": Rule(names.guard_schedule_rule, rule_arns[names.guard_schedule_rule], "default",
                                    "Gameday: the SNS guard looks for suspended or unconfirmed subscriptions",
                                    None, "ENABLED", (guard_target,), schedule=notification.GUARD_SCHEDULE),
        "delivery_failures_alarm": Alarm(
            name=names.delivery_failures_alarm,
            arn=arn("cloudwatch", f"alarm:{names.delivery_failures_alarm}"),
            description=f"Deliveries from {topic.name} to a subscriber failed",
            metric_name="NumberOfNotificationsFailed",
            namespace="AWS/SNS",
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            threshold=1.0,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            actions_enabled=True,
            alarm_actions=(report_topic,),  # never the topic whose deliveries fail
            dimensions=(("TopicName", topic.name),),
        ),
    }


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


def _cis_control(
    control: dict[str, Any], alarm: dict[str, Any], names: Names, log_group: str,
    alarm_actions: tuple[str, ...], arn: Any,
) -> CisControl:
    filter_name = f"{names.cis_prefix}{control['id'].replace('.', '-')}"
    alarm_name = f"{filter_name}-{control['metricName']}"
    return CisControl(
        id=control["id"],
        title=control["title"],
        metric_filter=MetricFilter(
            name=filter_name,
            log_group_name=log_group,
            pattern=control["filterPattern"],
            metric_name=control["metricName"],
            metric_namespace=alarm["namespace"],
            metric_value="1",
        ),
        alarm=Alarm(
            name=alarm_name,
            arn=arn("cloudwatch", f"alarm:{alarm_name}"),
            description=f"CIS {control['id']} {control['title']}",
            metric_name=control["metricName"],
            namespace=alarm["namespace"],
            statistic=alarm["statistic"],
            period=alarm["period"],
            evaluation_periods=alarm["evaluationPeriods"],
            threshold=float(alarm["threshold"]),
            comparison_operator=alarm["comparisonOperator"],
            treat_missing_data=CIS_TREAT_MISSING_DATA,
            actions_enabled=True,
            alarm_actions=alarm_actions,
        ),
    )


def _alarms_desired(controls: tuple[CisControl, ...]) -> str:
    """The alarms function's bundled desired.json: PutMetricAlarm and PutMetricFilter arguments, byte-stable."""
    return json.dumps(
        {
            "alarms": [c.alarm.put_params() for c in controls],
            "metric_filters": [c.metric_filter.put_params() for c in controls],
        },
        indent=1,
        sort_keys=True,
    ) + "\n"


def _alarms_function_role(names: Names, arn: Any, controls: tuple[CisControl, ...], log_group_arn: str) -> Role:
    own_logs = arn("logs", f"log-group:{names.alarms_function_log_group}")
    return Role(
        name=names.alarms_function_role,
        arn=arn("iam", f"role/{names.alarms_function_role}", regional=False),
        trust_policy=_trust("lambda.amazonaws.com"),
        inline_policies={
            "remediate-alarms": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        # Read-only; resource-level support for Describe* varies, and "*" cannot fail on AWS only.
                        "Sid": "ReadAlarmsAndFilters",
                        "Effect": "Allow",
                        "Action": ["cloudwatch:DescribeAlarms", "logs:DescribeMetricFilters"],
                        "Resource": "*",
                    },
                    {
                        "Sid": "ReconcileAlarms",
                        "Effect": "Allow",
                        "Action": ["cloudwatch:EnableAlarmActions", "cloudwatch:PutMetricAlarm"],
                        "Resource": [c.alarm.arn for c in controls],
                    },
                    {
                        # Delete only where an emulator kept a second filter of the same name (moto appends).
                        "Sid": "ReconcileMetricFilters",
                        "Effect": "Allow",
                        "Action": ["logs:DeleteMetricFilter", "logs:PutMetricFilter"],
                        "Resource": [log_group_arn, f"{log_group_arn}:*"],
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


def _alarm_tampering_pattern(cis_prefix: str, log_group: str) -> dict[str, Any]:
    # A name prefix, not the 30 names: EventBridge's default pattern quota is 2048 characters.
    ours = [{"prefix": cis_prefix}]
    return {
        "detail-type": ["AWS API Call via CloudTrail"],
        "$or": [
            {
                "source": ["aws.monitoring"],
                "detail": {
                    "eventName": list(ALARM_TAMPERING_BY_NAMES),
                    "requestParameters": {"alarmNames": ours},
                },
            },
            {
                "source": ["aws.monitoring"],
                "detail": {
                    "eventName": list(ALARM_TAMPERING_BY_NAME),
                    "requestParameters": {"alarmName": ours},
                },
            },
            {
                "source": ["aws.logs"],
                "detail": {
                    "eventName": list(FILTER_TAMPERING),
                    "requestParameters": {"logGroupName": [log_group], "filterName": ours},
                },
            },
        ],
    }
