"""The SNS guard Lambda on the embedded plane: invoked through the Lambda API with the events its rules deliver."""

import ast
import importlib.util
import io
import json
import uuid
import zipfile
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from test_notification import KEY_POLICIES

from harness.assume import assumed
from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.poll import wait_for
from harness.stack import notification
from harness.stack.deploy import code_sha256, deploy, function_zip
from harness.stack.desired import desired_state

GUARD_RULES = ("sns_rule", "alarm_state_rule", "guard_schedule_rule")
PROBE_QUEUE = "guard-events-probe"
REPORT_SOURCE = "gameday.sns-guard"
TIMEOUT = 10.0


def _quiet(desired):
    """`desired` with the guard's three rules disabled: it runs when a test invokes it, never racing the test."""
    return replace(desired, **{name: replace(getattr(desired, name), state="DISABLED") for name in GUARD_RULES})


def _converge(aws, desired):
    """Deploy, then confirm the on-call subscription as its owner would (as a session does after a deploy)."""
    deploy(aws.client, _quiet(desired))
    if _oncall(aws, desired) == "PendingConfirmation":
        assert aws.mailbox.confirm_latest(desired.topic.arn, desired.oncall_email)


def _oncall(aws, desired):
    """The on-call subscription's ARN as ListSubscriptionsByTopic shows it ("PendingConfirmation" until confirmed)."""
    listed = aws.client("sns").list_subscriptions_by_topic(TopicArn=desired.topic.arn)["Subscriptions"]
    return next((s["SubscriptionArn"] for s in listed if s["Endpoint"] == desired.oncall_email), None)


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings())
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def desired(aws):
    """One deployed reference stack shared by the module, its on-call subscription confirmed."""
    desired = desired_state(account_id=aws.account_id, region=aws.region)
    _converge(aws, desired)
    return desired


@pytest.fixture(scope="module")
def probe(aws, desired):
    """A queue fed by twins of the guard's event rules: the events EventBridge would hand the guard."""
    sqs, ev = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName=PROBE_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for rule in (desired.sns_rule, desired.alarm_state_rule):
        ev.put_rule(Name=f"probe-{rule.name}", EventPattern=json.dumps(rule.pattern), State="ENABLED")
        ev.put_targets(Rule=f"probe-{rule.name}", Targets=[{"Id": "probe", "Arn": arn}])
    return url


@pytest.fixture
def chain(aws, desired, probe):
    """Each test starts with empty queues; whatever it leaves drifted is deployed back before the next one."""
    aws.plane.drain()
    for url in (_sink(aws, desired), probe):
        _received(aws, url)
    yield
    if chain_state(aws, desired) != desired_chain_state(desired):
        _converge(aws, desired)
    assert chain_state(aws, desired) == desired_chain_state(desired)


# -- what the backend holds: an oracle written apart from the guard's and the deploy's drift code ----------


def chain_state(aws, desired):
    """The chain's topics (policy, key, subscribers), its key and the guard's code, as stored."""
    sns, kms = aws.client("sns"), aws.client("kms")
    topics = {}
    for topic in desired.topics:
        try:
            attributes = sns.get_topic_attributes(TopicArn=topic.arn)["Attributes"]
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NotFound"
            continue
        listed = sns.list_subscriptions_by_topic(TopicArn=topic.arn)["Subscriptions"]
        topics[topic.name] = {"policy": json.loads(attributes["Policy"]), "key": attributes.get("KmsMasterKeyId"),
                              "subscribers": sorted(_subscriber(sns, s) for s in listed)}
    key = kms.describe_key(KeyId=desired.key.alias)["KeyMetadata"]
    config = aws.client("lambda").get_function_configuration(FunctionName=desired.guard_function.name)
    return {
        "topics": topics,
        "key": {"state": key["KeyState"],
                "policy": json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])},
        "guard": {"code": config["CodeSha256"], "environment": config["Environment"]["Variables"]},
    }


