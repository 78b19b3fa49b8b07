"""Converge part 5 (the workload, its CPU alarm and scale-out policy, the classifier) with plain boto3; tear it down."""

from __future__ import annotations

import functools
import json
from typing import Any

from botocore.exceptions import ClientError

from harness.assume import ClientFactory
from harness.poll import wait_for
from harness.stack.deploy import (ABSENT, CREATED, DELETED, UNCHANGED, UPDATED, DeployError, DeployReport,
                                  _alarm_drift, _code, _delete, _delete_role, _ensure_function, _ensure_permission,
                                  _ensure_queue, _ensure_role, _ensure_rule, _ensure_subscription, _exists, _paginate,
                                  _while_iam_propagates, same_policy)
from harness.stack.desired import DesiredState
from harness.stack.scaling import QUARANTINE_TAG, STACK_TAG, Workload

RULE_KEY = "workload_rules"
# AWS takes minutes to terminate a deleted group's instances; their security groups cannot go before them.
TERMINATION_DEADLINE = 600.0
# A new instance profile cannot be handed to EC2 for a few seconds (IAM is eventually consistent).
_PROFILE_NOT_READY = (("ValidationError", "Invalid IamInstanceProfile"), ("InvalidParameterValue", "profile"))
_TEMPLATE_KEYS = ("ImageId", "InstanceType", "SecurityGroupIds", "IamInstanceProfile", "Monitoring",
                  "MetadataOptions", "TagSpecifications")


