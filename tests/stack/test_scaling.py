"""Part 5 of the reference stack: the workload's desired state, its deploy (idempotent, drift), sabotage, teardown."""

import json

import pytest

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.stack import deploy_scaling, scaling
from harness.stack.deploy import DeployReport
from harness.stack.desired import FUNCTION_ENV_VAR, StackOutputs, desired_state

ACCOUNT = "123456789012"
REGION = "us-east-1"
# What part 5's deploy reports on (the workload's own network only where part 4's is missing).
PART5_RESOURCES = {
    "workload_security_groups", "instance_role", "instance_profile", "launch_template", "workload_group",
    "scaling_policy", "workload_alarm", "inspector", "ops_topic", "ops_queue", "ops_subscription",
    "classifier_function_role", "classifier_function", "classifier_permission", "workload_rules",
}


def _variant(sabotage=None, prefix="gameday"):
    return desired_state(account_id=ACCOUNT, region=REGION, prefix=prefix, sabotage=sabotage)


def _settings(desired):
    return json.loads(desired.workload.classifier.environment[FUNCTION_ENV_VAR])


# -- the desired state ------------------------------------------------------------------------------


def test_the_workload_scales_out_on_its_groups_average_cpu():
    work = _variant().workload
    assert work.alarm.name == "gameday-workload-cpu-high"
    assert (work.alarm.namespace, work.alarm.metric_name, work.alarm.statistic) == ("AWS/EC2", "CPUUtilization",
                                                                                     "Average")
    assert work.alarm.dimensions == (("AutoScalingGroupName", "gameday-workload"),)
    assert work.alarm.period == 60 and work.alarm.comparison_operator == "GreaterThanThreshold"
    assert work.policy.put_params(work.group.name) == {
        "AutoScalingGroupName": "gameday-workload", "PolicyName": "gameday-workload-scale-out",
        "PolicyType": "SimpleScaling", "AdjustmentType": "ChangeInCapacity", "ScalingAdjustment": 1,
        "Cooldown": scaling.COOLDOWN_S}
    assert work.group.min_size <= work.group.desired_capacity < work.group.max_size


def test_instances_report_cpu_every_minute_and_carry_the_ssm_agents_profile():
    work = _variant().workload
    data = work.launch_template.data("ami-0123456789abcdef0", "sg-0123456789abcdef0")
    assert data["Monitoring"] == {"Enabled": True}  # the alarm's one-minute period needs detailed monitoring
    assert data["IamInstanceProfile"] == {"Name": "gameday-workload-instance"}
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["InstanceType"] in ("t3.micro", "t3.small")  # part 4's launch guard allows these
    actions = work.instance_role.inline_policies["ssm-agent"]["Statement"][0]["Action"]
    assert {"ssm:UpdateInstanceInformation", "ssmmessages:OpenControlChannel", "ec2messages:GetMessages"} <= \
        set(actions)
    assert work.instance_role.trust_policy["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_the_classifier_is_woken_by_its_alarm_going_to_alarm_only():
    work = _variant().workload
    assert work.classifier_rule.pattern == {
        "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": ["gameday-workload-cpu-high"], "state": {"value": ["ALARM"]}}}
    assert [t.arn for t in work.classifier_rule.targets] == [work.classifier.arn]
    assert work.classifier.permission.source_arn == work.classifier_rule.arn


def test_the_classifier_knows_the_signals_that_make_a_spike_an_attack():
    settings = _settings(_variant())
    assert set(settings["finding_types"]) == {
        "CryptoCurrency:EC2/BitcoinTool.B", "CryptoCurrency:EC2/BitcoinTool.B!DNS",
        "Impact:EC2/BitcoinDomainRequest.Reputation", "Backdoor:EC2/DenialOfService.*"}
    assert settings["inspector_severities"] == ["CRITICAL"]
    assert settings["security_topic"].endswith(":gameday-security")
    assert settings["ops_topic"].endswith(":gameday-workload-ops") and settings["quarantine"] is True


def test_the_classifier_may_publish_to_its_two_topics_and_isolate_only_its_groups_instances():
    desired = _variant()
    statements = {s["Sid"]: s for s in desired.workload.classifier.role.inline_policies["classify-cpu"]["Statement"]}
    assert statements["Report"]["Resource"] == sorted([desired.topic.arn, desired.workload.ops_topic.arn])
    assert statements["IsolateInstance"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": "gameday-workload"}}
    assert statements["TakeOutOfGroup"]["Resource"].endswith(":autoScalingGroupName/gameday-workload")


def test_without_detection_the_classifier_and_the_rules_tell_nobody():
    desired = _variant("detection")
    settings = _settings(desired)
    assert settings["security_topic"] == settings["ops_topic"] == desired.muted_topic.arn
    assert desired.workload.inspector_rule.targets == () and desired.workload.patch_rule.targets == ()
    assert settings["quarantine"] is True  # the remediation stays


def test_without_remediation_the_classifier_pages_but_isolates_nothing():
    desired = _variant("remediation")
    settings = _settings(desired)
    assert settings["quarantine"] is False and settings["security_topic"] == desired.topic.arn
    healthy = _variant().workload
    assert desired.workload.alarm == healthy.alarm and desired.workload.policy == healthy.policy


def test_the_vulnerability_rules_page_security_on_critical_findings_and_missing_patches():
    desired = _variant()
    inspector, patch = desired.workload.inspector_rule, desired.workload.patch_rule
    assert inspector.pattern["detail"] == {"severity": ["CRITICAL"], "status": ["ACTIVE"]}
    assert patch.pattern["detail-type"] == ["Configuration Compliance State Change"]
    assert patch.pattern["detail"] == {"compliance-type": ["Patch"], "compliance-status": ["non_compliant"]}
    assert [t.arn for t in inspector.targets] == [t.arn for t in patch.targets] == [desired.topic.arn]


def test_outputs_name_the_workload_and_survive_json():
    outputs = _variant().outputs()
    assert (outputs.workload_group_name, outputs.workload_alarm_name, outputs.workload_capacity) == (
        "gameday-workload", "gameday-workload-cpu-high", 1)
    assert outputs.quarantine_group_name == "gameday-quarantine"
    assert StackOutputs.from_json(outputs.to_json()) == outputs


# -- deploy and teardown on the embedded endpoint ---------------------------------------------------


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings(), warm=False)
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture
def desired(aws):
    return desired_state(account_id=aws.account_id, region=REGION, prefix="pt5")


