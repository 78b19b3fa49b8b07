"""deploy/teardown of the reference stack against a real moto server: converge, idempotency, drift, sabotage."""

import io
import json
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto_gaps import MotoGaps
from test_infra import PART4_RESOURCES
from test_scaling import PART5_RESOURCES

from harness.stack import deploy as deploy_module
from harness.stack.deploy import code_sha256, deploy, function_zip, teardown
from harness.stack.desired import FUNCTION_ENV_VAR, FUNCTION_SOURCE, desired_state
from harness.stack.infra import STACK_TAG
from harness.stack.notification import GUARD_SOURCE, protects

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "cloudtrail"
READ_ONLY = ("Get", "Describe", "List", "Head", "Lookup", "BatchGet")
ALL_RESOURCES = {
    "log_role", "log_group", "bucket", "trail", "topic", "queue", "subscription",
    "function_role", "function", "permission", "rule",
    "metric_filters", "alarms", "alarms_function_role", "alarms_function", "alarms_permission", "alarms_rule",
    "key", "break_glass_role", "fallback_topic", "tickets_queue", "subscriptions",
    "sns_function_role", "sns_function", "sns_permission", "sns_rule",
    "alb_logs_bucket", "cf_logs_bucket", "edge_vpc", "alb", "distribution", "app_log_groups", "ecs_cluster",
    "ecs_task_definition", "app_logging_rule",
} | PART4_RESOURCES | PART5_RESOURCES


class Backend:
    """A client factory for deploy() that records every call the stack code makes."""

    def __init__(self, url):
        self.url = url
        self.session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.calls = []
        self.hooks = []  # extra before-call hooks; the first answer short-circuits the call
        self._clients = {}
        self._gaps = MotoGaps()  # Config remediation configurations and AWS managed policies

    def client(self, service):
        if service not in self._clients:
            client = self.session.client(service, endpoint_url=self.url)
            client.meta.events.register("before-call.*.*", self._before_call)
            self._clients[service] = client
        return self._clients[service]

    def _before_call(self, model, **kwargs):
        self.calls.append((model.service_model.service_name, model.name))
        for hook in self.hooks:
            answer = hook(model=model, **kwargs)
            if answer is not None:
                return answer
        return self._gaps(model=model, **kwargs)

    def mutating_calls(self):
        return [call for call in self.calls if not call[1].startswith(READ_ONLY)]


@pytest.fixture
def backend(moto_url):
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    return Backend(moto_url)


@pytest.fixture
def desired():
    return desired_state(account_id=ACCOUNT, region=REGION)


@pytest.fixture(scope="module")
def shared(moto_url):
    return Backend(moto_url)


@pytest.fixture
def converged(shared, desired):
    """The reference stack deployed over whatever this worker's moto holds (no reset): the drift cases each put
    it back, so the next one starts converged and its first deploy is cheap."""
    shared.hooks.clear()
    deploy(shared.client, desired)
    shared.calls.clear()
    return shared


