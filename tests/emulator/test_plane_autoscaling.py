"""Auto Scaling, EC2 CPU and SSM compliance in the plane over HTTP: policies run from alarms, stress drives CPU."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.emulator import motoadapter
from harness.emulator.autoscaling import _adjust, _step
from harness.poll import wait_for

REGION = "us-east-1"
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings(time_scale=600))  # an AWS minute lasts a tenth of a wall second
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def network(aws):
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.91.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.91.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    return {"subnet": subnet["SubnetId"], "sg": group}


@pytest.fixture(autouse=True)
def quiet(aws):
    """Every instance a test launched is terminated after it, so the next test's plane publishes only its own."""
    yield
    ec2 = aws.client("ec2")
    for name in [g["AutoScalingGroupName"] for g in aws.client("autoscaling").describe_auto_scaling_groups()[
            "AutoScalingGroups"]]:
        aws.client("autoscaling").delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    running = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"] for i in r["Instances"]]
    if running:
        ec2.terminate_instances(InstanceIds=running)


def make_group(aws, network, *, max_size: int = 3, cooldown: int = 60, detailed: bool = True) -> str:
    name = f"asg-{uuid.uuid4().hex[:8]}"
    ami = aws.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
    aws.client("ec2").create_launch_template(LaunchTemplateName=f"{name}-lt", LaunchTemplateData={
        "ImageId": ami, "InstanceType": "t3.micro", "SecurityGroupIds": [network["sg"]],
        "Monitoring": {"Enabled": detailed}})
    aws.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": f"{name}-lt", "Version": "$Latest"},
        MinSize=1, MaxSize=max_size, DesiredCapacity=1, DefaultCooldown=cooldown, VPCZoneIdentifier=network["subnet"])
    return name


def group(aws, name: str) -> dict:
    return aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def cpu_alarm(aws, name: str, policy_arn: str, *, dimension: tuple[str, str] | None = None,
              statistic: str = "Average") -> str:
    alarm = f"{name}-cpu-high"
    key, value = dimension or ("AutoScalingGroupName", name)
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName=alarm, Namespace="AWS/EC2", MetricName="CPUUtilization", Dimensions=[{"Name": key, "Value": value}],
        Statistic=statistic, Period=60, EvaluationPeriods=2, DatapointsToAlarm=2, Threshold=70,
        ComparisonOperator="GreaterThanThreshold", AlarmActions=[policy_arn])
    return alarm


def stress(aws, instance: str, seconds: int = 3600, percent: int = 100) -> str:
    return aws.client("ssm").send_command(
        DocumentName="AWSFIS-Run-CPU-Stress", InstanceIds=[instance],
        Parameters={"DurationSeconds": [str(seconds)], "LoadPercent": [str(percent)]})["Command"]["CommandId"]


def cpu(aws, dimension: str, value: str) -> list[float]:
    """The raw datapoints, oldest first (statistics over wall-clock periods would merge many AWS minutes)."""
    points = motoadapter.metric_points(aws.account_id, REGION, "AWS/EC2", "CPUUtilization", {dimension: value},
                                       since=0)
    return [v for _, v in sorted(points)]


def test_running_instances_publish_idle_cpu_per_instance_and_per_group(aws, network):
    name = make_group(aws, network)
    instance = group(aws, name)["Instances"][0]["InstanceId"]
    assert wait_for(lambda: cpu(aws, "InstanceId", instance) or None, timeout=5, interval=0.05, describe="cpu")
    assert wait_for(lambda: cpu(aws, "AutoScalingGroupName", name) or None, timeout=5, interval=0.05,
                    describe="group cpu")
    assert max(cpu(aws, "InstanceId", instance)) < 10


def test_a_cpu_alarm_runs_its_simple_scaling_policy_and_launches_an_instance(aws, network):
    name = make_group(aws, network)
    asg = aws.client("autoscaling")
    policy = asg.put_scaling_policy(AutoScalingGroupName=name, PolicyName=f"{name}-out", PolicyType="SimpleScaling",
                                    AdjustmentType="ChangeInCapacity", ScalingAdjustment=1, Cooldown=600)["PolicyARN"]
    alarm = cpu_alarm(aws, name, policy)
    first = group(aws, name)["Instances"][0]["InstanceId"]
    stress(aws, first)
    assert wait_for(lambda: group(aws, name)["DesiredCapacity"] == 2 or None, timeout=10, interval=0.05,
                    describe="scale-out")
    assert wait_for(lambda: len(group(aws, name)["Instances"]) == 2 or None, timeout=5, interval=0.05,
                    describe="a second instance")
    launch = asg.describe_scaling_activities(AutoScalingGroupName=name)["Activities"][0]
    assert launch["Description"].startswith("Launching a new EC2 instance: i-")
    assert f"a monitor alarm {alarm} in state ALARM triggered policy {name}-out changing the desired capacity " \
           f"from 1 to 2." in launch["Cause"]
    assert launch["StatusCode"] == "Successful" and json.loads(launch["Details"])["Subnet ID"] == network["subnet"]
    history = aws.client("cloudwatch").describe_alarm_history(AlarmName=alarm, HistoryItemType="Action")
    assert any(i["HistorySummary"] == f"Successfully executed action {policy}"
               for i in history["AlarmHistoryItems"])