def test_deploy_creates_the_workload_then_changes_nothing(aws, desired):
    first = DeployReport()
    ids = deploy_scaling.converge(aws.client, desired, first)
    assert set(first.resources) == PART5_RESOURCES | {"workload_network"}
    # Inspector's scanning is account-wide: moto's state is per process, so another module may have enabled it.
    assert {v for k, v in first.resources.items() if k != "inspector"} == {"created"}
    assert first.resources["inspector"] in ("created", "unchanged")
    asg = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["pt5-workload"])[
        "AutoScalingGroups"][0]
    assert asg["DesiredCapacity"] == 1 and len(asg["Instances"]) == 1
    alarm = aws.client("cloudwatch").describe_alarms(AlarmNames=["pt5-workload-cpu-high"])["MetricAlarms"][0]
    policy = aws.client("autoscaling").describe_policies(AutoScalingGroupName="pt5-workload")["ScalingPolicies"]
    assert alarm["AlarmActions"] == [policy[0]["PolicyARN"]]
    ec2 = aws.client("ec2")
    quarantine = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["pt5-quarantine"]}])[
        "SecurityGroups"][0]
    assert quarantine["IpPermissions"] == [] and quarantine["IpPermissionsEgress"] == []
    assert ids["ops_queue_url"].endswith("/pt5-workload-ops-sink")

    again = DeployReport()
    deploy_scaling.converge(aws.client, desired, again)
    assert set(again.resources.values()) == {"unchanged"}, again.changes
    assert again.changes == []


def test_deploy_puts_back_a_rule_let_into_the_quarantine_group_and_a_muted_alarm(aws, desired):
    deploy_scaling.converge(aws.client, desired, DeployReport())
    ec2, cw = aws.client("ec2"), aws.client("cloudwatch")
    quarantine = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["pt5-quarantine"]}])[
        "SecurityGroups"][0]["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=quarantine, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    cw.put_metric_alarm(**{**desired.workload.alarm.put_params(), "AlarmActions": []})
    report = DeployReport()
    deploy_scaling.converge(aws.client, desired, report)
    assert report.resources["workload_security_groups"] == "updated"
    assert report.resources["workload_alarm"] == "updated"
    assert ec2.describe_security_groups(GroupIds=[quarantine])["SecurityGroups"][0]["IpPermissions"] == []
    assert cw.describe_alarms(AlarmNames=["pt5-workload-cpu-high"])["MetricAlarms"][0]["AlarmActions"]


def test_deploy_runs_the_workload_in_part_4s_network_when_there_is_one(aws):
    desired = desired_state(account_id=aws.account_id, region=REGION, prefix="pt5net")
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/24")["Subnet"]["SubnetId"]
    report = DeployReport()
    deploy_scaling.converge(aws.client, desired, report, network={"vpc_id": vpc, "subnet_id": subnet})
    assert "workload_network" not in report.resources
    asg = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["pt5net-workload"])[
        "AutoScalingGroups"][0]
    assert asg["VPCZoneIdentifier"] == subnet
    deploy_scaling.teardown(aws.client, desired, DeployReport())


def test_teardown_removes_the_workload_and_the_instances_it_isolated(aws, desired):
    deploy_scaling.converge(aws.client, desired, DeployReport())
    asg, ec2 = aws.client("autoscaling"), aws.client("ec2")
    instance = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["pt5-workload"])["AutoScalingGroups"][0][
        "Instances"][0]["InstanceId"]
    asg.set_desired_capacity(AutoScalingGroupName="pt5-workload", DesiredCapacity=2)
    asg.detach_instances(AutoScalingGroupName="pt5-workload", InstanceIds=[instance],
                         ShouldDecrementDesiredCapacity=True)  # as the classifier does
    report = DeployReport()
    deploy_scaling.teardown(aws.client, desired, report)
    assert report.resources["workload_instances"] == "deleted"
    assert ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"] == \
        "terminated"
    assert asg.describe_auto_scaling_groups(AutoScalingGroupNames=["pt5-workload"])["AutoScalingGroups"] == []
    assert ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["pt5-quarantine",
                                                                                   "pt5-workload"]}])[
        "SecurityGroups"] == []
    again = DeployReport()
    deploy_scaling.teardown(aws.client, desired, again)
    assert set(again.resources.values()) == {"absent"}
