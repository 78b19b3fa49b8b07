"""GuardDuty and Inspector findings in the plane over HTTP: the findings API, events, StopLogging, test hooks."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.emulator.findings import FINDING_TYPES, Findings
from harness.poll import wait_for

REGION = "us-east-1"
STEALTH = "Stealth:IAMUser/CloudTrailLoggingDisabled"
MINING = "CryptoCurrency:EC2/BitcoinTool.B"


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings())
    backend.start()
    yield backend
    backend.stop()


def suffix() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def gd(aws):
    return aws.client("guardduty")


@pytest.fixture
def detector(aws, gd):
    """The region's one enabled detector (GuardDuty allows one per region); deleted afterwards."""
    for old in gd.list_detectors()["DetectorIds"]:
        gd.delete_detector(DetectorId=old)
    detector_id = gd.create_detector(Enable=True)["DetectorId"]
    yield detector_id
    try:
        gd.delete_detector(DetectorId=detector_id)
    except ClientError:
        pass
    aws.plane.drain()


def finding_queue(aws, pattern: dict) -> str:
    """A queue receiving, through an EventBridge rule, the default bus's events matching the pattern."""
    name = f"findings-{suffix()}"
    url = aws.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    aws.client("events").put_rule(Name=name, EventPattern=json.dumps(pattern))
    aws.client("events").put_targets(Rule=name, Targets=[
        {"Id": "q", "Arn": f"arn:aws:sqs:{REGION}:{aws.account_id}:{name}"}])
    return url


def drained(aws, url: str) -> list[dict]:
    """Events waiting in a queue once the plane has delivered everything, deleted once read."""
    aws.plane.drain()
    sqs, got = aws.client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return got
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            got.append(json.loads(m["Body"]))


