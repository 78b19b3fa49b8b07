"""`gameday trace` names exactly the hop each boto3 call breaks, sees a healthy stack all green, and its CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from harness import trace as tracing
from harness.assume import assumed
from harness.config import Settings
from harness.poll import interval_for, wait_for
from harness.session import start_session
from harness.stack.desired import desired_state
from harness.trace import HOP_IDS, filter_drops, trace

ROOT = Path(__file__).resolve().parents[1]
# No API call these tests make trips CIS 4.15 (trail changes trip 4.5, DisableKey 4.7), so its alarm stays quiet.
CONTROL = "4.15"
# Each canary fires its alarm for a scaled period or three: each test fires its own, so none waits for another's.
CANARY_CONTROL, MISSED_CONTROL, CLI_CANARY_CONTROL = "4.12", "4.13", "4.14"


@pytest.fixture(scope="module")
def gd(tmp_path_factory):
    """The reference stack without its remediation functions, so only the test breaks and restores hops."""
    journal = tmp_path_factory.mktemp("trace") / "journal.jsonl"
    session = start_session(Settings(sabotage="remediation", journal=str(journal)))
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def desired(gd):
    return desired_state(account_id=gd.backend.account_id, region=gd.backend.region, sabotage="remediation")


def confirm_oncall(aws, stack, endpoint=None):
    """Confirm a pending e-mail subscription as its owner would, from the confirmation in its mailbox."""
    assert wait_for(lambda: aws.mailbox.confirm_latest(stack.topic_arn, endpoint or stack.oncall_email), timeout=10,
                    interval=0.05, describe="confirming the on-call e-mail"), "no confirmation was sent"


def report_of(gd, control_id=CONTROL, **kw):
    return trace(gd.backend, gd.stack, control=control_id, **kw)


def broken_only(gd, hop, stack=None, control_id=CONTROL):
    """Trace: `hop` is the first broken hop and the only broken one; returns it."""
    report = trace(gd.backend, stack or gd.stack, control=control_id)
    assert report.first_broken is not None, tracing.render(report)
    assert [h.id for h in report.hops if h.status == "broken"] == [hop], tracing.render(report)
    assert report.exit_code == 1
    assert report.first_broken.fix, "every broken hop says how to fix it"
    return report.first_broken, report


def healthy(gd, timeout=10.0):
    """The stack is all green again (some restorations land a moment later)."""
    seen = {}

    def green():
        seen["report"] = report_of(gd)
        return seen["report"].healthy or None

    assert wait_for(green, timeout=timeout, interval=interval_for(timeout), describe="healthy trace"), \
        tracing.render(seen["report"])


def as_break_glass(gd, service):
    return assumed(gd.backend.client, gd.stack.break_glass_role_arn, "gameday-trace-test")(service)


def fire(gd):
    """One real-shaped tampering record in the trail's log group: the control's alarm fires."""
    logs = gd.backend.client("logs")
    try:
        logs.create_log_stream(logGroupName=gd.stack.log_group_name, logStreamName="trace-test")
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    record = tracing.sample_record(CONTROL, account_id=gd.backend.account_id, region=gd.backend.region)
    logs.put_log_events(logGroupName=gd.stack.log_group_name, logStreamName="trace-test",
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(record)}])


def quiet(gd, control_id=CONTROL, timeout=20.0):
    """Wait for the control's alarm to leave ALARM (its data out of the evaluation range), so a breach is a change."""
    cw = gd.backend.client("cloudwatch")
    name = gd.stack.alarm_names[control_id]
    assert wait_for(lambda: cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"] != "ALARM",
                    timeout=timeout, interval=0.1, describe="alarm quiet")


def control(desired):
    return next(c for c in desired.controls if c.id == CONTROL)


# -- the healthy stack ---------------------------------------------------------------------------


def test_the_healthy_reference_stack_is_all_green(gd):
    report = report_of(gd)
    assert [h.id for h in report.hops] == list(HOP_IDS)
    assert all(h.status == "ok" for h in report.hops), tracing.render(report)
    assert report.healthy and report.first_broken is None and report.exit_code == 0
    assert report.canary is None
    doc = json.loads(report.to_json())
    assert doc["healthy"] is True and doc["first_broken"] is None and [h["id"] for h in doc["hops"]] == list(HOP_IDS)


def test_advice_lists_what_no_api_can_see_and_is_never_a_hop(gd):
    report = report_of(gd)
    text = " ".join(report.advice)
    assert "spam" in text and "escalation" in text and gd.stack.oncall_email in text
    assert not any(word in h.id for h in report.hops for word in ("spam", "pager", "mail"))


