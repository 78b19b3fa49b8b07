"""The notification chain's desired state (part 3): key and topic policies, the guard, its rules, sabotage modes."""

import hashlib
import json

import pytest

from harness.stack import notification
from harness.stack.desired import FUNCTION_ENV_VAR, StackOutputs, desired_state

ACCOUNT = "123456789012"
REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:gameday-security"
FALLBACK = f"arn:aws:sns:{REGION}:{ACCOUNT}:gameday-security-fallback"
MUTED = f"arn:aws:sns:{REGION}:{ACCOUNT}:gameday-security-muted"
BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/gameday-break-glass"
GUARD_ROLE = f"arn:aws:iam::{ACCOUNT}:role/gameday-remediate-sns"
ATTACKER = f"arn:aws:iam::{ACCOUNT}:role/attacker"


def _variant(sabotage=None, **kwargs):
    return desired_state(account_id=ACCOUNT, region=REGION, sabotage=sabotage, **kwargs)


def _guard_desired(desired):
    return json.loads(desired.guard_function.bundle[notification.GUARD_DESIRED_FILE])


def _publishers(*services, actions=("kms:Decrypt", "kms:GenerateDataKey*"), effect="Allow"):
    return {"Effect": effect, "Principal": {"Service": list(services)}, "Action": list(actions), "Resource": "*"}


# -- the key ---------------------------------------------------------------------------------------


def test_key_policy_keeps_the_account_and_grants_both_publishers():
    admin, publishers = notification.key_policy(ACCOUNT, "aws")["Statement"]
    assert admin == {"Sid": "EnableAccountAdministration", "Effect": "Allow",
                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
    assert publishers["Principal"] == {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]}
    assert publishers["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert publishers["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    china = notification.key_policy(ACCOUNT, "aws-cn")["Statement"][0]
    assert china["Principal"] == {"AWS": f"arn:aws-cn:iam::{ACCOUNT}:root"}


def test_a_key_policy_without_the_grant_keeps_only_the_account():
    policy = notification.key_policy(ACCOUNT, "aws", grant_publishers=False)
    assert [s["Sid"] for s in policy["Statement"]] == ["EnableAccountAdministration"]
    assert notification.grants_publishers(policy) is False


KEY_POLICIES = {
    "reference": (notification.key_policy(ACCOUNT, "aws"), True),
    # the account's root statement does not cover service principals
    "account-only": (notification.key_policy(ACCOUNT, "aws", grant_publishers=False), False),
    "one-statement-each": ({"Statement": [_publishers("cloudwatch.amazonaws.com"),
                                          _publishers("events.amazonaws.com")]}, True),
    "alarms-only": ({"Statement": [_publishers("cloudwatch.amazonaws.com")]}, False),
    "events-only": ({"Statement": _publishers("events.amazonaws.com")}, False),
    "kms-star": ({"Statement": [_publishers("cloudwatch.amazonaws.com", "events.amazonaws.com",
                                            actions=("kms:*",))]}, True),
    "actions-any-case": ({"Statement": [_publishers("cloudwatch.amazonaws.com", "events.amazonaws.com",
                                                    actions=("KMS:Decrypt", "kms:generatedatakey*"))]}, True),
    "no-data-keys": ({"Statement": [_publishers("cloudwatch.amazonaws.com", "events.amazonaws.com",
                                                actions=("kms:Decrypt",))]}, False),
    "denied": ({"Statement": [_publishers("cloudwatch.amazonaws.com", "events.amazonaws.com", effect="Deny")]},
               False),
    "service-as-string": ({"Statement": [
        {**_publishers(), "Principal": {"Service": "cloudwatch.amazonaws.com"}},
        {**_publishers(), "Principal": {"Service": "events.amazonaws.com"}}]}, True),
    "everyone": ({"Statement": [{**_publishers(), "Principal": "*"}]}, False),
    "empty": ({}, False),
}


@pytest.mark.parametrize("policy", KEY_POLICIES)
def test_grants_publishers(policy):
    document, grants = KEY_POLICIES[policy]
    assert notification.grants_publishers(document) is grants


# -- the topic policy ------------------------------------------------------------------------------


def test_topic_policy_lets_the_account_and_both_services_publish():
    owner, events, alarms = notification.topic_policy(TOPIC, ACCOUNT, exempt=(BREAK_GLASS,), protect=False)[
        "Statement"]
    assert owner["Condition"] == {"StringEquals": {"AWS:SourceOwner": ACCOUNT}} and owner["Resource"] == TOPIC
    for statement, service in ((events, "events.amazonaws.com"), (alarms, "cloudwatch.amazonaws.com")):
        assert statement["Principal"] == {"Service": service}
        assert (statement["Action"], statement["Resource"]) == ("sns:Publish", TOPIC)
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_protected_topic_policy_denies_tampering_to_all_but_the_exempt():
    policy = notification.topic_policy(TOPIC, ACCOUNT, exempt=(BREAK_GLASS, GUARD_ROLE), protect=True)
    deny = policy["Statement"][-1]
    assert deny == {
        "Sid": "DenyTamperingExceptBreakGlass",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": ["SNS:DeleteTopic", "SNS:SetTopicAttributes", "SNS:RemovePermission", "SNS:AddPermission"],
        "Resource": TOPIC,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [BREAK_GLASS, GUARD_ROLE]}},
    }
    assert policy["Statement"][:-1] == notification.topic_policy(TOPIC, ACCOUNT, exempt=(BREAK_GLASS,),
                                                                 protect=False)["Statement"]


