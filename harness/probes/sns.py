"""Probes of the notification chain: the security topic, its key, its subscriptions and subscribers."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from harness.probes import Probe
from harness.stack import notification

__all__ = ["topic_exists", "topic_protected", "topic_intact", "key_grants_publishers", "subscribed", "unfiltered",
           "queue_exists"]


def _topic(aws: Any, arn: str) -> dict | None:
    try:
        return aws.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NotFound":
            return None
        raise


def _name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def topic_exists(topic_arn: str) -> Probe:
    def check(aws: Any) -> tuple[bool, str]:
        found = _topic(aws, topic_arn) is not None
        return found, f"topic {_name(topic_arn)} {'exists' if found else 'does not exist'}"

    return Probe(f"topic {_name(topic_arn)} exists", check, ("sns:GetTopicAttributes",))


def topic_protected(topic_arn: str, exempt: str | None = None) -> Probe:
    """The topic exists and its policy denies DeleteTopic and SetTopicAttributes to everyone but `exempt`."""

    def check(aws: Any) -> tuple[bool, str]:
        found = _topic(aws, topic_arn)
        if found is None:
            return False, f"topic {_name(topic_arn)} does not exist"
        if not notification.protects(json.loads(found.get("Policy") or "{}"), exempt):
            return False, f"the policy of {_name(topic_arn)} no longer denies DeleteTopic/SetTopicAttributes"
        return True, f"topic {_name(topic_arn)} exists; its policy refuses tampering"

    return Probe(f"topic {_name(topic_arn)} is protected", check, ("sns:GetTopicAttributes",))


def topic_intact(topic_arn: str, *, exempt: str | None, key: str | None, sink_queue_arn: str,
                 protected: bool = True) -> Probe:
    """The topic exists (protected, unless told otherwise), encrypted with `key` if given, the sink subscribed."""
    exists = topic_protected(topic_arn, exempt) if protected else topic_exists(topic_arn)
    sink = subscribed(topic_arn, "sqs", sink_queue_arn)

    def check(aws: Any) -> tuple[bool, str]:
        for probe in (exists, sink):
            ok, evidence = probe(aws)
            if not ok:
                return False, evidence
        stored = (_topic(aws, topic_arn) or {}).get("KmsMasterKeyId", "")
        if key and (not stored or _key_arn(aws, stored) != _key_arn(aws, key)):
            return False, f"topic {_name(topic_arn)} is encrypted with {stored or 'nothing'}, not {key}"
        state = ", ".join(filter(None, ("protected" if protected else "", "encrypted" if key else "")))
        return True, f"topic {_name(topic_arn)} exists{', ' + state if state else ''}, sink subscribed"

    return Probe(f"topic {_name(topic_arn)} is intact", check,
                 ("sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes"))


def _key_arn(aws: Any, key: str) -> str | None:
    """The ARN behind a key id, ARN, alias or alias ARN (the forms KmsMasterKeyId accepts)."""
    try:
        return aws.client("kms").describe_key(KeyId=key)["KeyMetadata"]["Arn"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NotFoundException":
            return None
        raise


def key_grants_publishers(key: str) -> Probe:
    """The key policy lets CloudWatch and EventBridge use the key (so alarms and rules can publish)."""

    def check(aws: Any) -> tuple[bool, str]:
        kms = aws.client("kms")
        try:
            meta = kms.describe_key(KeyId=key)["KeyMetadata"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NotFoundException":
                return False, f"key {key} does not exist"
            raise
        if meta.get("KeyState") != "Enabled":
            return False, f"key {key} is {meta.get('KeyState')}"
        policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
        if not notification.grants_publishers(policy):
            return False, f"the policy of key {key} does not let {' and '.join(notification.KEY_USERS)} use it"
        return True, f"key {key} is enabled and grants {', '.join(notification.KEY_USERS)}"

    return Probe(f"key {key} lets alarms and rules publish", check, ("kms:DescribeKey", "kms:GetKeyPolicy"))


def subscription(aws: Any, topic_arn: str, protocol: str, endpoint: str) -> dict | None:
    """The subscription's listing entry (its SubscriptionArn is "PendingConfirmation" until confirmed)."""
    sns = aws.client("sns")
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub["Protocol"] == protocol and sub["Endpoint"] == endpoint:
                return sub
    return None


def _attributes(aws: Any, sub: dict) -> dict:
    return aws.client("sns").get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]


def subscribed(topic_arn: str, protocol: str, endpoint: str) -> Probe:
    """The endpoint is subscribed to the topic and the subscription is confirmed."""

    def check(aws: Any) -> tuple[bool, str]:
        if _topic(aws, topic_arn) is None:
            return False, f"topic {_name(topic_arn)} does not exist"
        sub = subscription(aws, topic_arn, protocol, endpoint)
        if sub is None:
            return False, f"{protocol} {endpoint} is not subscribed to {_name(topic_arn)}"
        pending = sub["SubscriptionArn"] == "PendingConfirmation" or \
            _attributes(aws, sub).get("PendingConfirmation") == "true"
        if pending:
            return False, f"the subscription of {endpoint} to {_name(topic_arn)} is pending confirmation"
        return True, f"{protocol} {endpoint} is subscribed to {_name(topic_arn)} and confirmed"

    return Probe(f"{endpoint} receives {_name(topic_arn)}", check,
                 ("sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes"))


def unfiltered(topic_arn: str, protocol: str, endpoint: str) -> Probe:
    """The endpoint's subscription has no filter policy (every alarm reaches it)."""

    def check(aws: Any) -> tuple[bool, str]:
        sub = subscription(aws, topic_arn, protocol, endpoint) if _topic(aws, topic_arn) else None
        if sub is None or sub["SubscriptionArn"] == "PendingConfirmation":
            return False, f"{endpoint} has no confirmed subscription to {_name(topic_arn)}"
        policy = _attributes(aws, sub).get("FilterPolicy")
        if policy not in (None, "", "{}"):
            return False, f"the subscription of {endpoint} filters messages: {policy}"
        return True, f"the subscription of {endpoint} has no filter policy"

    return Probe(f"{endpoint} gets every message of {_name(topic_arn)}", check,
                 ("sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes"))


def queue_exists(queue_name: str) -> Probe:
    def check(aws: Any) -> tuple[bool, str]:
        try:
            aws.client("sqs").get_queue_url(QueueName=queue_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                return False, f"queue {queue_name} does not exist"
            raise
        return True, f"queue {queue_name} exists"

    return Probe(f"queue {queue_name} exists", check, ("sqs:GetQueueUrl",))
