"""The reference stack's desired state: names, policies, pattern, sabotage variants and outputs."""

import ast
import json
import re

import pytest

from harness.stack.desired import (
    FUNCTION_ENV_VAR,
    FUNCTION_SOURCE,
    StackOutputs,
    desired_state,
)

ACCOUNT = "123456789012"
REGION = "eu-west-1"


@pytest.fixture
def desired():
    return desired_state(account_id=ACCOUNT, region=REGION)


def test_names_follow_the_prefix(desired):
    assert desired.bucket.name == f"gameday-trail-logs-{ACCOUNT}-{REGION}"
    assert desired.log_group.name == "/gameday/cloudtrail"
    assert desired.log_role.name == "gameday-cloudtrail-to-logs"
    assert desired.trail.name == "gameday-trail"
    assert desired.topic.arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:gameday-security"
    assert desired.queue.name == "gameday-sink"
    assert desired.function.name == "gameday-remediate-cloudtrail"
    assert desired.function.role.name == "gameday-remediation"
    assert desired.rule.name == "gameday-cloudtrail-tampering"
    other = desired_state(account_id=ACCOUNT, region=REGION, prefix="blue")
    assert other.trail.name == "blue-trail" and other.log_group.name == "/blue/cloudtrail"


def test_partition_follows_the_region():
    china = desired_state(account_id=ACCOUNT, region="cn-north-1")
    assert china.trail.arn.startswith("arn:aws-cn:cloudtrail:cn-north-1:")
    assert china.bucket.arn == f"arn:aws-cn:s3:::gameday-trail-logs-{ACCOUNT}-cn-north-1"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sabotage": "alerting"},
         "sabotage must be None or one of detection, remediation, prevention, not 'alerting'"),
        ({"account_id": "1234"}, "account_id must be 12 digits"),
        ({"region": "mars"}, "region does not look like an AWS region"),
        ({"prefix": "Game_Day"}, "prefix must be"),
        ({"prefix": "a" * 21}, "prefix must be"),
    ],
)
def test_invalid_arguments_raise_one_line_value_errors(kwargs, message):
    arguments = {"account_id": ACCOUNT, "region": REGION, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        desired_state(**arguments)
    assert "\n" not in str(caught.value)


def test_trail_settings(desired):
    params = desired.trail.create_params()
    assert params == {
        "Name": "gameday-trail",
        "S3BucketName": desired.bucket.name,
        "IsMultiRegionTrail": True,
        "IncludeGlobalServiceEvents": True,
        "EnableLogFileValidation": True,
        "CloudWatchLogsLogGroupArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/gameday/cloudtrail:*",
        "CloudWatchLogsRoleArn": f"arn:aws:iam::{ACCOUNT}:role/gameday-cloudtrail-to-logs",
    }
    assert desired.trail.event_selectors == ({"ReadWriteType": "All", "IncludeManagementEvents": True},)
    assert desired.log_group.retention_days == 365


def test_bucket_policy_is_the_standard_cloudtrail_one_scoped_to_the_trail(desired):
    acl, write = desired.bucket.policy["Statement"]
    trail_arn = desired.trail.arn
    assert acl["Principal"] == write["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert acl["Action"] == "s3:GetBucketAcl" and acl["Resource"] == desired.bucket.arn
    assert acl["Condition"] == {"StringEquals": {"aws:SourceArn": trail_arn}}
    assert write["Action"] == "s3:PutObject"
    assert write["Resource"] == f"{desired.bucket.arn}/AWSLogs/{ACCOUNT}/*"
    assert write["Condition"] == {
        "StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail_arn}
    }


def test_log_role_may_only_write_to_the_trail_group(desired):
    assert desired.log_role.trust_policy["Statement"][0]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    (policy,) = desired.log_role.inline_policies.values()
    (statement,) = policy["Statement"]
    assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == f"{desired.log_group.arn}:*"


def test_topic_policy_keeps_the_owner_statement_lets_eventbridge_and_alarms_publish_and_denies_tampering(desired):
    owner, events, alarms, deny = desired.topic.policy["Statement"]
    assert owner["Sid"] == "__default_statement_ID"
    assert owner["Condition"] == {"StringEquals": {"AWS:SourceOwner": ACCOUNT}}
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert events["Action"] == "sns:Publish" and events["Resource"] == desired.topic.arn
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == "sns:Publish" and alarms["Resource"] == desired.topic.arn
    for publisher in (events, alarms):
        assert publisher["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert deny["Action"] == ["SNS:DeleteTopic", "SNS:SetTopicAttributes", "SNS:RemovePermission",
                              "SNS:AddPermission"]
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [
        f"arn:aws:iam::{ACCOUNT}:role/gameday-break-glass", f"arn:aws:iam::{ACCOUNT}:role/gameday-remediate-sns"]}}