def _subscriber(sns, listed):
    """(protocol, endpoint, state, raw delivery, filter policy); an empty filter policy filters nothing."""
    if listed["SubscriptionArn"] == "PendingConfirmation":
        return listed["Protocol"], listed["Endpoint"], "pending", "", ""
    attributes = sns.get_subscription_attributes(SubscriptionArn=listed["SubscriptionArn"])["Attributes"]
    return (listed["Protocol"], listed["Endpoint"], "confirmed", attributes["RawMessageDelivery"],
            json.dumps(json.loads(attributes.get("FilterPolicy") or "{}"), sort_keys=True))


def desired_chain_state(desired):
    """chain_state() of a backend holding exactly the desired chain, the on-call confirmed."""
    sink, tickets = desired.queue.arn, desired.tickets_queue.arn
    guard = desired.guard_function
    return {
        "topics": {
            "gameday-security": {"policy": desired.topic.policy, "key": "alias/gameday-security-topic",
                                 "subscribers": sorted([
                                     ("email", "security-oncall@example.com", "confirmed", "false", "{}"),
                                     ("sqs", sink, "confirmed", "false", "{}"),
                                     ("sqs", tickets, "confirmed", "false", "{}")])},
            "gameday-security-fallback": {"policy": desired.fallback_topic.policy, "key": None,
                                          "subscribers": [("sqs", sink, "confirmed", "false", "{}")]},
        },
        "key": {"state": "Enabled", "policy": desired.key.policy},
        "guard": {"code": code_sha256(function_zip(guard.source, guard.bundle)), "environment": guard.environment},
    }


# -- events, invocations and reports --------------------------------------------------------------------


def _received(aws, url):
    """Bodies waiting in a queue, deleted once read."""
    sqs, bodies = aws.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            bodies.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def _sink(aws, desired):
    return aws.client("sqs").get_queue_url(QueueName=desired.queue.name)["QueueUrl"]


def _captured(aws, probe, match):
    """The first event the probe rules caught that `match` accepts (others are dropped)."""

    def caught():
        return next((event for event in _received(aws, probe) if match(event)), None)

    event = wait_for(caught, timeout=TIMEOUT, interval=0.05, describe="the event the guard's rule would deliver")
    assert event is not None, "no matching event reached the probe rules"
    return event


def _api_call(aws, probe, name):
    return _captured(aws, probe, lambda e: e["detail-type"] == "AWS API Call via CloudTrail"
                     and e["detail"]["eventName"] == name)


def _scheduled(desired):
    """What the schedule rule hands its target (EventBridge's "Scheduled Event")."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": desired.account_id, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": desired.region, "resources": [desired.guard_schedule_rule.arn], "detail": {}}


def _invoke(aws, desired, event):
    """Run the deployed guard as its rules do, synchronously; its answer's payload."""
    answer = aws.client("lambda").invoke(FunctionName=desired.guard_function.name,
                                         InvocationType="RequestResponse", Payload=json.dumps(event).encode())
    return answer.get("FunctionError"), json.loads(answer["Payload"].read())


def _findings(aws, desired, event):
    error, payload = _invoke(aws, desired, event)
    assert error is None, payload
    return payload["findings"]


def _reports(aws, desired):
    """The guard's reports that reached the sink through the fallback topic."""
    return [json.loads(body["Message"]) for body in _received(aws, _sink(aws, desired))
            if body.get("TopicArn") == desired.fallback_topic.arn and REPORT_SOURCE in body.get("Message", "")]


def _report(aws, desired):
    found = []

    def arrived():
        found.extend(_reports(aws, desired))
        return found

    assert wait_for(arrived, timeout=TIMEOUT, interval=0.05, describe="the guard's report in the sink")
    (report,) = found
    assert report["source"] == REPORT_SOURCE
    return report


def _no_report(aws, desired):
    # The guard publishes before its invocation returns, and SNS hands SQS the message within that Publish.
    assert _reports(aws, desired) == []


