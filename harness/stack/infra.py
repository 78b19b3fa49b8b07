"""The reference stack's part 4: AWS Config, VPC flow logs, GuardDuty, and the network and launch guards."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.stack.desired import (FUNCTION_ENV_VAR, FUNCTION_TARGET_ID, MIN_LOG_RETENTION_DAYS, TOPIC_TARGET_ID,
                                   Bucket, Function, LogGroup, Permission, Role, Rule, Target, _trust)

INFRA_FUNCTION_SOURCE = Path(__file__).with_name("functions") / "remediate_infra.py"
INFRA_DESIRED_FILE = "desired.json"
CONFIG_MANAGED_POLICY = "policy/service-role/AWS_ConfigRole"  # AWS's managed policy for a recorder's role
STACK_TAG = "gameday:stack"  # on what the stack creates: teardown deletes a GuardDuty detector only if it has it
VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDR = "10.42.0.0/24"
APP_PORT = 443  # the app group's only ingress: HTTPS from inside the VPC
FLOW_LOG_TRAFFIC = "ALL"
DETECTOR_FREQUENCY = "FIFTEEN_MINUTES"
HIGH_SEVERITY = 7  # GuardDuty severities: 7.0-8.9 high, 9.0 and above critical
WORLD = ("0.0.0.0/0", "::/0")
ADMIN_PORTS = (22, 3389)  # SSH and RDP
DEFAULT_INSTANCE_TYPES = ("t3.micro", "t3.small")
PERIODIC_FREQUENCY = "One_Hour"
SNAPSHOT_FREQUENCY = "TwentyFour_Hours"
REMEDIATION_ATTEMPTS = 5
REMEDIATION_RETRY_SECONDS = 60
CONFIG_REMEDIATION_SOURCE = "gameday.config-remediation"  # "source" of the payload a remediation document sends
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"

# Config calls that blind the recorder or its rules, by the request parameter that names the stack's resource.
RECORDER_TAMPERING = ("StopConfigurationRecorder", "DeleteConfigurationRecorder")  # configurationRecorderName
CHANNEL_TAMPERING = ("DeleteDeliveryChannel",)  # deliveryChannelName
CONFIG_RULE_TAMPERING = ("DeleteConfigRule", "DeleteRemediationConfiguration")  # configRuleName
LAUNCH_CALLS = ("RunInstances",)
ROUTE_CALLS = ("CreateRoute", "ReplaceRoute")


@dataclass(frozen=True)
class ManagedRule:
    """How the stack uses one AWS managed Config rule (parameters and trigger as AWS documents them)."""

    identifier: str
    input_parameters: tuple[tuple[str, str], ...] = ()
    periodic: bool = True
    scope_types: tuple[str, ...] = ()
    scope_resource: str | None = None  # a network key ("vpc") whose deploy-time id scopes the rule
    remediation: str | None = None  # "trail" (StartLogging document), "function" (the infra function), None: report


# Parameter values are strings: Config passes them to the rule as text.
MANAGED_RULES = (
    ManagedRule("CLOUD_TRAIL_ENABLED", remediation="trail"),
    ManagedRule("MULTI_REGION_CLOUD_TRAIL_ENABLED",
                (("includeManagementEvents", "true"), ("readWriteType", "ALL"))),
    ManagedRule("INCOMING_SSH_DISABLED", periodic=False, scope_types=("AWS::EC2::SecurityGroup",),
                remediation="function"),
    ManagedRule("VPC_FLOW_LOGS_ENABLED", (("trafficType", FLOW_LOG_TRAFFIC),), scope_types=("AWS::EC2::VPC",),
                scope_resource="vpc", remediation="function"),
    ManagedRule("ACCESS_KEYS_ROTATED", (("maxAccessKeyAge", "90"),)),
    ManagedRule("ROOT_ACCOUNT_MFA_ENABLED"),
    ManagedRule("CLOUDWATCH_ALARM_ACTION_ENABLED_CHECK", periodic=False, scope_types=("AWS::CloudWatch::Alarm",)),
    ManagedRule("GUARDDUTY_ENABLED_CENTRALIZED", remediation="function"),
)


@dataclass(frozen=True)
class InfraNames:
    """Every name part 4 owns for a prefix, deployed or not (teardown and sabotage remove by name)."""

    config_role: str
    config_bucket: str
    recorder: str
    delivery_channel: str
    trail_remediation_role: str  # the Config path's role: may only StartLogging the stack's trail
    invoke_remediation_role: str  # the documents that hand a check to the infra function run as this one
    trail_logging_document: str
    infra_document: str
    flow_logs_role: str
    flow_log_group: str
    vpc: str
    subnet: str
    eni: str
    security_group: str
    route_table: str
    function: str
    function_role: str
    function_log_group: str
    infra_rule: str
    network_rule: str
    launch_rule: str
    compliance_rule: str
    guardduty_rule: str
    config_rules: tuple[tuple[str, str], ...]  # managed identifier -> rule name

    @property
    def rules(self) -> tuple[str, ...]:
        return (self.guardduty_rule, self.compliance_rule, self.infra_rule, self.network_rule, self.launch_rule)


@dataclass(frozen=True)
class ConfigRule:
    identifier: str
    name: str
    description: str
    input_parameters: dict[str, str]
    periodic: bool
    scope_types: tuple[str, ...]
    scope_resource: str | None

    def put_params(self, resource_ids: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The ConfigRule argument of PutConfigRule; `resource_ids` resolves the scope's deploy-time id."""
        rule: dict[str, Any] = {
            "ConfigRuleName": self.name,
            "Description": self.description,
            "Source": {"Owner": "AWS", "SourceIdentifier": self.identifier},
        }
        if self.input_parameters:
            rule["InputParameters"] = json.dumps(self.input_parameters, sort_keys=True)
        if self.periodic:
            rule["MaximumExecutionFrequency"] = PERIODIC_FREQUENCY
        scope: dict[str, Any] = {}
        if self.scope_types:
            scope["ComplianceResourceTypes"] = list(self.scope_types)
        if self.scope_resource and resource_ids is not None:
            scope["ComplianceResourceId"] = resource_ids[self.scope_resource]
        if scope:
            rule["Scope"] = scope
        return rule


