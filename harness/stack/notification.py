"""The notification chain's desired state: the encrypted, protected security topic, its subscribers, the
independent fallback path, and the guard that restores them (part 3)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

GUARD_SOURCE = Path(__file__).with_name("functions") / "remediate_sns.py"
GUARD_DESIRED_FILE = "desired.json"
# The sns:* actions a topic policy can deny (AWS's list of valid topic-policy actions has no Unsubscribe or
# SetSubscriptionAttributes: those are detected and remediated instead).
PROTECTED_ACTIONS = ("SNS:DeleteTopic", "SNS:SetTopicAttributes", "SNS:RemovePermission", "SNS:AddPermission")
DENY_SID = "DenyTamperingExceptBreakGlass"
# The calls on the topics and subscriptions the SNS tampering rule reports (requestParameters.topicArn).
TOPIC_TAMPERING = ("DeleteTopic", "SetTopicAttributes", "RemovePermission", "AddPermission")
SUBSCRIPTION_TAMPERING = ("Unsubscribe", "SetSubscriptionAttributes")  # requestParameters.subscriptionArn
# Services that publish to the security topic and so must be able to use its key.
KEY_USERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")
KEY_USE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*")
GUARD_SCHEDULE = "rate(5 minutes)"  # how often the guard looks for what no API call announces (a suspension)
DEFAULT_ONCALL_EMAIL = "security-oncall@example.com"


@dataclass(frozen=True)
class Key:
    """The customer managed KMS key of the security topic (an AWS managed key cannot grant CloudWatch)."""

    alias: str  # alias/<name>: the topic names its key by alias, so the desired state needs no key id
    description: str
    policy: dict[str, Any]


def key_policy(account_id: str, partition: str, *, grant_publishers: bool = True) -> dict[str, Any]:
    statements: list[dict[str, Any]] = [{
        "Sid": "EnableAccountAdministration",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }]
    if grant_publishers:
        statements.append({
            # The account-root statement does not cover service principals: CloudWatch and EventBridge need their own.
            "Sid": "AllowAlarmAndEventPublishers",
            "Effect": "Allow",
            "Principal": {"Service": list(KEY_USERS)},
            "Action": list(KEY_USE_ACTIONS),
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        })
    return {"Version": "2012-10-17", "Id": "gameday-security-topic-key", "Statement": statements}


def grants_publishers(policy: dict[str, Any]) -> bool:
    """True if the key policy allows both publishing services to use the key (the check the guard also makes)."""
    for service in KEY_USERS:
        if not any(_allows_service(s, service) for s in _statements(policy)):
            return False
    return True


def _allows_service(statement: dict[str, Any], service: str) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    principal = statement.get("Principal")
    services = principal.get("Service", []) if isinstance(principal, dict) else []
    if service not in ([services] if isinstance(services, str) else services):
        return False
    actions = {a.lower() for a in _as_list(statement.get("Action"))}
    return "kms:*" in actions or {"kms:decrypt", "kms:generatedatakey*"} <= actions


def topic_policy(topic_arn: str, account_id: str, *, exempt: tuple[str, ...], protect: bool) -> dict[str, Any]:
    """The security topics' policy: this account and its alarms and rules publish; only `exempt` may reshape it."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
                       "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic",
                       "SNS:Publish"],
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
        },
        {
            "Sid": "AllowEventBridgePublish",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            # Only this account's rules: the confused-deputy guard AWS recommends.
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
        {
            "Sid": "AllowCloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
    ]
    if protect:
        statements.append({
            "Sid": DENY_SID,
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": list(PROTECTED_ACTIONS),
            "Resource": topic_arn,
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": list(exempt)}},
        })
    return {"Version": "2008-10-17", "Id": "__default_policy_ID", "Statement": statements}


def protects(policy: dict[str, Any], exempt: str | None = None) -> bool:
    """True if some Deny statement refuses DeleteTopic and SetTopicAttributes to everyone but (at most) `exempt`."""
    for statement in _statements(policy):
        if statement.get("Effect") != "Deny":
            continue
        actions = {a.lower() for a in _as_list(statement.get("Action"))}
        if not ({"sns:deletetopic", "sns:settopicattributes"} <= actions or "sns:*" in actions):
            continue
        condition = statement.get("Condition") or {}
        unless = condition.get("ArnNotEquals") or condition.get("ArnNotLike") or {}
        exempted = _as_list(unless.get("aws:PrincipalArn"))
        if not condition or exempt is None or exempt in exempted:
            return True
    return False


def guard_desired(*, key: Key, topics: list[dict[str, Any]], subscriptions: list[dict[str, Any]],
                  report_topic: str, remediate: bool, alarm_prefix: str) -> str:
    """The guard function's bundled desired.json (byte-stable, so its hash is the code's)."""
    return json.dumps({
        "key": {"alias": key.alias, "policy": key.policy},
        "topics": topics,
        "subscriptions": subscriptions,
        "report_topic": report_topic,
        "remediate": remediate,
        "alarm_prefix": alarm_prefix,
    }, indent=1, sort_keys=True) + "\n"


def guard_environment(desired_text: str) -> str:
    return json.dumps({"file": GUARD_DESIRED_FILE, "sha256": hashlib.sha256(desired_text.encode()).hexdigest()},
                      separators=(",", ":"))


def sns_tampering_pattern(topic_arns: list[str]) -> dict[str, Any]:
    # Subscription ARNs are "<topic arn>:<id>": a prefix per topic covers every subscription of it.
    return {
        "detail-type": ["AWS API Call via CloudTrail"],
        "source": ["aws.sns"],
        "$or": [
            {"detail": {"eventName": list(TOPIC_TAMPERING), "requestParameters": {"topicArn": topic_arns}}},
            {"detail": {"eventName": list(SUBSCRIPTION_TAMPERING),
                        "requestParameters": {"subscriptionArn": [{"prefix": f"{arn}:"} for arn in topic_arns]}}},
        ],
    }


def alarm_state_pattern(alarm_prefix: str) -> dict[str, Any]:
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [{"prefix": alarm_prefix}], "state": {"value": ["ALARM"]}},
    }


