"""Guard Lambda for the notification chain: find and restore drift in the security topics, their subscriptions and
their key, report failed alarm actions, and tell the independent topic what it found (boto3 only)."""

import hashlib
import json
import logging
import os
import time
from datetime import datetime, timedelta, timezone

import boto3

logger = logging.getLogger("gameday.remediate_sns")
logger.setLevel(logging.INFO)

# boto3 reads AWS_ENDPOINT_URL itself, so the same code runs on AWS, LocalStack and the embedded plane.
_REGION = os.environ.get("AWS_REGION")
sns = boto3.client("sns", region_name=_REGION)
kms = boto3.client("kms", region_name=_REGION)
cloudwatch = boto3.client("cloudwatch", region_name=_REGION)

HISTORY_WAIT_S = 20.0  # how long an alarm action's result may take to show in the alarm history
HISTORY_POLL_S = 0.2
KEY_USERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")  # as harness/stack/notification.py
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"


def handler(event, context):
    """Whatever woke it (a tampering call, an alarm, the schedule), check everything: reconcile, safe to retry."""
    desired = load_desired()
    fix = desired["remediate"]
    findings = []
    if event.get("detail-type") == ALARM_STATE_CHANGE:
        findings += failed_actions(event.get("detail", {}))
    findings += reconcile_key(desired["key"], fix)
    findings += reconcile_topics(desired["topics"], fix)
    findings += reconcile_subscriptions(desired["subscriptions"], fix)
    if findings:
        sns.publish(TopicArn=desired["report_topic"], Subject="Gameday: the security notification chain drifted",
                    Message=json.dumps({"source": "gameday.sns-guard", "trigger": event.get("detail-type"),
                                        "findings": findings}))
    logger.info("findings: %s", json.dumps(findings))
    return {"findings": findings}


def load_desired():
    spec = json.loads(os.environ["GAMEDAY_DESIRED"])
    text = open(os.path.join(os.path.dirname(__file__), spec["file"]), encoding="utf-8").read()
    if hashlib.sha256(text.encode()).hexdigest() != spec["sha256"]:
        raise RuntimeError(f"{spec['file']} does not match the deployed desired state: redeploy the stack")
    return json.loads(text)


# -- alarm actions ---------------------------------------------------------------------------------------


def failed_actions(detail):
    """The failed actions of the alarm that just went to ALARM (its notification went nowhere)."""
    name = detail.get("alarmName")
    alarms = cloudwatch.describe_alarms(AlarmNames=[name]).get("MetricAlarms", []) if name else []
    if not alarms or not alarms[0].get("ActionsEnabled") or not alarms[0].get("AlarmActions"):
        return []  # nothing was meant to run: no action result will come
    since = _parse_time(detail.get("state", {}).get("timestamp")) - timedelta(seconds=1)
    deadline = time.monotonic() + HISTORY_WAIT_S
    while True:
        items = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="Action", StartDate=since,
                                                  MaxRecords=20).get("AlarmHistoryItems", [])
        if items or time.monotonic() > deadline:
            break
        time.sleep(HISTORY_POLL_S)  # the action runs after the state change: poll its result with a deadline
    return [{"kind": "alarm-action-failed", "alarm": name, "summary": item["HistorySummary"], "fixed": False}
            for item in items if item["HistorySummary"].startswith("Failed to execute action")]


def _parse_time(text):
    if not text:
        return datetime.now(timezone.utc)
    text = text.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # CloudWatch writes +0000
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


# -- the key ---------------------------------------------------------------------------------------------