def _break_glass(aws, desired):
    return assumed(aws.client, desired.break_glass_role.arn, "gameday-test")("sns")


def _sub_arn(aws, topic, endpoint):
    listed = aws.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    return next(s["SubscriptionArn"] for s in listed if s["Endpoint"] == endpoint)


def _what(topic, protocol, endpoint):
    return {"topic": topic, "protocol": protocol, "endpoint": endpoint}


# -- the guard against the deployed stack ---------------------------------------------------------------


def test_a_healthy_chain_needs_nothing_and_nobody_is_told(aws, desired, chain):
    assert _findings(aws, desired, _scheduled(desired)) == []
    _no_report(aws, desired)


def test_a_deleted_topic_comes_back_with_its_policy_key_and_subscriptions(aws, desired, probe, chain):
    _break_glass(aws, desired).delete_topic(TopicArn=desired.topic.arn)  # the topic policy refuses all others
    first = aws.mailbox.confirmation(desired.oncall_email, desired.topic.arn)

    findings = _findings(aws, desired, _api_call(aws, probe, "DeleteTopic"))

    topic, sink, tickets = desired.topic.arn, desired.queue.arn, desired.tickets_queue.arn
    assert findings == [
        {"kind": "topic-missing", "topic": topic, "fixed": True},
        {"kind": "subscription-missing", **_what(topic, "sqs", sink), "fixed": True},
        {"kind": "subscription-missing", **_what(topic, "sqs", tickets), "fixed": True},
        {"kind": "subscription-missing", **_what(topic, "email", desired.oncall_email), "fixed": True},
    ]
    assert _report(aws, desired)["findings"] == findings
    attributes = aws.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
    assert json.loads(attributes["Policy"]) == desired.topic.policy
    assert attributes["KmsMasterKeyId"] == "alias/gameday-security-topic"
    # the on-call's new subscription waits for its owner, who got a fresh confirmation
    assert _oncall(aws, desired) == "PendingConfirmation"
    assert aws.mailbox.confirmation(desired.oncall_email, topic)["Token"] != first["Token"]
    assert aws.mailbox.confirm_latest(topic, desired.oncall_email)
    assert chain_state(aws, desired) == desired_chain_state(desired)


def _weaken_policy(aws, desired):
    weak = notification.topic_policy(desired.topic.arn, desired.account_id, exempt=(), protect=False)
    _break_glass(aws, desired).set_topic_attributes(TopicArn=desired.topic.arn, AttributeName="Policy",
                                                    AttributeValue=json.dumps(weak))


def _remove_key_grant(aws, desired):
    kms = aws.client("kms")
    kms.put_key_policy(KeyId=kms.describe_key(KeyId=desired.key.alias)["KeyMetadata"]["KeyId"], PolicyName="default",
                       Policy=json.dumps(notification.key_policy(desired.account_id, "aws", grant_publishers=False)))


def _filter_sink(aws, desired):
    aws.client("sns").set_subscription_attributes(
        SubscriptionArn=_sub_arn(aws, desired.topic.arn, desired.queue.arn), AttributeName="FilterPolicy",
        AttributeValue=json.dumps({"severity": ["never-sent"]}))


def _unsubscribe(topic, queue):
    """A tampering: unsubscribe the `queue` (a DesiredState field) from the `topic` (another)."""
    return lambda aws, desired: aws.client("sns").unsubscribe(
        SubscriptionArn=_sub_arn(aws, getattr(desired, topic).arn, getattr(desired, queue).arn))


def _key_arn(aws, desired):
    return aws.client("kms").describe_key(KeyId=desired.key.alias)["KeyMetadata"]["Arn"]


