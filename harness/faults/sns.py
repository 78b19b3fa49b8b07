"""Faults on the notification chain: the topic's key, policy and existence, its subscriptions and subscribers."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from harness.assume import assumed
from harness.faults import Fault
from harness.probes import Probe, all_of
from harness.probes import cloudwatch as alarm_probes
from harness.probes import sns as probes

__all__ = ["remove_key_grant", "unsubscribe", "delete_topic", "weaken_topic_policy", "mute_subscription",
           "alert_storm", "delete_subscriber_queue"]

_SUBSCRIPTION_ATTRIBUTES = ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope")
QUEUE_RECREATE_DEADLINE = 90.0  # AWS refuses a queue name for 60 s after its deletion


def _sns(aws: Any, role: str | None) -> Any:
    """SNS as the harness's own identity, or as `role` (the break-glass role the topic policy exempts)."""
    return assumed(aws.client, role, "gameday-fault")("sns") if role else aws.client("sns")


@dataclass(frozen=True)
class RemoveKeyGrant(Fault):
    """PutKeyPolicy dropping CloudWatch's use of the topic's key (then SetAlarmState: the alarm fires into the void)."""

    key: str  # an alias or key id
    alarm: str | None = None  # tripped after the grant is gone, so its notification needs the key
    name = "sns.remove_key_grant"
    iam_actions = ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "cloudwatch:SetAlarmState",
                   "cloudwatch:DescribeAlarms")

    @property
    def settle_within(self) -> float:  # type: ignore[override]
        # An alarm still in ALARM (a CIS scenario before) cannot show a new transition: up to three quiet periods.
        return 1800.0 if self.alarm else 0.0

    def describe(self) -> str:
        then = f", then {self.alarm} to ALARM" if self.alarm else ""
        return f"PutKeyPolicy on {self.key} without the cloudwatch.amazonaws.com grant{then}"

    def steady(self) -> Probe:
        return probes.key_grants_publishers(self.key)

    def precondition(self) -> Probe:
        if self.alarm is None:
            return self.steady()
        return all_of("key grants publishers and alarm is quiet", self.steady(), alarm_probes.not_in_alarm(self.alarm))

    def snapshot(self, aws: Any) -> dict | None:
        kms = aws.client("kms")
        key_id = kms.describe_key(KeyId=self.key)["KeyMetadata"]["KeyId"]
        return {"key_id": key_id, "policy": kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        policy = json.loads(snapshot["policy"])
        policy["Statement"] = [s for s in (_without_service(s, "cloudwatch.amazonaws.com")
                                           for s in policy.get("Statement", [])) if s is not None]
        aws.client("kms").put_key_policy(KeyId=snapshot["key_id"], PolicyName="default", Policy=json.dumps(policy))
        if self.alarm is None:
            return
        # AWS's own way to exercise an alarm's actions: its notification now needs the key CloudWatch lost.
        aws.client("cloudwatch").set_alarm_state(AlarmName=self.alarm, StateValue="ALARM",
                                                 StateReason="Gameday: testing the notification path")

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if not self.steady()(aws)[0]:
            aws.client("kms").put_key_policy(KeyId=snapshot["key_id"], PolicyName="default",
                                             Policy=snapshot["policy"])


def _without_service(statement: dict, service: str) -> dict | None:
    principal = statement.get("Principal")
    if not isinstance(principal, dict) or "Service" not in principal:
        return statement
    services = [principal["Service"]] if isinstance(principal["Service"], str) else list(principal["Service"])
    kept = [s for s in services if s != service]
    return {**statement, "Principal": {**principal, "Service": kept}} if kept else None


@dataclass(frozen=True)
class Unsubscribe(Fault):
    """Unsubscribe an endpoint from the security topic (a topic policy cannot deny it: SNS has no such action)."""

    topic: str
    protocol: str
    endpoint: str
    name = "sns.unsubscribe"
    iam_actions = ("sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes", "sns:Unsubscribe",
                   "sns:Subscribe")

    def describe(self) -> str:
        return f"Unsubscribe {self.protocol} {self.endpoint} from {self.topic.rsplit(':', 1)[-1]}"

    def steady(self) -> Probe:
        return probes.subscribed(self.topic, self.protocol, self.endpoint)

    def snapshot(self, aws: Any) -> dict | None:
        return _subscription_snapshot(aws, self.topic, self.protocol, self.endpoint)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("sns").unsubscribe(SubscriptionArn=snapshot["arn"])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if probes.subscription(aws, self.topic, self.protocol, self.endpoint) is None:
            _subscribe(aws.client("sns"), self.topic, self.protocol, self.endpoint, snapshot["attributes"])
        _confirm_as_owner(aws, self.topic, self.protocol, self.endpoint)


def _subscription_snapshot(aws: Any, topic: str, protocol: str, endpoint: str) -> dict:
    sub = probes.subscription(aws, topic, protocol, endpoint)
    if sub is None:
        raise LookupError(f"{protocol} {endpoint} is not subscribed to {topic}: nothing to break")
    stored = aws.client("sns").get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
    kept = {k: stored[k] for k in _SUBSCRIPTION_ATTRIBUTES if k in stored}
    return {"arn": sub["SubscriptionArn"], "attributes": kept}


def _confirm_as_owner(aws: Any, topic: str, protocol: str, endpoint: str) -> None:
    """Where the backend can read the endpoint's mailbox, confirm a pending subscription as its owner would."""
    mailbox = getattr(aws, "mailbox", None)
    sub = probes.subscription(aws, topic, protocol, endpoint)
    if mailbox is not None and sub is not None and sub["SubscriptionArn"] == "PendingConfirmation":
        mailbox.confirm_latest(topic, endpoint)


def _subscribe(sns: Any, topic: str, protocol: str, endpoint: str, attributes: dict) -> None:
    kept = {k: v for k, v in attributes.items() if not (k.startswith("Filter") and v in ("", "{}"))}
    sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=endpoint, Attributes=kept, ReturnSubscriptionArn=True)