def test_deploy_creates_everything(backend, desired):
    report = deploy(backend.client, desired)

    assert report.resources == dict.fromkeys(report.resources, "created")
    assert set(report.resources) == ALL_RESOURCES
    ct = backend.client("cloudtrail")
    trail = ct.get_trail(Name=desired.trail.name)["Trail"]
    assert trail["IsMultiRegionTrail"] and trail["IncludeGlobalServiceEvents"] and trail["LogFileValidationEnabled"]
    assert trail["S3BucketName"] == desired.bucket.name
    assert trail["CloudWatchLogsLogGroupArn"] == f"{desired.log_group.arn}:*"
    assert trail["CloudWatchLogsRoleArn"] == desired.log_role.arn
    assert ct.get_trail_status(Name=desired.trail.name)["IsLogging"] is True
    assert ct.get_event_selectors(TrailName=desired.trail.name)["EventSelectors"] == [
        {"ReadWriteType": "All", "IncludeManagementEvents": True}
    ]
    (group,) = backend.client("logs").describe_log_groups(logGroupNamePrefix=desired.log_group.name)["logGroups"]
    assert group["retentionInDays"] == 365
    s3 = backend.client("s3")
    assert json.loads(s3.get_bucket_policy(Bucket=desired.bucket.name)["Policy"]) == desired.bucket.policy
    iam = backend.client("iam")
    roles = (desired.log_role, desired.function.role, desired.alarms_function.role, desired.guard_function.role,
             desired.break_glass_role)
    for role in roles:
        assert iam.get_role(RoleName=role.name)["Role"]["AssumeRolePolicyDocument"] == role.trust_policy
        for name, document in role.inline_policies.items():
            assert iam.get_role_policy(RoleName=role.name, PolicyName=name)["PolicyDocument"] == document

    kms = backend.client("kms")
    key = kms.describe_key(KeyId="alias/gameday-security-topic")["KeyMetadata"]
    assert key["KeyState"] == "Enabled" and key["KeyManager"] == "CUSTOMER"
    assert json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]) == desired.key.policy
    sns = backend.client("sns")
    security = sns.get_topic_attributes(TopicArn=desired.topic.arn)["Attributes"]
    assert json.loads(security["Policy"]) == desired.topic.policy
    assert security["KmsMasterKeyId"] == "alias/gameday-security-topic"
    fallback = sns.get_topic_attributes(TopicArn=desired.fallback_topic.arn)["Attributes"]
    assert json.loads(fallback["Policy"]) == desired.fallback_topic.policy
    assert not fallback.get("KmsMasterKeyId")  # the independent path must not share the security topic's key
    listed = [s for t in (desired.topic, desired.fallback_topic)
              for s in sns.list_subscriptions_by_topic(TopicArn=t.arn)["Subscriptions"]]
    sink, tickets = desired.queue.arn, desired.tickets_queue.arn
    assert sorted((s["TopicArn"], s["Protocol"], s["Endpoint"]) for s in listed) == sorted([
        (desired.topic.arn, "sqs", sink), (desired.topic.arn, "sqs", tickets),
        (desired.topic.arn, "email", "security-oncall@example.com"), (desired.fallback_topic.arn, "sqs", sink),
    ])
    for sub in listed:
        if sub["Protocol"] == "sqs":
            attributes = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])["Attributes"]
            assert attributes["RawMessageDelivery"] == "false"
    sqs = backend.client("sqs")
    url = sqs.get_queue_url(QueueName=desired.queue.name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == desired.queue.arn
    assert json.loads(attributes["Policy"]) == desired.queue.policy
    tickets_url = sqs.get_queue_url(QueueName="gameday-tickets")["QueueUrl"]
    tickets_policy = sqs.get_queue_attributes(QueueUrl=tickets_url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    assert json.loads(tickets_policy) == desired.tickets_queue.policy

    lam = backend.client("lambda")
    config = lam.get_function_configuration(FunctionName=desired.function.name)
    assert (config["Runtime"], config["Handler"]) == ("python3.12", "remediate_cloudtrail.handler")
    assert config["Timeout"] == 30
    assert config["Role"] == desired.function.role.arn
    assert config["CodeSha256"] == code_sha256(function_zip(FUNCTION_SOURCE))
    variables = config["Environment"]["Variables"]
    assert json.loads(variables[FUNCTION_ENV_VAR])["trail"] == desired.trail.create_params()
    assert sum(len(k.encode()) + len(v.encode()) for k, v in variables.items()) < 4096
    (statement,) = json.loads(lam.get_policy(FunctionName=desired.function.name)["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": desired.rule.arn}}

    ev = backend.client("events")
    rule = ev.describe_rule(Name=desired.rule.name)
    assert json.loads(rule["EventPattern"]) == desired.rule.pattern
    assert rule["State"] == "ENABLED" and rule["Arn"] == desired.rule.arn
    targets = ev.list_targets_by_rule(Rule=desired.rule.name)["Targets"]
    assert sorted((t["Id"], t["Arn"]) for t in targets) == [
        ("remediate", desired.function.arn), ("security-topic", desired.topic.arn)
    ]
    assert report.outputs.sink_queue_url == url
    assert report.outputs.trail_arn == desired.trail.arn

    guard = desired.guard_function
    config = lam.get_function_configuration(FunctionName="gameday-remediate-sns")
    assert (config["Handler"], config["Timeout"], config["Role"]) == ("remediate_sns.handler", 60, guard.role.arn)
    assert config["CodeSha256"] == code_sha256(function_zip(GUARD_SOURCE, guard.bundle))
    assert config["Environment"]["Variables"] == guard.environment
    statements = json.loads(lam.get_policy(FunctionName=guard.name)["Policy"])["Statement"]
    chain_rules = (desired.sns_rule, desired.alarm_state_rule, desired.guard_schedule_rule)
    assert sorted(s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in statements) == sorted(r.arn for r in chain_rules)
    for rule in chain_rules:
        stored = ev.describe_rule(Name=rule.name)
        assert json.loads(stored.get("EventPattern") or "null") == rule.pattern
        assert stored.get("ScheduleExpression") == rule.schedule and stored["State"] == "ENABLED"
    assert ev.describe_rule(Name="gameday-sns-guard-schedule")["ScheduleExpression"] == "rate(5 minutes)"
    assert _target_pairs(backend, desired.sns_rule) == [("fallback-topic", desired.fallback_topic.arn),
                                                        ("remediate", guard.arn)]
    assert _target_pairs(backend, desired.alarm_state_rule) == [("remediate", guard.arn)]
    assert _target_pairs(backend, desired.guard_schedule_rule) == [("remediate", guard.arn)]
    (alarm,) = backend.client("cloudwatch").describe_alarms(
        AlarmNames=["gameday-security-delivery-failures"])["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SNS", "NumberOfNotificationsFailed")
    assert alarm["Dimensions"] == [{"Name": "TopicName", "Value": "gameday-security"}]
    assert alarm["AlarmActions"] == [desired.fallback_topic.arn]  # never the topic whose deliveries fail
    assert report.outputs.topic_key_arn == key["Arn"]
    assert report.outputs.tickets_queue_url == tickets_url


@pytest.mark.parametrize("sabotage", [None, "detection", "remediation", "prevention"])
def test_second_deploy_changes_nothing(backend, sabotage):
    desired = desired_state(account_id=ACCOUNT, region=REGION, sabotage=sabotage)
    deploy(backend.client, desired)
    backend.calls.clear()

    report = deploy(backend.client, desired)

    assert report.resources == dict.fromkeys(report.resources, "unchanged")
    assert not report.changed and report.changes == []
    assert backend.calls, "the hook saw no calls at all"
    assert backend.mutating_calls() == []


def _tamper_targets(c, d):
    c("events").remove_targets(Rule=d.rule.name, Ids=["security-topic"])
    c("events").put_targets(Rule=d.rule.name, Targets=[{"Id": "attacker", "Arn": d.queue.arn}])


def _tamper_permission(c, d):
    c("lambda").remove_permission(FunctionName=d.function.name, StatementId=d.function.permission.statement_id)


def _tamper_role(c, d):
    c("iam").put_role_policy(RoleName=d.log_role.name, PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))


DRIFTS = {
    "stop-logging": ("trail", lambda c, d: c("cloudtrail").stop_logging(Name=d.trail.name)),
    "single-region": ("trail", lambda c, d: c("cloudtrail").update_trail(Name=d.trail.name, IsMultiRegionTrail=False)),
    "selectors": ("trail", lambda c, d: c("cloudtrail").put_event_selectors(
        TrailName=d.trail.name, EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": False}])),
    "rule-pattern": ("rule", lambda c, d: c("events").put_rule(
        Name=d.rule.name, EventPattern=json.dumps({"source": ["aws.nothing"]}), State="ENABLED",
        Description=d.rule.description)),
    "rule-disabled": ("rule", lambda c, d: c("events").disable_rule(Name=d.rule.name)),
    "targets": ("rule", _tamper_targets),
    "permission": ("permission", _tamper_permission),
    "bucket-policy": ("bucket", lambda c, d: c("s3").delete_bucket_policy(Bucket=d.bucket.name)),
    "retention": ("log_group", lambda c, d: c("logs").put_retention_policy(
        logGroupName=d.log_group.name, retentionInDays=1)),
    "topic-policy": ("topic", lambda c, d: c("sns").set_topic_attributes(
        TopicArn=d.topic.arn, AttributeName="Policy", AttributeValue=json.dumps(
            {"Version": "2012-10-17", "Statement": []}))),
    # The security topic's every subscriber: the sink's ("subscription"), the tickets queue's and the on-call's.
    "unsubscribed": (("subscription", "subscriptions"), lambda c, d: [
        c("sns").unsubscribe(SubscriptionArn=s["SubscriptionArn"])
        for s in c("sns").list_subscriptions_by_topic(TopicArn=d.topic.arn)["Subscriptions"]]),
    # Every queue of the security topic (SNS refuses RawMessageDelivery on an e-mail subscription).
    "raw-delivery": (("subscription", "subscriptions"), lambda c, d: [
        c("sns").set_subscription_attributes(
            SubscriptionArn=s["SubscriptionArn"], AttributeName="RawMessageDelivery", AttributeValue="true")
        for s in c("sns").list_subscriptions_by_topic(TopicArn=d.topic.arn)["Subscriptions"]
        if s["Protocol"] == "sqs"]),
    "function-timeout": ("function", lambda c, d: c("lambda").update_function_configuration(
        FunctionName=d.function.name, Timeout=3)),
    "function-code": ("function", lambda c, d: c("lambda").update_function_code(
        FunctionName=d.function.name, ZipFile=function_zip(Path(__file__)))),
    "role-extra-policy": ("log_role", _tamper_role),
}


@pytest.mark.parametrize("drift", DRIFTS)
def test_drift_converges(converged, desired, drift):
    backend = converged
    resources, tamper = DRIFTS[drift]
    tamper(backend.client, desired)

    report = deploy(backend.client, desired)

    expected = "created" if drift in ("unsubscribed", "permission") else "updated"
    resources = (resources,) if isinstance(resources, str) else resources
    assert {k: v for k, v in report.resources.items() if v != "unchanged"} == dict.fromkeys(resources, expected)
    backend.calls.clear()
    assert not deploy(backend.client, desired).changed
    assert backend.mutating_calls() == []


def test_drift_is_put_back_exactly(converged, desired):
    backend = converged
    for drift in ("stop-logging", "selectors", "rule-pattern", "targets", "raw-delivery", "function-timeout"):
        DRIFTS[drift][1](backend.client, desired)

    report = deploy(backend.client, desired)

    assert report.resources["trail"] == report.resources["rule"] == "updated"
    ct, ev = backend.client("cloudtrail"), backend.client("events")
    assert ct.get_trail_status(Name=desired.trail.name)["IsLogging"]
    assert ct.get_event_selectors(TrailName=desired.trail.name)["EventSelectors"] == list(desired.trail.event_selectors)
    assert json.loads(ev.describe_rule(Name=desired.rule.name)["EventPattern"]) == desired.rule.pattern
    assert _target_ids(backend, desired) == ["remediate", "security-topic"]
    assert backend.client("lambda").get_function_configuration(FunctionName=desired.function.name)["Timeout"] == 30
    assert any(change.startswith("RemoveTargets") for change in report.changes)


def test_notification_chain_drift_is_put_back_exactly(converged, desired):
    backend = converged
    c = backend.client
    kms, sns = c("kms"), c("sns")
    key_id = kms.describe_key(KeyId=desired.key.alias)["KeyMetadata"]["KeyId"]
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": desired.key.policy["Statement"][:1]}))  # CloudWatch may not use it
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    sns.set_topic_attributes(TopicArn=desired.topic.arn, AttributeName="KmsMasterKeyId", AttributeValue="")
    listed = {(s["TopicArn"], s["Endpoint"]): s["SubscriptionArn"] for t in desired.topics
              for s in sns.list_subscriptions_by_topic(TopicArn=t.arn)["Subscriptions"]}
    sns.unsubscribe(SubscriptionArn=listed[(desired.fallback_topic.arn, desired.queue.arn)])
    tickets = listed[(desired.topic.arn, desired.tickets_queue.arn)]
    sns.set_subscription_attributes(SubscriptionArn=tickets, AttributeName="FilterPolicy",
                                    AttributeValue=json.dumps({"severity": ["never-sent"]}))
    c("events").disable_rule(Name=desired.guard_schedule_rule.name)
    c("cloudwatch").put_metric_alarm(**{**desired.delivery_failures_alarm.put_params(), "AlarmActions": []})

    report = deploy(backend.client, desired)

    assert {k: v for k, v in report.resources.items() if v != "unchanged"} == {
        "key": "updated", "topic": "updated", "subscriptions": "created", "sns_rule": "updated", "alarms": "updated"}
    assert {"CancelKeyDeletion alias/gameday-security-topic", "EnableKey alias/gameday-security-topic",
            "PutKeyPolicy alias/gameday-security-topic", "SetTopicAttributes gameday-security KmsMasterKeyId",
            f"Subscribe sqs {desired.queue.arn}", f"SetSubscriptionAttributes {tickets} FilterPolicy={{}}",
            "PutRule gameday-sns-guard-schedule (State)",
            "PutMetricAlarm gameday-security-delivery-failures (AlarmActions)"} == set(report.changes)
    key = kms.describe_key(KeyId=desired.key.alias)["KeyMetadata"]
    assert key["KeyId"] == key_id and key["KeyState"] == "Enabled"
    assert json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]) == desired.key.policy
    assert sns.get_topic_attributes(TopicArn=desired.topic.arn)["Attributes"]["KmsMasterKeyId"] == desired.key.alias
    assert json.loads(sns.get_subscription_attributes(SubscriptionArn=tickets)["Attributes"]["FilterPolicy"]) == {}
    backend.calls.clear()
    assert not deploy(backend.client, desired).changed
    assert backend.mutating_calls() == []


def _target_ids(backend, desired):
    return sorted(t["Id"] for t in backend.client("events").list_targets_by_rule(Rule=desired.rule.name)["Targets"])


def _target_pairs(backend, rule):
    return sorted((t["Id"], t["Arn"]) for t in backend.client("events").list_targets_by_rule(Rule=rule.name)["Targets"])


def _function_exists(backend, desired):
    try:
        backend.client("lambda").get_function_configuration(FunctionName=desired.names.function)
    except ClientError:
        return False
    return True


@pytest.mark.parametrize(
    "sabotage, target_ids, function",
    [("detection", ["remediate"], True), ("remediation", ["security-topic"], False),
     ("prevention", ["remediate", "security-topic"], True)],
)
def test_sabotaged_stack_has_exactly_its_targets(backend, sabotage, target_ids, function):
    desired = desired_state(account_id=ACCOUNT, region=REGION, sabotage=sabotage)
    report = deploy(backend.client, desired)
    assert _target_ids(backend, desired) == target_ids
    assert _function_exists(backend, desired) is function
    assert ("function" in report.resources) is function
    assert report.outputs.sabotage == sabotage
    # the topic and its sink stay: only the alerting edge (or the remediation, or the topics' Deny) is missing
    assert backend.client("sns").list_subscriptions_by_topic(TopicArn=desired.topic.arn)["Subscriptions"]
    for topic in (desired.topic, desired.fallback_topic):
        stored = backend.client("sns").get_topic_attributes(TopicArn=topic.arn)["Attributes"]["Policy"]
        assert protects(json.loads(stored), desired.break_glass_role.arn) is (sabotage != "prevention")


def test_switching_sabotage_on_a_live_stack_is_exact(backend):
    def variant(sabotage):
        return desired_state(account_id=ACCOUNT, region=REGION, sabotage=sabotage)

    deploy(backend.client, variant(None))
    report = deploy(backend.client, variant("remediation"))
    assert report.resources["function"] == report.resources["function_role"] == "deleted"
    assert _target_ids(backend, variant(None)) == ["security-topic"]
    assert not _function_exists(backend, variant(None))

    report = deploy(backend.client, variant("detection"))
    assert report.resources["function"] == "created"
    assert _target_ids(backend, variant(None)) == ["remediate"]

    report = deploy(backend.client, variant(None))
    assert report.resources["rule"] == "updated" and report.resources["function"] == "unchanged"
    assert _target_ids(backend, variant(None)) == ["remediate", "security-topic"]


def _leftovers(backend, desired):
    c = backend.client
    return {
        "trails": c("cloudtrail").describe_trails()["trailList"],
        "buckets": c("s3").list_buckets()["Buckets"],
        "log_groups": c("logs").describe_log_groups()["logGroups"],
        "roles": c("iam").list_roles()["Roles"],
        "topics": c("sns").list_topics()["Topics"],
        "subscriptions": c("sns").list_subscriptions()["Subscriptions"],
        "queues": c("sqs").list_queues().get("QueueUrls", []),
        "functions": c("lambda").list_functions()["Functions"],
        "rules": c("events").list_rules()["Rules"],
        "alarms": c("cloudwatch").describe_alarms()["MetricAlarms"],
        "aliases": [a for a in c("kms").list_aliases()["Aliases"] if not a["AliasName"].startswith("alias/aws/")],
        # A key cannot be deleted at once: teardown schedules its deletion.
        "keys": [k for k in c("kms").list_keys()["Keys"]
                 if c("kms").describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion"],
        "part4_vpcs": c("ec2").describe_vpcs(Filters=[{"Name": f"tag:{STACK_TAG}", "Values": ["gameday"]}])["Vpcs"],
        "flow_logs": c("ec2").describe_flow_logs()["FlowLogs"],
        "recorders": c("config").describe_configuration_recorders()["ConfigurationRecorders"],
        "config_rules": c("config").describe_config_rules()["ConfigRules"],
        "documents": c("ssm").list_documents(Filters=[{"Key": "Owner", "Values": ["Self"]}])["DocumentIdentifiers"],
        "detectors": c("guardduty").list_detectors()["DetectorIds"],
    }


def test_teardown_leaves_nothing(backend, desired):
    deploy(backend.client, desired)
    s3 = backend.client("s3")
    s3.put_bucket_versioning(Bucket=desired.bucket.name, VersioningConfiguration={"Status": "Enabled"})
    key = f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/log.json.gz"
    s3.put_object(Bucket=desired.bucket.name, Key=key, Body=b"1")
    s3.put_object(Bucket=desired.bucket.name, Key=key, Body=b"2")
    s3.delete_object(Bucket=desired.bucket.name, Key=key)
    for group in (desired.names.function_log_group, desired.names.alarms_function_log_group,
                  desired.names.guard_function_log_group):  # the deploy keeps them a year (application logging)
        assert backend.client("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    backend.client("logs").create_log_group(logGroupName=desired.infra.names.function_log_group)
    backend.client("logs").create_log_group(logGroupName=desired.workload.names.function_log_group)

    key_id = backend.client("kms").describe_key(KeyId=desired.key.alias)["KeyMetadata"]["KeyId"]

    report = teardown(backend.client, desired)

    assert set(report.resources.values()) == {"deleted"}
    assert _leftovers(backend, desired) == dict.fromkeys(_leftovers(backend, desired), [])
    key = backend.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
    assert timedelta(days=6, hours=23) < key["DeletionDate"] - datetime.now(UTC) <= timedelta(days=7)
    again = teardown(backend.client, desired)
    assert set(again.resources.values()) == {"absent"}
    assert again.resources.keys() == report.resources.keys()


def test_sabotaged_teardown_still_removes_the_function(backend, desired):
    deploy(backend.client, desired)
    teardown(backend.client, desired_state(account_id=ACCOUNT, region=REGION, sabotage="remediation"))
    assert not _function_exists(backend, desired)
    assert backend.client("iam").list_roles()["Roles"] == []


def test_function_zip_is_deterministic(tmp_path):
    first = function_zip(FUNCTION_SOURCE)
    copy = tmp_path / FUNCTION_SOURCE.name
    copy.write_bytes(FUNCTION_SOURCE.read_bytes())
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    assert function_zip(copy) == first == function_zip(FUNCTION_SOURCE)
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    (package / "b.py").write_text("B = 1\n")
    (package / "sub" / "a.py").write_text("A = 1\n")
    (package / "sub" / "__pycache__").mkdir()
    (package / "sub" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert zipfile.ZipFile(io.BytesIO(function_zip(package))).namelist() == ["b.py", "sub/a.py"]
    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == ["remediate_cloudtrail.py"]


def _fail(operation, code, message, times, attempts):
    """A before-call hook answering `operation` with an error `times` times, counting every attempt."""

    def hook(model, **_):
        if model.name != operation:
            return None
        attempts.append(operation)
        if len(attempts) > times:
            return None
        http = AWSResponse("http://injected", 400, {}, None)
        return http, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    return hook


def test_create_function_waits_for_a_new_role_to_propagate(backend, desired, monkeypatch):
    monkeypatch.setattr(deploy_module, "IAM_PROPAGATION_WAIT", 0)
    attempts = []
    backend.hooks.append(_fail("CreateFunction", "InvalidParameterValueException",
                               "The role defined for the function cannot be assumed by Lambda.", 2, attempts))
    report = deploy(backend.client, desired)
    assert report.resources["function"] == "created"
    functions = [k for k, v in report.resources.items() if k.endswith("function") and v == "created"]
    assert len(functions) >= 4  # the trail's, the alarms', the chain's and part 4's
    assert attempts == ["CreateFunction"] * (2 + len(functions))  # two refusals, then one call per function


def test_propagation_retry_has_a_hard_deadline(backend, desired, monkeypatch):
    monkeypatch.setattr(deploy_module, "IAM_PROPAGATION_WAIT", 0.05)
    monkeypatch.setattr(deploy_module, "IAM_PROPAGATION_DEADLINE", 0.3)
    attempts = []
    backend.hooks.append(_fail("CreateTrail", "InvalidCloudWatchLogsLogGroupArnException",
                               "Access denied. Check the permissions for your role.", 10_000, attempts))
    with pytest.raises(ClientError, match="InvalidCloudWatchLogsLogGroupArnException"):
        deploy(backend.client, desired)
    assert 2 <= len(attempts) < 20


def test_an_old_role_refused_is_not_retried(backend, desired, monkeypatch):
    monkeypatch.setattr(deploy_module, "IAM_PROPAGATION_WAIT", 0)
    deploy(backend.client, desired)
    backend.client("lambda").delete_function(FunctionName=desired.function.name)
    attempts = []
    backend.hooks.append(_fail("CreateFunction", "InvalidParameterValueException",
                               "The role defined for the function cannot be assumed by Lambda.", 1, attempts))
    with pytest.raises(ClientError, match="cannot be assumed"):
        deploy(backend.client, desired)
    assert attempts == ["CreateFunction"]


def _record(name, trail=None, **parameters):
    """A real CloudTrail record from the fixtures, pointed at our trail."""
    (record,) = json.loads((FIXTURES / name).read_text())
    for key in ("name", "trailName"):
        if key in record["requestParameters"]:
            record["requestParameters"][key] = trail
    record["requestParameters"].update(parameters)
    return record


def test_rule_pattern_matches_real_tampering_records(backend, desired):
    # moto's PutEvents fails outright on SNS and Lambda targets, so a twin rule feeds an SQS probe instead
    sqs, ev = backend.client("sqs"), backend.client("events")
    probe = sqs.create_queue(QueueName="pattern-probe")["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ev.put_rule(Name="pattern-probe", EventPattern=json.dumps(desired.rule.pattern), State="ENABLED")
    ev.put_targets(Rule="pattern-probe", Targets=[{"Id": "probe", "Arn": probe_arn}])
    s3_record = {"eventSource": "s3.amazonaws.com", "eventName": "PutBucketLifecycle",
                 "requestParameters": {"bucketName": desired.bucket.name, "lifecycle": ""}}
    matching = [
        ("aws.cloudtrail", _record("aws.defense-evasion.cloudtrail-stop.json", desired.trail.name)),
        ("aws.cloudtrail", _record("aws.defense-evasion.cloudtrail-delete.json", desired.trail.arn)),
        ("aws.cloudtrail", _record("aws.defense-evasion.cloudtrail-event-selectors.json", desired.trail.name)),
        ("aws.s3", s3_record),
        ("aws.s3", {**s3_record, "eventName": "DeleteBucketPolicy"}),
    ]
    other = [
        ("aws.cloudtrail", _record("aws.defense-evasion.cloudtrail-stop.json", "someone-elses-trail")),
        ("aws.s3", {**s3_record, "requestParameters": {"bucketName": "another-bucket"}}),
        ("aws.s3", {**s3_record, "eventName": "GetBucketLifecycle"}),
    ]
    for source, record in matching + other:
        answer = ev.put_events(Entries=[{"Source": source, "DetailType": "AWS API Call via CloudTrail",
                                         "Detail": json.dumps(record)}])
        assert answer["FailedEntryCount"] == 0

    received = []
    while messages := sqs.receive_message(QueueUrl=probe, MaxNumberOfMessages=10).get("Messages", []):
        received += [json.loads(m["Body"])["detail"]["eventName"] for m in messages]
        for m in messages:
            sqs.delete_message(QueueUrl=probe, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(received) == sorted(r["eventName"] for _, r in matching)