# tampering -> (how, the call its rule reports or None for the schedule, the guard's findings)
TAMPERING = {
    "policy-weakened": (_weaken_policy, "SetTopicAttributes", lambda aws, d: [
        {"kind": "topic-policy-changed", "topic": d.topic.arn, "fixed": True}]),
    # PutKeyPolicy is no SNS call: the schedule finds it
    "key-grant-removed": (_remove_key_grant, None, lambda aws, d: [
        {"kind": "key-grant-missing", "key": _key_arn(aws, d), "fixed": True,
         "detail": "CloudWatch or EventBridge may not use the topic's key"}]),
    "sink-filtered": (_filter_sink, "SetSubscriptionAttributes", lambda aws, d: [
        {"kind": "subscription-filtered", **_what(d.topic.arn, "sqs", d.queue.arn),
         "filter": json.dumps({"severity": ["never-sent"]}), "fixed": True}]),
    "sink-unsubscribed": (_unsubscribe("topic", "queue"), "Unsubscribe", lambda aws, d: [
        {"kind": "subscription-missing", **_what(d.topic.arn, "sqs", d.queue.arn), "fixed": True}]),
    # the report itself travels this subscription: the guard puts it back before it reports
    "fallback-unsubscribed": (_unsubscribe("fallback_topic", "queue"), "Unsubscribe", lambda aws, d: [
        {"kind": "subscription-missing", **_what(d.fallback_topic.arn, "sqs", d.queue.arn), "fixed": True}]),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_each_tampering_is_put_back_and_reported(aws, desired, probe, chain, tampering):
    tamper, call, expected = TAMPERING[tampering]
    tamper(aws, desired)
    assert chain_state(aws, desired) != desired_chain_state(desired)
    event = _api_call(aws, probe, call) if call else _scheduled(desired)

    findings = _findings(aws, desired, event)

    assert findings == expected(aws, desired)
    assert _report(aws, desired) == {"source": REPORT_SOURCE, "trigger": event["detail-type"], "findings": findings}
    assert chain_state(aws, desired) == desired_chain_state(desired)


def test_a_pending_email_subscription_gets_its_confirmation_again(aws, desired, chain):
    sns = aws.client("sns")
    sns.unsubscribe(SubscriptionArn=_oncall(aws, desired))
    sns.subscribe(TopicArn=desired.topic.arn, Protocol="email", Endpoint=desired.oncall_email)
    first = aws.mailbox.confirmation(desired.oncall_email, desired.topic.arn)

    findings = _findings(aws, desired, _scheduled(desired))

    assert findings == [{"kind": "subscription-pending",
                         **_what(desired.topic.arn, "email", desired.oncall_email), "fixed": True}]
    assert _report(aws, desired)["findings"] == findings
    resent = aws.mailbox.confirmation(desired.oncall_email, desired.topic.arn)
    assert resent["Token"] != first["Token"]
    assert _oncall(aws, desired) == "PendingConfirmation"  # only the address's owner can confirm
    assert aws.mailbox.confirm_latest(desired.topic.arn, desired.oncall_email)
    assert chain_state(aws, desired) == desired_chain_state(desired)


def test_everything_at_once_then_idempotent(aws, desired, chain):
    _weaken_policy(aws, desired)
    _remove_key_grant(aws, desired)
    _filter_sink(aws, desired)
    _unsubscribe("topic", "tickets_queue")(aws, desired)

    findings = _findings(aws, desired, _scheduled(desired))

    assert [f["kind"] for f in findings] == ["key-grant-missing", "topic-policy-changed", "subscription-filtered",
                                             "subscription-missing"]
    assert {f["fixed"] for f in findings} == {True}
    assert _report(aws, desired)["findings"] == findings
    assert chain_state(aws, desired) == desired_chain_state(desired)
    assert _findings(aws, desired, _scheduled(desired)) == []
    _no_report(aws, desired)
    report = deploy(aws.client, _quiet(desired))  # the deploy's own drift check agrees nothing is left
    assert not report.changed, report.changes


def test_report_only_guard_reports_and_changes_nothing(aws, desired, chain):
    idle = desired_state(account_id=desired.account_id, region=desired.region, sabotage="remediation")
    deploy(aws.client, _quiet(idle))
    _weaken_policy(aws, desired)
    _remove_key_grant(aws, desired)
    _unsubscribe("topic", "queue")(aws, desired)
    drifted = chain_state(aws, desired)

    findings = _findings(aws, desired, _scheduled(desired))

    topic = desired.topic.arn
    assert findings == [
        {"kind": "key-grant-missing", "key": _key_arn(aws, desired), "fixed": False,
         "detail": "CloudWatch or EventBridge may not use the topic's key"},
        {"kind": "topic-policy-changed", "topic": topic, "fixed": False},
        {"kind": "subscription-missing", **_what(topic, "sqs", desired.queue.arn), "fixed": False},
    ]
    # the sink no longer hears the security topic, but the fallback still reaches it
    assert _report(aws, desired)["findings"] == findings
    assert chain_state(aws, desired) == drifted


@pytest.fixture
def alarm(aws, desired, request):
    """A CIS alarm nothing here trips by itself (it notifies the security topic); put back to OK afterwards.

    One per case: the guard reads the alarm's action history from a second before the change.
    """
    name = next(c.alarm.name for c in desired.controls if c.id == request.param)
    yield name
    aws.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="OK", StateReason="gameday test over")


