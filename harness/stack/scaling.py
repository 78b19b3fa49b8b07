"""The reference stack's part 5: a workload scaled on CPU, and a classifier telling load from attack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.stack.desired import (FUNCTION_ENV_VAR, FUNCTION_TARGET_ID, TOPIC_TARGET_ID, Alarm, Function,
                                   Permission, Queue, Role, Rule, Subscription, Target, Topic, _trust)

CLASSIFIER_SOURCE = Path(__file__).with_name("functions") / "classify_cpu.py"
# The latest Amazon Linux 2023 AMI, as AWS publishes it (deploy resolves it: launch templates keep an AMI id).
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
INSTANCE_TYPE = "t3.micro"  # one of the launch guard's allowed types (harness.stack.infra)
VPC_CIDR = "10.240.0.0/16"  # the workload's own network, used only where part 4's monitored VPC is missing
SUBNET_CIDR = "10.240.0.0/24"
MIN_SIZE, MAX_SIZE, DESIRED_CAPACITY = 1, 3, 1
COOLDOWN_S = 120  # simple scaling: the new instance reports a minute of CPU before the next scale-out
CPU_THRESHOLD = 70.0
CPU_PERIOD_S = 60  # detailed monitoring: one datapoint a minute per instance
CPU_EVALUATION_PERIODS = 1  # one minute above the threshold scales out (a burst is worth capacity)
# The GuardDuty finding types that make a CPU spike an attack (fnmatch patterns), and Inspector's severities.
SECURITY_FINDING_TYPES = ("CryptoCurrency:EC2/BitcoinTool.B", "CryptoCurrency:EC2/BitcoinTool.B!DNS",
                          "Impact:EC2/BitcoinDomainRequest.Reputation", "Backdoor:EC2/DenialOfService.*")
INSPECTOR_SEVERITIES = ("CRITICAL",)
SIGNAL_WINDOW_MINUTES = 60  # how far back a GuardDuty finding still counts
CLASSIFIER_SOURCE_NAME = "gameday.classify-cpu"  # the "source" of what the classifier publishes
STACK_TAG = "gameday:stack"
QUARANTINE_TAG = "gameday:quarantine"  # on an isolated instance: the finding that put it there
# What an instance's SSM Agent needs (AmazonSSMManagedInstanceCore's actions, inline so deploy keeps it exact).
SSM_CORE_ACTIONS = ("ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument",
                    "ssm:DescribeDocument", "ssm:GetManifest", "ssm:GetParameter", "ssm:GetParameters",
                    "ssm:ListAssociations", "ssm:ListInstanceAssociations", "ssm:PutInventory",
                    "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus",
                    "ssm:UpdateInstanceAssociationStatus", "ssm:UpdateInstanceInformation",
                    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage",
                    "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
                    "ec2messages:GetMessages", "ec2messages:SendReply")


@dataclass(frozen=True)
class WorkloadNames:
    """Every name part 5 owns for a prefix, deployed or not (teardown removes by name)."""

    vpc: str
    subnet: str
    internet_gateway: str
    route_table: str
    security_group: str
    quarantine_group: str
    instance_role: str
    instance_profile: str
    launch_template: str
    group: str
    policy: str
    alarm: str
    function: str
    function_role: str
    function_log_group: str
    classifier_rule: str
    inspector_rule: str
    patch_rule: str
    ops_topic: str
    ops_queue: str


@dataclass(frozen=True)
class LaunchTemplate:
    name: str
    instance_type: str
    ami_parameter: str
    instance_profile: str
    tags: tuple[tuple[str, str], ...]

    def data(self, ami: str, security_group_id: str) -> dict[str, Any]:
        """LaunchTemplateData for an AMI and the workload group's id (both known at deploy only)."""
        return {
            "ImageId": ami,
            "InstanceType": self.instance_type,
            "SecurityGroupIds": [security_group_id],
            "IamInstanceProfile": {"Name": self.instance_profile},
            "Monitoring": {"Enabled": True},  # one-minute CPU datapoints, which the alarm's period needs
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "TagSpecifications": [{"ResourceType": "instance",
                                   "Tags": [{"Key": k, "Value": v} for k, v in self.tags]}],
        }


@dataclass(frozen=True)
class Group:
    name: str
    min_size: int
    max_size: int
    desired_capacity: int
    cooldown: int
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ScalingPolicy:
    name: str
    adjustment: int
    cooldown: int

    def put_params(self, group: str) -> dict[str, Any]:
        return {"AutoScalingGroupName": group, "PolicyName": self.name, "PolicyType": "SimpleScaling",
                "AdjustmentType": "ChangeInCapacity", "ScalingAdjustment": self.adjustment,
                "Cooldown": self.cooldown}