def _deny(*actions, condition=None):
    statement = {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": list(actions), "Resource": TOPIC}
    return {**statement, "Condition": condition} if condition is not None else statement


PROTECTED = notification.topic_policy(TOPIC, ACCOUNT, exempt=(BREAK_GLASS, GUARD_ROLE), protect=True)
UNPROTECTED = notification.topic_policy(TOPIC, ACCOUNT, exempt=(BREAK_GLASS, GUARD_ROLE), protect=False)
EXEMPT_ATTACKER = {"ArnNotEquals": {"aws:PrincipalArn": [ATTACKER]}}
TOPIC_POLICIES = {
    # (policy, exempt asked about, protected)
    "reference": (PROTECTED, None, True),
    "reference-break-glass": (PROTECTED, BREAK_GLASS, True),
    "reference-guard": (PROTECTED, GUARD_ROLE, True),
    "reference-someone-else": (PROTECTED, ATTACKER, False),
    "no-deny": (UNPROTECTED, None, False),
    "no-deny-break-glass": (UNPROTECTED, BREAK_GLASS, False),
    "exemption-swapped": ({"Statement": [_deny("SNS:DeleteTopic", "SNS:SetTopicAttributes",
                                               condition=EXEMPT_ATTACKER)]}, BREAK_GLASS, False),
    "exemption-swapped-any": ({"Statement": [_deny("SNS:DeleteTopic", "SNS:SetTopicAttributes",
                                                   condition=EXEMPT_ATTACKER)]}, None, True),
    "everyone-denied": ({"Statement": [_deny("sns:DeleteTopic", "sns:SetTopicAttributes")]}, BREAK_GLASS, True),
    "sns-star": ({"Statement": _deny("sns:*", condition={"ArnNotLike": {"aws:PrincipalArn": [BREAK_GLASS]}})},
                 BREAK_GLASS, True),
    "delete-only": ({"Statement": [_deny("SNS:DeleteTopic")]}, None, False),
    "allow-only": ({"Statement": [{**_deny("SNS:DeleteTopic", "SNS:SetTopicAttributes"), "Effect": "Allow"}]},
                   None, False),
}


@pytest.mark.parametrize("policy", TOPIC_POLICIES)
def test_protects(policy):
    document, exempt, protected = TOPIC_POLICIES[policy]
    assert notification.protects(document, exempt) is protected


# -- the chain in the desired state -----------------------------------------------------------------


def test_the_security_topic_is_encrypted_and_the_fallback_is_not():
    desired = _variant()
    assert desired.key.alias == "alias/gameday-security-topic"
    assert desired.key.policy == notification.key_policy(ACCOUNT, "aws")
    assert (desired.topic.arn, desired.topic.kms_key) == (TOPIC, "alias/gameday-security-topic")
    assert desired.topic.attributes() == {"Policy": json.dumps(desired.topic.policy),
                                          "KmsMasterKeyId": "alias/gameday-security-topic"}
    # the independent path must not share the primary topic's key, or its failure
    assert (desired.fallback_topic.arn, desired.fallback_topic.kms_key) == (FALLBACK, None)
    assert desired.fallback_topic.attributes() == {"Policy": json.dumps(desired.fallback_topic.policy)}
    assert desired.topics == (desired.topic, desired.fallback_topic)
    for topic in desired.topics:
        assert topic.policy == notification.topic_policy(topic.arn, ACCOUNT, exempt=(BREAK_GLASS, GUARD_ROLE),
                                                         protect=True)


def test_subscribers_of_both_topics():
    desired = _variant(oncall_email="soc@example.org")
    sink, tickets = desired.queue.arn, desired.tickets_queue.arn
    assert [(s.topic_arn, s.protocol, s.endpoint, s.raw_message_delivery) for s in desired.subscriptions] == [
        (TOPIC, "sqs", sink, False), (FALLBACK, "sqs", sink, False), (TOPIC, "sqs", tickets, False),
        (TOPIC, "email", "soc@example.org", False)]
    assert desired.subscription == desired.subscriptions[0]
    assert desired.tickets_queue.name == "gameday-tickets"
    (statement,) = desired.tickets_queue.policy["Statement"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC}}
    assert _variant().oncall_email == "security-oncall@example.com"