@pytest.mark.parametrize("control_id", [f"4.{n}" for n in range(1, 16)])
def test_every_control_has_a_record_its_own_filter_matches(gd, control_id):
    report = trace(gd.backend, gd.stack, control=control_id)
    assert report.alarm == gd.stack.alarm_names[control_id]
    bad = [h for h in report.hops if h.status != "ok"]
    assert not bad, tracing.render(report)


def test_sample_records_are_shaped_like_real_ones():
    fixture = json.loads((ROOT / "tests/fixtures/cloudtrail/aws.defense-evasion.cloudtrail-stop.json").read_text())[0]
    record = tracing.sample_record("4.5", account_id="123456789012", region="us-east-1")
    assert set(fixture) <= set(record)
    assert record["eventName"] == "StopLogging" and record["eventSource"] == fixture["eventSource"]
    for key, value in fixture.items():
        assert type(record[key]) is type(value) or value is None, key
    canary = tracing.sample_record("4.5", account_id="123456789012", region="us-east-1", canary=True)
    assert canary["userIdentity"]["userName"] == "gameday-canary" and "gameday-canary" in canary["userAgent"]


# -- each hop, broken by boto3 and restored ---------------------------------------------------------


def test_deleted_trail_breaks_trail_exists_and_skips_what_needs_it(gd, desired):
    ct = gd.backend.client("cloudtrail")
    ct.delete_trail(Name=gd.stack.trail_name)
    try:
        hop, report = broken_only(gd, "trail.exists")
        assert "does not exist" in hop.evidence and "create-trail" in hop.fix
        skipped = {h.id for h in report.hops if h.status == "skipped"}
        assert skipped == {"trail.logging", "trail.selectors", "trail.delivery"}
    finally:
        ct.create_trail(**desired.trail.create_params())
        ct.put_event_selectors(TrailName=gd.stack.trail_name, EventSelectors=list(desired.trail.event_selectors))
        ct.start_logging(Name=gd.stack.trail_name)
    healthy(gd)


def test_stop_logging_breaks_trail_logging(gd):
    ct = gd.backend.client("cloudtrail")
    ct.stop_logging(Name=gd.stack.trail_name)
    try:
        hop, _ = broken_only(gd, "trail.logging")
        assert "IsLogging false" in hop.evidence
        assert hop.fix == f"aws cloudtrail start-logging --name {gd.stack.trail_name}"
    finally:
        ct.start_logging(Name=gd.stack.trail_name)
    healthy(gd)


def restore_selectors(ct, gd, desired):
    """The desired selectors (after advanced ones, their equivalent: moto cannot go back to basic selectors)."""
    ct.put_event_selectors(TrailName=gd.stack.trail_name, EventSelectors=list(desired.trail.event_selectors))
    if ct.get_event_selectors(TrailName=gd.stack.trail_name).get("AdvancedEventSelectors"):
        # moto keeps advanced selectors when basic ones are put (AWS replaces them): tests using them run last.
        ct.put_event_selectors(TrailName=gd.stack.trail_name, AdvancedEventSelectors=[{
            "Name": "management", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}])


def test_excluding_kms_events_blinds_cis_4_7_only(gd, desired):
    ct = gd.backend.client("cloudtrail")
    ct.put_event_selectors(TrailName=gd.stack.trail_name, EventSelectors=[{
        "ReadWriteType": "All", "IncludeManagementEvents": True,
        "ExcludeManagementEventSources": ["kms.amazonaws.com"]}])
    try:
        broken_only(gd, "trail.selectors", control_id="4.7")
        assert report_of(gd).healthy, "4.15's records still reach the trail"
    finally:
        restore_selectors(ct, gd, desired)
    healthy(gd)