def break_glass_policy(topic_arns: list[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ReshapeSecurityTopics",
            "Effect": "Allow",
            "Action": ["sns:DeleteTopic", "sns:SetTopicAttributes", "sns:RemovePermission", "sns:AddPermission",
                       "sns:CreateTopic", "sns:GetTopicAttributes", "sns:Subscribe", "sns:Unsubscribe",
                       "sns:ListSubscriptionsByTopic"],
            "Resource": topic_arns,
        }],
    }


def guard_role_policy(arn: Callable[..., str], log_group: str, topic_arns: list[str], alarm_prefix: str,
                      key_alias: str, report_topic: str) -> dict[str, Any]:
    own_logs = arn("logs", f"log-group:{log_group}")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReconcileTopics", "Effect": "Allow",
             "Action": ["sns:CreateTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe",
                        "sns:ListSubscriptionsByTopic", "sns:GetSubscriptionAttributes",
                        "sns:SetSubscriptionAttributes"],
             "Resource": topic_arns},
            # The fallback topic, or the muted one when detection is sabotaged.
            {"Sid": "Report", "Effect": "Allow", "Action": "sns:Publish", "Resource": report_topic},
            {"Sid": "ReconcileKey", "Effect": "Allow",
             "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:EnableKey",
                        "kms:CancelKeyDeletion"], "Resource": "*",
             # The key's id is not known before it exists: scope by its alias instead.
             "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": key_alias}}},
            {"Sid": "ReadAlarms", "Effect": "Allow",
             "Action": ["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"],
             "Resource": arn("cloudwatch", f"alarm:{alarm_prefix}*")},
            {"Sid": "OwnLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": [own_logs, f"{own_logs}:*"]},
        ],
    }


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