@dataclass(frozen=True)
class Workload:
    """Everything part 5 owns; the alarm's action is the policy's ARN, which Auto Scaling assigns at deploy."""

    prefix: str
    names: WorkloadNames
    vpc_cidr: str
    subnet_cidr: str
    instance_role: Role
    launch_template: LaunchTemplate
    group: Group
    policy: ScalingPolicy
    alarm: Alarm  # without actions: deploy adds the policy's ARN
    classifier: Function
    classifier_rule: Rule
    inspector_rule: Rule
    patch_rule: Rule
    ops_topic: Topic
    ops_queue: Queue
    ops_subscription: Subscription

    @property
    def rules(self) -> tuple[Rule, ...]:
        return (self.classifier_rule, self.inspector_rule, self.patch_rule)

    def outputs(self) -> dict[str, Any]:
        """StackOutputs fields known before deploying (deploy adds the ops queue's URL)."""
        return {"workload_group_name": self.group.name, "workload_alarm_name": self.alarm.name,
                "workload_capacity": self.group.desired_capacity, "quarantine_group_name": self.names.quarantine_group,
                "workload_security_group_name": self.names.security_group, "classifier_function_name":
                self.classifier.name, "ops_topic_arn": self.ops_topic.arn}


def desired(*, account_id: str, region: str, prefix: str, partition: str, sabotage: str | None, topic_arn: str,
            muted_arn: str | None, arn: Callable[..., str]) -> Workload:
    """Part 5 for one account and region: detection sabotage mutes the classifier, remediation keeps it from
    isolating anything (the performance path, alarm and policy, is the same in every mode)."""
    base = f"{prefix}-workload"
    names = WorkloadNames(
        vpc=base, subnet=f"{base}-a", internet_gateway=base, route_table=base, security_group=base,
        quarantine_group=f"{prefix}-quarantine", instance_role=f"{base}-instance", instance_profile=f"{base}-instance",
        launch_template=base, group=base, policy=f"{base}-scale-out", alarm=f"{base}-cpu-high",
        function=f"{prefix}-classify-cpu", function_role=f"{prefix}-classify-cpu",
        function_log_group=f"/aws/lambda/{prefix}-classify-cpu", classifier_rule=f"{base}-cpu-alarm",
        inspector_rule=f"{prefix}-inspector-critical", patch_rule=f"{prefix}-patch-compliance",
        ops_topic=f"{base}-ops", ops_queue=f"{base}-ops-sink")
    tags = (("Name", base), (STACK_TAG, prefix))
    ops_arn = arn("sns", names.ops_topic)
    ops_queue_arn = arn("sqs", names.ops_queue)
    rule_arn = arn("events", f"rule/{names.classifier_rule}")
    # Without detection the classifier still runs, but what it says reaches a topic nobody reads.
    page_to = muted_arn if sabotage == "detection" and muted_arn else topic_arn
    report_to = muted_arn if sabotage == "detection" and muted_arn else ops_arn
    settings = {
        "group": names.group, "alarm": names.alarm, "security_topic": page_to, "ops_topic": report_to,
        "quarantine_group": names.quarantine_group, "quarantine": sabotage != "remediation",
        "finding_types": list(SECURITY_FINDING_TYPES), "inspector_severities": list(INSPECTOR_SEVERITIES),
        "window_minutes": SIGNAL_WINDOW_MINUTES, "source": CLASSIFIER_SOURCE_NAME, "quarantine_tag": QUARANTINE_TAG,
    }
    classifier = Function(
        name=names.function,
        arn=arn("lambda", f"function:{names.function}"),
        role=_classifier_role(names, arn, partition, account_id, region, (page_to, report_to)),
        runtime="python3.12",
        handler="classify_cpu.handler",
        timeout=60,
        source=CLASSIFIER_SOURCE,
        environment={FUNCTION_ENV_VAR: json.dumps(settings, separators=(",", ":"))},
        permission=Permission(f"{names.classifier_rule}-invoke", "lambda:InvokeFunction", "events.amazonaws.com",
                              rule_arn),
    )
    security = () if sabotage == "detection" else (Target(TOPIC_TARGET_ID, topic_arn),)
    return Workload(
        prefix=prefix,
        names=names,
        vpc_cidr=VPC_CIDR,
        subnet_cidr=SUBNET_CIDR,
        instance_role=Role(names.instance_role, arn("iam", f"role/{names.instance_role}", regional=False),
                           _trust("ec2.amazonaws.com"), {"ssm-agent": {"Version": "2012-10-17", "Statement": [
                               {"Sid": "SsmAgent", "Effect": "Allow", "Action": list(SSM_CORE_ACTIONS),
                                "Resource": "*"}]}}),
        launch_template=LaunchTemplate(names.launch_template, INSTANCE_TYPE, AMI_PARAMETER, names.instance_profile,
                                       tags),
        group=Group(names.group, MIN_SIZE, MAX_SIZE, DESIRED_CAPACITY, COOLDOWN_S, tags),
        policy=ScalingPolicy(names.policy, 1, COOLDOWN_S),
        alarm=Alarm(
            name=names.alarm, arn=arn("cloudwatch", f"alarm:{names.alarm}"),
            description=f"Average CPU of {names.group} above {CPU_THRESHOLD:g}%: scale out (load or attack?)",
            metric_name="CPUUtilization", namespace="AWS/EC2", statistic="Average", period=CPU_PERIOD_S,
            evaluation_periods=CPU_EVALUATION_PERIODS, threshold=CPU_THRESHOLD,
            comparison_operator="GreaterThanThreshold", treat_missing_data="missing", actions_enabled=True,
            alarm_actions=(), dimensions=(("AutoScalingGroupName", names.group),)),
        classifier=classifier,
        classifier_rule=Rule(names.classifier_rule, rule_arn, "default",
                             f"Gameday: {names.alarm} in ALARM: load or attack?",
                             {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
                              "detail": {"alarmName": [names.alarm], "state": {"value": ["ALARM"]}}},
                             "ENABLED", (Target(FUNCTION_TARGET_ID, classifier.arn),)),
        inspector_rule=Rule(names.inspector_rule, arn("events", f"rule/{names.inspector_rule}"), "default",
                            "Gameday: Inspector found a critical vulnerability",
                            {"source": ["aws.inspector2"], "detail-type": ["Inspector2 Finding"],
                             "detail": {"severity": list(INSPECTOR_SEVERITIES), "status": ["ACTIVE"]}},
                            "ENABLED", security),
        patch_rule=Rule(names.patch_rule, arn("events", f"rule/{names.patch_rule}"), "default",
                        "Gameday: an instance misses patches (SSM patch compliance)",
                        {"source": ["aws.ssm"], "detail-type": ["Configuration Compliance State Change"],
                         "detail": {"compliance-type": ["Patch"], "compliance-status": ["non_compliant"]}},
                        "ENABLED", security),
        ops_topic=Topic(names.ops_topic, ops_arn, _ops_topic_policy(ops_arn, account_id)),
        ops_queue=Queue(names.ops_queue, ops_queue_arn,
                        f"https://sqs.{region}.amazonaws.com/{account_id}/{names.ops_queue}",
                        {"Version": "2012-10-17", "Statement": [{
                            "Sid": "AllowOpsTopic", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                            "Action": "sqs:SendMessage", "Resource": ops_queue_arn,
                            "Condition": {"ArnEquals": {"aws:SourceArn": ops_arn}}}]}),
        ops_subscription=Subscription(ops_arn, "sqs", ops_queue_arn, raw_message_delivery=False),
    )