def test_sink_queue_accepts_the_security_and_fallback_topics_and_reads_envelopes(desired):
    (statement,) = desired.queue.policy["Statement"]
    assert statement["Action"] == "sqs:SendMessage"
    topics = [f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}" for name in ("gameday-security", "gameday-security-fallback")]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": topics}}
    assert desired.subscription.protocol == "sqs"
    assert desired.subscription.endpoint == desired.queue.arn
    assert desired.subscription.raw_message_delivery is False


def test_function_settings_and_desired_environment(desired):
    fn = desired.function
    assert (fn.runtime, fn.handler, fn.timeout) == ("python3.12", "remediate_cloudtrail.handler", 30)
    assert fn.source == FUNCTION_SOURCE and fn.source.is_file()
    assert fn.role.trust_policy["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    payload = json.loads(fn.environment[FUNCTION_ENV_VAR])
    assert payload == {
        "trail": desired.trail.create_params(),
        "event_selectors": list(desired.trail.event_selectors),
        "bucket": desired.bucket.name,
        "bucket_policy": desired.bucket.policy,
        "min_log_retention_days": 365,
    }
    assert ": " not in fn.environment[FUNCTION_ENV_VAR]  # compact


def test_function_environment_fits_lambdas_4kb_limit():
    longest = desired_state(account_id=ACCOUNT, region="ap-southeast-4", prefix="a" * 20)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in longest.function.environment.items())
    assert size < 4096