@dataclass(frozen=True)
class Remediation:
    """An automatic remediation configuration: Config runs the SSM document on each NON_COMPLIANT resource."""

    rule_name: str
    document: str
    parameters: dict[str, Any]
    resource_type: str | None

    def put_params(self) -> dict[str, Any]:
        """One entry of PutRemediationConfigurations."""
        entry: dict[str, Any] = {
            "ConfigRuleName": self.rule_name,
            "TargetType": "SSM_DOCUMENT",
            "TargetId": self.document,
            "Parameters": self.parameters,
            "Automatic": True,
            "MaximumAutomaticAttempts": REMEDIATION_ATTEMPTS,
            "RetryAttemptSeconds": REMEDIATION_RETRY_SECONDS,
        }
        if self.resource_type:
            entry["ResourceType"] = self.resource_type
        return entry


@dataclass(frozen=True)
class Document:
    """An SSM Automation document (schemaVersion 0.3)."""

    name: str
    content: dict[str, Any]


@dataclass(frozen=True)
class Recorder:
    name: str
    role_arn: str

    def put_params(self) -> dict[str, Any]:
        """The ConfigurationRecorder argument of PutConfigurationRecorder: every supported type, global ones too."""
        return {"name": self.name, "roleARN": self.role_arn,
                "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": True}}


@dataclass(frozen=True)
class DeliveryChannel:
    name: str
    bucket: str

    def put_params(self) -> dict[str, Any]:
        return {"name": self.name, "s3BucketName": self.bucket,
                "configSnapshotDeliveryProperties": {"deliveryFrequency": SNAPSHOT_FREQUENCY}}


@dataclass(frozen=True)
class Network:
    """The monitored network: ids are the backend's, so deploy and the function find each part by its Name tag."""

    vpc: str
    vpc_cidr: str
    subnet: str
    subnet_cidr: str
    eni: str
    security_group: str
    security_group_description: str
    route_table: str
    ingress: tuple[dict[str, Any], ...]  # the security group's IpPermissions, exactly

    def tags(self, name: str, prefix: str) -> list[dict[str, str]]:
        return [{"Key": "Name", "Value": name}, {"Key": STACK_TAG, "Value": prefix}]


@dataclass(frozen=True)
class FlowLog:
    key: str  # "vpc", "subnet" or "eni": the network part it watches, and its key in the outputs
    resource_type: str  # CreateFlowLogs ResourceType
    traffic_type: str