def reconcile_key(key, fix):
    try:
        meta = kms.describe_key(KeyId=key["alias"])["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        return [{"kind": "key-missing", "key": key["alias"], "fixed": False}]
    found = []
    if meta.get("KeyState") in ("Disabled", "PendingDeletion"):
        if fix:
            if meta["KeyState"] == "PendingDeletion":  # a key pending deletion is unusable and comes back disabled
                kms.cancel_key_deletion(KeyId=meta["KeyId"])
            kms.enable_key(KeyId=meta["KeyId"])
        found.append({"kind": f"key-{meta['KeyState'].lower()}", "key": meta["Arn"], "fixed": fix})
    policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    if not grants_publishers(policy):
        if fix:
            kms.put_key_policy(KeyId=meta["KeyId"], PolicyName="default", Policy=json.dumps(key["policy"]))
        found.append({"kind": "key-grant-missing", "key": meta["Arn"], "fixed": fix,
                      "detail": "CloudWatch or EventBridge may not use the topic's key"})
    return found


def grants_publishers(policy):
    return all(any(_allows(s, service) for s in _statements(policy)) for service in KEY_USERS)


def _allows(statement, service):
    principal = statement.get("Principal")
    services = principal.get("Service", []) if isinstance(principal, dict) else []
    if statement.get("Effect") != "Allow" or service not in _as_list(services):
        return False
    actions = {a.lower() for a in _as_list(statement.get("Action"))}
    return "kms:*" in actions or {"kms:decrypt", "kms:generatedatakey*"} <= actions


# -- topics and subscriptions ----------------------------------------------------------------------------


def reconcile_topics(topics, fix):
    found = []
    for topic in topics:
        try:
            stored = sns.get_topic_attributes(TopicArn=topic["arn"])["Attributes"]
        except sns.exceptions.NotFoundException:
            if fix:
                sns.create_topic(Name=topic["name"], Attributes=topic["attributes"])
            found.append({"kind": "topic-missing", "topic": topic["arn"], "fixed": fix})
            continue
        for name, value in topic["attributes"].items():
            same = _normal(json.loads(stored.get(name) or "null")) == _normal(json.loads(value)) \
                if name == "Policy" else stored.get(name, "") == value
            if not same:
                if fix:
                    sns.set_topic_attributes(TopicArn=topic["arn"], AttributeName=name, AttributeValue=value)
                found.append({"kind": f"topic-{name.lower()}-changed", "topic": topic["arn"], "fixed": fix})
    return found


def reconcile_subscriptions(subscriptions, fix):
    found, listed = [], {}
    for sub in subscriptions:
        topic = sub["topic_arn"]
        if topic not in listed:
            try:
                listed[topic] = _list_subscriptions(topic)
            except sns.exceptions.NotFoundException:
                listed[topic] = None  # the topic is gone (reported above); recreating it brings none back
        current = listed[topic]
        if current is None and not fix:
            continue
        match = [s for s in current or [] if s["Protocol"] == sub["protocol"] and s["Endpoint"] == sub["endpoint"]]
        what = {"topic": topic, "protocol": sub["protocol"], "endpoint": sub["endpoint"]}
        if not match or match[0]["SubscriptionArn"] in ("PendingConfirmation", "Deleted"):
            if fix:  # for a pending one, Subscribe sends the endpoint a fresh confirmation
                sns.subscribe(TopicArn=topic, Protocol=sub["protocol"], Endpoint=sub["endpoint"],
                              Attributes=sub["attributes"], ReturnSubscriptionArn=True)
            kind = "subscription-pending" if match else "subscription-missing"
            found.append({"kind": kind, **what, "fixed": fix})
            continue
        try:
            attributes = sns.get_subscription_attributes(SubscriptionArn=match[0]["SubscriptionArn"])["Attributes"]
        except sns.exceptions.NotFoundException:
            continue  # unsubscribed since it was listed: the next run sees it missing
        if attributes.get("PendingConfirmation") == "true":
            if fix:
                sns.subscribe(TopicArn=topic, Protocol=sub["protocol"], Endpoint=sub["endpoint"],
                              Attributes=sub["attributes"], ReturnSubscriptionArn=True)
            found.append({"kind": "subscription-pending", **what, "fixed": fix})
            continue
        if attributes.get("FilterPolicy") not in (None, "", "{}"):
            if fix:  # an empty policy lets every message through
                sns.set_subscription_attributes(SubscriptionArn=match[0]["SubscriptionArn"],
                                                AttributeName="FilterPolicy", AttributeValue="{}")
            found.append({"kind": "subscription-filtered", **what, "filter": attributes["FilterPolicy"],
                          "fixed": fix})
        for name, value in sub["attributes"].items():
            if attributes.get(name, "false") != value:
                if fix:
                    sns.set_subscription_attributes(SubscriptionArn=match[0]["SubscriptionArn"],
                                                    AttributeName=name, AttributeValue=value)
                found.append({"kind": f"subscription-{name.lower()}-changed", **what, "fixed": fix})
    return found


def _list_subscriptions(topic):
    found, token = [], None
    while True:
        page = sns.list_subscriptions_by_topic(TopicArn=topic, **({"NextToken": token} if token else {}))
        found += page.get("Subscriptions", [])
        token = page.get("NextToken")
        if not token:
            return found


def _normal(value):
    """Sorted lists, singletons as scalars, actions lower-cased: the freedoms AWS takes when it stores a policy."""
    if isinstance(value, dict):
        return {k: (v.lower() if k in ("Action", "NotAction") and isinstance(v, str) else _normal(v))
                for k, v in value.items()}
    if isinstance(value, list):
        items = sorted((_normal(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        items = [i.lower() if isinstance(i, str) and i.lower().startswith("sns:") else i for i in items]
        return items[0] if len(items) == 1 else items
    return value


def _statements(policy):
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, dict) else statements


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
