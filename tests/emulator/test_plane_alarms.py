"""The plane's logs and alarms over HTTP: metric filters emit, alarms evaluate, actions notify, history is kept."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.poll import wait_for

ACCOUNT = "123456789012"
CIS_4_5 = ("{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || "
           "($.eventName = StartLogging) || ($.eventName = StopLogging) }")


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings(time_scale=600))
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture
def chain(aws):
    """A log group with a CIS 4.5 metric filter, an alarm on it, and a topic with an SQS inbox."""
    suffix = uuid.uuid4().hex[:8]
    logs, cw, sns, sqs = (aws.client(s) for s in ("logs", "cloudwatch", "sns", "sqs"))
    group = f"/gameday-test/{suffix}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    metric = f"cfg_changes_{suffix}"
    logs.put_metric_filter(logGroupName=group, filterName=f"f-{suffix}", filterPattern=CIS_4_5,
                           metricTransformations=[{"metricName": metric, "metricNamespace": "CISBenchmark",
                                                   "metricValue": "1"}])
    topic = sns.create_topic(Name=f"alarms-{suffix}")["TopicArn"]
    url = sqs.create_queue(QueueName=f"inbox-{suffix}")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:us-east-1:{ACCOUNT}:inbox-{suffix}")
    alarm = f"alarm-{suffix}"
    cw.put_metric_alarm(AlarmName=alarm, MetricName=metric, Namespace="CISBenchmark", Statistic="Sum", Period=300,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                        TreatMissingData="notBreaching", AlarmActions=[topic])

    def write(event_name: str) -> None:
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": int(time.time() * 1000), "message": json.dumps({"eventName": event_name})}])

    def inbox() -> list[dict]:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in msgs]

    return {"alarm": alarm, "write": write, "inbox": inbox, "metric": metric, "group": group}


def state(aws, alarm: str) -> str:
    return aws.client("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]


def test_a_new_alarm_leaves_insufficient_data_for_ok_when_missing_data_is_not_breaching(aws, chain):
    assert wait_for(lambda: state(aws, chain["alarm"]) == "OK" or None, timeout=5, interval=0.05, describe="OK")


def test_matching_record_fires_the_alarm_and_notifies_in_aws_format(aws, chain):
    chain["write"]("StopLogging")
    got = wait_for(lambda: chain["inbox"]() or None, timeout=5, interval=0.02, describe="alarm notification")
    assert got, "no alarm notification reached the inbox"
    envelope = got[0]
    assert envelope["Subject"].startswith(f'ALARM: "{chain["alarm"]}" in US East (N. Virginia)')
    message = json.loads(envelope["Message"])
    assert message["AlarmName"] == chain["alarm"] and message["NewStateValue"] == "ALARM"
    assert message["Trigger"]["MetricName"] == chain["metric"] and message["Trigger"]["Threshold"] == 1.0
    assert state(aws, chain["alarm"]) == "ALARM"


def test_non_matching_record_emits_nothing(aws, chain):
    chain["write"]("DescribeTrails")
    aws.plane.drain()
    points = aws.client("cloudwatch").get_metric_statistics(
        Namespace="CISBenchmark", MetricName=chain["metric"], StartTime=time.time() - 600, EndTime=time.time() + 60,
        Period=60, Statistics=["Sum"])["Datapoints"]
    assert points == []


def test_alarm_returns_to_ok_when_its_period_passes_without_data(aws, chain):
    chain["write"]("StopLogging")
    assert wait_for(lambda: state(aws, chain["alarm"]) == "ALARM" or None, timeout=5, interval=0.02, describe="ALARM")
    # 300 s periods at scale 600 last 0.5 wall seconds.
    assert wait_for(lambda: state(aws, chain["alarm"]) == "OK" or None, timeout=5, interval=0.05, describe="OK")


def test_history_records_state_updates_and_actions(aws, chain):
    chain["write"]("DeleteTrail")
    wait_for(lambda: chain["inbox"]() or None, timeout=5, interval=0.02, describe="alarm notification")
    items = aws.client("cloudwatch").describe_alarm_history(AlarmName=chain["alarm"])["AlarmHistoryItems"]
    kinds = {i["HistoryItemType"] for i in items}
    assert {"StateUpdate", "Action"} <= kinds
    assert any(i["HistorySummary"].endswith("to ALARM") for i in items)


def test_disabled_actions_change_state_but_notify_nobody(aws, chain):
    aws.client("cloudwatch").disable_alarm_actions(AlarmNames=[chain["alarm"]])
    chain["write"]("StopLogging")
    assert wait_for(lambda: state(aws, chain["alarm"]) == "ALARM" or None, timeout=5, interval=0.02, describe="ALARM")
    aws.plane.drain()
    assert chain["inbox"]() == []


def test_put_metric_data_drives_alarms_too(aws, chain):
    aws.client("cloudwatch").put_metric_data(Namespace="CISBenchmark", MetricData=[
        {"MetricName": chain["metric"], "Value": 3.0}])
    assert wait_for(lambda: state(aws, chain["alarm"]) == "ALARM" or None, timeout=5, interval=0.02, describe="ALARM")


def test_invalid_filter_pattern_is_refused_like_aws(aws, chain):
    with pytest.raises(ClientError) as err:
        aws.client("logs").put_metric_filter(logGroupName=chain["group"], filterName="broken",
                                             filterPattern='{ $.eventName = ', metricTransformations=[
                                                 {"metricName": "m", "metricNamespace": "n", "metricValue": "1"}])
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "position" in err.value.response["Error"]["Message"]


def test_test_metric_filter_is_served(aws):
    resp = aws.client("logs").test_metric_filter(
        filterPattern=CIS_4_5, logEventMessages=[json.dumps({"eventName": "StopLogging"}), '{"eventName": "Get"}'])
    assert [m["eventNumber"] for m in resp["matches"]] == [1]


def test_state_change_event_reaches_eventbridge(aws, chain):
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"alarm-changes-{uuid.uuid4().hex[:8]}"
    aws.client("events").put_rule(Name=rule, EventPattern=json.dumps({
        "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [{"suffix": f":{chain['alarm']}"}]}))
    aws.client("events").put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    chain["write"]("StopLogging")

    def alarm_event():
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        events = [json.loads(m["Body"]) for m in msgs]
        return [e for e in events if e["detail"]["state"]["value"] == "ALARM"] or None

    got = wait_for(alarm_event, timeout=5, interval=0.02, describe="state change event")
    assert got and got[0]["detail"]["alarmName"] == chain["alarm"]


def test_metric_values_dimensions_and_default_value(aws):
    logs, cw = aws.client("logs"), aws.client("cloudwatch")
    group, ns = f"/values-{uuid.uuid4().hex[:8]}", f"ns-{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    logs.put_metric_filter(logGroupName=group, filterName="bytes", filterPattern="{ $.status = 200 }",
                           metricTransformations=[{"metricName": "bytes", "metricNamespace": ns,
                                                   "metricValue": "$.bytes", "defaultValue": 0.0,
                                                   "dimensions": {"user": "$.user"}, "unit": "Bytes"}])

    def put(*messages: dict) -> None:
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": int(time.time() * 1000), "message": json.dumps(m)} for m in messages])

    put({"status": 200, "bytes": 100, "user": "alice"}, {"status": 200, "bytes": 50, "user": "alice"},
        {"status": 500, "bytes": 999, "user": "alice"})
    put({"status": 404, "bytes": 7, "user": "bob"})
    aws.plane.drain()
    window = dict(StartTime=time.time() - 3600, EndTime=time.time() + 3600, Period=60)
    alice = cw.get_metric_statistics(Namespace=ns, MetricName="bytes", Statistics=["Sum", "SampleCount"],
                                     Dimensions=[{"Name": "user", "Value": "alice"}], **window)["Datapoints"]
    assert sum(p["Sum"] for p in alice) == 150 and sum(p["SampleCount"] for p in alice) == 2
    assert {p.get("Unit") for p in alice} == {"Bytes"}
    # The batch with no match reported the default value, without dimensions (read from the plane: moto's
    # GetMetricStatistics without dimensions returns every dimension set, unlike AWS).
    from harness.emulator import motoadapter

    default = motoadapter.metric_points(ACCOUNT, "us-east-1", ns, "bytes", {}, since=0)
    assert [value for _, value in default] == [0.0]


def test_subscription_filter_delivers_only_matching_events(aws):
    import io
    import zipfile

    iam, lam, logs, sqs = (aws.client(s) for s in ("iam", "lambda", "logs", "sqs"))
    suffix = uuid.uuid4().hex[:8]
    url = sqs.create_queue(QueueName=f"sub-{suffix}")["QueueUrl"]
    role = iam.create_role(RoleName=f"sub-{suffix}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))["Role"]["Arn"]
    source = f'''
import base64, gzip, json, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    data = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    sqs.send_message(QueueUrl="{url}", MessageBody=json.dumps([e["message"] for e in data["logEvents"]]))
'''
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", source)
    fn = lam.create_function(FunctionName=f"sub-{suffix}", Runtime="python3.12", Role=role, Handler="app.handler",
                             Code={"ZipFile": buf.getvalue()})["FunctionArn"]
    group = f"/sub-{suffix}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    logs.put_subscription_filter(logGroupName=group, filterName="errors", filterPattern="ERROR",
                                 destinationArn=fn)
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": int(time.time() * 1000), "message": m} for m in ("ERROR disk full", "INFO fine", "ERROR again")])

    def delivered():
        msgs = sqs.receive_message(QueueUrl=url).get("Messages", [])
        return json.loads(msgs[0]["Body"]) if msgs else None

    assert wait_for(delivered, timeout=15, interval=0.05, describe="subscription delivery") == [
        "ERROR disk full", "ERROR again"]


def test_put_metric_filter_replaces_a_same_named_filter_as_on_aws(aws, chain):
    logs = aws.client("logs")
    name = logs.describe_metric_filters(logGroupName=chain["group"])["metricFilters"][0]["filterName"]
    logs.put_metric_filter(logGroupName=chain["group"], filterName=name, filterPattern="{ $.eventName = Nothing }",
                           metricTransformations=[{"metricName": chain["metric"], "metricNamespace": "CISBenchmark",
                                                   "metricValue": "1"}])
    aws.plane.drain()
    found = logs.describe_metric_filters(logGroupName=chain["group"])["metricFilters"]
    assert [f["filterPattern"] for f in found] == ["{ $.eventName = Nothing }"]


def test_putting_an_existing_alarm_again_keeps_its_state_and_deleting_it_forgets_it(aws, chain):
    # PutMetricAlarm's reference: an update leaves the state as it was (moto stores a fresh alarm either way).
    cw, alarm = aws.client("cloudwatch"), chain["alarm"]
    settings = {k: v for k, v in cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0].items()
                if k in ("MetricName", "Namespace", "Statistic", "Period", "EvaluationPeriods", "Threshold",
                         "ComparisonOperator", "TreatMissingData", "AlarmActions")}
    chain["write"]("StopLogging")
    assert wait_for(lambda: chain["inbox"]() or None, timeout=5, interval=0.02, describe="the first notification")
    cw.put_metric_alarm(AlarmName=alarm, AlarmDescription="updated", **settings)
    history = wait_for(lambda: [i for i in cw.describe_alarm_history(AlarmName=alarm)["AlarmHistoryItems"]
                                if i["HistoryItemType"] == "ConfigurationUpdate"] or None,
                       timeout=5, interval=0.02, describe="the update in the alarm's history")
    assert history and state(aws, alarm) == "ALARM"
    assert chain["inbox"]() == [], "an update is not a transition: no second notification"
    cw.delete_alarms(AlarmNames=[alarm])
    cw.put_metric_alarm(AlarmName=alarm, **settings)  # a new alarm: it starts over and sees the datapoint afresh
    assert wait_for(lambda: chain["inbox"]() or None, timeout=5, interval=0.02, describe="the new alarm's ALARM")