def test_an_alarm_that_stays_in_alarm_scales_again_after_the_cooldown_up_to_max_size(aws, network):
    name = make_group(aws, network, max_size=3)
    policy = aws.client("autoscaling").put_scaling_policy(
        AutoScalingGroupName=name, PolicyName=f"{name}-out", AdjustmentType="ChangeInCapacity", ScalingAdjustment=1,
        Cooldown=120)["PolicyARN"]
    first = group(aws, name)["Instances"][0]["InstanceId"]
    # The stressed instance alone: the alarm stays in ALARM whatever the group's size.
    cpu_alarm(aws, name, policy, dimension=("InstanceId", first), statistic="Maximum")
    stress(aws, first)
    assert wait_for(lambda: group(aws, name)["DesiredCapacity"] == 2 or None, timeout=10, interval=0.02,
                    describe="first scale-out")
    assert wait_for(lambda: group(aws, name)["DesiredCapacity"] == 3 or None, timeout=10, interval=0.02,
                    describe="second scale-out")
    # When the plane ran them, not when this test saw them (a loaded machine sees them late).
    activities = aws.client("autoscaling").describe_scaling_activities(AutoScalingGroupName=name)["Activities"]
    launches = sorted(a["StartTime"] for a in activities if a["Description"].startswith("Launching"))
    gap = (launches[-1] - launches[-2]).total_seconds()
    assert gap >= 100 / 600 * 0.9, "the second scale-out came before the cooldown ended"
    # Further invocations, once an AWS minute, for six minutes: max size holds the group.
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        assert group(aws, name)["DesiredCapacity"] == 3


def test_step_scaling_picks_the_step_holding_the_breach(aws, network):
    name = make_group(aws, network, max_size=10)
    policy = aws.client("autoscaling").put_scaling_policy(
        AutoScalingGroupName=name, PolicyName=f"{name}-step", PolicyType="StepScaling",
        AdjustmentType="ChangeInCapacity", MetricAggregationType="Average", StepAdjustments=[
            {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 20, "ScalingAdjustment": 1},
            {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 4}])["PolicyARN"]
    metric = f"load-{uuid.uuid4().hex[:8]}"
    cw = aws.client("cloudwatch")
    cw.put_metric_alarm(AlarmName=f"{name}-load", Namespace="App", MetricName=metric, Statistic="Maximum",
                        Period=60, EvaluationPeriods=1, Threshold=50, ComparisonOperator="GreaterThanThreshold",
                        AlarmActions=[policy])
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": metric, "Value": 95.0}])
    assert wait_for(lambda: group(aws, name)["DesiredCapacity"] == 5 or None, timeout=5, interval=0.02,
                    describe="a four-instance step")


def test_cancel_command_stops_the_stress(aws, network):
    name = make_group(aws, network)
    instance = group(aws, name)["Instances"][0]["InstanceId"]
    command = stress(aws, instance)
    assert wait_for(lambda: any(v > 90 for v in cpu(aws, "InstanceId", instance)) or None, timeout=5,
                    interval=0.05, describe="a busy minute")
    aws.client("ssm").cancel_command(CommandId=command)
    assert wait_for(lambda: cpu(aws, "InstanceId", instance)[-1] < 10 or None, timeout=5, interval=0.05,
                    describe="an idle minute again")
    listed = aws.client("ssm").list_commands(CommandId=command)["Commands"][0]
    assert listed["Status"] == "Cancelled"
    with pytest.raises(ClientError) as err:
        aws.client("ssm").cancel_command(CommandId=str(uuid.uuid4()))
    assert err.value.response["Error"]["Code"] == "InvalidCommandId"