@dataclass(frozen=True)
class Detector:
    frequency: str
    tags: dict[str, str]


@dataclass(frozen=True)
class Infra:
    prefix: str
    names: InfraNames
    config_role: Role
    config_bucket: Bucket
    recorder: Recorder
    delivery_channel: DeliveryChannel
    config_rules: tuple[ConfigRule, ...]
    remediations: tuple[Remediation, ...]  # empty when remediation is sabotaged
    remediation_roles: tuple[Role, ...]
    documents: tuple[Document, ...]
    flow_logs_role: Role
    flow_log_group: LogGroup
    network: Network
    flow_logs: tuple[FlowLog, ...]
    detector: Detector
    function: Function | None  # None when remediation is sabotaged
    guardduty_rule: Rule
    compliance_rule: Rule
    infra_rule: Rule
    network_rule: Rule
    launch_rule: Rule
    allowed_regions: tuple[str, ...]
    allowed_instance_types: tuple[str, ...]

    @property
    def rules(self) -> tuple[Rule, ...]:
        return (self.guardduty_rule, self.compliance_rule, self.infra_rule, self.network_rule, self.launch_rule)

    def outputs(self) -> dict[str, Any]:
        """StackOutputs fields known before deploying (deploy adds the backend-generated ids)."""
        return {
            "config_recorder_name": self.recorder.name,
            "config_rule_names": {r.identifier: r.name for r in self.config_rules},
            "config_bucket_name": self.config_bucket.name,
            "trail_logging_document": self.names.trail_logging_document,
            "infra_function_name": self.function.name if self.function else None,
            "infra_rule_name": self.infra_rule.name,
            "network_rule_name": self.network_rule.name,
            "launch_rule_name": self.launch_rule.name,
            "compliance_rule_name": self.compliance_rule.name,
            "guardduty_rule_name": self.guardduty_rule.name,
            "flow_log_group_name": self.flow_log_group.name,
            "allowed_regions": list(self.allowed_regions),
            "allowed_instance_types": list(self.allowed_instance_types),
        }


def config_rule_name(prefix: str, identifier: str) -> str:
    return f"{prefix}-{identifier.lower().replace('_', '-')}"


def infra_names(prefix: str, account_id: str, region: str) -> InfraNames:
    function = f"{prefix}-remediate-infra"
    return InfraNames(
        config_role=f"{prefix}-config",
        config_bucket=f"{prefix}-config-{account_id}-{region}",
        recorder=f"{prefix}-recorder",
        delivery_channel=f"{prefix}-channel",
        trail_remediation_role=f"{prefix}-config-remediation",
        invoke_remediation_role=f"{prefix}-config-remediate-infra",
        trail_logging_document=f"{prefix}-StartTrailLogging",
        infra_document=f"{prefix}-RemediateInfra",
        flow_logs_role=f"{prefix}-flow-logs",
        flow_log_group=f"/{prefix}/flow-logs",
        vpc=f"{prefix}-monitored",
        subnet=f"{prefix}-monitored-a",
        eni=f"{prefix}-monitored-eni",
        security_group=f"{prefix}-app",
        route_table=f"{prefix}-monitored",
        function=function,
        function_role=function,
        function_log_group=f"/aws/lambda/{function}",
        infra_rule=f"{prefix}-infra-tampering",
        network_rule=f"{prefix}-network-exposure",
        launch_rule=f"{prefix}-ec2-launch",
        compliance_rule=f"{prefix}-config-compliance",
        guardduty_rule=f"{prefix}-guardduty-findings",
        config_rules=tuple((r.identifier, config_rule_name(prefix, r.identifier)) for r in MANAGED_RULES),
    )


