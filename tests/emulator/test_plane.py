"""The monitoring plane end to end over HTTP: recorder, event history, EventBridge targets, Lambda."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
import zipfile

import pytest
from botocore.exceptions import ClientError

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.emulator.server import EmbeddedServer
from harness.poll import wait_for

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings())
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture
def trail(aws):
    """A logging trail with its own bucket and log group; removed afterwards."""
    name = f"trail-{uuid.uuid4().hex[:8]}"
    bucket = f"{name}-logs"
    aws.client("s3").create_bucket(Bucket=bucket)
    aws.client("logs").create_log_group(logGroupName=f"/{name}")
    group_arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/{name}:*"
    aws.client("cloudtrail").create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=True,
                                          CloudWatchLogsLogGroupArn=group_arn,
                                          CloudWatchLogsRoleArn=f"arn:aws:iam::{ACCOUNT}:role/ct")
    aws.client("cloudtrail").start_logging(Name=name)
    yield name
    try:
        aws.client("cloudtrail").delete_trail(Name=name)
    except ClientError:
        pass
    aws.plane.drain()


def logged(aws, trail: str) -> list[dict]:
    aws.plane.drain()
    events = aws.client("logs").filter_log_events(logGroupName=f"/{trail}")["events"]
    return [json.loads(e["message"]) for e in events]


def names(records: list[dict]) -> list[str]:
    return [r["eventName"] for r in records]


def test_stop_logging_is_recorded_and_later_calls_are_not(aws, trail):
    ct = aws.client("cloudtrail")
    ct.add_tags(ResourceId=trail, TagsList=[{"Key": "before", "Value": "stop"}])
    ct.stop_logging(Name=trail)
    ct.add_tags(ResourceId=trail, TagsList=[{"Key": "after", "Value": "stop"}])
    got = names(logged(aws, trail))
    assert "StopLogging" in got
    assert got.count("AddTags") == 1, got
    ct.start_logging(Name=trail)
    ct.add_tags(ResourceId=trail, TagsList=[{"Key": "after", "Value": "start"}])
    got = names(logged(aws, trail))
    assert got.count("AddTags") == 2 and "StartLogging" in got


def test_selectors_excluding_management_record_themselves_then_nothing(aws, trail):
    ct = aws.client("cloudtrail")
    ct.put_event_selectors(TrailName=trail, EventSelectors=[
        {"ReadWriteType": "All", "IncludeManagementEvents": False}])
    ct.add_tags(ResourceId=trail, TagsList=[{"Key": "k", "Value": "v"}])
    got = names(logged(aws, trail))
    assert "PutEventSelectors" in got and "AddTags" not in got


def test_write_only_selector_skips_read_only_calls(aws, trail):
    ct = aws.client("cloudtrail")
    ct.put_event_selectors(TrailName=trail, EventSelectors=[
        {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}])
    ct.describe_trails()
    ct.add_tags(ResourceId=trail, TagsList=[{"Key": "k", "Value": "v"}])
    got = names(logged(aws, trail))
    assert "AddTags" in got and "DescribeTrails" not in got


def test_record_has_the_callers_identity_and_real_keys(aws, trail):
    aws.client("cloudtrail").stop_logging(Name=trail)
    record = next(r for r in logged(aws, trail) if r["eventName"] == "StopLogging")
    assert record["userIdentity"]["type"] == "IAMUser"
    assert record["userIdentity"]["userName"] == "gameday-operator"
    assert record["requestParameters"] == {"name": trail}
    assert record["responseElements"] is None
    assert record["recipientAccountId"] == ACCOUNT and record["awsRegion"] == "us-east-1"


def test_failed_calls_carry_error_code_and_message(aws, trail):
    with pytest.raises(ClientError):
        aws.client("cloudtrail").stop_logging(Name="no-such-trail")
    record = next(r for r in logged(aws, trail) if r["eventName"] == "StopLogging")
    assert record["errorCode"] and "no-such-trail" in record["errorMessage"]
    assert record["responseElements"] is None


def test_event_history_keeps_management_events_without_any_trail(aws):
    aws.client("sns").create_topic(Name="history-probe")
    aws.plane.drain()
    events = aws.client("cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateTopic"}])["Events"]
    assert events and json.loads(events[0]["CloudTrailEvent"])["eventName"] == "CreateTopic"
    assert events[0]["Username"] == "gameday-operator"


def test_lookup_events_rejects_two_attributes(aws):
    with pytest.raises(ClientError) as err:
        aws.client("cloudtrail").lookup_events(LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "a"}, {"AttributeKey": "Username", "AttributeValue": "b"}])
    assert err.value.response["Error"]["Code"] == "InvalidLookupAttributesException"


@pytest.fixture
def inbox(aws):
    """A topic with an SQS subscriber; returns (topic_arn, read())."""
    sns, sqs = aws.client("sns"), aws.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    topic = sns.create_topic(Name=f"topic-{suffix}")["TopicArn"]
    url = sqs.create_queue(QueueName=f"inbox-{suffix}")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:us-east-1:{ACCOUNT}:inbox-{suffix}")

    def read() -> list[dict]:
        aws.plane.drain()
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(json.loads(m["Body"])["Message"]) for m in msgs]

    return topic, read


def rule_to(aws, pattern: dict, targets: list[dict], state: str = "ENABLED") -> str:
    name = f"rule-{uuid.uuid4().hex[:8]}"
    events = aws.client("events")
    events.put_rule(Name=name, EventPattern=json.dumps(pattern), State=state)
    events.put_targets(Rule=name, Targets=targets)
    return name


def test_cloudtrail_event_reaches_sns_through_a_rule(aws, trail, inbox):
    topic, read = inbox
    rule_to(aws, {"source": ["aws.cloudtrail"], "detail": {"eventName": ["StopLogging"],
                                                           "requestParameters": {"name": [trail]}}},
            [{"Id": "t", "Arn": topic}])
    aws.client("cloudtrail").stop_logging(Name=trail)
    got = read()
    assert len(got) == 1
    assert got[0]["detail-type"] == "AWS API Call via CloudTrail"
    assert got[0]["detail"]["eventName"] == "StopLogging"


def test_no_event_reaches_eventbridge_once_logging_stopped(aws, trail, inbox):
    topic, read = inbox
    # Only this trail's AddTags: a trail another module left logging in this process would record it too.
    rule_to(aws, {"source": ["aws.cloudtrail"], "detail": {"eventName": ["AddTags"],
                                                           "requestParameters": {"resourceId": [trail]}}},
            [{"Id": "t", "Arn": topic}])
    aws.client("cloudtrail").stop_logging(Name=trail)
    aws.client("cloudtrail").add_tags(ResourceId=trail, TagsList=[{"Key": "k", "Value": "v"}])
    assert read() == []


def test_disabled_rule_does_not_deliver(aws, trail, inbox):
    topic, read = inbox
    rule_to(aws, {"source": ["aws.cloudtrail"], "detail": {"eventName": ["StopLogging"]}},
            [{"Id": "t", "Arn": topic}], state="DISABLED")
    aws.client("cloudtrail").stop_logging(Name=trail)
    assert read() == []


def test_read_only_events_need_the_all_management_events_state(aws, trail, inbox):
    topic, read = inbox
    pattern = {"source": ["aws.cloudtrail"], "detail": {"eventName": ["GetTrailStatus"]}}
    rule_to(aws, pattern, [{"Id": "t", "Arn": topic}])
    aws.client("cloudtrail").get_trail_status(Name=trail)
    assert read() == []
    rule_to(aws, pattern, [{"Id": "t", "Arn": topic}], state="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
    aws.client("cloudtrail").get_trail_status(Name=trail)
    assert len(read()) == 1


def test_failing_target_neither_blocks_nor_duplicates_the_others(aws, inbox):
    topic, read = inbox
    missing_fn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:does-not-exist"
    rule_to(aws, {"source": ["custom.test"]}, [{"Id": "bad", "Arn": missing_fn}, {"Id": "good", "Arn": topic}])
    resp = aws.client("events").put_events(Entries=[
        {"Source": "custom.test", "DetailType": "probe", "Detail": json.dumps({"n": 1})}])
    assert resp["FailedEntryCount"] == 0
    got = read()
    assert [g["detail"] for g in got] == [{"n": 1}]
    failed = [d for d in aws.plane.bus.deliveries if d.target_arn == missing_fn]
    assert failed and not failed[-1].ok


def test_put_events_validates_entries_like_aws(aws):
    resp = aws.client("events").put_events(Entries=[
        {"Source": "s", "DetailType": "d", "Detail": "not json"}, {"Source": "s", "DetailType": "d", "Detail": "{}"}])
    assert resp["FailedEntryCount"] == 1
    assert resp["Entries"][0]["ErrorCode"] == "MalformedDetail" and "EventId" in resp["Entries"][1]


def test_input_and_input_path_shape_the_payload(aws, inbox):
    topic, read = inbox
    rule_to(aws, {"source": ["custom.shape"]}, [
        {"Id": "const", "Arn": topic, "Input": json.dumps({"fixed": True})},
        {"Id": "path", "Arn": topic, "InputPath": "$.detail"}])
    aws.client("events").put_events(Entries=[
        {"Source": "custom.shape", "DetailType": "d", "Detail": json.dumps({"x": 2})}])
    got = read()
    assert sorted(json.dumps(g, sort_keys=True) for g in got) == ['{"fixed": true}', '{"x": 2}']


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", textwrap.dedent(source))
    return buf.getvalue()


@pytest.fixture
def function(aws):
    """Deploys a Python function from source; returns its ARN."""
    iam = aws.client("iam")
    role = f"role-{uuid.uuid4().hex[:8]}"
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]

    def deploy(source: str) -> str:
        return aws.client("lambda").create_function(
            FunctionName=f"fn-{uuid.uuid4().hex[:8]}", Runtime="python3.12", Role=role_arn, Handler="app.handler",
            Code={"ZipFile": _zip(source)}, Timeout=10)["FunctionArn"]

    return deploy


def test_invoke_runs_the_handler_against_the_endpoint(aws, function):
    arn = function("""
        import os, boto3
        sns = boto3.client("sns")
        def handler(event, context):
            return {"endpoint": os.environ["AWS_ENDPOINT_URL"], "topic": sns.create_topic(Name=event["name"])["TopicArn"]}
    """)
    resp = aws.client("lambda").invoke(FunctionName=arn, Payload=json.dumps({"name": "made-by-lambda"}))
    out = json.loads(resp["Payload"].read())
    assert out["endpoint"] == aws.endpoint_url
    assert out["topic"].endswith(":made-by-lambda")
    aws.plane.drain()
    events = aws.client("cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateTopic"}])["Events"]
    record = json.loads(events[0]["CloudTrailEvent"])
    assert record["userIdentity"]["type"] == "AssumedRole"


def test_handler_errors_are_returned_logged_and_visible(aws, function):
    arn = function("""
        def handler(event, context):
            raise RuntimeError("remediation exploded")
    """)
    resp = aws.client("lambda").invoke(FunctionName=arn, Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read())["errorMessage"] == "remediation exploded"
    name = arn.rsplit(":", 1)[1]
    log_text = "\n".join(e["message"] for e in aws.client("logs").filter_log_events(
        logGroupName=f"/aws/lambda/{name}")["events"])
    assert "remediation exploded" in log_text
    assert any(e["function"] == name for e in aws.plane.lambda_errors())


def test_eventbridge_invokes_the_function(aws, function, inbox):
    topic, read = inbox
    arn = function(f"""
        import json, boto3
        sns = boto3.client("sns")
        def handler(event, context):
            sns.publish(TopicArn="{topic}", Message=json.dumps({{"seen": event["detail"]}}))
    """)
    rule_to(aws, {"source": ["custom.lambda"]}, [{"Id": "fn", "Arn": arn}])
    aws.client("events").put_events(Entries=[{"Source": "custom.lambda", "DetailType": "d",
                                              "Detail": json.dumps({"k": "v"})}])

    def delivered():
        return read() or None

    got = wait_for(delivered, timeout=10, interval=0.02, describe="lambda-published message")
    assert got == [{"seen": {"k": "v"}}]


def test_calls_from_another_process_are_recorded(aws, trail):
    env = {**os.environ, "AWS_ENDPOINT_URL": aws.endpoint_url, "AWS_ACCESS_KEY_ID": "AKIAOTHERPROCESS0001",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run([sys.executable, "-c", f"import boto3; boto3.client('cloudtrail').stop_logging(Name='{trail}')"],
                   env=env, check=True, timeout=60)
    record = next(r for r in logged(aws, trail) if r["eventName"] == "StopLogging")
    assert record["userIdentity"]["accessKeyId"] == "AKIAOTHERPROCESS0001"


def test_endpoint_refuses_non_loopback_addresses():
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedServer(host="0.0.0.0")


def test_a_throttled_function_holds_its_events_until_it_may_run_again(aws, function, inbox):
    topic, read = inbox
    arn = function(f"""
        import json, boto3
        sns = boto3.client("sns")
        def handler(event, context):
            sns.publish(TopicArn="{topic}", Message=json.dumps({{"ran": event["detail"]}}))
    """)
    lam = aws.client("lambda")
    lam.put_function_concurrency(FunctionName=arn, ReservedConcurrentExecutions=0)
    rule_to(aws, {"source": ["custom.throttle"]}, [{"Id": "fn", "Arn": arn}])
    aws.client("events").put_events(Entries=[{"Source": "custom.throttle", "DetailType": "d",
                                              "Detail": json.dumps({"n": 1})}])
    with pytest.raises(ClientError) as err:  # a synchronous invoke is refused outright
        lam.invoke(FunctionName=arn, Payload=b"{}")
    assert err.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert lam.invoke(FunctionName=arn, InvocationType="Event", Payload=json.dumps({"detail": {"n": 2}}).encode())[
        "StatusCode"] == 202
    assert read() == []  # held, not run and not lost
    lam.delete_function_concurrency(FunctionName=arn)
    got = []
    wait_for(lambda: got.extend(read()) or (len(got) >= 2 or None), timeout=10, interval=0.02,
             describe="held events run once the function may run")
    assert sorted(json.dumps(g, sort_keys=True) for g in got) == ['{"ran": {"n": 1}}', '{"ran": {"n": 2}}']