def wait_events(aws, url: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
    seen: list[dict] = []

    def probe():
        seen.extend(drained(aws, url))
        return seen if len(seen) >= count else None

    assert wait_for(probe, timeout=timeout, interval=0.05, describe=f"{count} events in {url}"), seen
    return seen


def findings(gd, detector_id: str, **criterion) -> list[dict]:
    ids = gd.list_findings(DetectorId=detector_id, FindingCriteria={"Criterion": criterion} if criterion else {}
                           )["FindingIds"]
    return gd.get_findings(DetectorId=detector_id, FindingIds=ids)["Findings"] if ids else []


def hook(aws, path: str, **args) -> tuple[int, dict]:
    request = urllib.request.Request(f"{aws.endpoint_url}/_gameday/{path}?{urllib.parse.urlencode(args)}",
                                     data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def instance(aws) -> str:
    return aws.client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                           InstanceType="t3.micro")["Instances"][0]["InstanceId"]


# -- the findings API ------------------------------------------------------------------------------------


def test_sample_findings_one_per_type_listed_got_and_archived(gd, detector):
    gd.create_sample_findings(DetectorId=detector, FindingTypes=[])
    got = findings(gd, detector)
    assert sorted(f["Type"] for f in got) == sorted(FINDING_TYPES)
    for f in got:
        assert f["SchemaVersion"] == "2.0" and f["Severity"] == FINDING_TYPES[f["Type"]]["severity"]
        assert f["Arn"].endswith(f"detector/{detector}/finding/{f['Id']}")
        assert json.loads(f["Service"]["AdditionalInfo"]["Value"]) == {"sample": True}
        assert f["Service"]["DetectorId"] == detector and f["Service"]["Count"] == 1
    mining = next(f for f in got if f["Type"] == MINING)
    assert mining["Resource"]["ResourceType"] == "Instance" and mining["Service"]["ResourceRole"] == "ACTOR"
    stealth = next(f for f in got if f["Type"] == STEALTH)
    assert stealth["Resource"]["ResourceType"] == "AccessKey" and stealth["Severity"] == 2.0

    gd.archive_findings(DetectorId=detector, FindingIds=[mining["Id"]])
    current = findings(gd, detector, **{"service.archived": {"Eq": ["false"]}})
    assert mining["Id"] not in {f["Id"] for f in current} and len(current) == len(FINDING_TYPES) - 1
    archived = findings(gd, detector, **{"service.archived": {"Eq": ["true"]}})
    assert [f["Id"] for f in archived] == [mining["Id"]] and archived[0]["Service"]["Archived"] is True
    gd.unarchive_findings(DetectorId=detector, FindingIds=[mining["Id"]])
    assert not findings(gd, detector, **{"service.archived": {"Eq": ["true"]}})


def test_criteria_sort_and_pages(gd, detector):
    gd.create_sample_findings(DetectorId=detector, FindingTypes=[MINING, STEALTH, "Recon:EC2/PortProbeUnprotectedPort"])
    assert [f["Type"] for f in findings(gd, detector, type={"Eq": [STEALTH]})] == [STEALTH]
    high = findings(gd, detector, severity={"Gte": 7})
    assert [f["Type"] for f in high] == [MINING]
    assert len(findings(gd, detector, severity={"Lt": 7})) == 2
    on_instance = findings(gd, detector, **{"resource.instanceDetails.instanceId": {"Eq": ["i-99999999"]}})
    assert sorted(f["Type"] for f in on_instance) == sorted([MINING, "Recon:EC2/PortProbeUnprotectedPort"])
    now_ms = int(time.time() * 1000)
    assert len(findings(gd, detector, updatedAt={"Gte": now_ms - 60_000})) == 3
    assert not findings(gd, detector, updatedAt={"GreaterThan": now_ms + 60_000})

    ordered = gd.list_findings(DetectorId=detector, SortCriteria={"AttributeName": "severity", "OrderBy": "DESC"})
    first = gd.get_findings(DetectorId=detector, FindingIds=ordered["FindingIds"][:1])["Findings"][0]
    assert first["Type"] == MINING
    page = gd.list_findings(DetectorId=detector, MaxResults=2)
    assert len(page["FindingIds"]) == 2 and page["NextToken"]
    rest = gd.list_findings(DetectorId=detector, MaxResults=2, NextToken=page["NextToken"])
    assert len(rest["FindingIds"]) == 1 and rest["NextToken"] == ""
    stats = gd.get_findings_statistics(DetectorId=detector, FindingStatisticTypes=["COUNT_BY_SEVERITY"])
    assert stats["FindingStatistics"]["CountBySeverity"] == {"8.0": 1, "2.0": 2}


def test_unknown_detector_and_unknown_type_are_bad_requests(gd, detector):
    with pytest.raises(ClientError) as missing:
        gd.list_findings(DetectorId="0" * 32)
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert missing.value.response["Error"]["Code"] == "BadRequestException"
    assert "not owned by the current account" in missing.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as unknown:
        gd.create_sample_findings(DetectorId=detector, FindingTypes=["Nope:EC2/Nothing"])
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- events ----------------------------------------------------------------------------------------------


def test_sample_finding_event_reaches_a_queue_through_a_rule(aws, gd, detector):
    url = finding_queue(aws, {"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"],
                              "detail": {"type": [MINING]}})
    gd.create_sample_findings(DetectorId=detector, FindingTypes=[MINING, STEALTH])
    event = wait_events(aws, url)[0]
    assert event["source"] == "aws.guardduty" and event["account"] == aws.account_id and event["region"] == REGION
    detail = event["detail"]
    assert detail["type"] == MINING and detail["severity"] == 8.0
    assert detail["service"]["additionalInfo"] == {"sample": True} and detail["service"]["archived"] is False
    assert detail["id"] == findings(gd, detector, type={"Eq": [MINING]})[0]["Id"]
    assert not drained(aws, url), "only the rule's finding type is delivered"