def infra_state(*, account_id: str, region: str, prefix: str, partition: str, sabotage: str | None,
                arn: Callable[..., str], topic_arn: str, trail_name: str, trail_arn: str, trail_bucket: str,
                allowed_regions: tuple[str, ...] | None = None,
                allowed_instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES) -> Infra:
    """Part 4 for one account and region; `sabotage` removes its notifications or its remediation."""
    names = infra_names(prefix, account_id, region)
    if len(names.config_bucket) > 63:
        raise ValueError(f"bucket name {names.config_bucket!r} is longer than S3's 63 characters: use a shorter prefix")
    allowed_regions = tuple(allowed_regions or (region,))
    if not allowed_regions or not allowed_instance_types:
        raise ValueError("allowed_regions and allowed_instance_types must each name at least one value")

    def role_arn(name: str) -> str:
        return arn("iam", f"role/{name}", regional=False)

    bucket_arn = f"arn:{partition}:s3:::{names.config_bucket}"
    config_bucket = Bucket(names.config_bucket, bucket_arn, _config_bucket_policy(bucket_arn, account_id))
    config_role = Role(
        name=names.config_role,
        arn=role_arn(names.config_role),
        trust_policy=_trust("config.amazonaws.com"),
        inline_policies={"deliver-to-bucket": _config_delivery_policy(bucket_arn, account_id)},
        managed_policies=(f"arn:{partition}:iam::aws:{CONFIG_MANAGED_POLICY}",),
    )
    config_rules = tuple(
        ConfigRule(
            identifier=m.identifier,
            name=config_rule_name(prefix, m.identifier),
            description=f"Gameday: AWS managed rule {m.identifier}",
            input_parameters=dict(m.input_parameters) | (
                {"s3BucketName": trail_bucket} if "CLOUD_TRAIL_ENABLED" in m.identifier else {}),
            periodic=m.periodic,
            scope_types=m.scope_types,
            scope_resource=m.scope_resource,
        )
        for m in MANAGED_RULES
    )
    function_arn = arn("lambda", f"function:{names.function}")
    trail_role = Role(
        name=names.trail_remediation_role,
        arn=role_arn(names.trail_remediation_role),
        trust_policy=_trust("ssm.amazonaws.com"),
        inline_policies={"start-trail-logging": {"Version": "2012-10-17", "Statement": [{
            "Sid": "StartTrailLogging", "Effect": "Allow", "Action": "cloudtrail:StartLogging",
            "Resource": trail_arn}]}},
    )
    invoke_role = Role(
        name=names.invoke_remediation_role,
        arn=role_arn(names.invoke_remediation_role),
        trust_policy=_trust("ssm.amazonaws.com"),
        inline_policies={"invoke-remediate-infra": {"Version": "2012-10-17", "Statement": [{
            "Sid": "InvokeRemediateInfra", "Effect": "Allow", "Action": "lambda:InvokeFunction",
            "Resource": function_arn}]}},
    )
    documents = (
        Document(names.trail_logging_document, _trail_logging_document(trail_name)),
        Document(names.infra_document, _infra_document(names.function)),
    )
    remediations = ()
    if sabotage != "remediation":
        remediations = tuple(
            _remediation(m, config_rule_name(prefix, m.identifier), names, trail_role.arn, invoke_role.arn,
                         trail_name)
            for m in MANAGED_RULES if m.remediation
        )

    flow_log_group = LogGroup(names.flow_log_group, arn("logs", f"log-group:{names.flow_log_group}"),
                              MIN_LOG_RETENTION_DAYS)
    flow_logs_role = Role(
        name=names.flow_logs_role,
        arn=role_arn(names.flow_logs_role),
        trust_policy=_flow_logs_trust(account_id, arn),
        inline_policies={"deliver-flow-logs": {"Version": "2012-10-17", "Statement": [{
            "Sid": "DeliverFlowLogs", "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Resource": [flow_log_group.arn, f"{flow_log_group.arn}:*"]}]}},
    )
    network = Network(
        vpc=names.vpc, vpc_cidr=VPC_CIDR, subnet=names.subnet, subnet_cidr=SUBNET_CIDR, eni=names.eni,
        security_group=names.security_group,
        security_group_description=f"Gameday: the monitored app (HTTPS from inside {names.vpc} only)",
        route_table=names.route_table,
        ingress=({"IpProtocol": "tcp", "FromPort": APP_PORT, "ToPort": APP_PORT,
                  "IpRanges": [{"CidrIp": VPC_CIDR}]},),
    )
    flow_logs = (FlowLog("vpc", "VPC", FLOW_LOG_TRAFFIC), FlowLog("subnet", "Subnet", FLOW_LOG_TRAFFIC),
                 FlowLog("eni", "NetworkInterface", FLOW_LOG_TRAFFIC))
    detector = Detector(DETECTOR_FREQUENCY, {STACK_TAG: prefix})

    rule_arns = {name: arn("events", f"rule/{name}") for name in names.rules}
    function = None
    if sabotage != "remediation":
        text = _function_desired(
            names=names, prefix=prefix, config_role=config_role, bucket=config_bucket, config_rules=config_rules,
            remediations=remediations, network=network, flow_logs=flow_logs, flow_log_group=flow_log_group,
            flow_logs_role=flow_logs_role, detector=detector, allowed_regions=allowed_regions,
            allowed_instance_types=allowed_instance_types,
        )
        permissions = [Permission(statement_id=f"{name}-invoke", action="lambda:InvokeFunction",
                                  principal="events.amazonaws.com", source_arn=rule_arns[name])
                       for name in (names.infra_rule, names.network_rule, names.launch_rule)]
        function = Function(
            name=names.function,
            arn=function_arn,
            role=_function_role(names, arn, partition, account_id, config_role.arn, flow_logs_role.arn),
            runtime="python3.12",
            handler="remediate_infra.handler",
            timeout=60,
            source=INFRA_FUNCTION_SOURCE,
            environment={FUNCTION_ENV_VAR: json.dumps(
                {"file": INFRA_DESIRED_FILE, "sha256": hashlib.sha256(text.encode()).hexdigest()},
                separators=(",", ":"))},
            permission=permissions[0],
            more_permissions=tuple(permissions[1:]),
            bundle={INFRA_DESIRED_FILE: text},
        )

    def rule(name: str, description: str, pattern: dict[str, Any], *, remediate: bool) -> Rule:
        targets = []
        if sabotage != "detection":
            targets.append(Target(TOPIC_TARGET_ID, topic_arn))
        if remediate and function is not None:
            targets.append(Target(FUNCTION_TARGET_ID, function.arn))
        return Rule(name, rule_arns[name], "default", description, pattern, "ENABLED", tuple(targets))

    rule_names = [r.name for r in config_rules]
    return Infra(
        prefix=prefix,
        names=names,
        config_role=config_role,
        config_bucket=config_bucket,
        recorder=Recorder(names.recorder, config_role.arn),
        delivery_channel=DeliveryChannel(names.delivery_channel, names.config_bucket),
        config_rules=config_rules,
        remediations=remediations,
        remediation_roles=(trail_role, invoke_role),
        documents=documents,
        flow_logs_role=flow_logs_role,
        flow_log_group=flow_log_group,
        network=network,
        flow_logs=flow_logs,
        detector=detector,
        function=function,
        guardduty_rule=rule(names.guardduty_rule, f"Gameday: GuardDuty findings of severity {HIGH_SEVERITY} or more",
                            guardduty_pattern(), remediate=False),
        compliance_rule=rule(names.compliance_rule, f"Gameday: Config rules {prefix}-* found a resource NON_COMPLIANT",
                             compliance_pattern(f"{prefix}-"), remediate=False),
        infra_rule=rule(
            names.infra_rule, f"Gameday: tampering with recorder {names.recorder}, its rules, flow logs or GuardDuty",
            infra_tampering_pattern(names.recorder, names.delivery_channel, rule_names), remediate=True),
        network_rule=rule(names.network_rule, "Gameday: SSH or RDP opened to the internet, or a route to an "
                          "internet gateway", network_exposure_pattern(), remediate=True),
        launch_rule=rule(names.launch_rule, f"Gameday: instances outside {', '.join(allowed_regions)} or of types "
                         f"other than {', '.join(allowed_instance_types)}",
                         launch_pattern(allowed_regions, allowed_instance_types), remediate=True),
        allowed_regions=allowed_regions,
        allowed_instance_types=tuple(allowed_instance_types),
    )


