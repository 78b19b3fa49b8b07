"""The CloudTrail remediation handler, called in-process against a deployed stack on a real moto server."""

import importlib.util
import json
import logging

import boto3
import pytest
import requests
from moto_gaps import MotoGaps

from harness.stack.deploy import deploy
from harness.stack.desired import FUNCTION_ENV_VAR, FUNCTION_SOURCE, desired_state

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
EVENT = {
    "source": "aws.cloudtrail",
    "detail-type": "AWS API Call via CloudTrail",
    "detail": {"eventName": "StopLogging"},
}


@pytest.fixture(scope="module")
def stack(moto_url):
    """One deployed stack, and the handler module loaded as Lambda would (alone, by file) with its environment."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    clients = {}

    def client(service):
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=moto_url)
            clients[service].meta.events.register("before-call.*.*", MotoGaps())  # what plain moto lacks
        return clients[service]

    desired = desired_state(account_id=ACCOUNT, region=REGION)
    deploy(client, desired)
    variables = client("lambda").get_function_configuration(FunctionName=desired.function.name)["Environment"][
        "Variables"]
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", moto_url)
        env.setenv("AWS_REGION", REGION)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv(FUNCTION_ENV_VAR, variables[FUNCTION_ENV_VAR])
        spec = importlib.util.spec_from_file_location("remediate_cloudtrail", FUNCTION_SOURCE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # module-level clients pick up the environment above
        yield client, desired, module


@pytest.fixture
def aws(stack):
    """The shared stack's clients; afterwards the lifecycle rules (which deploy leaves alone) go, and drift is
    deployed back."""
    client, desired, _ = stack
    yield client
    client("s3").delete_bucket_lifecycle(Bucket=desired.bucket.name)
    deploy(client, desired)


@pytest.fixture
def desired(stack):
    return stack[1]


@pytest.fixture
def handler(stack, aws):
    return stack[2].handler


def _converged(aws, desired):
    """After remediation the trail and bucket are back exactly as deploy wants them."""
    report = deploy(aws, desired)
    assert report.resources["trail"] == "unchanged", report.changes
    assert report.resources["bucket"] == "unchanged", report.changes


def test_healthy_stack_needs_no_action(handler, aws, desired, caplog):
    with caplog.at_level(logging.INFO):
        assert handler(EVENT, None) == {"actions": []}
    assert not [r for r in caplog.records if r.name == "gameday.remediate_cloudtrail"]


def test_stop_logging_restarts_logging(handler, aws, desired):
    aws("cloudtrail").stop_logging(Name=desired.trail.name)
    assert handler(EVENT, None) == {"actions": ["StartLogging gameday-trail"]}
    assert aws("cloudtrail").get_trail_status(Name=desired.trail.name)["IsLogging"]
    _converged(aws, desired)


def test_deleted_trail_is_recreated_with_the_same_settings(handler, aws, desired):
    aws("cloudtrail").delete_trail(Name=desired.trail.name)  # moto ignores DeleteTrail by ARN
    assert handler({**EVENT, "detail": {"eventName": "DeleteTrail"}}, None) == {
        "actions": ["CreateTrail gameday-trail", "PutEventSelectors gameday-trail", "StartLogging gameday-trail"]
    }
    trail = aws("cloudtrail").get_trail(Name=desired.trail.name)["Trail"]
    assert trail["IsMultiRegionTrail"] and trail["LogFileValidationEnabled"]
    assert trail["CloudWatchLogsLogGroupArn"] == desired.trail.log_group_arn
    assert aws("cloudtrail").get_trail_status(Name=desired.trail.name)["IsLogging"]
    _converged(aws, desired)


def test_trail_settings_drift_is_updated_back(handler, aws, desired):
    aws("cloudtrail").update_trail(
        Name=desired.trail.name, IsMultiRegionTrail=False,
        CloudWatchLogsLogGroupArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:elsewhere:*",
    )
    assert handler(EVENT, None) == {
        "actions": ["UpdateTrail gameday-trail (IsMultiRegionTrail, CloudWatchLogsLogGroupArn)"]
    }
    _converged(aws, desired)


@pytest.mark.parametrize(
    "selectors",
    [
        {"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": False}]},
        {"EventSelectors": [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]},
        {"AdvancedEventSelectors": [{"Name": "data only", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        ]}]},
    ],
    ids=["no-management", "write-only", "advanced-data-only"],
)
def test_selectors_excluding_management_events_are_restored(handler, aws, desired, selectors):
    aws("cloudtrail").put_event_selectors(TrailName=desired.trail.name, **selectors)
    assert handler({**EVENT, "detail": {"eventName": "PutEventSelectors"}}, None) == {
        "actions": ["PutEventSelectors gameday-trail"]
    }
    restored = aws("cloudtrail").get_event_selectors(TrailName=desired.trail.name)
    assert restored["EventSelectors"] == list(desired.trail.event_selectors)
    _converged(aws, desired)


def _lifecycle(aws, desired, *rules):
    aws("s3").put_bucket_lifecycle_configuration(
        Bucket=desired.bucket.name, LifecycleConfiguration={"Rules": list(rules)}
    )


def _rule(rule_id, **settings):
    return {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": ""}, **settings}


def test_short_expiration_rule_is_removed_and_the_benign_one_kept(handler, aws, desired):
    benign = _rule("archive-after-400-days", Expiration={"Days": 400})
    _lifecycle(aws, desired, _rule("expire-fast", Expiration={"Days": 1}), benign)
    assert handler({**EVENT, "source": "aws.s3", "detail": {"eventName": "PutBucketLifecycle"}}, None) == {
        "actions": [f"PutBucketLifecycleConfiguration {desired.bucket.name} (removed expire-fast)"]
    }
    assert aws("s3").get_bucket_lifecycle_configuration(Bucket=desired.bucket.name)["Rules"] == [benign]


def test_only_short_rules_means_no_lifecycle_at_all(handler, aws, desired):
    _lifecycle(aws, desired, _rule("expire-fast", Expiration={"Days": 1}),
               _rule("noncurrent-fast", NoncurrentVersionExpiration={"NoncurrentDays": 7}))
    assert handler(EVENT, None) == {
        "actions": [f"DeleteBucketLifecycle {desired.bucket.name} (removed expire-fast, noncurrent-fast)"]
    }
    with pytest.raises(aws("s3").exceptions.ClientError, match="NoSuchLifecycleConfiguration"):
        aws("s3").get_bucket_lifecycle_configuration(Bucket=desired.bucket.name)


def test_long_lifecycle_rules_are_left_alone(handler, aws, desired):
    _lifecycle(aws, desired, _rule("keep-a-year", Expiration={"Days": 365},
                                   NoncurrentVersionExpiration={"NoncurrentDays": 365}),
               _rule("to-glacier", Transitions=[{"Days": 30, "StorageClass": "GLACIER"}]))
    assert handler(EVENT, None) == {"actions": []}


def test_deleted_bucket_policy_is_restored(handler, aws, desired):
    aws("s3").delete_bucket_policy(Bucket=desired.bucket.name)
    assert handler({**EVENT, "source": "aws.s3", "detail": {"eventName": "DeleteBucketPolicy"}}, None) == {
        "actions": [f"PutBucketPolicy {desired.bucket.name}"]
    }
    assert json.loads(aws("s3").get_bucket_policy(Bucket=desired.bucket.name)["Policy"]) == desired.bucket.policy
    _converged(aws, desired)


def test_bucket_policy_without_the_cloudtrail_statements_is_replaced(handler, aws, desired):
    acl_only = {**desired.bucket.policy, "Statement": desired.bucket.policy["Statement"][:1]}
    aws("s3").put_bucket_policy(Bucket=desired.bucket.name, Policy=json.dumps(acl_only))
    assert handler(EVENT, None) == {"actions": [f"PutBucketPolicy {desired.bucket.name}"]}
    _converged(aws, desired)


def test_extra_bucket_statements_alongside_cloudtrail_ones_are_not_remediated(handler, aws, desired):
    extra = {"Sid": "ReadForAuditors", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
             "Action": ["s3:GetObject"], "Resource": f"{desired.bucket.arn}/*"}
    policy = {**desired.bucket.policy, "Statement": [extra, *reversed(desired.bucket.policy["Statement"])]}
    aws("s3").put_bucket_policy(Bucket=desired.bucket.name, Policy=json.dumps(policy))
    assert handler(EVENT, None) == {"actions": []}


def test_everything_at_once_then_idempotent(handler, aws, desired, caplog):
    ct = aws("cloudtrail")
    ct.stop_logging(Name=desired.trail.name)
    ct.put_event_selectors(TrailName=desired.trail.name,
                           EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": False}])
    aws("s3").delete_bucket_policy(Bucket=desired.bucket.name)
    _lifecycle(aws, desired, _rule("expire-fast", Expiration={"Days": 1}))
    with caplog.at_level(logging.INFO):
        actions = handler(EVENT, None)["actions"]
    assert actions == [
        "StartLogging gameday-trail",
        "PutEventSelectors gameday-trail",
        f"DeleteBucketLifecycle {desired.bucket.name} (removed expire-fast)",
        f"PutBucketPolicy {desired.bucket.name}",
    ]
    logged = [r for r in caplog.records if r.name == "gameday.remediate_cloudtrail"]
    assert [r.getMessage() for r in logged] == actions
    assert {r.levelno for r in logged} == {logging.INFO}
    assert handler(EVENT, None) == {"actions": []}
    _converged(aws, desired)


@pytest.fixture
def module(monkeypatch):
    """The handler module with no backend behind it: enough for its pure decision functions."""
    monkeypatch.setenv("AWS_REGION", REGION)
    spec = importlib.util.spec_from_file_location("remediate_cloudtrail", FUNCTION_SOURCE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def _management(*extra):
    return {"Name": "m", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, *extra]}


@pytest.mark.parametrize(
    "answer, covered",
    [
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True},
                             {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]}, True),
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True,
                              "ExcludeManagementEventSources": ["kms.amazonaws.com"]}]}, False),
        ({"EventSelectors": [], "AdvancedEventSelectors": []}, False),
        ({"AdvancedEventSelectors": [_management()]}, True),
        ({"AdvancedEventSelectors": [_management({"Field": "readOnly", "Equals": ["true"]})]}, False),
        ({"AdvancedEventSelectors": [_management({"Field": "readOnly", "Equals": ["true"]}),
                                     _management({"Field": "readOnly", "Equals": ["false"]})]}, True),
        ({"AdvancedEventSelectors": [
            _management({"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]})]}, False),
        # moto keeps stale advanced selectors after basic ones are put; AWS would have dropped them
        ({"EventSelectors": [{"ReadWriteType": "All", "IncludeManagementEvents": True}],
          "AdvancedEventSelectors": [
              {"Name": "d", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}]},
         True),
    ],
    ids=["all", "read-plus-write", "kms-excluded", "none", "advanced", "advanced-read-only",
         "advanced-read-plus-write", "advanced-source-excluded", "moto-stale-advanced"],
)
def test_management_event_coverage(module, answer, covered):
    assert module.covers_management_events(answer) is covered


@pytest.mark.parametrize(
    "rule, short",
    [
        ({"Expiration": {"Days": 364}}, True),
        ({"Expiration": {"Days": 365}}, False),
        ({"Expiration": {"Date": "2030-01-01T00:00:00Z"}}, True),
        ({"Expiration": {"ExpiredObjectDeleteMarker": True}}, False),
        ({"NoncurrentVersionExpiration": {"NoncurrentDays": 30}}, True),
        ({"Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}, False),
    ],
)
def test_lifecycle_rules_that_shorten_retention(module, rule, short):
    assert module.shortens_retention({"ID": "r", "Status": "Enabled", **rule}, 365) is short