@pytest.mark.parametrize("selectors", [
    {"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False,
                         "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}]},
    {"EventSelectors": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]},
    {"AdvancedEventSelectors": [{"Name": "reads only", "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["true"]}]}]},
], ids=["no-management-events", "read-only", "advanced-read-only"])
def test_selectors_without_management_writes_break_trail_selectors(gd, desired, selectors):
    ct = gd.backend.client("cloudtrail")
    try:
        ct.put_event_selectors(TrailName=gd.stack.trail_name, **selectors)
    except ClientError as exc:
        pytest.skip(f"the backend refuses these selectors: {exc}")
    try:
        hop, _ = broken_only(gd, "trail.selectors")
        assert "put-event-selectors" in hop.fix
    finally:
        restore_selectors(ct, gd, desired)
    healthy(gd)


def test_advanced_selectors_for_management_writes_are_ok(gd, desired):
    ct = gd.backend.client("cloudtrail")
    try:
        ct.put_event_selectors(TrailName=gd.stack.trail_name, AdvancedEventSelectors=[{
            "Name": "management", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}])
    except ClientError as exc:
        pytest.skip(f"the backend refuses advanced selectors: {exc}")
    try:
        assert next(h for h in report_of(gd).hops if h.id == "trail.selectors").status == "ok"
    finally:
        restore_selectors(ct, gd, desired)
    healthy(gd)


def test_trail_detached_from_its_log_group_breaks_trail_delivery(gd, desired):
    ct = gd.backend.client("cloudtrail")
    ct.update_trail(Name=gd.stack.trail_name, CloudWatchLogsLogGroupArn="", CloudWatchLogsRoleArn="")
    try:
        hop, _ = broken_only(gd, "trail.delivery")
        assert "CloudWatch Logs" in hop.evidence and "update-trail" in hop.fix
    finally:
        ct.update_trail(Name=gd.stack.trail_name, CloudWatchLogsLogGroupArn=desired.trail.log_group_arn,
                        CloudWatchLogsRoleArn=desired.trail.role_arn)
    healthy(gd)


def test_deleted_metric_filter_breaks_filter_exists(gd, desired):
    logs = gd.backend.client("logs")
    logs.delete_metric_filter(logGroupName=gd.stack.log_group_name, filterName=gd.stack.metric_filter_names[CONTROL])
    try:
        hop, report = broken_only(gd, "filter.exists")
        assert "put-metric-filter" in hop.fix and "CreateOrganizationalUnit" in hop.fix
        assert next(h for h in report.hops if h.id == "filter.matches").status == "skipped"
    finally:
        logs.put_metric_filter(**control(desired).metric_filter.put_params())
    healthy(gd)


def test_a_pattern_that_misses_the_record_breaks_filter_matches(gd, desired):
    logs = gd.backend.client("logs")
    params = control(desired).metric_filter.put_params()
    logs.put_metric_filter(**{**params, "filterPattern": '{ $.eventName = "NoSuchCall" }'})
    try:
        hop, _ = broken_only(gd, "filter.matches")
        assert "does not match a real-shaped CreateOrganizationalUnit record" in hop.evidence
    finally:
        logs.put_metric_filter(**params)
    healthy(gd)


def test_a_filter_emitting_another_metric_breaks_filter_matches_first(gd, desired):
    logs = gd.backend.client("logs")
    params = control(desired).metric_filter.put_params()
    other = [{**params["metricTransformations"][0], "metricName": "something_else"}]
    logs.put_metric_filter(**{**params, "metricTransformations": other})
    try:
        report = report_of(gd)
        assert report.first_broken.id == "filter.matches"
        assert "something_else" in report.first_broken.evidence
    finally:
        logs.put_metric_filter(**params)
    healthy(gd)


def test_deleted_alarm_breaks_alarm_exists(gd, desired):
    cw = gd.backend.client("cloudwatch")
    cw.delete_alarms(AlarmNames=[gd.stack.alarm_names[CONTROL]])
    try:
        hop, report = broken_only(gd, "alarm.exists")
        assert "put-metric-alarm" in hop.fix
        skipped = {h.id for h in report.hops if h.status == "skipped"}
        assert skipped == {"alarm.actions_enabled", "alarm.can_fire", "alarm.targets_topic", "alarm.history"}
    finally:
        cw.put_metric_alarm(**control(desired).alarm.put_params())
    healthy(gd)


def test_disabled_alarm_actions_break_alarm_actions_enabled(gd):
    cw = gd.backend.client("cloudwatch")
    name = gd.stack.alarm_names[CONTROL]
    cw.disable_alarm_actions(AlarmNames=[name])
    try:
        hop, _ = broken_only(gd, "alarm.actions_enabled")
        assert hop.fix == f"aws cloudwatch enable-alarm-actions --alarm-names {name}"
    finally:
        cw.enable_alarm_actions(AlarmNames=[name])
    healthy(gd)


@pytest.mark.parametrize("change,evidence", [
    ({"Threshold": 1e9}, "needs 1000000000 matching events in 300 s"),
    ({"EvaluationPeriods": 3, "DatapointsToAlarm": 3}, "needs 3 breaching periods of 300 s out of 3"),
    ({"ComparisonOperator": "LessThanThreshold"}, "matching events only raise it"),
], ids=["threshold-1e9", "three-datapoints", "less-than"])
def test_an_alarm_one_event_cannot_fire_breaks_alarm_can_fire(gd, desired, change, evidence):
    cw = gd.backend.client("cloudwatch")
    params = control(desired).alarm.put_params()
    cw.put_metric_alarm(**{**params, **change})
    try:
        hop, _ = broken_only(gd, "alarm.can_fire")
        assert evidence in hop.evidence
    finally:
        cw.put_metric_alarm(**params)
    healthy(gd)


def test_alarm_actions_on_a_deleted_topic_break_alarm_targets_topic(gd, desired):
    cw = gd.backend.client("cloudwatch")
    params = control(desired).alarm.put_params()
    gone = f"{gd.stack.topic_arn}-gone"
    cw.put_metric_alarm(**{**params, "AlarmActions": [gone]})
    try:
        hop, _ = broken_only(gd, "alarm.targets_topic")
        assert f"action topic {gone} does not exist" in hop.evidence
        assert f"--alarm-actions {gd.stack.topic_arn}" in hop.fix
    finally:
        cw.put_metric_alarm(**params)
    healthy(gd)


def test_a_failed_alarm_action_breaks_alarm_history(gd, desired):
    """The key loses CloudWatch's grant, the alarm fires into it, the grant comes back: only the history shows it."""
    kms = gd.backend.client("kms")
    key_id = kms.describe_key(KeyId=gd.stack.topic_key_arn)["KeyMetadata"]["KeyId"]
    policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    quiet(gd)
    cw = gd.backend.client("cloudwatch")
    name = gd.stack.alarm_names[CONTROL]
    try:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(_without_publishers(policy)))
        fire(gd)
        failed = wait_for(lambda: [i for i in cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action")[
            "AlarmHistoryItems"] if i["HistorySummary"].startswith("Failed")], timeout=10, interval=0.05,
            describe="a failed action")
        assert failed, "the alarm's action did not fail"
    finally:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    try:
        hop, _ = broken_only(gd, "alarm.history")
        assert "Failed to execute action" in hop.evidence and "kms:Decrypt" in hop.fix
    finally:
        cw.put_metric_alarm(**control(desired).alarm.put_params())  # a new configuration starts a new history
    healthy(gd)


def _without_publishers(policy: str) -> dict:
    doc = json.loads(policy)
    doc["Statement"] = [s for s in doc["Statement"] if "Service" not in (s.get("Principal") or {})]
    return doc


def test_deleted_topic_breaks_topic_exists(gd):
    sns = gd.backend.client("sns")
    attributes = sns.get_topic_attributes(TopicArn=gd.stack.topic_arn)["Attributes"]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=gd.stack.topic_arn)["Subscriptions"]
    as_break_glass(gd, "sns").delete_topic(TopicArn=gd.stack.topic_arn)
    try:
        hop, report = broken_only(gd, "topic.exists")
        assert "create-topic" in hop.fix
        assert {"topic.policy", "topic.kms", "subscriptions.exist"} <= {h.id for h in report.hops
                                                                       if h.status == "skipped"}
    finally:
        kept = {k: attributes[k] for k in ("Policy", "KmsMasterKeyId") if attributes.get(k)}
        sns.create_topic(Name=gd.stack.topic_arn.rsplit(":", 1)[-1], Attributes=kept)
        for sub in subscriptions:
            sns.subscribe(TopicArn=gd.stack.topic_arn, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
        confirm_oncall(gd.backend, gd.stack)
    healthy(gd)


def _set_policy(gd, policy, role=None):
    sns = assumed(gd.backend.client, role or gd.stack.break_glass_role_arn, "gameday-trace-test")("sns")
    sns.set_topic_attributes(TopicArn=gd.stack.topic_arn, AttributeName="Policy", AttributeValue=json.dumps(policy))


def _exempt_only(statements, role):
    """The Deny exempting only `role`: the break-glass role is locked out with everyone else."""
    return [{**s, "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [role]}}} if s.get("Effect") == "Deny" else s
            for s in statements]


def _other_exempt(gd, statements):
    deny = next(s for s in statements if s.get("Effect") == "Deny")
    return next(a for a in deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] if a != gd.stack.break_glass_role_arn)


@pytest.mark.parametrize("variant,evidence", [
    ("deny-removed", "no Deny exempting"),
    ("publish-denied", "denies sns:Publish to cloudwatch.amazonaws.com"),
    ("break-glass-locked-out", "locks out"),
])
def test_a_policy_that_does_not_protect_the_topic_breaks_topic_policy(gd, variant, evidence):
    sns = gd.backend.client("sns")
    original = json.loads(sns.get_topic_attributes(TopicArn=gd.stack.topic_arn)["Attributes"]["Policy"])
    statements, restorer = original["Statement"], None
    if variant == "deny-removed":
        statements = [s for s in statements if s.get("Effect") != "Deny"]
    elif variant == "publish-denied":
        statements = statements + [{"Sid": "MuteAlarms", "Effect": "Deny", "Action": "sns:Publish", "Resource": "*",
                                    "Principal": {"Service": "cloudwatch.amazonaws.com"}}]
    else:
        restorer = _other_exempt(gd, statements)  # the one role the weakened policy still lets repair it
        statements = _exempt_only(statements, restorer)
    _set_policy(gd, {**original, "Statement": statements})
    try:
        hop, _ = broken_only(gd, "topic.policy")
        assert evidence in hop.evidence
    finally:
        _set_policy(gd, original, role=restorer)
    healthy(gd)


def test_a_stack_naming_no_break_glass_role_breaks_topic_policy(gd):
    hop, _ = broken_only(gd, "topic.policy", stack=replace(gd.stack, break_glass_role_arn=None))
    assert "break_glass_role_arn" in hop.evidence and "break_glass_role_arn" in hop.fix


def test_a_key_policy_without_the_cloudwatch_grant_breaks_topic_kms(gd):
    kms = gd.backend.client("kms")
    key_id = kms.describe_key(KeyId=gd.stack.topic_key_arn)["KeyMetadata"]["KeyId"]
    policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(_without_publishers(policy)))
    try:
        hop, _ = broken_only(gd, "topic.kms")
        assert "cloudwatch.amazonaws.com kms:Decrypt" in hop.evidence and "put-key-policy" in hop.fix
    finally:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    healthy(gd)