def guardduty_pattern() -> dict[str, Any]:
    return {
        "source": ["aws.guardduty"],
        "detail-type": ["GuardDuty Finding"],
        "detail": {"severity": [{"numeric": [">=", HIGH_SEVERITY]}]},
    }


def compliance_pattern(rule_prefix: str) -> dict[str, Any]:
    return {
        "source": ["aws.config"],
        "detail-type": ["Config Rules Compliance Change"],
        "detail": {
            "configRuleName": [{"prefix": rule_prefix}],
            "newEvaluationResult": {"complianceType": ["NON_COMPLIANT"]},
        },
    }


def infra_tampering_pattern(recorder: str, channel: str, rule_names: list[str]) -> dict[str, Any]:
    return {
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "$or": [
            {"source": ["aws.config"], "detail": {"eventName": list(RECORDER_TAMPERING),
                                                  "requestParameters": {"configurationRecorderName": [recorder]}}},
            {"source": ["aws.config"], "detail": {"eventName": list(CHANNEL_TAMPERING),
                                                  "requestParameters": {"deliveryChannelName": [channel]}}},
            {"source": ["aws.config"], "detail": {"eventName": list(CONFIG_RULE_TAMPERING),
                                                  "requestParameters": {"configRuleName": list(rule_names)}}},
            # Flow log and detector ids are generated at deploy: any deletion counts, the function checks the stack's.
            {"source": ["aws.ec2"], "detail": {"eventName": ["DeleteFlowLogs"]}},
            {"source": ["aws.guardduty"], "detail": {"eventName": ["DeleteDetector"]}},
            # Only the updates that weaken it: the function's own re-enabling must not trigger the rule again.
            {"source": ["aws.guardduty"], "detail": {"eventName": ["UpdateDetector"], "requestParameters": {"$or": [
                {"enable": [False]},
                {"findingPublishingFrequency": [{"anything-but": DETECTOR_FREQUENCY}]},
            ]}}},
        ],
    }