def test_stop_logging_raises_the_stealth_finding_naming_the_caller(aws, gd, detector):
    ct, sns = aws.client("cloudtrail"), aws.client("sns")
    name = f"trail-{suffix()}"
    aws.client("s3").create_bucket(Bucket=f"{name}-logs")
    ct.create_trail(Name=name, S3BucketName=f"{name}-logs")
    ct.start_logging(Name=name)
    # GuardDuty -> rule -> SNS topic -> SQS queue, the way an alerting stack is wired.
    topic = sns.create_topic(Name=f"gd-{name}")["TopicArn"]
    queue = aws.client("sqs").create_queue(QueueName=f"gd-{name}")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:{aws.account_id}:gd-{name}",
                  Attributes={"RawMessageDelivery": "true"})
    aws.client("events").put_rule(Name=f"gd-{name}", EventPattern=json.dumps(
        {"source": ["aws.guardduty"], "detail": {"type": [STEALTH]}}))
    aws.client("events").put_targets(Rule=f"gd-{name}", Targets=[{"Id": "t", "Arn": topic}])

    ct.stop_logging(Name=name)  # the only trail this test logs with: GuardDuty does not need one
    detail = wait_events(aws, queue)[0]["detail"]
    assert detail["type"] == STEALTH and "sample" not in detail["service"]["additionalInfo"]
    assert detail["resource"]["accessKeyDetails"]["userName"] == "gameday-operator"
    assert detail["resource"]["accessKeyDetails"]["userType"] == "IAMUser"
    call = detail["service"]["action"]["awsApiCallAction"]
    assert call["api"] == "StopLogging" and call["serviceName"] == "cloudtrail.amazonaws.com"
    assert call["affectedResources"] == {"AWS::CloudTrail::Trail": f"arn:aws:cloudtrail:{REGION}:{aws.account_id}"
                                                                   f":trail/{name}"}
    assert name in detail["title"]

    ct.delete_trail(Name=name)  # same caller, same finding type: GuardDuty counts it on the same finding
    update = wait_events(aws, queue)[0]["detail"]  # at once under instant; the publishing frequency under aws
    assert update["id"] == detail["id"] and update["service"]["count"] == 2
    assert update["service"]["action"]["awsApiCallAction"]["api"] == "DeleteTrail"
    assert [f["Service"]["Count"] for f in findings(gd, detector, type={"Eq": [STEALTH]})] == [2]


def test_suspended_or_deleted_detector_produces_nothing(aws, gd, detector):
    url = finding_queue(aws, {"source": ["aws.guardduty"]})
    gd.update_detector(DetectorId=detector, Enable=False)
    gd.create_sample_findings(DetectorId=detector, FindingTypes=[MINING])
    ct = aws.client("cloudtrail")
    name = f"trail-{suffix()}"
    aws.client("s3").create_bucket(Bucket=f"{name}-logs")
    ct.create_trail(Name=name, S3BucketName=f"{name}-logs")
    ct.start_logging(Name=name)
    ct.stop_logging(Name=name)
    assert hook(aws, "guardduty-finding", type=MINING, instance=instance(aws)) == (200, {"finding": None})
    assert not drained(aws, url) and not findings(gd, detector)

    gd.update_detector(DetectorId=detector, Enable=True)
    gd.create_sample_findings(DetectorId=detector, FindingTypes=[MINING])
    assert len(findings(gd, detector)) == 1 and len(wait_events(aws, url)) == 1
    gd.delete_detector(DetectorId=detector)
    ct.start_logging(Name=name)
    ct.stop_logging(Name=name)
    assert not drained(aws, url)
    with pytest.raises(ClientError):
        gd.list_findings(DetectorId=detector)
    again = gd.create_detector(Enable=True)["DetectorId"]
    try:
        assert not findings(gd, again), "a new detector starts without the old one's findings"
    finally:
        gd.delete_detector(DetectorId=again)


# -- test hooks ------------------------------------------------------------------------------------------