def test_a_disabled_key_breaks_topic_kms(gd):
    kms = gd.backend.client("kms")
    key_id = kms.describe_key(KeyId=gd.stack.topic_key_arn)["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    try:
        hop, _ = broken_only(gd, "topic.kms")
        assert "Disabled" in hop.evidence and hop.fix == f"aws kms enable-key --key-id {key_id}"
    finally:
        kms.enable_key(KeyId=key_id)
    healthy(gd)


def test_the_aws_managed_key_breaks_topic_kms(gd):
    sns = gd.backend.client("sns")
    key = sns.get_topic_attributes(TopicArn=gd.stack.topic_arn)["Attributes"]["KmsMasterKeyId"]
    glass = as_break_glass(gd, "sns")
    glass.set_topic_attributes(TopicArn=gd.stack.topic_arn, AttributeName="KmsMasterKeyId",
                               AttributeValue="alias/aws/sns")
    try:
        hop, _ = broken_only(gd, "topic.kms")
        assert "AWS managed key" in hop.evidence
    finally:
        glass.set_topic_attributes(TopicArn=gd.stack.topic_arn, AttributeName="KmsMasterKeyId", AttributeValue=key)
    healthy(gd)


def _sink_subscription(gd):
    subs = gd.backend.client("sns").list_subscriptions_by_topic(TopicArn=gd.stack.topic_arn)["Subscriptions"]
    return next(s["SubscriptionArn"] for s in subs if s["Endpoint"] == gd.stack.sink_queue_arn)


def test_unsubscribed_sink_breaks_subscriptions_exist(gd):
    sns = gd.backend.client("sns")
    sns.unsubscribe(SubscriptionArn=_sink_subscription(gd))
    try:
        hop, _ = broken_only(gd, "subscriptions.exist")
        assert f"the sink queue {gd.stack.sink_queue_arn} is not subscribed" in hop.evidence
        assert "aws sns subscribe" in hop.fix
    finally:
        sns.subscribe(TopicArn=gd.stack.topic_arn, Protocol="sqs", Endpoint=gd.stack.sink_queue_arn)
    healthy(gd)


def test_an_unconfirmed_email_subscription_breaks_subscriptions_confirmed(gd):
    sns = gd.backend.client("sns")
    endpoint = "trace-test@example.com"
    sns.subscribe(TopicArn=gd.stack.topic_arn, Protocol="email", Endpoint=endpoint)
    try:
        hop, _ = broken_only(gd, "subscriptions.confirmed")
        assert endpoint in hop.evidence
        assert hop.fix.startswith(f"confirm the subscription from the message sent to {endpoint}")
        assert "48 hours" in hop.fix and "10 messages a second" in hop.fix
    finally:
        confirm_oncall(gd.backend, gd.stack, endpoint)
        subs = sns.list_subscriptions_by_topic(TopicArn=gd.stack.topic_arn)["Subscriptions"]
        sns.unsubscribe(SubscriptionArn=next(s["SubscriptionArn"] for s in subs if s["Endpoint"] == endpoint))
    healthy(gd)


@pytest.mark.parametrize("policy,scope", [
    ({"NewStateValue": ["OK"]}, "MessageBody"),
    ({"Trigger": {"Namespace": [{"anything-but": "CISBenchmark"}]}}, "MessageBody"),
    ({"severity": ["critical"]}, "MessageAttributes"),
], ids=["body-ok-only", "body-nested-anything-but", "attributes"])
def test_a_filter_policy_muting_alarm_breaks_subscriptions_filter(gd, policy, scope):
    sns = gd.backend.client("sns")
    arn = _sink_subscription(gd)
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicyScope", AttributeValue=scope)
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy",
                                    AttributeValue=json.dumps(policy))
    try:
        hop, _ = broken_only(gd, "subscriptions.filter")
        assert gd.stack.sink_queue_arn in hop.evidence and arn in hop.fix
    finally:
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue="{}")
    healthy(gd)