def _classifier_role(names: WorkloadNames, arn: Callable[..., str], partition: str, account_id: str, region: str,
                     topics: tuple[str, ...]) -> Role:
    own_logs = arn("logs", f"log-group:{names.function_log_group}")
    group_arn = f"arn:{partition}:autoscaling:{region}:{account_id}:autoScalingGroup:*:autoScalingGroupName/" \
                f"{names.group}"
    return Role(
        name=names.function_role,
        arn=arn("iam", f"role/{names.function_role}", regional=False),
        trust_policy=_trust("lambda.amazonaws.com"),
        inline_policies={"classify-cpu": {"Version": "2012-10-17", "Statement": [
            {
                # Describe and List calls support no resource-level permissions.
                "Sid": "ReadSignals", "Effect": "Allow", "Resource": "*",
                "Action": ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances",
                           "ec2:DescribeSecurityGroups", "guardduty:ListDetectors", "guardduty:ListFindings",
                           "guardduty:GetFindings", "inspector2:ListFindings"],
            },
            {"Sid": "Report", "Effect": "Allow", "Action": "sns:Publish", "Resource": sorted(set(topics))},
            {
                "Sid": "IsolateInstance", "Effect": "Allow", "Resource": "*",
                "Action": ["ec2:ModifyInstanceAttribute", "ec2:CreateTags"],
                "Condition": {"StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": names.group}},
            },
            {"Sid": "TakeOutOfGroup", "Effect": "Allow", "Resource": group_arn,
             "Action": ["autoscaling:DetachInstances", "autoscaling:SetInstanceProtection"]},
            {"Sid": "OwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                                             "logs:PutLogEvents"],
             "Resource": [own_logs, f"{own_logs}:*"]},
        ]}},
    )


def _ops_topic_policy(topic_arn: str, account_id: str) -> dict[str, Any]:
    return {"Version": "2008-10-17", "Id": "__default_policy_ID", "Statement": [{
        "Sid": "__default_statement_ID", "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission", "SNS:RemovePermission",
                   "SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"],
        "Resource": topic_arn, "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}}}]}