def test_guardduty_finding_hook_on_an_instance(aws, gd, detector):
    url = finding_queue(aws, {"source": ["aws.guardduty"], "detail": {"type": [MINING]}})
    target = instance(aws)
    status, body = hook(aws, "guardduty-finding", account=aws.account_id, region=REGION, type=MINING,
                        instance=target)
    assert status == 200 and body["finding"]["resource"]["instanceDetails"]["instanceId"] == target
    details = body["finding"]["resource"]["instanceDetails"]
    assert details["instanceType"] == "t3.micro" and details["networkInterfaces"][0]["privateIpAddress"]
    event = wait_events(aws, url)[0]
    assert event["detail"]["id"] == body["finding"]["id"] and "sample" not in event["detail"]["service"]
    got = findings(gd, detector, **{"resource.instanceDetails.instanceId": {"Eq": [target]}})
    assert [f["Type"] for f in got] == [MINING]
    assert got[0]["Service"]["ResourceRole"] == "ACTOR"
    assert got[0]["Service"]["Action"]["ActionType"] == "NETWORK_CONNECTION"

    assert hook(aws, "guardduty-finding", type=MINING, instance="i-0000000000000dead")[0] == 404
    assert hook(aws, "guardduty-finding", type="Nope:EC2/Nothing", instance=target)[0] == 400
    elsewhere = aws._session.client("ec2", region_name="eu-west-1", endpoint_url=aws.endpoint_url)
    far = elsewhere.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert hook(aws, "guardduty-finding", region="eu-west-1", type=MINING, instance=far) == (200, {"finding": None}), \
        "no detector in the region: no finding"


def test_new_findings_wait_five_minutes_and_updates_the_publishing_frequency(aws, gd, detector):
    """Under the aws profile the delays are AWS's: 5 minutes for a new finding, the detector's frequency after."""
    waits: list[float] = []
    gd.update_detector(DetectorId=detector, FindingPublishingFrequency="FIFTEEN_MINUTES")
    timed = Findings(enqueue=lambda kind, work, delay_aws=0.0: waits.append(delay_aws), delay=lambda s: s,
                     put_event=lambda event, bus: None)
    target = instance(aws)
    timed.raise_finding(aws.account_id, REGION, MINING, instance_id=target)
    timed.raise_finding(aws.account_id, REGION, MINING, instance_id=target)  # rides in the pending event
    assert waits == [300.0]
    timed._publish(detector, timed.findings(detector)[0]["id"])
    timed.raise_finding(aws.account_id, REGION, MINING, instance_id=target)
    assert waits == [300.0, 900.0] and timed.findings(detector)[0]["service"]["count"] == 3


def test_inspector_finding_hook(aws):
    url = finding_queue(aws, {"source": ["aws.inspector2"], "detail-type": ["Inspector2 Finding"]})
    target = instance(aws)
    args = dict(region=REGION, instance=target, cve="CVE-2023-0286", severity="CRITICAL", package="openssl")
    assert hook(aws, "inspector-finding", **args) == (200, {"finding": None}), "EC2 scanning is off"
    aws.client("inspector2").enable(accountIds=[aws.account_id], resourceTypes=["EC2"])
    status, body = hook(aws, "inspector-finding", **args)
    assert status == 200 and body["finding"]["packageVulnerabilityDetails"]["vulnerabilityId"] == "CVE-2023-0286"

    event = wait_events(aws, url)[0]
    assert event["resources"] == [target] and event["detail"]["severity"] == "CRITICAL"
    assert event["detail"]["type"] == "PACKAGE_VULNERABILITY" and event["detail"]["title"] == "CVE-2023-0286 - openssl"
    inspector = aws.client("inspector2")
    listed = inspector.list_findings(filterCriteria={"resourceId": [{"comparison": "EQUALS", "value": target}]})
    assert [f["findingArn"] for f in listed["findings"]] == [body["finding"]["findingArn"]]
    found = listed["findings"][0]
    assert found["resources"][0]["type"] == "AWS_EC2_INSTANCE" and found["inspectorScore"] >= 9.0
    assert found["packageVulnerabilityDetails"]["vulnerablePackages"][0]["name"] == "openssl"
    assert not inspector.list_findings(filterCriteria={"severity": [{"comparison": "EQUALS", "value": "LOW"}],
                                                       "resourceId": [{"comparison": "EQUALS", "value": target}]}
                                       )["findings"]
