"""The load-or-attack classifier on the embedded plane: pages and isolates on security signals, reports load else."""

import json
import uuid

import pytest

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.poll import wait_for
from harness.sink import Sink
from harness.stack import deploy_scaling
from harness.stack.deploy import DeployReport
from harness.stack.desired import desired_state

REGION = "us-east-1"
PREFIX = "cls"
GROUP, ALARM, QUARANTINE = f"{PREFIX}-workload", f"{PREFIX}-workload-cpu-high", f"{PREFIX}-quarantine"
MINING = "CryptoCurrency:EC2/BitcoinTool.B!DNS"


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings())
    backend.start()
    yield backend
    backend.stop()


def _inbox(aws, topic_arn: str) -> str:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


@pytest.fixture(scope="module")
def stack(aws):
    """Part 5 alone, with the security topic it pages and a GuardDuty detector; an inbox on each topic."""
    desired = desired_state(account_id=aws.account_id, region=REGION, prefix=PREFIX)
    aws.client("sns").create_topic(Name=f"{PREFIX}-security")
    gd = aws.client("guardduty")
    if not gd.list_detectors()["DetectorIds"]:
        gd.create_detector(Enable=True)
    deploy_scaling.converge(aws.client, desired, DeployReport())
    aws.settle()
    return {"desired": desired, "security": _inbox(aws, desired.topic.arn),
            "ops": _inbox(aws, desired.workload.ops_topic.arn)}


def group(aws) -> dict:
    return aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])[
        "AutoScalingGroups"][0]


@pytest.fixture
def scaled_out(aws, stack):
    """The group as the alarm's policy leaves it: two instances; afterwards back to one, findings archived."""
    asg = aws.client("autoscaling")
    asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
    yield [i["InstanceId"] for i in group(aws)["Instances"]]
    gd = aws.client("guardduty")
    detector = gd.list_detectors()["DetectorIds"][0]
    ids = gd.list_findings(DetectorId=detector)["FindingIds"]
    if ids:
        gd.archive_findings(DetectorId=detector, FindingIds=ids)
    members = {i["InstanceId"] for i in group(aws)["Instances"]}
    isolated = [i for r in aws.client("ec2").describe_instances(Filters=[
        {"Name": "tag:Name", "Values": [GROUP]}, {"Name": "instance-state-name", "Values": ["running"]}])[
        "Reservations"] for i in r["Instances"] if i["InstanceId"] not in members]
    if isolated:
        aws.client("ec2").terminate_instances(InstanceIds=[i["InstanceId"] for i in isolated])
    asg.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    aws.plane.drain()
    for inbox in (stack["security"], stack["ops"]):
        Sink(aws.client("sqs"), inbox).drain()  # PurgeQueue is allowed once a minute


def alarm_event(state: str = "ALARM") -> dict:
    return {"version": "0", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "region": REGION, "detail": {
                "alarmName": ALARM, "state": {"value": state, "timestamp": "2026-01-01T00:00:00.000+0000"},
                "configuration": {"metrics": [{"metricStat": {"metric": {
                    "namespace": "AWS/EC2", "name": "CPUUtilization",
                    "dimensions": {"AutoScalingGroupName": GROUP}}}}]}}}


def classify(aws, event: dict | None = None) -> dict:
    answer = aws.client("lambda").invoke(FunctionName=f"{PREFIX}-classify-cpu",
                                         Payload=json.dumps(event or alarm_event()))
    assert "FunctionError" not in answer, answer["Payload"].read()
    return json.loads(answer["Payload"].read())


def messages(aws, inbox: str) -> list[dict]:
    found = aws.client("sqs").receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(json.loads(m["Body"])["Message"]) for m in found]


def security_groups(aws, instance: str) -> list[str]:
    found = aws.client("ec2").describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    return [g["GroupName"] for g in found["SecurityGroups"]]


def test_a_spike_without_signals_is_load_reported_to_ops_and_pages_nobody(aws, stack, scaled_out):
    answer = classify(aws)
    assert answer["verdict"] == "load" and sorted(answer["instanceIds"]) == sorted(scaled_out)
    report = wait_for(lambda: messages(aws, stack["ops"]) or None, timeout=5, interval=0.05, describe="ops report")
    assert report[0]["verdict"] == "load" and report[0]["severity"] == "INFORMATIONAL"
    aws.plane.drain()
    assert messages(aws, stack["security"]) == []
    assert group(aws)["DesiredCapacity"] == 2  # scaling is left to the policy