def test_a_filter_policy_that_lets_alarm_through_is_ok(gd):
    sns = gd.backend.client("sns")
    arn = _sink_subscription(gd)
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicyScope",
                                    AttributeValue="MessageBody")
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=json.dumps(
        {"NewStateValue": ["ALARM"], "AlarmName": [{"prefix": "gameday-cis-"}]}))
    try:
        assert report_of(gd).healthy
    finally:
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue="{}")


def test_a_disabled_rule_breaks_rules_enabled(gd):
    events = gd.backend.client("events")
    events.disable_rule(Name=gd.stack.sns_rule_name)
    try:
        hop, _ = broken_only(gd, "rules.enabled")
        assert f"rule {gd.stack.sns_rule_name} is DISABLED" in hop.evidence
        assert hop.fix == f"aws events enable-rule --name {gd.stack.sns_rule_name}"
    finally:
        events.enable_rule(Name=gd.stack.sns_rule_name)
    healthy(gd)


def test_a_tampering_rule_that_notifies_nobody_breaks_rules_enabled(gd):
    events = gd.backend.client("events")
    rule = gd.stack.sns_rule_name  # it also targets the guard: without its topic it still has a target
    targets = events.list_targets_by_rule(Rule=rule)["Targets"]
    topics = [t["Id"] for t in targets if ":sns:" in t["Arn"]]
    assert topics and len(topics) < len(targets), "the SNS rule notifies the fallback topic and runs the guard"
    events.remove_targets(Rule=rule, Ids=topics)
    try:
        hop, _ = broken_only(gd, "rules.enabled")
        assert f"rule {rule} notifies no SNS topic" in hop.evidence
        assert gd.stack.fallback_topic_arn in hop.fix
    finally:
        events.put_targets(Rule=rule, Targets=[t for t in targets if t["Id"] in topics])
    healthy(gd)


