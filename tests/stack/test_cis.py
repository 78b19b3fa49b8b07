"""CIS monitoring controls 4.1-4.15 and the alarm-tampering rule: desired state, deploy, drift, sabotage, pattern."""

import json

import pytest
import requests
from cis_state import ACCOUNT, REGION, Clients, cis_state, desired_cis_state

from harness.stack.deploy import deploy, teardown
from harness.stack.desired import CIS_CONTROLS_FILE, StackOutputs, desired_state

CONTROL_IDS = [f"4.{n}" for n in range(1, 16)]
CIS = json.loads(CIS_CONTROLS_FILE.read_text())


def _variant(sabotage=None):
    return desired_state(account_id=ACCOUNT, region=REGION, sabotage=sabotage)


@pytest.fixture(scope="module")
def stack(moto_url):
    """One deployed reference stack shared by this module; tests that change it leave it converged again."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    client = Clients(moto_url)
    desired = _variant()
    report = deploy(client, desired)
    return client, desired, report


def test_controls_file_is_the_reference_with_its_source():
    assert CIS["source"].startswith("CIS Amazon Web Services Foundations Benchmark")
    assert [c["id"] for c in CIS["controls"]] == CONTROL_IDS
    assert CIS["alarm"] == {"namespace": "CISBenchmark", "statistic": "Sum", "period": 300, "evaluationPeriods": 1,
                            "threshold": 1, "comparisonOperator": "GreaterThanOrEqualToThreshold"}


def test_desired_filter_and_alarm_per_control():
    desired = _variant()
    assert [c.id for c in desired.controls] == CONTROL_IDS
    for control, source in zip(desired.controls, CIS["controls"], strict=True):
        suffix = source["id"].replace(".", "-")
        assert control.metric_filter.put_params() == {
            "logGroupName": "/gameday/cloudtrail",
            "filterName": f"gameday-cis-{suffix}",
            "filterPattern": source["filterPattern"],
            "metricTransformations": [
                {"metricName": source["metricName"], "metricNamespace": "CISBenchmark", "metricValue": "1"}
            ],
        }
        assert control.alarm.put_params() == {
            "AlarmName": f"gameday-cis-{suffix}-{source['metricName']}",
            "AlarmDescription": f"CIS {source['id']} {source['title']}",
            "ActionsEnabled": True,
            "AlarmActions": [desired.topic.arn],
            "MetricName": source["metricName"],
            "Namespace": "CISBenchmark",
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        }
        assert control.alarm.arn == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{control.alarm.name}"
    first = desired.controls[0]
    assert first.metric_filter.name == "gameday-cis-4-1"
    assert first.alarm.name == "gameday-cis-4-1-unauthorized_api_calls_metric"
    assert first.alarm.description == "CIS 4.1 Unauthorized API calls"


def test_alarm_tampering_pattern():
    desired = _variant()
    ours = [{"prefix": "gameday-cis-"}]
    assert desired.alarms_rule.name == "gameday-alarm-tampering"
    assert desired.alarms_rule.pattern == {
        "detail-type": ["AWS API Call via CloudTrail"],
        "$or": [
            # CloudWatch API calls reach EventBridge with source aws.monitoring (eventSource monitoring.amazonaws.com).
            {"source": ["aws.monitoring"], "detail": {
                "eventName": ["DeleteAlarms", "DisableAlarmActions"], "requestParameters": {"alarmNames": ours}}},
            {"source": ["aws.monitoring"], "detail": {
                "eventName": ["PutMetricAlarm"], "requestParameters": {"alarmName": ours}}},
            {"source": ["aws.logs"], "detail": {
                "eventName": ["DeleteMetricFilter", "PutMetricFilter"],
                "requestParameters": {"logGroupName": ["/gameday/cloudtrail"], "filterName": ours}}},
        ],
    }
    assert all(c.alarm.name.startswith("gameday-cis-") and c.metric_filter.name.startswith("gameday-cis-")
               for c in desired.controls)


def test_patterns_fit_eventbridges_default_quota():
    longest = desired_state(account_id=ACCOUNT, region="ap-southeast-4", prefix="a" * 20)
    for rule in (longest.rule, longest.alarms_rule):
        assert len(json.dumps(rule.pattern)) < 2048


@pytest.mark.parametrize(
    "sabotage, target_ids, muted, has_function",
    [(None, ["security-topic", "remediate"], False, True), ("detection", ["remediate"], True, True),
     ("remediation", ["security-topic"], False, False), ("prevention", ["security-topic", "remediate"], False, True)],
)
def test_desired_sabotage_variants(sabotage, target_ids, muted, has_function):
    desired = _variant(sabotage)
    assert [t.id for t in desired.alarms_rule.targets] == target_ids
    assert (desired.alarms_function is not None) is has_function
    # without detection the alarms stay armed but page a topic nobody reads: CIS-metric scenarios must fail too
    assert (desired.muted_topic is not None) is muted
    if muted:
        assert desired.muted_topic.arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:gameday-security-muted"
    expected_actions = (desired.muted_topic.arn if muted else desired.topic.arn,)
    assert {c.alarm.alarm_actions for c in desired.controls} == {expected_actions}
    assert {c.alarm.actions_enabled for c in desired.controls} == {True}
    assert len(desired.controls) == 15
    if has_function:
        assert {t.id: t.arn for t in desired.alarms_rule.targets}["remediate"] == desired.alarms_function.arn
        assert desired.alarms_function.permission.source_arn == desired.alarms_rule.arn


def test_outputs_name_every_control_and_old_outputs_still_load():
    desired = _variant()
    outputs = desired.outputs()
    assert outputs.alarm_names == {c.id: c.alarm.name for c in desired.controls}
    assert outputs.metric_filter_names["4.15"] == "gameday-cis-4-15"
    assert (outputs.alarms_function_name, outputs.alarms_rule_name) == ("gameday-remediate-alarms",
                                                                        "gameday-alarm-tampering")
    assert StackOutputs.from_json(outputs.to_json()) == outputs
    old = json.loads(outputs.to_json())
    for added in ("alarm_names", "metric_filter_names", "alarms_function_name", "alarms_rule_name"):
        del old[added]
    loaded = StackOutputs.from_json(json.dumps(old))
    assert (loaded.alarm_names, loaded.metric_filter_names, loaded.alarms_function_name) == ({}, {}, None)
    assert _variant("remediation").outputs().alarms_function_name is None
    with pytest.raises(ValueError, match="alarm_names must map CIS control ids to names"):
        StackOutputs.from_json(json.dumps({**old, "alarm_names": ["gameday-cis-4-1"]}))


def test_deploy_creates_every_filter_and_alarm_exactly(stack):
    client, desired, report = stack
    assert report.resources["metric_filters"] == report.resources["alarms"] == "created"
    assert sum(change.startswith("PutMetricFilter ") for change in report.changes) == 15
    # part 5's CPU alarm (deployed before the CIS filters), the fifteen CIS alarms, the chain's on failed deliveries
    assert [c for c in report.changes if c.startswith("PutMetricAlarm ")] == [
        f"PutMetricAlarm {name}" for name in [desired.workload.alarm.name, *(c.alarm.name for c in desired.controls),
                                              "gameday-security-delivery-failures"]]
    assert cis_state(client, desired) == desired_cis_state(desired)
    alarms = client("cloudwatch").describe_alarms(AlarmNamePrefix="gameday-cis-")["MetricAlarms"]
    assert len(alarms) == 15
    assert {a["AlarmDescription"] for a in alarms} == {f"CIS {c['id']} {c['title']}" for c in CIS["controls"]}
    assert report.resources["alarms_function"] == report.resources["alarms_rule"] == "created"
    assert report.outputs.alarm_names == desired.outputs().alarm_names


def _alarm(desired, control_id):
    return next(c.alarm for c in desired.controls if c.id == control_id)


def _filter(desired, control_id):
    return next(c.metric_filter for c in desired.controls if c.id == control_id)


def _put_alarm(client, desired, control_id, **changes):
    client("cloudwatch").put_metric_alarm(**{**_alarm(desired, control_id).put_params(), **changes})


def _drift_converges(client, desired, tampering, expected):
    """Apply each tampering, deploy once, check the report is exactly `expected` and the controls exact again."""
    for tamper in tampering:
        tamper(client, desired)
    assert cis_state(client, desired) != desired_cis_state(desired)

    report = deploy(client, desired)

    assert {k: v for k, v in report.resources.items() if v != "unchanged"} == expected
    assert cis_state(client, desired) == desired_cis_state(desired)
    return report.changes


def test_altered_alarms_and_filters_are_updated_back(stack):
    client, desired, _ = stack
    tampering = [
        lambda c, d: _put_alarm(c, d, "4.3", Threshold=1000000.0),
        lambda c, d: c("cloudwatch").disable_alarm_actions(AlarmNames=[_alarm(d, "4.4").name]),
        lambda c, d: _put_alarm(c, d, "4.5", AlarmActions=[], Period=86400, TreatMissingData="ignore"),
        lambda c, d: c("logs").put_metric_filter(
            **{**_filter(d, "4.10").put_params(), "filterPattern": '{ $.eventName = "NeverCalled" }'}),
    ]
    changes = _drift_converges(client, desired, tampering, {"alarms": "updated", "metric_filters": "updated"})
    assert changes == [
        "PutMetricFilter gameday-cis-4-10 (filterPattern)",
        "PutMetricAlarm gameday-cis-4-3-root_usage_metric (Threshold)",
        "PutMetricAlarm gameday-cis-4-5-cloudtrail_cfg_changes_metric (AlarmActions, Period, TreatMissingData)",
        "EnableAlarmActions gameday-cis-4-4-iam_changes_metric",
    ]


def test_deleted_alarms_and_filters_are_recreated(stack):
    client, desired, _ = stack
    tampering = [
        lambda c, d: c("cloudwatch").delete_alarms(AlarmNames=[_alarm(d, "4.3").name, _alarm(d, "4.15").name]),
        lambda c, d: c("logs").delete_metric_filter(logGroupName=d.log_group.name, filterName="gameday-cis-4-10"),
    ]
    changes = _drift_converges(client, desired, tampering, {"alarms": "created", "metric_filters": "created"})
    assert changes == [
        "PutMetricFilter gameday-cis-4-10",
        "PutMetricAlarm gameday-cis-4-3-root_usage_metric",
        "PutMetricAlarm gameday-cis-4-15-organizations_changes",
    ]


def _targets(client, rule):
    return sorted(t["Id"] for t in client("events").list_targets_by_rule(Rule=rule.name)["Targets"])


def _alarm_actions(client, desired):
    names = [c.alarm.name for c in desired.controls]
    return {tuple(a["AlarmActions"]) for a in client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]}


def _has_function(client, name):
    return name in {f["FunctionName"] for f in client("lambda").list_functions()["Functions"]}


def _delivery_failure_actions(client, desired):
    (alarm,) = client("cloudwatch").describe_alarms(AlarmNames=[desired.delivery_failures_alarm.name])["MetricAlarms"]
    return alarm["AlarmActions"]


def _topics(client):
    """The notification chain's topics (part 5's ops topic is not one of them)."""
    names = (t["TopicArn"].rsplit(":", 1)[1] for t in client("sns").list_topics()["Topics"])
    return sorted(name for name in names if "-security" in name)


def test_sabotage_variants_deploy_exactly_on_a_live_stack(stack):
    client, desired, _ = stack

    silent = _variant("detection")
    report = deploy(client, silent)
    assert _targets(client, desired.alarms_rule) == ["remediate"]
    assert _alarm_actions(client, desired) == {(silent.muted_topic.arn,)}
    assert _topics(client) == ["gameday-security", "gameday-security-fallback", "gameday-security-muted"]
    assert client("sns").list_subscriptions_by_topic(TopicArn=silent.muted_topic.arn)["Subscriptions"] == []
    assert report.resources["muted_topic"] == "created"
    assert report.resources["alarms"] == "updated" and report.resources["alarms_function"] == "updated"
    assert cis_state(client, silent) == desired_cis_state(silent)
    # the chain's own monitors report to the muted topic too, and its tampering rule no longer pages the fallback
    assert _delivery_failure_actions(client, desired) == [silent.muted_topic.arn]
    assert _targets(client, desired.sns_rule) == ["remediate"]
    assert report.resources["sns_function"] == report.resources["sns_rule"] == "updated"

    report = deploy(client, _variant("remediation"))
    assert _targets(client, desired.alarms_rule) == ["security-topic"]
    assert not _has_function(client, desired.names.alarms_function)
    assert report.resources["alarms_function"] == report.resources["alarms_function_role"] == "deleted"
    assert _alarm_actions(client, desired) == {(desired.topic.arn,)}
    assert report.resources["muted_topic"] == "deleted"
    assert _topics(client) == ["gameday-security", "gameday-security-fallback"]
    # the chain's guard stays, reporting only
    assert _has_function(client, desired.names.guard_function) and report.resources["sns_function"] == "updated"
    assert _delivery_failure_actions(client, desired) == [desired.fallback_topic.arn]
    assert _targets(client, desired.sns_rule) == ["fallback-topic", "remediate"]

    report = deploy(client, desired)
    assert report.resources["alarms_function"] == "created"
    assert _targets(client, desired.alarms_rule) == ["remediate", "security-topic"]
    assert cis_state(client, desired) == desired_cis_state(desired)
    assert report.resources["sns_function"] == "updated"


def test_teardown_of_a_silenced_stack_removes_only_its_own_parts(stack):
    client, desired, _ = stack
    # AWS Config allows one recorder per region: a second stack lives in another region (IAM names are shared).
    there = Clients(client.url, region="us-west-2")
    other = desired_state(account_id=ACCOUNT, region="us-west-2", prefix="other", sabotage="detection")
    deploy(there, other)

    report = teardown(there, other)

    # the app-logging part keeps parts 1-3's function log groups; parts 4 and 5's functions never ran here
    assert {k for k, v in report.resources.items() if v != "deleted"} == {
        "infra_function_logs", "classifier_function_logs"}
    assert {"alarms", "metric_filters", "muted_topic", "alarms_function", "alarms_rule", "key", "topic",
            "fallback_topic", "sns_function", "sns_rule", "break_glass_role"} <= set(report.resources)
    assert there("cloudwatch").describe_alarms(AlarmNamePrefix="other-")["MetricAlarms"] == []
    assert _topics(there) == [] and _topics(client) == ["gameday-security", "gameday-security-fallback"]
    assert there("events").list_rules(NamePrefix="other-")["Rules"] == []
    assert client("iam").get_role(RoleName=desired.names.break_glass_role)  # a shared namespace, left alone
    assert cis_state(client, desired) == desired_cis_state(desired)  # the other stack's parts are untouched
    assert set(teardown(there, other).resources.values()) == {"absent"}


def _record(label, event_source, event_name, **request_parameters):
    """A CloudTrail management event as EventBridge's detail carries it, built by hand.

    Shape: the call's parameters in lowerCamelCase under requestParameters, as CloudTrail logs them (the CloudTrail
    sections of the CloudWatch and CloudWatch Logs user guides); alarmNames is a list, as code reading real records
    expects (wwalpha/aws-spotlight, MONITORING_DeleteAlarms.ts). EventBridge's source for CloudWatch API calls is
    aws.monitoring and for CloudWatch Logs aws.logs (EventBridge events reference, events-ref-monitoring/-logs).
    """
    return {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEATTACKER", "accountId": ACCOUNT,
                         "arn": f"arn:aws:iam::{ACCOUNT}:user/attacker", "userName": "attacker"},
        "eventTime": "2025-03-01T12:00:00Z",
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.30",
        "requestParameters": request_parameters,
        "responseElements": None,
        "requestID": label,
        "eventID": f"{label}-event",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }


def test_alarm_rule_matches_real_shaped_tampering_records(stack):
    client, desired, _ = stack
    alarm, metric_filter, group = _alarm(desired, "4.1"), _filter(desired, "4.1"), desired.log_group.name
    monitoring, logs = ("aws.monitoring", "monitoring.amazonaws.com"), ("aws.logs", "logs.amazonaws.com")
    put_alarm = {
        "alarmName": alarm.name, "metricName": alarm.metric_name, "namespace": "CISBenchmark", "statistic": "Sum",
        "period": 300, "evaluationPeriods": 1, "threshold": 1000000.0,
        "comparisonOperator": "GreaterThanOrEqualToThreshold", "actionsEnabled": True,
        "alarmActions": [desired.topic.arn], "treatMissingData": "notBreaching",
    }
    put_filter = {"logGroupName": group, "filterName": metric_filter.name, "filterPattern": '{ $.x = "y" }',
                  "metricTransformations": [{"metricName": metric_filter.metric_name,
                                             "metricNamespace": "CISBenchmark", "metricValue": "1"}]}
    matching = [
        (monitoring, _record("delete-alarms", monitoring[1], "DeleteAlarms", alarmNames=[alarm.name])),
        (monitoring, _record("delete-mixed", monitoring[1], "DeleteAlarms", alarmNames=["billing", alarm.name])),
        (monitoring, _record("disable-actions", monitoring[1], "DisableAlarmActions", alarmNames=[alarm.name])),
        (monitoring, _record("put-alarm", monitoring[1], "PutMetricAlarm", **put_alarm)),
        (logs, _record("delete-filter", logs[1], "DeleteMetricFilter", logGroupName=group,
                       filterName=metric_filter.name)),
        (logs, _record("put-filter", logs[1], "PutMetricFilter", **put_filter)),
    ]
    other = [
        (monitoring, _record("other-delete", monitoring[1], "DeleteAlarms", alarmNames=["billing", "cpu-high"])),
        (monitoring, _record("other-disable", monitoring[1], "DisableAlarmActions", alarmNames=["billing"])),
        (monitoring, _record("other-put", monitoring[1], "PutMetricAlarm", **{**put_alarm, "alarmName": "billing"})),
        (monitoring, _record("enable", monitoring[1], "EnableAlarmActions", alarmNames=[alarm.name])),
        (monitoring, _record("set-state", monitoring[1], "SetAlarmState", alarmName=alarm.name,
                             stateValue="OK", stateReason="test")),
        (logs, _record("other-group", logs[1], "DeleteMetricFilter", logGroupName="/app/logs",
                       filterName=metric_filter.name)),
        (logs, _record("other-filter", logs[1], "DeleteMetricFilter", logGroupName=group, filterName="app-errors")),
        (monitoring, _record("wrong-source", logs[1], "DeleteMetricFilter", logGroupName=group,
                             filterName=metric_filter.name)),
    ]
    # On a bus of its own, a twin rule feeds an SQS probe: moto's PutEvents cannot deliver to SNS or Lambda targets.
    sqs, ev, bus = client("sqs"), client("events"), "alarm-pattern-probe"
    probe = sqs.create_queue(QueueName="alarm-pattern-probe")["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ev.create_event_bus(Name=bus)
    ev.put_rule(Name="probe", EventBusName=bus, EventPattern=json.dumps(desired.alarms_rule.pattern), State="ENABLED")
    ev.put_targets(Rule="probe", EventBusName=bus, Targets=[{"Id": "probe", "Arn": probe_arn}])
    try:
        for (source, _), record in matching + other:
            answer = ev.put_events(Entries=[{"Source": source, "DetailType": "AWS API Call via CloudTrail",
                                             "Detail": json.dumps(record), "EventBusName": bus}])
            assert answer["FailedEntryCount"] == 0
        received = []
        while messages := sqs.receive_message(QueueUrl=probe, MaxNumberOfMessages=10).get("Messages", []):
            received += [json.loads(m["Body"])["detail"]["requestID"] for m in messages]
            for m in messages:
                sqs.delete_message(QueueUrl=probe, ReceiptHandle=m["ReceiptHandle"])
    finally:
        ev.remove_targets(Rule="probe", EventBusName=bus, Ids=["probe"])
        ev.delete_rule(Name="probe", EventBusName=bus)
        ev.delete_event_bus(Name=bus)
        sqs.delete_queue(QueueUrl=probe)
    assert sorted(received) == sorted(record["requestID"] for _, record in matching)