def _handler_calls():
    """(client, method) pairs the remediation handler calls on its module-level clients."""
    tree = ast.parse(FUNCTION_SOURCE.read_text())
    return {
        (node.func.value.id, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("cloudtrail", "s3")
    }


# boto3 method -> the IAM action that authorises it (S3 lifecycle deletes need the Put action).
IAM_ACTION = {
    ("cloudtrail", "create_trail"): "cloudtrail:CreateTrail",
    ("cloudtrail", "get_event_selectors"): "cloudtrail:GetEventSelectors",
    ("cloudtrail", "get_trail"): "cloudtrail:GetTrail",
    ("cloudtrail", "get_trail_status"): "cloudtrail:GetTrailStatus",
    ("cloudtrail", "put_event_selectors"): "cloudtrail:PutEventSelectors",
    ("cloudtrail", "start_logging"): "cloudtrail:StartLogging",
    ("cloudtrail", "update_trail"): "cloudtrail:UpdateTrail",
    ("s3", "get_bucket_lifecycle_configuration"): "s3:GetLifecycleConfiguration",
    ("s3", "put_bucket_lifecycle_configuration"): "s3:PutLifecycleConfiguration",
    ("s3", "delete_bucket_lifecycle"): "s3:PutLifecycleConfiguration",
    ("s3", "get_bucket_policy"): "s3:GetBucketPolicy",
    ("s3", "put_bucket_policy"): "s3:PutBucketPolicy",
}


def test_function_role_grants_exactly_what_the_handler_calls(desired):
    calls = _handler_calls()
    assert calls <= set(IAM_ACTION), f"map these calls to IAM actions: {calls - set(IAM_ACTION)}"
    needed = {IAM_ACTION[call] for call in calls}
    (policy,) = desired.function.role.inline_policies.values()
    statements = {s["Sid"]: s for s in policy["Statement"]}
    granted = set(statements["ReconcileTrail"]["Action"]) | set(statements["ReconcileTrailBucket"]["Action"])
    assert granted == needed
    assert statements["ReconcileTrail"]["Resource"] == desired.trail.arn
    assert statements["ReconcileTrailBucket"]["Resource"] == desired.bucket.arn
    assert statements["PassLogsRoleToCloudTrail"]["Resource"] == desired.log_role.arn
    assert all(r.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/gameday-remediate-cloudtrail")
               for r in statements["OwnLogs"]["Resource"])


def test_handler_imports_nothing_from_the_harness():
    tree = ast.parse(FUNCTION_SOURCE.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"json", "logging", "os", "boto3", "botocore"}


def test_tampering_pattern(desired):
    pattern = desired.rule.pattern
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    by_name, by_trail_name, bucket = pattern["$or"]
    trail_ids = [desired.trail.name, desired.trail.arn]
    assert by_name == {
        "source": ["aws.cloudtrail"],
        "detail": {
            "eventName": ["StopLogging", "DeleteTrail", "UpdateTrail"],
            "requestParameters": {"name": trail_ids},
        },
    }
    # PutEventSelectors names the trail in requestParameters.trailName (see the real record in fixtures).
    assert by_trail_name["detail"] == {
        "eventName": ["PutEventSelectors"],
        "requestParameters": {"trailName": trail_ids},
    }
    assert bucket == {
        "source": ["aws.s3"],
        "detail": {
            "eventName": ["PutBucketLifecycle", "DeleteBucketPolicy"],
            "requestParameters": {"bucketName": [desired.bucket.name]},
        },
    }
    assert desired.rule.state == "ENABLED" and desired.rule.event_bus == "default"


@pytest.mark.parametrize(
    "sabotage, target_ids, has_function",
    [(None, ["security-topic", "remediate"], True), ("detection", ["remediate"], True),
     ("remediation", ["security-topic"], False), ("prevention", ["security-topic", "remediate"], True)],
)
def test_sabotage_variants(sabotage, target_ids, has_function):
    desired = desired_state(account_id=ACCOUNT, region=REGION, sabotage=sabotage)
    assert [t.id for t in desired.rule.targets] == target_ids
    assert (desired.function is not None) is has_function
    assert desired.sabotage == sabotage
    arns = {t.id: t.arn for t in desired.rule.targets}
    if "remediate" in arns:
        assert arns["remediate"] == desired.function.arn
        assert desired.function.permission.source_arn == desired.rule.arn
        assert desired.function.permission.principal == "events.amazonaws.com"
    if "security-topic" in arns:
        assert arns["security-topic"] == desired.topic.arn
    # the names stay known so a sabotaged deploy or a teardown can remove the function by name
    assert desired.names.function == "gameday-remediate-cloudtrail"


def test_outputs_round_trip_as_one_json_line(desired):
    outputs = desired.outputs()
    text = outputs.to_json()
    assert "\n" not in text
    assert StackOutputs.from_json(text) == outputs
    assert outputs.trail_arn == desired.trail.arn
    assert outputs.log_group_arn == desired.log_group.arn
    assert outputs.sink_queue_url == f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/gameday-sink"
    assert outputs.function_arn == desired.function.arn and outputs.sabotage is None


def test_outputs_without_remediation_have_no_function():
    outputs = desired_state(account_id=ACCOUNT, region=REGION, sabotage="remediation").outputs()
    assert outputs.function_name is None and outputs.function_arn is None
    assert outputs.sabotage == "remediation"


def test_user_outputs_may_omit_the_function_but_nothing_required(desired):
    data = json.loads(desired.outputs().to_json())
    for optional in ("function_name", "function_arn", "sabotage"):
        del data[optional]
    assert StackOutputs.from_json(json.dumps(data)).function_name is None
    del data["trail_arn"]
    with pytest.raises(ValueError, match="missing stack output field\\(s\\): trail_arn"):
        StackOutputs.from_json(json.dumps(data))
    with pytest.raises(ValueError, match="unknown stack output field\\(s\\): trial_name"):
        StackOutputs.from_json(json.dumps({**json.loads(desired.outputs().to_json()), "trial_name": "x"}))
    with pytest.raises(ValueError, match="not valid JSON"):
        StackOutputs.from_json("{")