class _DeniedKms:
    """A backend whose KMS refuses every call: the trace cannot see the topic's key."""

    def __init__(self, aws):
        self._aws = aws

    def __getattr__(self, name):
        return getattr(self._aws, name)

    def client(self, service):
        if service != "kms":
            return self._aws.client(service)

        class Refusing:
            def __getattr__(self, operation):
                def refuse(**_):
                    raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not for you"}},
                                      operation)
                return refuse
        return Refusing()


def test_an_api_error_that_is_not_not_found_is_unknown_not_broken(gd):
    report = trace(_DeniedKms(gd.backend), gd.stack, control=CONTROL)
    hop = next(h for h in report.hops if h.id == "topic.kms")
    assert hop.status == "unknown" and "AccessDeniedException" in hop.evidence
    assert report.first_broken is None and report.exit_code == 2


# -- the filter-policy evaluator ------------------------------------------------------------------------


@pytest.mark.parametrize("policy,dropped_at", [
    ({"NewStateValue": ["ALARM"]}, None),
    ({"NewStateValue": ["OK", "INSUFFICIENT_DATA"]}, "NewStateValue"),
    ({"AlarmName": [{"prefix": "gameday-cis-4-15"}]}, None),
    ({"AlarmName": [{"suffix": "_changes"}]}, None),
    ({"AlarmName": [{"suffix": "_other"}]}, "AlarmName"),
    ({"NewStateValue": [{"anything-but": ["OK"]}]}, None),
    ({"NewStateValue": [{"anything-but": {"prefix": "AL"}}]}, "NewStateValue"),
    ({"Trigger": {"Threshold": [{"numeric": [">=", 1, "<", 10]}]}}, None),
    ({"Trigger": {"Threshold": [{"numeric": [">", 5]}]}}, "Trigger"),
    ({"Trigger": {"Dimensions": [{"exists": True}]}}, None),
    ({"Pager": [{"exists": True}]}, "Pager"),
    ({"Pager": [{"exists": False}]}, None),
    ({"$or": [{"NewStateValue": ["OK"]}, {"AlarmName": [{"prefix": "gameday-"}]}]}, None),
    ({"$or": [{"NewStateValue": ["OK"]}, {"Region": ["EU (Ireland)"]}]}, "$or"),
    ({"Region": [{"equals-ignore-case": "us east (n. virginia)"}]}, None),
])
def test_filter_policy_evaluator_on_a_real_shaped_alarm_body(gd, policy, dropped_at):
    alarm = gd.backend.client("cloudwatch").describe_alarms(AlarmNames=[gd.stack.alarm_names[CONTROL]])[
        "MetricAlarms"][0]
    body = tracing.alarm_notification(alarm, gd.backend)
    assert body["NewStateValue"] == "ALARM" and body["AlarmName"] == alarm["AlarmName"]
    assert filter_drops(policy, body) == dropped_at