def test_break_glass_role_is_assumed_from_the_account_and_may_reshape_only_the_chain_topics():
    role = _variant().break_glass_role
    assert role.arn == BREAK_GLASS
    assert role.trust_policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    (policy,) = role.inline_policies.values()
    (statement,) = policy["Statement"]
    assert statement["Resource"] == [TOPIC, FALLBACK]
    assert {"sns:DeleteTopic", "sns:SetTopicAttributes"} <= set(statement["Action"])


def test_guard_function_carries_its_desired_state_in_the_zip():
    desired = _variant()
    guard = desired.guard_function
    assert (guard.name, guard.handler, guard.runtime) == ("gameday-remediate-sns", "remediate_sns.handler",
                                                          "python3.12")
    assert guard.source == notification.GUARD_SOURCE and guard.role.arn == GUARD_ROLE
    text = guard.bundle[notification.GUARD_DESIRED_FILE]
    assert json.loads(guard.environment[FUNCTION_ENV_VAR]) == {
        "file": "desired.json", "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert _guard_desired(desired) == {
        "key": {"alias": "alias/gameday-security-topic", "policy": desired.key.policy},
        "topics": [{"name": "gameday-security", "arn": TOPIC, "attributes": desired.topic.attributes()},
                   {"name": "gameday-security-fallback", "arn": FALLBACK,
                    "attributes": desired.fallback_topic.attributes()}],
        "subscriptions": _guard_desired(desired)["subscriptions"],
        "report_topic": FALLBACK,
        "remediate": True,
        "alarm_prefix": "gameday-",
    }
    subscriptions = _guard_desired(desired)["subscriptions"]
    assert [(s["topic_arn"], s["protocol"], s["endpoint"]) for s in subscriptions] == [
        (s.topic_arn, s.protocol, s.endpoint) for s in desired.subscriptions]
    assert [s["attributes"] for s in subscriptions if s["protocol"] == "sqs"] == [{"RawMessageDelivery": "false"}] * 3
    assert text == _variant().guard_function.bundle[notification.GUARD_DESIRED_FILE]  # byte-stable