def converge(aws: ClientFactory, desired: DesiredState, report: DeployReport,
             network: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create what is missing, update what drifted; `network` holds part 4's ids (its VPC hosts the workload)."""
    work: Workload = desired.workload
    ec2, iam = aws("ec2"), aws("iam")
    vpc_id, subnet_id = _ensure_network(ec2, work, network or {}, report)
    group_ids = _ensure_security_groups(ec2, work, vpc_id, report)
    role_changed = _ensure_role(iam, work.instance_role, report, "instance_role")
    profile_changed = _ensure_instance_profile(iam, work, report) or role_changed
    ami = aws("ssm").get_parameter(Name=work.launch_template.ami_parameter)["Parameter"]["Value"]
    _ensure_launch_template(ec2, work, ami, group_ids[work.names.security_group], report)
    _ensure_group(aws("autoscaling"), work, subnet_id, report, profile_changed=profile_changed)
    policy_arn = _ensure_policy(aws("autoscaling"), work, report)
    _ensure_alarm(aws("cloudwatch"), work, policy_arn, report)
    _ensure_inspector(aws("inspector2"), desired.account_id, report)
    _ensure_ops_topic(aws("sns"), work, report)
    ops_url = _ensure_queue(aws("sqs"), work.ops_queue, report, key="ops_queue")
    _ensure_subscription(aws("sns"), work.ops_subscription, report, key="ops_subscription")
    fn = work.classifier
    changed = _ensure_role(iam, fn.role, report, "classifier_function_role")
    _ensure_function(aws("lambda"), fn, report, role_changed=changed, key="classifier_function")
    for permission in fn.permissions:
        _ensure_permission(aws("lambda"), fn, permission, report, key="classifier_permission")
    for rule in work.rules:
        _ensure_rule(aws("events"), rule, report, key=RULE_KEY)
    return {"ops_queue_url": ops_url}


def teardown(aws: ClientFactory, desired: DesiredState, report: DeployReport) -> None:
    """Remove everything part 5's names own, the isolated instances included; already-missing parts are "absent"."""
    work: Workload = desired.workload
    names = work.names
    ev, lam, logs, iam, ec2, asg = (aws(s) for s in ("events", "lambda", "logs", "iam", "ec2", "autoscaling"))
    for rule in work.rules:  # first: nothing must classify or report the deletions that follow
        _delete(report, RULE_KEY, f"DeleteRule {rule.name}", functools.partial(_remove_rule, ev, rule.name),
                "ResourceNotFoundException")
    _delete(report, "classifier_function", f"DeleteFunction {names.function}",
            functools.partial(lam.delete_function, FunctionName=names.function), "ResourceNotFoundException")
    _delete(report, "classifier_function_logs", f"DeleteLogGroup {names.function_log_group}",
            functools.partial(logs.delete_log_group, logGroupName=names.function_log_group),
            "ResourceNotFoundException")
    _delete(report, "workload_alarm", f"DeleteAlarms {names.alarm}", functools.partial(
        _delete_alarm, aws("cloudwatch"), names.alarm), "ResourceNotFound")
    _delete(report, "workload_group", f"DeleteAutoScalingGroup {names.group}", functools.partial(
        _delete_group, asg, names.group), "ValidationError")
    _terminate_workload_instances(ec2, work, report)
    _delete(report, "launch_template", f"DeleteLaunchTemplate {names.launch_template}", functools.partial(
        _delete_template, ec2, names.launch_template),
        "InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound")
    if _exists(lambda: iam.get_instance_profile(InstanceProfileName=names.instance_profile)):
        for role in iam.get_instance_profile(InstanceProfileName=names.instance_profile)["InstanceProfile"]["Roles"]:
            iam.remove_role_from_instance_profile(InstanceProfileName=names.instance_profile, RoleName=role["RoleName"])
        iam.delete_instance_profile(InstanceProfileName=names.instance_profile)
        report.note("instance_profile", DELETED, f"DeleteInstanceProfile {names.instance_profile}")
    else:
        report.note("instance_profile", ABSENT)
    for key, role in (("instance_role", names.instance_role), ("classifier_function_role", names.function_role)):
        if _exists(lambda: iam.get_role(RoleName=role)):
            _delete_role(iam, role, report, key)
        else:
            report.note(key, ABSENT)
    report.note("workload_security_groups", ABSENT)
    for name in (names.quarantine_group, names.security_group):
        for group in _paginate(ec2, "describe_security_groups", "SecurityGroups",
                               Filters=[{"Name": "group-name", "Values": [name]},
                                        {"Name": f"tag:{STACK_TAG}", "Values": [work.prefix]}]):
            ec2.delete_security_group(GroupId=group["GroupId"])
            report.note("workload_security_groups", DELETED, f"DeleteSecurityGroup {name}")
    # The workload's own network is reported only where it had one (part 4's is not its to delete).
    for subnet in _paginate(ec2, "describe_subnets", "Subnets", Filters=[{"Name": "tag:Name",
                                                                         "Values": [names.subnet]}]):
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        report.note("workload_network", DELETED, f"DeleteSubnet {names.subnet}")
    for vpc in _paginate(ec2, "describe_vpcs", "Vpcs", Filters=[{"Name": "tag:Name", "Values": [names.vpc]}]):
        ec2.delete_vpc(VpcId=vpc["VpcId"])
        report.note("workload_network", DELETED, f"DeleteVpc {names.vpc}")
    sns, sqs = aws("sns"), aws("sqs")
    try:
        for sub in _paginate(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=work.ops_topic.arn):
            if sub["SubscriptionArn"].startswith("arn:"):
                sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
        sns.delete_topic(TopicArn=work.ops_topic.arn)
        report.note("ops_topic", DELETED, f"DeleteTopic {names.ops_topic}")
    except ClientError as exc:
        if _code(exc) != "NotFound":
            raise
        report.note("ops_topic", ABSENT)
    _delete(report, "ops_queue", f"DeleteQueue {names.ops_queue}", lambda: sqs.delete_queue(
        QueueUrl=sqs.get_queue_url(QueueName=names.ops_queue)["QueueUrl"]),
        "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    # Inspector's EC2 scanning is an account setting others may rely on: left enabled.
    report.notes.append("Inspector2 EC2 scanning left enabled (an account-wide setting)")


# -- converge ---------------------------------------------------------------------------------------------


def _ensure_network(ec2: Any, work: Workload, network: dict[str, Any], report: DeployReport) -> tuple[str, str]:
    """Part 4's monitored VPC and subnet when it has them, else the workload's own small VPC (no internet route)."""
    if network.get("vpc_id") and network.get("subnet_id"):
        return network["vpc_id"], network["subnet_id"]  # part 4's to keep, not the workload's
    names, tags = work.names, _tags(work)
    vpcs = list(_paginate(ec2, "describe_vpcs", "Vpcs", Filters=[{"Name": "tag:Name", "Values": [names.vpc]}]))
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
        report.note("workload_network", UNCHANGED)
    else:
        vpc_id = ec2.create_vpc(CidrBlock=work.vpc_cidr, TagSpecifications=[
            {"ResourceType": "vpc", "Tags": tags(names.vpc)}])["Vpc"]["VpcId"]
        report.note("workload_network", CREATED, f"CreateVpc {names.vpc}")
    subnets = list(_paginate(ec2, "describe_subnets", "Subnets", Filters=[
        {"Name": "tag:Name", "Values": [names.subnet]}, {"Name": "vpc-id", "Values": [vpc_id]}]))
    if subnets:
        return vpc_id, subnets[0]["SubnetId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=work.subnet_cidr, TagSpecifications=[
        {"ResourceType": "subnet", "Tags": tags(names.subnet)}])["Subnet"]["SubnetId"]
    report.note("workload_network", CREATED, f"CreateSubnet {names.subnet}")
    return vpc_id, subnet


def _ensure_security_groups(ec2: Any, work: Workload, vpc_id: str, report: DeployReport) -> dict[str, str]:
    """The workload's group (no ingress) and the isolation group (no rules at all); name -> id."""
    ids = {}
    report.note("workload_security_groups", UNCHANGED)
    for name, isolate in ((work.names.security_group, False), (work.names.quarantine_group, True)):
        found = list(_paginate(ec2, "describe_security_groups", "SecurityGroups", Filters=[
            {"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]))
        if found:
            group = found[0]
        else:
            purpose = "isolates an instance: no traffic in or out" if isolate else "the workload: no ingress"
            group_id = ec2.create_security_group(
                GroupName=name, Description=f"Gameday: {purpose}", VpcId=vpc_id, TagSpecifications=[
                    {"ResourceType": "security-group", "Tags": _tags(work)(name)}])["GroupId"]
            report.note("workload_security_groups", CREATED, f"CreateSecurityGroup {name}")
            group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        ids[name] = group["GroupId"]
        if group.get("IpPermissions"):
            ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=_bare(group["IpPermissions"]))
            report.note("workload_security_groups", UPDATED, f"RevokeSecurityGroupIngress {name}")
        if isolate and group.get("IpPermissionsEgress"):
            ec2.revoke_security_group_egress(GroupId=group["GroupId"],
                                             IpPermissions=_bare(group["IpPermissionsEgress"]))
            report.note("workload_security_groups", UPDATED, f"RevokeSecurityGroupEgress {name}")
    return ids


def _bare(permissions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """IpPermissions as Revoke takes them (empty lists left out)."""
    return [{k: v for k, v in p.items() if v not in ([], None)} for p in permissions]


def _ensure_instance_profile(iam: Any, work: Workload, report: DeployReport) -> bool:
    name, role = work.names.instance_profile, work.names.instance_role
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        iam.create_instance_profile(InstanceProfileName=name)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
        report.note("instance_profile", CREATED, f"CreateInstanceProfile {name}")
        return True
    report.note("instance_profile", UNCHANGED)
    roles = [r["RoleName"] for r in profile.get("Roles", [])]
    if roles == [role]:
        return False
    for other in roles:
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=other)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    report.note("instance_profile", UPDATED, f"AddRoleToInstanceProfile {name} {role}")
    return True


def _ensure_launch_template(ec2: Any, work: Workload, ami: str, group_id: str, report: DeployReport) -> None:
    lt = work.launch_template
    wanted = lt.data(ami, group_id)
    try:
        stored = ec2.describe_launch_template_versions(LaunchTemplateName=lt.name, Versions=["$Default"])[
            "LaunchTemplateVersions"]
    except ClientError as exc:
        if _code(exc) not in ("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"):
            raise
        ec2.create_launch_template(LaunchTemplateName=lt.name, LaunchTemplateData=wanted, TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": _tags(work)(lt.name)}])
        report.note("launch_template", CREATED, f"CreateLaunchTemplate {lt.name}")
        return
    report.note("launch_template", UNCHANGED)
    data = dict(stored[0]["LaunchTemplateData"]) if stored else {}
    # moto copies the template's own tags into its data as a "launch-template" entry; EC2 keeps them apart.
    data["TagSpecifications"] = [t for t in data.get("TagSpecifications") or []
                                 if t.get("ResourceType") != "launch-template"]
    drifted = [key for key in _TEMPLATE_KEYS if _normal(data.get(key)) != _normal(wanted[key])]
    if drifted:
        version = ec2.create_launch_template_version(LaunchTemplateName=lt.name, LaunchTemplateData=wanted)[
            "LaunchTemplateVersion"]["VersionNumber"]
        ec2.modify_launch_template(LaunchTemplateName=lt.name, DefaultVersion=str(version))
        report.note("launch_template", UPDATED, f"CreateLaunchTemplateVersion {lt.name} ({', '.join(drifted)})")


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _ensure_group(asg: Any, work: Workload, subnet_id: str, report: DeployReport, *, profile_changed: bool) -> None:
    group = work.group
    template = {"LaunchTemplateName": work.launch_template.name, "Version": "$Default"}
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group.name])["AutoScalingGroups"]
    if not found:
        create = functools.partial(
            asg.create_auto_scaling_group, AutoScalingGroupName=group.name, LaunchTemplate=template,
            MinSize=group.min_size, MaxSize=group.max_size, DesiredCapacity=group.desired_capacity,
            DefaultCooldown=group.cooldown, VPCZoneIdentifier=subnet_id,
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in group.tags])
        _while_iam_propagates(create, profile_changed, _PROFILE_NOT_READY)
        report.note("workload_group", CREATED, f"CreateAutoScalingGroup {group.name}")
        return
    report.note("workload_group", UNCHANGED)
    stored = found[0]
    current = {"MinSize": stored["MinSize"], "MaxSize": stored["MaxSize"], "DefaultCooldown": stored["DefaultCooldown"],
               "VPCZoneIdentifier": stored.get("VPCZoneIdentifier"),
               "LaunchTemplate": stored.get("LaunchTemplate", {}).get("LaunchTemplateName")}
    wanted = {"MinSize": group.min_size, "MaxSize": group.max_size, "DefaultCooldown": group.cooldown,
              "VPCZoneIdentifier": subnet_id, "LaunchTemplate": work.launch_template.name}
    drifted = [key for key in wanted if current[key] != wanted[key]]
    if drifted:
        # The desired capacity is left alone: scaling moves it, and a redeploy must not undo a scale-out.
        asg.update_auto_scaling_group(AutoScalingGroupName=group.name, LaunchTemplate=template,
                                      MinSize=group.min_size, MaxSize=group.max_size, DefaultCooldown=group.cooldown,
                                      VPCZoneIdentifier=subnet_id)
        report.note("workload_group", UPDATED, f"UpdateAutoScalingGroup {group.name} ({', '.join(drifted)})")
    if stored.get("SuspendedProcesses"):
        asg.resume_processes(AutoScalingGroupName=group.name)
        report.note("workload_group", UPDATED, f"ResumeProcesses {group.name}")


def _ensure_policy(asg: Any, work: Workload, report: DeployReport) -> str:
    wanted = work.policy.put_params(work.group.name)
    found = asg.describe_policies(AutoScalingGroupName=work.group.name, PolicyNames=[work.policy.name])[
        "ScalingPolicies"]
    keys = ("PolicyType", "AdjustmentType", "ScalingAdjustment", "Cooldown")
    if found and all(found[0].get(k) == wanted[k] for k in keys):
        report.note("scaling_policy", UNCHANGED)
        return found[0]["PolicyARN"]
    answer = asg.put_scaling_policy(**wanted)
    report.note("scaling_policy", UPDATED if found else CREATED, f"PutScalingPolicy {work.policy.name}")
    if "PolicyARN" in answer:
        return answer["PolicyARN"]
    # A plain moto server answers without the ARN (the embedded endpoint fixes that): read it back.
    return asg.describe_policies(AutoScalingGroupName=work.group.name, PolicyNames=[work.policy.name])[
        "ScalingPolicies"][0]["PolicyARN"]


def _ensure_alarm(cw: Any, work: Workload, policy_arn: str, report: DeployReport) -> None:
    wanted = {**work.alarm.put_params(), "AlarmActions": [policy_arn],
              "DatapointsToAlarm": work.alarm.evaluation_periods}
    found = cw.describe_alarms(AlarmNames=[work.alarm.name])["MetricAlarms"]
    if not found:
        cw.put_metric_alarm(**wanted)
        report.note("workload_alarm", CREATED, f"PutMetricAlarm {work.alarm.name}")
        return
    report.note("workload_alarm", UNCHANGED)
    drifted = _alarm_drift(found[0], wanted)
    if drifted:
        cw.put_metric_alarm(**wanted)
        report.note("workload_alarm", UPDATED, f"PutMetricAlarm {work.alarm.name} ({', '.join(drifted)})")


def _ensure_inspector(inspector: Any, account_id: str, report: DeployReport) -> None:
    """Inspector scans the account's EC2 instances (its findings are one of the classifier's signals)."""
    status = inspector.batch_get_account_status(accountIds=[account_id]).get("accounts", [])
    ec2 = (status[0].get("resourceState", {}).get("ec2", {}) if status else {}).get("status")
    if ec2 in ("ENABLED", "ENABLING"):
        report.note("inspector", UNCHANGED)
        return
    inspector.enable(resourceTypes=["EC2"], accountIds=[account_id])
    report.note("inspector", CREATED, "Enable Inspector2 EC2 scanning")


def _ensure_ops_topic(sns: Any, work: Workload, report: DeployReport) -> None:
    topic = work.ops_topic
    try:
        stored = sns.get_topic_attributes(TopicArn=topic.arn)["Attributes"]
    except ClientError as exc:
        if _code(exc) != "NotFound":
            raise
        arn = sns.create_topic(Name=topic.name, Attributes=topic.attributes())["TopicArn"]
        if arn != topic.arn:
            raise DeployError(f"CreateTopic returned {arn}, expected {topic.arn}")
        report.note("ops_topic", CREATED, f"CreateTopic {topic.name}")
        return
    report.note("ops_topic", UNCHANGED)
    if not stored.get("Policy") or not same_policy(stored["Policy"], topic.policy):
        sns.set_topic_attributes(TopicArn=topic.arn, AttributeName="Policy", AttributeValue=json.dumps(topic.policy))
        report.note("ops_topic", UPDATED, f"SetTopicAttributes {topic.name} Policy")


def _tags(work: Workload):
    def tags(name: str) -> list[dict[str, str]]:
        return [{"Key": "Name", "Value": name}, {"Key": STACK_TAG, "Value": work.prefix}]

    return tags


# -- teardown ---------------------------------------------------------------------------------------------


def _remove_rule(ev: Any, name: str) -> None:
    ids = [t["Id"] for t in _paginate(ev, "list_targets_by_rule", "Targets", Rule=name)]
    if ids:
        ev.remove_targets(Rule=name, Ids=ids)
    ev.delete_rule(Name=name)


def _delete_alarm(cw: Any, name: str) -> None:
    if not cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
        raise ClientError({"Error": {"Code": "ResourceNotFound", "Message": name}}, "DescribeAlarms")
    cw.delete_alarms(AlarmNames=[name])


def _delete_template(ec2: Any, name: str) -> None:
    # By id: moto's DeleteLaunchTemplate ignores the name.
    found = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]
    ec2.delete_launch_template(LaunchTemplateId=found[0]["LaunchTemplateId"])


def _delete_group(asg: Any, name: str) -> None:
    if not asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]:
        raise ClientError({"Error": {"Code": "ValidationError", "Message": name}}, "DescribeAutoScalingGroups")
    asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)  # its instances go with it
    gone = wait_for(lambda: not asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"],
                    timeout=TERMINATION_DEADLINE, interval=5.0, describe=f"group {name} deleted")
    if not gone:
        raise DeployError(f"Auto Scaling group {name} still exists {TERMINATION_DEADLINE:g} s after its deletion")


def _terminate_workload_instances(ec2: Any, work: Workload, report: DeployReport) -> None:
    """The instances the group left behind: those the classifier isolated and detached, and any still running."""
    alive = ["pending", "running", "stopping", "stopped"]
    found = [i["InstanceId"] for r in _paginate(ec2, "describe_instances", "Reservations", Filters=[
        {"Name": f"tag:{STACK_TAG}", "Values": [work.prefix]}, {"Name": "tag:Name", "Values": [work.names.group]},
        {"Name": "instance-state-name", "Values": alive}]) for i in r["Instances"]]
    if not found:
        return  # the group took its instances with it (and an isolated one is noted only when there is one)
    ec2.terminate_instances(InstanceIds=found)
    report.note("workload_instances", DELETED, f"TerminateInstances {', '.join(found)} (isolated: {QUARANTINE_TAG})")
    done = wait_for(lambda: not [i for r in ec2.describe_instances(InstanceIds=found)["Reservations"]
                                 for i in r["Instances"] if i["State"]["Name"] != "terminated"],
                    timeout=TERMINATION_DEADLINE, interval=5.0, describe="workload instances terminated")
    if not done:
        raise DeployError(f"instances {', '.join(found)} were not terminated within {TERMINATION_DEADLINE:g} s")