# -- the canary --------------------------------------------------------------------------------------------


def test_canary_arrives_with_latencies_and_leaves_other_messages(gd):
    quiet(gd, CANARY_CONTROL)
    sqs = gd.backend.client("sqs")
    sqs.purge_queue(QueueUrl=gd.stack.sink_queue_url)
    sqs.send_message(QueueUrl=gd.stack.sink_queue_url, MessageBody="someone else's message")
    report = report_of(gd, CANARY_CONTROL, canary=True)
    canary = report.canary
    assert canary is not None and canary.arrived, tracing.render(report)
    assert [h.id for h in canary.hops] == list(tracing.CANARY_HOP_IDS)
    assert all(h.status == "ok" and h.wall_ms is not None and h.aws_s is not None for h in canary.hops)
    assert canary.hops[-1].aws_s == pytest.approx(canary.hops[-1].wall_ms / 1000 * gd.backend.time_scale, abs=0.01)
    assert report.exit_code == 0
    left = []
    while batch := sqs.receive_message(QueueUrl=gd.stack.sink_queue_url, MaxNumberOfMessages=10).get("Messages"):
        left += [m["Body"] for m in batch]
    assert "someone else's message" in left, "the canary deletes only its own notification"
    assert not any(gd.stack.alarm_names[CANARY_CONTROL] in body for body in left), "...and does delete it"


def test_canary_is_not_sent_past_a_broken_hop(gd):
    cw = gd.backend.client("cloudwatch")
    name = gd.stack.alarm_names[CONTROL]
    cw.disable_alarm_actions(AlarmNames=[name])
    try:
        report = report_of(gd, canary=True)
        assert report.canary.status == "skipped" and not report.canary.hops
        assert "not sent: alarm.actions_enabled is broken" in report.canary.evidence
        assert report.exit_code == 1
    finally:
        cw.enable_alarm_actions(AlarmNames=[name])


def test_canary_says_so_when_the_alarm_is_already_in_alarm(gd, desired):
    """An alarm breaching on missing data sits in ALARM: the canary cannot show a transition."""
    cw = gd.backend.client("cloudwatch")
    stuck = "gameday-trace-test-stuck"
    cw.put_metric_alarm(**{**control(desired).alarm.put_params(), "AlarmName": stuck,
                           "TreatMissingData": "breaching"})
    try:
        stack = replace(gd.stack, alarm_names={**gd.stack.alarm_names, CONTROL: stuck})
        assert wait_for(lambda: cw.describe_alarms(AlarmNames=[stuck])["MetricAlarms"][0]["StateValue"] == "ALARM",
                        timeout=10, interval=0.05, describe="stuck alarm in ALARM")
        report = trace(gd.backend, stack, control=CONTROL, canary=True)
        assert report.canary.status == "unknown" and "alarm already in ALARM since" in report.canary.evidence
        assert report.exit_code == 2
    finally:
        cw.delete_alarms(AlarmNames=[stuck])


def test_canary_names_the_first_hop_that_never_happened(gd):
    quiet(gd, MISSED_CONTROL)
    sns = gd.backend.client("sns")
    arn = _sink_subscription(gd)
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicyScope",
                                    AttributeValue="MessageBody")
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy",
                                    AttributeValue=json.dumps({"NewStateValue": ["OK"]}))
    try:
        report = report_of(gd, MISSED_CONTROL, canary=True, canary_timeout=2.0)
        statuses = {h.id: h.status for h in report.canary.hops}
        assert statuses["canary.alarm"] == "ok" and statuses["canary.received"] == "broken", tracing.render(report)
        assert report.canary.status == "broken" and report.exit_code == 1
        assert "within 2 s wall" in next(h for h in report.canary.hops if h.id == "canary.received").evidence
    finally:
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue="{}")
    healthy(gd)


# -- the CLI ------------------------------------------------------------------------------------------------