@pytest.mark.parametrize("grant, alarm", [(False, "4.3"), (True, "4.9")], ids=["key-grant-removed", "key-grant-intact"],
                         indirect=["alarm"])
def test_a_failed_alarm_action_is_reported(aws, desired, probe, chain, alarm, grant):
    if not grant:
        _remove_key_grant(aws, desired)
    aws.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="gameday test")
    event = _captured(aws, probe, lambda e: e["detail-type"] == "CloudWatch Alarm State Change"
                      and e["detail"]["alarmName"] == alarm and e["detail"]["state"]["value"] == "ALARM")

    findings = _findings(aws, desired, event)

    if grant:
        assert findings == []
        _no_report(aws, desired)
        return
    failed, key = findings
    # CloudWatch could not use the key to publish: the alarm changed state, and nobody heard
    assert (failed["kind"], failed["alarm"], failed["fixed"]) == ("alarm-action-failed", alarm, False)
    assert failed["summary"].startswith(f"Failed to execute action {desired.topic.arn}.")
    assert "AccessDeniedException" in failed["summary"]
    assert (key["kind"], key["fixed"]) == ("key-grant-missing", True)
    assert _report(aws, desired) == {"source": REPORT_SOURCE, "trigger": "CloudWatch Alarm State Change",
                                     "findings": findings}


def test_a_desired_file_other_than_the_deployed_one_is_refused(aws, desired, chain):
    guard = desired.guard_function
    tampered = json.loads(guard.bundle[notification.GUARD_DESIRED_FILE])
    tampered["remediate"] = False
    lam = aws.client("lambda")
    lam.update_function_code(FunctionName=guard.name, ZipFile=function_zip(
        guard.source, {notification.GUARD_DESIRED_FILE: json.dumps(tampered)}))
    lam.get_waiter("function_updated_v2").wait(FunctionName=guard.name)
    _unsubscribe("topic", "queue")(aws, desired)
    drifted = chain_state(aws, desired)

    error, payload = _invoke(aws, desired, _scheduled(desired))

    assert error == "Unhandled"
    assert (payload["errorType"], payload["errorMessage"]) == (
        "RuntimeError", "desired.json does not match the deployed desired state: redeploy the stack")
    assert chain_state(aws, desired) == drifted
    _no_report(aws, desired)


# -- the function's source, which is zipped alone ------------------------------------------------------