def test_a_mining_finding_pages_security_and_isolates_the_instance_out_of_the_group(aws, stack, scaled_out):
    miner = scaled_out[0]
    assert aws.detections.guardduty(MINING, miner) is not None
    answer = classify(aws)
    (page,) = answer["pages"]
    assert page["severity"] == "HIGH" and page["instanceId"] == miner
    assert page["finding"]["type"] == MINING and page["finding"]["source"] == "guardduty"
    sent = wait_for(lambda: messages(aws, stack["security"]) or None, timeout=5, interval=0.05, describe="page")
    assert sent[0]["verdict"] == "security" and sent[0]["finding"]["type"] == MINING
    assert security_groups(aws, miner) == [QUARANTINE]
    after = group(aws)
    assert miner not in {i["InstanceId"] for i in after["Instances"]}
    assert after["DesiredCapacity"] == 1  # no capacity kept for it
    tags = aws.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [miner]}])["Tags"]
    assert ("gameday:quarantine", MINING) in {(t["Key"], t["Value"]) for t in tags}


def test_isolation_never_takes_the_group_below_its_minimum(aws, stack, scaled_out):
    aws.client("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    (miner,) = [i["InstanceId"] for i in group(aws)["Instances"]]
    aws.detections.guardduty("Backdoor:EC2/DenialOfService.Udp", miner)  # the DoS types count too
    page = classify(aws)["pages"][0]
    assert page["finding"]["type"] == "Backdoor:EC2/DenialOfService.Udp"
    assert security_groups(aws, miner) == [QUARANTINE]
    after = group(aws)
    assert after["DesiredCapacity"] == 1 and miner not in {i["InstanceId"] for i in after["Instances"]}


def test_archived_and_unrelated_findings_are_no_signal(aws, stack, scaled_out):
    gd = aws.client("guardduty")
    detector = gd.list_detectors()["DetectorIds"][0]
    archived = aws.detections.guardduty(MINING, scaled_out[0])
    gd.archive_findings(DetectorId=detector, FindingIds=[archived["id"]])
    aws.detections.guardduty("Recon:EC2/PortProbeUnprotectedPort", scaled_out[1])
    assert classify(aws)["verdict"] == "load"
    assert security_groups(aws, scaled_out[0]) == [f"{PREFIX}-workload"]


def test_only_an_alarm_going_to_alarm_is_classified(aws, stack, scaled_out):
    assert classify(aws, alarm_event("OK")) == {"verdict": "ignored"}


def test_without_remediation_it_pages_but_isolates_nothing(aws, stack, scaled_out):
    sabotaged = desired_state(account_id=aws.account_id, region=REGION, prefix=PREFIX, sabotage="remediation")
    deploy_scaling.converge(aws.client, sabotaged, DeployReport())
    try:
        aws.detections.guardduty(MINING, scaled_out[1])
        page = classify(aws)["pages"][0]
        assert page["instanceId"] == scaled_out[1] and page["actions"] == []
        assert security_groups(aws, scaled_out[1]) == [f"{PREFIX}-workload"]
        assert group(aws)["DesiredCapacity"] == 2
    finally:
        deploy_scaling.converge(aws.client, stack["desired"], DeployReport())


def test_the_alarm_reaches_the_classifier_through_its_rule(aws, stack, scaled_out):
    aws.client("cloudwatch").set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="test",
                                             StateReasonData=json.dumps({"recentDatapoints": [95.0]}))
    report = wait_for(lambda: messages(aws, stack["ops"]) or None, timeout=10, interval=0.05, describe="ops report")
    assert report[0]["alarmName"] == ALARM and report[0]["autoScalingGroupName"] == GROUP


def test_a_critical_inspector_finding_is_a_signal_too(aws, stack, scaled_out):
    vulnerable = scaled_out[1]
    assert aws.detections.inspector(vulnerable, cve="CVE-2023-38545", severity="CRITICAL", package="curl",
                                    version="8.3.0") is not None
    page = classify(aws)["pages"][0]
    assert page["instanceId"] == vulnerable and page["finding"]["source"] == "inspector"
    assert page["finding"]["vulnerabilityId"] == "CVE-2023-38545"