@dataclass(frozen=True)
class DeleteTopic(Fault):
    """DeleteTopic on the security topic, as the harness (the policy must refuse it) or as the break-glass role."""

    topic: str
    exempt: str  # the break-glass role the topic policy exempts
    key: str | None = None  # the topic's KmsMasterKeyId, as the stack sets it
    sink_queue_arn: str = ""
    as_role: str | None = None
    name = "sns.delete_topic"
    iam_actions = ("sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes",
                   "sns:DeleteTopic", "sns:CreateTopic", "sns:Subscribe", "sts:AssumeRole")

    def describe(self) -> str:
        who = f"as {self.as_role.rsplit('/', 1)[-1]}" if self.as_role else "as an ordinary principal"
        return f"DeleteTopic {self.topic.rsplit(':', 1)[-1]} {who}"

    def steady(self) -> Probe:
        # Not its protection: the prevention check must run (and fail) on a stack deployed without it.
        return probes.topic_intact(self.topic, exempt=self.exempt, key=self.key, sink_queue_arn=self.sink_queue_arn,
                                   protected=False)

    def snapshot(self, aws: Any) -> dict | None:
        sns = aws.client("sns")
        attributes = sns.get_topic_attributes(TopicArn=self.topic)["Attributes"]
        subs = []
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=self.topic):
            for sub in page.get("Subscriptions", []):
                stored = {} if sub["SubscriptionArn"] == "PendingConfirmation" else \
                    sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
                subs.append({"protocol": sub["Protocol"], "endpoint": sub["Endpoint"],
                             "attributes": {k: stored[k] for k in _SUBSCRIPTION_ATTRIBUTES if k in stored}})
        kept = {k: attributes[k] for k in ("Policy", "KmsMasterKeyId", "DisplayName") if attributes.get(k)}
        return {"attributes": kept, "subscriptions": subs}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        _sns(aws, self.as_role).delete_topic(TopicArn=self.topic)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        sns = aws.client("sns")
        try:
            sns.get_topic_attributes(TopicArn=self.topic)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NotFound":
                raise
            sns.create_topic(Name=self.topic.rsplit(":", 1)[-1], Attributes=snapshot["attributes"])
        for sub in snapshot["subscriptions"]:
            if probes.subscription(aws, self.topic, sub["protocol"], sub["endpoint"]) is None:
                _subscribe(sns, self.topic, sub["protocol"], sub["endpoint"], sub["attributes"])
            # An e-mail endpoint of a recreated topic gets a fresh confirmation: its owner must confirm it again.
            _confirm_as_owner(aws, self.topic, sub["protocol"], sub["endpoint"])