@pytest.fixture
def module(monkeypatch):
    """The guard module with no backend behind it: enough for its pure decision functions."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    spec = importlib.util.spec_from_file_location("remediate_sns", notification.GUARD_SOURCE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_the_function_and_the_harness_agree_on_key_users():
    """The function cannot import the harness, so it keeps its own copy: the copies must not drift."""
    tree = ast.parse(notification.GUARD_SOURCE.read_text())
    (copy,) = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
               and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "KEY_USERS"]
    assert copy == notification.KEY_USERS == ("cloudwatch.amazonaws.com", "events.amazonaws.com")


@pytest.mark.parametrize("policy", KEY_POLICIES)
def test_the_function_and_the_harness_agree_on_the_key_grant(module, policy):
    document, grants = KEY_POLICIES[policy]
    assert module.grants_publishers(document) is notification.grants_publishers(document) is grants


def test_handler_imports_nothing_from_the_harness():
    tree = ast.parse(notification.GUARD_SOURCE.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"datetime", "hashlib", "json", "logging", "os", "time", "boto3", "botocore"}


def test_the_zip_carries_the_desired_file_next_to_the_handler():
    guard = desired_state(account_id="123456789012", region="us-east-1").guard_function
    archive = zipfile.ZipFile(io.BytesIO(function_zip(guard.source, guard.bundle)))
    assert archive.namelist() == ["desired.json", "remediate_sns.py"]
    assert archive.read("desired.json").decode() == guard.bundle["desired.json"]


def _handler_calls():
    """(client, operation) pairs the handler calls on its module-level clients."""
    tree = ast.parse(notification.GUARD_SOURCE.read_text())
    return {(node.func.value.id, node.func.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id in ("sns", "kms", "cloudwatch")}


IAM_ACTION = {
    ("sns", "create_topic"): "sns:CreateTopic",
    ("sns", "get_topic_attributes"): "sns:GetTopicAttributes",
    ("sns", "set_topic_attributes"): "sns:SetTopicAttributes",
    ("sns", "subscribe"): "sns:Subscribe",
    ("sns", "list_subscriptions_by_topic"): "sns:ListSubscriptionsByTopic",
    ("sns", "get_subscription_attributes"): "sns:GetSubscriptionAttributes",
    ("sns", "set_subscription_attributes"): "sns:SetSubscriptionAttributes",
    ("sns", "publish"): "sns:Publish",
    ("kms", "describe_key"): "kms:DescribeKey",
    ("kms", "get_key_policy"): "kms:GetKeyPolicy",
    ("kms", "put_key_policy"): "kms:PutKeyPolicy",
    ("kms", "enable_key"): "kms:EnableKey",
    ("kms", "cancel_key_deletion"): "kms:CancelKeyDeletion",
    ("cloudwatch", "describe_alarms"): "cloudwatch:DescribeAlarms",
    ("cloudwatch", "describe_alarm_history"): "cloudwatch:DescribeAlarmHistory",
}


def _granted(policy, action):
    """The resources some statement of `policy` allows `action` on."""
    def listed(value):
        return [value] if isinstance(value, str) else list(value)

    return {r for s in policy["Statement"] if s["Effect"] == "Allow" and action in listed(s["Action"])
            for r in listed(s["Resource"])}


def test_role_grants_every_call_the_handler_makes_on_the_chain_only():
    desired = desired_state(account_id="123456789012", region="us-east-1")
    calls = _handler_calls()
    assert calls <= set(IAM_ACTION), f"map these calls to IAM actions: {calls - set(IAM_ACTION)}"
    (policy,) = desired.guard_function.role.inline_policies.values()
    topics = {desired.topic.arn, desired.fallback_topic.arn}
    for client, operation in sorted(calls):
        action = IAM_ACTION[(client, operation)]
        if action == "sns:Publish":
            assert desired.fallback_topic.arn in _granted(policy, action)  # where it reports
        elif client == "sns":
            assert _granted(policy, action) == topics, action
        elif client == "cloudwatch":
            assert _granted(policy, action) == {"arn:aws:cloudwatch:us-east-1:123456789012:alarm:gameday-*"}, action
        else:
            assert _granted(policy, action) == {"*"}, action
    (key,) = [s for s in policy["Statement"] if "kms:PutKeyPolicy" in s["Action"]]
    assert key["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/gameday-security-topic"}}