def network_exposure_pattern() -> dict[str, Any]:
    # Real records carry the permissions as ipPermissions.items[] (SDKs) or as top-level fields (the CLI's --cidr).
    reach = [{"ipProtocol": ["-1"]}] + [
        {"fromPort": [{"numeric": ["<=", port]}], "toPort": [{"numeric": [">=", port]}]} for port in ADMIN_PORTS
    ]
    ingress = [
        {"ipPermissions": {"items": {ranges: {"items": {field: [cidr]}}, **ports}}}
        for ranges, field, cidr in (("ipRanges", "cidrIp", WORLD[0]), ("ipv6Ranges", "cidrIpv6", WORLD[1]))
        for ports in reach
    ] + [{"cidrIp": [WORLD[0]], **ports} for ports in reach]
    return {
        "source": ["aws.ec2"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {"$or": [
            {"eventName": ["AuthorizeSecurityGroupIngress"], "requestParameters": {"$or": ingress}},
            {"eventName": list(ROUTE_CALLS), "requestParameters": {"gatewayId": [{"prefix": "igw-"}]}},
        ]},
    }


def launch_pattern(allowed_regions: tuple[str, ...], allowed_types: tuple[str, ...]) -> dict[str, Any]:
    # EventBridge sees its own region's calls: the region check bites where the stack runs outside the allowed ones.
    other_type = [{"anything-but": list(allowed_types)}]
    return {
        "source": ["aws.ec2"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {"eventName": list(LAUNCH_CALLS), "$or": [
            {"awsRegion": [{"anything-but": list(allowed_regions)}]},
            {"requestParameters": {"instanceType": other_type}},
            # A launch template names the type only in the response.
            {"responseElements": {"instancesSet": {"items": {"instanceType": other_type}}}},
        ]},
    }


def _config_bucket_policy(bucket_arn: str, account_id: str) -> dict[str, Any]:
    """AWS's documented policy for a delivery channel's bucket, limited to this account's Config."""
    source = {"AWS:SourceAccount": account_id}
    config = {"Service": "config.amazonaws.com"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AWSConfigBucketPermissionsCheck", "Effect": "Allow", "Principal": config,
             "Action": "s3:GetBucketAcl", "Resource": bucket_arn, "Condition": {"StringEquals": source}},
            {"Sid": "AWSConfigBucketExistenceCheck", "Effect": "Allow", "Principal": config,
             "Action": "s3:ListBucket", "Resource": bucket_arn, "Condition": {"StringEquals": source}},
            {"Sid": "AWSConfigBucketDelivery", "Effect": "Allow", "Principal": config,
             "Action": "s3:PutObject", "Resource": f"{bucket_arn}/AWSLogs/{account_id}/Config/*",
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", **source}}},
        ],
    }


def _config_delivery_policy(bucket_arn: str, account_id: str) -> dict[str, Any]:
    """What the recorder's role needs beyond AWS_ConfigRole to deliver to the bucket (AWS's documented statements)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DeliverConfiguration", "Effect": "Allow", "Action": "s3:PutObject*",
             "Resource": f"{bucket_arn}/AWSLogs/{account_id}/*",
             "Condition": {"StringLike": {"s3:x-amz-acl": "bucket-owner-full-control"}}},
            {"Sid": "CheckBucketAcl", "Effect": "Allow", "Action": "s3:GetBucketAcl", "Resource": bucket_arn},
        ],
    }


def _flow_logs_trust(account_id: str, arn: Callable[..., str]) -> dict[str, Any]:
    # The confused-deputy conditions AWS documents for the flow logs delivery role.
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                          "ArnLike": {"aws:SourceArn": arn("ec2", "vpc-flow-log/*")}},
        }],
    }


def _trail_logging_document(trail_name: str) -> dict[str, Any]:
    return {
        "schemaVersion": "0.3",
        "description": f"Gameday: restart CloudTrail logging on {trail_name} (the Config path, apart from EventBridge)",
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {
            "AutomationAssumeRole": {"type": "String", "description": "The role the automation runs as"},
            "TrailName": {"type": "String", "description": "The trail to restart", "default": trail_name},
        },
        "mainSteps": [{
            "name": "StartLogging",
            "action": "aws:executeAwsApi",
            "maxAttempts": 3,
            "inputs": {"Service": "cloudtrail", "Api": "StartLogging", "Name": "{{ TrailName }}"},
            "isEnd": True,
        }],
    }


def _infra_document(function_name: str) -> dict[str, Any]:
    # One document for every rule the function remediates: the configuration names the check.
    payload = json.dumps({"source": CONFIG_REMEDIATION_SOURCE, "check": "{{ Check }}",
                          "resourceId": "{{ ResourceId }}"})
    return {
        "schemaVersion": "0.3",
        "description": f"Gameday: hand a NON_COMPLIANT resource to {function_name}",
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {
            "AutomationAssumeRole": {"type": "String", "description": "The role the automation runs as"},
            "Check": {"type": "String", "description": "The managed rule's identifier"},
            "ResourceId": {"type": "String", "description": "The NON_COMPLIANT resource"},
        },
        "mainSteps": [{
            "name": "Remediate",
            "action": "aws:invokeLambdaFunction",
            "inputs": {"FunctionName": function_name, "InvocationType": "RequestResponse", "Payload": payload},
            "isEnd": True,
        }],
    }


def _remediation(rule: ManagedRule, rule_name: str, names: InfraNames, trail_role_arn: str, invoke_role_arn: str,
                 trail_name: str) -> Remediation:
    def static(value: str) -> dict[str, Any]:
        return {"StaticValue": {"Values": [value]}}

    resource_type = rule.scope_types[0] if rule.scope_types else None
    if rule.remediation == "trail":
        return Remediation(rule_name, names.trail_logging_document,
                           {"AutomationAssumeRole": static(trail_role_arn), "TrailName": static(trail_name)},
                           resource_type)
    return Remediation(rule_name, names.infra_document,
                       {"AutomationAssumeRole": static(invoke_role_arn), "Check": static(rule.identifier),
                        "ResourceId": {"ResourceValue": {"Value": "RESOURCE_ID"}}},
                       resource_type)


def _function_desired(*, names: InfraNames, prefix: str, config_role: Role, bucket: Bucket,
                      config_rules: tuple[ConfigRule, ...], remediations: tuple[Remediation, ...], network: Network,
                      flow_logs: tuple[FlowLog, ...], flow_log_group: LogGroup, flow_logs_role: Role,
                      detector: Detector, allowed_regions: tuple[str, ...],
                      allowed_instance_types: tuple[str, ...]) -> str:
    """The infra function's bundled desired.json: API arguments, byte-stable."""
    return json.dumps(
        {
            "config_remediation_source": CONFIG_REMEDIATION_SOURCE,
            "recorder": Recorder(names.recorder, config_role.arn).put_params(),
            "delivery_channel": DeliveryChannel(names.delivery_channel, bucket.name).put_params(),
            "config_rules": [{"rule": r.put_params(), "scope_resource": r.scope_resource} for r in config_rules],
            "remediations": [r.put_params() for r in remediations],
            "network": {"vpc": network.vpc, "subnet": network.subnet, "eni": network.eni,
                        "route_table": network.route_table},
            "flow_logs": [{"key": f.key, "ResourceType": f.resource_type, "TrafficType": f.traffic_type,
                           "LogDestinationType": "cloud-watch-logs", "LogGroupName": flow_log_group.name,
                           "DeliverLogsPermissionArn": flow_logs_role.arn} for f in flow_logs],
            "detector": {"FindingPublishingFrequency": detector.frequency, "Tags": detector.tags},
            "world": list(WORLD),
            "admin_ports": list(ADMIN_PORTS),
            "allowed_regions": list(allowed_regions),
            "allowed_instance_types": list(allowed_instance_types),
            "stack_tag": [STACK_TAG, prefix],
        },
        indent=1,
        sort_keys=True,
    ) + "\n"


def _function_role(names: InfraNames, arn: Callable[..., str], partition: str, account_id: str, config_role_arn: str,
                   flow_logs_role_arn: str) -> Role:
    own_logs = arn("logs", f"log-group:{names.function_log_group}")

    def ec2(resource: str, region: str | None = None) -> str:
        return arn("ec2", resource) if region is None else f"arn:{partition}:ec2:{region}:{account_id}:{resource}"

    statements = [
        {
            # Read-only; Describe* and List* take no resource ARN.
            "Sid": "ReadState",
            "Effect": "Allow",
            "Action": [
                "config:DescribeConfigRules", "config:DescribeConfigurationRecorderStatus",
                "config:DescribeConfigurationRecorders", "config:DescribeDeliveryChannels",
                "config:DescribeRemediationConfigurations", "ec2:DescribeFlowLogs", "ec2:DescribeInstances",
                "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets", "ec2:DescribeVpcs", "guardduty:ListDetectors",
            ],
            "Resource": "*",
        },
        {
            # The recorder and channel take no resource ARN, and a rule's ARN holds an id Config generates.
            "Sid": "RestoreConfig",
            "Effect": "Allow",
            "Action": ["config:PutConfigRule", "config:PutConfigurationRecorder", "config:PutDeliveryChannel",
                       "config:PutRemediationConfigurations", "config:StartConfigurationRecorder"],
            "Resource": "*",
        },
        {
            "Sid": "PassRecorderRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": config_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "config.amazonaws.com"}},
        },
        {
            "Sid": "RestoreFlowLogs",
            "Effect": "Allow",
            "Action": "ec2:CreateFlowLogs",
            "Resource": [ec2("vpc-flow-log/*"), ec2("vpc/*"), ec2("subnet/*"), ec2("network-interface/*")],
        },
        {
            "Sid": "PassFlowLogsRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": flow_logs_role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": "vpc-flow-logs.amazonaws.com"}},
        },
        {
            "Sid": "CreateDetector",
            "Effect": "Allow",
            "Action": "guardduty:CreateDetector",
            "Resource": "*",
        },
        {
            "Sid": "RestoreDetector",
            "Effect": "Allow",
            "Action": ["guardduty:GetDetector", "guardduty:TagResource", "guardduty:UpdateDetector"],
            "Resource": arn("guardduty", "detector/*"),
        },
        {
            # A first detector creates GuardDuty's service-linked role.
            "Sid": "GuardDutyServiceRole",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": arn("iam", "role/aws-service-role/guardduty.amazonaws.com/*", regional=False),
            "Condition": {"StringEquals": {"iam:AWSServiceName": "guardduty.amazonaws.com"}},
        },
        {
            "Sid": "RevokeWorldIngress",
            "Effect": "Allow",
            "Action": "ec2:RevokeSecurityGroupIngress",
            "Resource": ec2("security-group/*"),
        },
        {
            # Routes elsewhere are reported, never touched: only the monitored table, by its Name tag.
            "Sid": "RemoveInternetRoute",
            "Effect": "Allow",
            "Action": "ec2:DeleteRoute",
            "Resource": ec2("route-table/*"),
            "Condition": {"StringEquals": {"ec2:ResourceTag/Name": names.route_table}},
        },
        {
            # Any region: an instance launched outside the allowed ones is terminated where it runs.
            "Sid": "TerminateUnexpectedInstances",
            "Effect": "Allow",
            "Action": "ec2:TerminateInstances",
            "Resource": ec2("instance/*", region="*"),
        },
        {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [own_logs, f"{own_logs}:*"],
        },
    ]
    return Role(
        name=names.function_role,
        arn=arn("iam", f"role/{names.function_role}", regional=False),
        trust_policy=_trust("lambda.amazonaws.com"),
        inline_policies={"remediate-infra": {"Version": "2012-10-17", "Statement": statements}},
    )