def gameday(*args, timeout=120):
    env = {**os.environ, "GAMEDAY_JOURNAL": os.devnull}
    return subprocess.run([sys.executable, "-m", "harness.cli", "trace", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stack_file(gd, tmp_path_factory):
    path = tmp_path_factory.mktemp("stack") / "stack.json"
    path.write_text(gd.stack.to_json())
    return str(path)


def test_cli_on_a_running_endpoint_prints_the_table_and_exits_0(gd, stack_file):
    proc = gameday("--endpoint", gd.backend.endpoint_url, "--stack-file", stack_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for hop in HOP_IDS:
        assert any(line.startswith(hop) and " ok " in line for line in proc.stdout.splitlines()), hop
    assert "every hop is ok" in proc.stdout and "not checked (no API can see these):" in proc.stdout


def test_cli_json_is_one_document(gd, stack_file):
    proc = gameday("--endpoint", gd.backend.endpoint_url, "--stack-file", stack_file, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["exit_code"] == 0 and doc["healthy"] is True
    assert [h["id"] for h in doc["hops"]] == list(HOP_IDS) and doc["advice"]


def test_cli_names_a_broken_hop_with_its_fix_and_exits_1(gd, stack_file):
    ct = gd.backend.client("cloudtrail")
    ct.stop_logging(Name=gd.stack.trail_name)
    try:
        proc = gameday("--endpoint", gd.backend.endpoint_url, "--stack-file", stack_file)
    finally:
        ct.start_logging(Name=gd.stack.trail_name)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("trail.logging"))
    assert "BROKEN" in lines[row]
    assert f"fix: aws cloudtrail start-logging --name {gd.stack.trail_name}" in lines[row + 1]
    assert "first broken hop: trail.logging" in proc.stdout


def test_cli_attached_without_a_stack_file_rebuilds_the_reference_outputs(gd):
    proc = gameday("--endpoint", gd.backend.endpoint_url, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, [h for h in doc["hops"] if h["status"] != "ok"]


def test_cli_canary_on_a_running_endpoint(gd, stack_file):
    quiet(gd, CLI_CANARY_CONTROL)
    proc = gameday("--endpoint", gd.backend.endpoint_url, "--stack-file", stack_file, "--canary", "--json",
                   "--control", CLI_CANARY_CONTROL)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    assert doc["canary"]["status"] == "ok" and [h["id"] for h in doc["canary"]["hops"]] == list(
        tracing.CANARY_HOP_IDS)


@pytest.mark.parametrize("args,message", [
    (["--control", "9.9"], "unknown control '9.9'; choose one of 4.1-4.15"),
    (["--canary", "--canary-timeout", "-1"], "--canary-timeout '-1' is not a positive number"),
    (["--canary-timeout", "soon"], "--canary-timeout 'soon' is not a positive number"),
    (["--backend", "nope"], "unknown backend 'nope'"),
    (["--stack-file", "/nonexistent/stack.json"], "stack file /nonexistent/stack.json does not exist"),
    (["--endpoint", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    proc = gameday(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_rejects_a_stack_file_that_is_not_stack_outputs(gd, tmp_path):
    bad = tmp_path / "stack.json"
    bad.write_text('{"trail_name": "x"}')
    proc = gameday("--endpoint", gd.backend.endpoint_url, "--stack-file", str(bad))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "missing stack output field" in proc.stderr


def test_cli_help_documents_the_exit_codes():
    proc = gameday("--help")
    assert proc.returncode == 0
    for line in ("0  every hop is ok", "1  a hop is broken, or the canary missed", "2  bad input"):
        assert line in proc.stdout


def test_cli_embedded_starts_its_own_endpoint_with_the_reference_stack():
    proc = gameday("--canary", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["healthy"], [h for h in doc["hops"] if h["status"] != "ok"]
    assert doc["canary"]["status"] == "ok" and doc["canary"]["hops"][-1]["id"] == "canary.received"


# -- last: a failed delivery stays in the last 15 minutes' metric, which nothing can undo -----------------------


def test_a_failing_subscriber_breaks_subscriptions_delivery(gd):
    sqs, sns = gd.backend.client("sqs"), gd.backend.client("sns")
    url = gd.stack.tickets_queue_url
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "KmsMasterKeyId"])["Attributes"]
    sqs.delete_queue(QueueUrl=url)
    try:
        sns.publish(TopicArn=gd.stack.topic_arn, Message="gameday trace test: this delivery to tickets fails")
        hop = wait_for(lambda: next((h for h in report_of(gd).hops if h.id == "subscriptions.delivery"
                                     and h.status == "broken"), None), timeout=10, interval=0.1,
                       describe="failed deliveries counted")
        assert hop is not None and f"alarm {gd.stack.delivery_failures_alarm} is in ALARM" in hop.evidence
        assert report_of(gd).first_broken.id == "subscriptions.delivery"
    finally:
        sqs.create_queue(QueueName=url.rsplit("/", 1)[-1], Attributes=attributes)
    report = report_of(gd)
    assert [h.id for h in report.hops if h.status != "ok"] in ([], ["subscriptions.delivery"])