def test_user_requests_are_scaling_activities(aws, network):
    name = make_group(aws, network)
    asg = aws.client("autoscaling")
    aws.plane.drain()
    asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=2)
    aws.plane.drain()
    activities = asg.describe_scaling_activities(AutoScalingGroupName=name)["Activities"]
    assert "a user request explicitly set group desired capacity changing the desired capacity from 1 to 2." \
        in activities[0]["Cause"]
    first = group(aws, name)["Instances"][0]["InstanceId"]
    asg.detach_instances(AutoScalingGroupName=name, InstanceIds=[first], ShouldDecrementDesiredCapacity=True)
    aws.plane.drain()
    detach = asg.describe_scaling_activities(AutoScalingGroupName=name, MaxRecords=1)["Activities"][0]
    assert detach["Description"] == f"Detaching EC2 instance: {first}"
    assert "shrinking the capacity from 2 to 1" in detach["Cause"]


def test_patch_compliance_is_stored_summarised_and_announced(aws, network):
    name = make_group(aws, network)
    instance = group(aws, name)["Instances"][0]["InstanceId"]
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName=f"compliance-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"patch-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.ssm"], "detail-type": ["Configuration Compliance State Change"],
        "detail": {"compliance-type": ["Patch"], "compliance-status": ["non_compliant"], "resource-id": [instance]}}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    ssm = aws.client("ssm")
    ssm.put_compliance_items(
        ResourceId=instance, ResourceType="ManagedInstance", ComplianceType="Patch",
        ExecutionSummary={"ExecutionTime": time.time(), "ExecutionType": "Command"},
        Items=[{"Id": "ALAS2023-2024-001", "Title": "openssl", "Severity": "CRITICAL", "Status": "NON_COMPLIANT",
                "Details": {"Classification": "Security"}},
               {"Id": "ALAS2023-2024-002", "Title": "bash", "Severity": "LOW", "Status": "COMPLIANT"}])
    items = ssm.list_compliance_items(ResourceIds=[instance], ResourceTypes=["ManagedInstance"], Filters=[
        {"Key": "Status", "Values": ["NON_COMPLIANT"], "Type": "EQUAL"}])["ComplianceItems"]
    assert [i["Id"] for i in items] == ["ALAS2023-2024-001"] and items[0]["Severity"] == "CRITICAL"
    summary = ssm.list_resource_compliance_summaries(Filters=[
        {"Key": "ComplianceType", "Values": ["Patch"], "Type": "EQUAL"}])["ResourceComplianceSummaryItems"]
    mine = next(s for s in summary if s["ResourceId"] == instance)
    assert mine["Status"] == "NON_COMPLIANT" and mine["OverallSeverity"] == "CRITICAL"
    assert mine["NonCompliantSummary"]["NonCompliantCount"] == 1
    assert mine["NonCompliantSummary"]["SeveritySummary"]["CriticalCount"] == 1

    def announced():
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in msgs] or None

    event = wait_for(announced, timeout=5, interval=0.02, describe="compliance event")[0]
    assert event["source"] == "aws.ssm" and event["detail-type"] == "Configuration Compliance State Change"
    assert event["detail"] == {"resource-type": "managed-instance", "resource-id": instance,
                               "compliance-status": "non_compliant", "compliance-type": "Patch",
                               "severity": "critical"}
    assert event["resources"] == [f"arn:aws:ssm:{REGION}:{aws.account_id}:managed-instance/{instance}"]
    with pytest.raises(ClientError) as err:
        ssm.put_compliance_items(ResourceId="i-0000000000000000", ResourceType="ManagedInstance",
                                 ComplianceType="Patch", ExecutionSummary={"ExecutionTime": time.time()}, Items=[])
    assert err.value.response["Error"]["Code"] == "InvalidResourceId"


@pytest.mark.parametrize("kind,adjustment,current,magnitude,expected", [
    ("ChangeInCapacity", 2, 3, None, 5),
    ("ExactCapacity", 4, 1, None, 4),
    ("PercentChangeInCapacity", 10, 3, None, 4),  # 0.3 rounds up to one instance
    ("PercentChangeInCapacity", 50, 5, None, 7),  # 2.5 rounds down
    ("PercentChangeInCapacity", -50, 5, None, 3),  # -2.5 rounds toward zero
    ("PercentChangeInCapacity", 10, 10, 3, 13),  # MinAdjustmentMagnitude
])
def test_adjustments_round_as_aws_documents(kind, adjustment, current, magnitude, expected):
    assert _adjust(kind, adjustment, current, magnitude) == expected


def test_step_bounds_are_inclusive_below_and_exclusive_above_the_breach():
    steps = ({"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
             {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 2})
    assert _step(steps, 50, 60)["ScalingAdjustment"] == 2  # exactly +10 belongs to the upper step
    assert _step(steps, 50, 59.9)["ScalingAdjustment"] == 1
    assert _step(steps, 50, None) is None