@dataclass(frozen=True)
class WeakenTopicPolicy(Fault):
    """SetTopicAttributes replacing the topic policy with one that no longer denies tampering (as break-glass)."""

    topic: str
    exempt: str
    as_role: str
    name = "sns.weaken_topic_policy"
    iam_actions = ("sns:GetTopicAttributes", "sns:SetTopicAttributes", "sts:AssumeRole")

    def describe(self) -> str:
        return f"SetTopicAttributes Policy on {self.topic.rsplit(':', 1)[-1]} without its Deny statements"

    def steady(self) -> Probe:
        return probes.topic_protected(self.topic, self.exempt)

    def snapshot(self, aws: Any) -> dict | None:
        return {"policy": aws.client("sns").get_topic_attributes(TopicArn=self.topic)["Attributes"]["Policy"]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        policy = json.loads(snapshot["policy"])
        policy["Statement"] = [s for s in policy.get("Statement", []) if s.get("Effect") != "Deny"]
        _sns(aws, self.as_role).set_topic_attributes(TopicArn=self.topic, AttributeName="Policy",
                                                     AttributeValue=json.dumps(policy))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if not self.steady()(aws)[0]:
            _sns(aws, self.as_role).set_topic_attributes(TopicArn=self.topic, AttributeName="Policy",
                                                         AttributeValue=snapshot["policy"])


@dataclass(frozen=True)
class MuteSubscription(Fault):
    """SetSubscriptionAttributes: a filter policy on the message body that lets only OK notifications through."""

    topic: str
    protocol: str
    endpoint: str
    name = "sns.mute_subscription"
    iam_actions = ("sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes")

    def describe(self) -> str:
        return f"a filter policy muting ALARM notifications on the subscription of {self.endpoint}"

    def steady(self) -> Probe:
        return probes.unfiltered(self.topic, self.protocol, self.endpoint)

    def snapshot(self, aws: Any) -> dict | None:
        return _subscription_snapshot(aws, self.topic, self.protocol, self.endpoint)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        sns = aws.client("sns")
        sns.set_subscription_attributes(SubscriptionArn=snapshot["arn"], AttributeName="FilterPolicyScope",
                                        AttributeValue="MessageBody")
        sns.set_subscription_attributes(SubscriptionArn=snapshot["arn"], AttributeName="FilterPolicy",
                                        AttributeValue=json.dumps({"NewStateValue": ["OK"]}))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        sub = probes.subscription(aws, self.topic, self.protocol, self.endpoint)
        if sub is None:
            _subscribe(aws.client("sns"), self.topic, self.protocol, self.endpoint, snapshot["attributes"])
        elif not self.steady()(aws)[0]:
            aws.client("sns").set_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"],
                                                          AttributeName="FilterPolicy", AttributeValue="{}")