def test_the_guard_subscribes_the_oncall_without_raw_delivery():
    """SNS refuses RawMessageDelivery on an e-mail subscription, even "false": the guard leaves it out."""
    (oncall,) = [s for s in _guard_desired(_variant())["subscriptions"] if s["protocol"] == "email"]
    assert "RawMessageDelivery" not in oncall["attributes"]


def _as_list(value):
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("sabotage", [None, "remediation", "prevention", "detection"])
def test_the_guards_role_may_publish_its_report(sabotage):
    desired = _variant(sabotage)
    report_topic = _guard_desired(desired)["report_topic"]
    (policy,) = desired.guard_function.role.inline_policies.values()
    assert any(s["Effect"] == "Allow" and "sns:Publish" in _as_list(s["Action"])
               and report_topic in _as_list(s["Resource"]) for s in policy["Statement"])


def test_guard_rules_and_their_permissions():
    desired = _variant()
    guard = desired.guard_function
    sns_rule, alarm_rule, schedule = desired.sns_rule, desired.alarm_state_rule, desired.guard_schedule_rule
    assert (sns_rule.name, alarm_rule.name, schedule.name) == (
        "gameday-sns-tampering", "gameday-alarm-state", "gameday-sns-guard-schedule")
    assert sns_rule.pattern == notification.sns_tampering_pattern([TOPIC, FALLBACK])
    assert [(t.id, t.arn) for t in sns_rule.targets] == [("fallback-topic", FALLBACK), ("remediate", guard.arn)]
    assert alarm_rule.pattern == {
        "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [{"prefix": "gameday-"}], "state": {"value": ["ALARM"]}}}
    assert (schedule.pattern, schedule.schedule) == (None, "rate(5 minutes)")
    for rule in (alarm_rule, schedule):
        assert [(t.id, t.arn) for t in rule.targets] == [("remediate", guard.arn)]
    assert [(p.principal, p.source_arn) for p in guard.permissions] == [
        ("events.amazonaws.com", r.arn) for r in (sns_rule, alarm_rule, schedule)]
    assert {r.state for r in (sns_rule, alarm_rule, schedule)} == {"ENABLED"}


def test_sns_tampering_pattern_names_both_topics_and_their_subscriptions():
    pattern = notification.sns_tampering_pattern([TOPIC, FALLBACK])
    topics, subscriptions = pattern["$or"]
    assert pattern["source"] == ["aws.sns"] and pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    assert topics["detail"] == {"eventName": ["DeleteTopic", "SetTopicAttributes", "RemovePermission",
                                              "AddPermission"], "requestParameters": {"topicArn": [TOPIC, FALLBACK]}}
    # "<topic>:" so that gameday-security's prefix does not also cover gameday-security-muted's subscriptions
    assert subscriptions["detail"] == {"eventName": ["Unsubscribe", "SetSubscriptionAttributes"],
                                       "requestParameters": {"subscriptionArn": [{"prefix": f"{TOPIC}:"},
                                                                                 {"prefix": f"{FALLBACK}:"}]}}


def test_chain_patterns_fit_eventbridges_default_quota():
    longest = desired_state(account_id=ACCOUNT, region="ap-southeast-4", prefix="a" * 20)
    for rule in (longest.sns_rule, longest.alarm_state_rule):
        assert len(json.dumps(rule.pattern)) < 2048


def test_delivery_failures_alarm_watches_the_security_topic_and_notifies_the_fallback():
    alarm = _variant().delivery_failures_alarm
    params = alarm.put_params()
    assert params["AlarmName"] == "gameday-security-delivery-failures"
    assert (params["Namespace"], params["MetricName"], params["Statistic"]) == (
        "AWS/SNS", "NumberOfNotificationsFailed", "Sum")
    assert params["Dimensions"] == [{"Name": "TopicName", "Value": "gameday-security"}]
    assert (params["Threshold"], params["ComparisonOperator"]) == (1.0, "GreaterThanOrEqualToThreshold")
    assert params["AlarmActions"] == [FALLBACK] and params["ActionsEnabled"] is True


# -- sabotage --------------------------------------------------------------------------------------


def test_prevention_drops_the_deny_and_nothing_else():
    reference, weak = _variant(), _variant("prevention")
    for topic in weak.topics:
        assert not notification.protects(topic.policy)
        assert notification.DENY_SID not in [s["Sid"] for s in topic.policy["Statement"]]
        assert topic.policy == notification.topic_policy(topic.arn, ACCOUNT, exempt=(), protect=False)
    guard = _guard_desired(weak)
    # the guard keeps the policy it is given: it does not put back a Deny prevention removed
    assert [t["attributes"]["Policy"] for t in guard["topics"]] == [json.dumps(t.policy) for t in weak.topics]
    assert (guard["remediate"], guard["report_topic"]) == (True, FALLBACK)
    assert weak.sns_rule == reference.sns_rule and weak.delivery_failures_alarm == reference.delivery_failures_alarm
    assert weak.function is not None and weak.alarms_function is not None and weak.muted_topic is None
    assert weak.key == reference.key and weak.subscriptions == reference.subscriptions


def test_detection_routes_the_chains_reports_to_the_muted_topic():
    silent = _variant("detection")
    assert silent.muted_topic.arn == MUTED
    assert _guard_desired(silent)["report_topic"] == MUTED
    assert _guard_desired(silent)["remediate"] is True
    assert silent.delivery_failures_alarm.alarm_actions == (MUTED,)
    assert [t.id for t in silent.sns_rule.targets] == ["remediate"]  # the fallback topic is no longer paged
    assert all(notification.protects(t.policy, BREAK_GLASS) for t in silent.topics)


def test_remediation_keeps_the_guard_but_only_reporting():
    idle = _variant("remediation")
    assert idle.function is None and idle.alarms_function is None
    assert idle.guard_function.name == "gameday-remediate-sns"
    guard = _guard_desired(idle)
    assert (guard["remediate"], guard["report_topic"]) == (False, FALLBACK)
    assert [(t.id, t.arn) for t in idle.sns_rule.targets] == [("fallback-topic", FALLBACK),
                                                               ("remediate", idle.guard_function.arn)]
    assert idle.guard_function.environment != _variant().guard_function.environment  # a new hash for the new file
    assert all(notification.protects(t.policy, BREAK_GLASS) for t in idle.topics)


def test_outputs_carry_the_chain_and_older_outputs_still_load():
    outputs = _variant(oncall_email="soc@example.org").outputs()
    assert (outputs.fallback_topic_arn, outputs.break_glass_role_arn) == (FALLBACK, BREAK_GLASS)
    assert outputs.tickets_queue_url == f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/gameday-tickets"
    assert outputs.oncall_email == "soc@example.org"
    assert (outputs.sns_function_name, outputs.sns_rule_name, outputs.alarm_state_rule_name) == (
        "gameday-remediate-sns", "gameday-sns-tampering", "gameday-alarm-state")
    assert outputs.delivery_failures_alarm == "gameday-security-delivery-failures"
    assert outputs.topic_key_arn is None  # only a deploy knows the key's id
    assert StackOutputs.from_json(outputs.to_json()) == outputs
    assert _variant("remediation").outputs().sns_function_name == "gameday-remediate-sns"
    old = json.loads(outputs.to_json())
    added = ("fallback_topic_arn", "topic_key_arn", "break_glass_role_arn", "tickets_queue_url", "oncall_email",
             "sns_function_name", "sns_rule_name", "alarm_state_rule_name", "delivery_failures_alarm")
    for name in added:
        del old[name]
    loaded = StackOutputs.from_json(json.dumps(old))
    assert {name: getattr(loaded, name) for name in added} == dict.fromkeys(added)