@dataclass(frozen=True)
class AlertStorm(Fault):
    """A burst of alerts on the security topic, more than an e-mail endpoint may receive in a second."""

    topic: str
    endpoint: str
    messages: int = 30
    name = "sns.alert_storm"
    iam_actions = ("sns:Publish", "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes", "sns:Subscribe",
                   "sns:ConfirmSubscription")

    def describe(self) -> str:
        return f"{self.messages} alerts at once on {self.topic.rsplit(':', 1)[-1]}"

    def steady(self) -> Probe:
        return probes.subscribed(self.topic, "email", self.endpoint)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        sns, run = aws.client("sns"), uuid.uuid4().hex[:8]

        def batch(start: int) -> None:
            sns.publish_batch(TopicArn=self.topic, PublishBatchRequestEntries=[
                {"Id": str(i), "Subject": "Gameday alert storm", "Message": f"gameday storm {run} #{i}"}
                for i in range(start, min(start + 10, self.messages))])

        # PublishBatch takes ten; the batches go at once, as alarms firing together would (one after another they
        # can spread over more than a second of AWS time at the embedded time scale).
        starts = range(0, self.messages, 10)
        with ThreadPoolExecutor(max_workers=len(starts)) as pool:
            list(pool.map(batch, starts))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        if self.steady()(aws)[0]:
            return
        # Subscribe again sends a fresh confirmation; only the endpoint's owner can use it.
        aws.client("sns").subscribe(TopicArn=self.topic, Protocol="email", Endpoint=self.endpoint,
                                    ReturnSubscriptionArn=True)
        _confirm_as_owner(aws, self.topic, "email", self.endpoint)


@dataclass(frozen=True)
class DeleteSubscriberQueue(Fault):
    """DeleteQueue on a subscriber of the security topic, then one alert: its delivery fails."""

    topic: str
    queue: str
    alarm: str | None = None  # the alarm that must see the failure: it cannot go to ALARM while still there
    name = "sns.delete_subscriber_queue"
    iam_actions = ("sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:DeleteQueue", "sqs:CreateQueue", "sns:Publish",
                   "cloudwatch:DescribeAlarms")

    @property
    def settle_within(self) -> float:  # type: ignore[override]
        # An earlier scenario's failed deliveries hold the alarm in ALARM for its evaluation range (three periods).
        return 1200.0 if self.alarm else 0.0

    def describe(self) -> str:
        return f"DeleteQueue {self.queue}, a subscriber of {self.topic.rsplit(':', 1)[-1]}, then one alert"

    def steady(self) -> Probe:
        return probes.queue_exists(self.queue)

    def precondition(self) -> Probe:
        if self.alarm is None:
            return self.steady()
        return all_of("subscriber queue exists and alarm is quiet", self.steady(),
                      alarm_probes.not_in_alarm(self.alarm))

    def snapshot(self, aws: Any) -> dict | None:
        sqs = aws.client("sqs")
        url = sqs.get_queue_url(QueueName=self.queue)["QueueUrl"]
        return {"attributes": sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        sqs = aws.client("sqs")
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=self.queue)["QueueUrl"])
        aws.client("sns").publish(TopicArn=self.topic, Subject="Gameday: subscriber check",
                                  Message="Gameday: one alert to a subscriber that no longer exists")

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if self.steady()(aws)[0]:
            return
        sqs = aws.client("sqs")
        recently_deleted = retry_if_exception(
            lambda e: isinstance(e, ClientError) and "QueueDeletedRecently" in e.response["Error"]["Code"])
        for attempt in Retrying(retry=recently_deleted, stop=stop_after_delay(QUEUE_RECREATE_DEADLINE),
                                wait=wait_fixed(5), reraise=True):
            with attempt:
                sqs.create_queue(QueueName=self.queue, Attributes=snapshot["attributes"])


remove_key_grant = RemoveKeyGrant
unsubscribe = Unsubscribe
delete_topic = DeleteTopic
weaken_topic_policy = WeakenTopicPolicy
mute_subscription = MuteSubscription
alert_storm = AlertStorm
delete_subscriber_queue = DeleteSubscriberQueue
