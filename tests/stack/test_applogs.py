"""Application logging: desired state, converge/teardown on the embedded endpoint, the rule's pattern, the faults."""

from __future__ import annotations

import functools
import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from harness import faults
from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.faults import rebuild
from harness.stack import deploy_applogs
from harness.stack.deploy import DeployReport, deploy, teardown
from harness.stack.desired import StackOutputs, desired_state

ACCOUNT = "123456789012"
REGION = "us-east-1"
READ_ONLY = ("Get", "Describe", "List", "Head", "Lookup")
KEYS = {"alb_logs_bucket", "cf_logs_bucket", "edge_vpc", "alb", "distribution", "app_log_groups", "ecs_cluster",
        "ecs_task_definition", "app_logging_rule"}
TEARDOWN_KEYS = KEYS  # the functions' log groups are the main teardown's (it removes them with the functions)


@pytest.fixture(scope="module")
def aws():
    backend = EmbeddedBackend(Settings(), warm=False)
    backend.start()
    yield backend
    backend.stop()


class Recorder:
    """Fresh clients on the embedded endpoint that record every operation they call."""

    def __init__(self, aws):
        self.aws, self.calls, self._clients = aws, [], {}

    def __call__(self, service):
        if service not in self._clients:
            client = boto3.client(service, endpoint_url=self.aws.endpoint_url, region_name=REGION,
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            client.meta.events.register("before-call.*.*", lambda model, **_: self.calls.append(model.name))
            self._clients[service] = client
        return self._clients[service]

    def mutating(self):
        return [c for c in self.calls if not c.startswith(READ_ONLY)]


def fresh(**kwargs):
    """A desired state under a prefix of its own: tests share the endpoint, never a resource."""
    return desired_state(account_id=ACCOUNT, region=REGION, prefix=f"al{uuid.uuid4().hex[:8]}", **kwargs)


def converge(client, desired):
    report = DeployReport()
    ids = deploy_applogs.converge(functools.cache(client), desired, report)
    return report, ids


def remove(client, desired):
    report = DeployReport()
    deploy_applogs.teardown(functools.cache(client), desired, report)
    return report


def attributes(aws, alb_arn):
    listed = aws.client("elbv2").describe_load_balancer_attributes(LoadBalancerArn=alb_arn)["Attributes"]
    return {a["Key"]: a["Value"] for a in listed}


def group(aws, name):
    found = aws.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next((g for g in found if g["logGroupName"] == name), None)


# -- desired state ------------------------------------------------------------------------------------


def test_names_follow_the_prefix_and_the_outputs_name_them():
    desired = desired_state(account_id=ACCOUNT, region=REGION, prefix="blue")
    app = desired.applogs
    assert (app.vpc.name, app.alb.name, app.distribution.comment) == ("blue-edge",) * 3
    assert [name for name, _ in app.vpc.subnets] == ["blue-edge-a", "blue-edge-b"]
    assert app.alb_logs_bucket.name == f"blue-alb-logs-{ACCOUNT}-{REGION}"
    assert app.cf_logs_bucket.name == f"blue-cf-logs-{ACCOUNT}"
    assert app.alb.arn_prefix == f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/blue-edge/"
    assert app.rule_name == "blue-app-logging"
    outputs = desired.outputs()
    assert outputs.app_log_groups == ["/ecs/blue-app", "/aws/lambda/blue-remediate-cloudtrail",
                                      "/aws/lambda/blue-remediate-alarms", "/aws/lambda/blue-remediate-sns"]
    assert (outputs.alb_logs_bucket, outputs.cf_logs_bucket) == (app.alb_logs_bucket.name, app.cf_logs_bucket.name)
    assert outputs.app_logging_rule_name == "blue-app-logging"
    assert outputs.alb_arn is outputs.distribution_id is None  # AWS assigns them: the deploy reports them
    assert StackOutputs.from_json(outputs.to_json()) == outputs
    assert all(g.retention_days == 365 for g in app.log_groups)


def test_the_ecs_app_logs_to_its_group_through_awslogs():
    app = desired_state(account_id=ACCOUNT, region="eu-west-1").applogs
    logging = app.ecs.container_definition()["logConfiguration"]
    assert logging == {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/gameday-app",
                                                           "awslogs-region": "eu-west-1",
                                                           "awslogs-stream-prefix": "app"}}


@pytest.mark.parametrize("region, principal", [
    ("us-east-1", {"AWS": "arn:aws:iam::127311923021:root"}),
    ("eu-west-1", {"AWS": "arn:aws:iam::156460612806:root"}),
    ("ap-southeast-5", {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}),  # opened after August 2022
])
def test_alb_logs_bucket_has_the_documented_elb_policy(region, principal):
    app = desired_state(account_id=ACCOUNT, region=region).applogs
    (statement,) = app.alb_logs_bucket.policy["Statement"]
    assert statement["Principal"] == principal
    assert statement["Action"] == "s3:PutObject"
    assert statement["Resource"] == f"arn:aws:s3:::gameday-alb-logs-{ACCOUNT}-{region}/AWSLogs/{ACCOUNT}/*"
    assert app.cf_logs_bucket.policy == {} and app.cf_logs_ownership == "BucketOwnerPreferred"


def test_lambda_groups_follow_the_deployed_functions_and_detection_sabotage_drops_the_target():
    sabotaged = desired_state(account_id=ACCOUNT, region=REGION, sabotage="remediation").applogs
    assert [g.name for g in sabotaged.lambda_log_groups] == ["/aws/lambda/gameday-remediate-sns"]
    healthy = desired_state(account_id=ACCOUNT, region=REGION).applogs
    assert [(t.id, t.arn) for t in healthy.rule("E1").targets] == [
        ("security-topic", f"arn:aws:sns:{REGION}:{ACCOUNT}:gameday-security")]
    assert desired_state(account_id=ACCOUNT, region=REGION, sabotage="detection").applogs.rule("E1").targets == ()


def test_pattern_fits_eventbridge_quota_with_the_longest_prefix():
    app = desired_state(account_id=ACCOUNT, region="ap-southeast-2", prefix="p" * 20).applogs
    assert len(json.dumps(app.pattern("EDFDVBD6EXAMPLE"))) < 2048
    assert "aws.cloudfront" not in json.dumps(app.pattern(None))  # no clause before CloudFront assigns an id


# -- the rule's pattern against real-shaped records ---------------------------------------------------


def distribution_record(distribution_id, logging):
    # Trimmed from AWS's documented UpdateDistribution record: the whole new config, its comment hidden.
    return {"eventSource": "cloudfront.amazonaws.com", "eventName": "UpdateDistribution",
            "requestParameters": {"distributionConfig": {"enabled": True, "logging": logging,
                                                         "comment": "HIDDEN_DUE_TO_SECURITY_REASONS"},
                                  "id": distribution_id, "ifMatch": "E1RTLUR9YES76O"}}


def test_pattern_matches_what_switches_logging_off_and_nothing_else(aws):
    app = desired_state(account_id=ACCOUNT, region=REGION).applogs
    pattern = json.dumps(app.pattern("EDFDVBD6EXAMPLE"))
    alb_arn = f"{app.alb.arn_prefix}50dc6c495c0c9188"
    ours, theirs = "/aws/lambda/gameday-remediate-sns", "/aws/lambda/someone-else"
    off = {"includeCookies": False, "prefix": "", "enabled": False, "bucket": ""}
    on = {**off, "enabled": True, "bucket": f"{app.cf_logs_bucket.name}.s3.amazonaws.com"}
    alb = {"eventSource": "elasticloadbalancing.amazonaws.com", "eventName": "ModifyLoadBalancerAttributes",
           "requestParameters": {"loadBalancerArn": alb_arn,
                                 "attributes": [{"key": "access_logs.s3.enabled", "value": "false"}]}}
    retention = {"eventSource": "logs.amazonaws.com", "eventName": "PutRetentionPolicy",
                 "requestParameters": {"logGroupName": ours, "retentionInDays": 1}}
    matching = [
        ("aws.elasticloadbalancing", alb),
        ("aws.cloudfront", distribution_record("EDFDVBD6EXAMPLE", off)),
        ("aws.cloudfront", distribution_record("EDFDVBD6EXAMPLE", {**on, "bucket": "attacker.s3.amazonaws.com"})),
        ("aws.logs", retention),
        ("aws.logs", {**retention, "requestParameters": {"logGroupName": ours, "retentionInDays": 364}}),
        ("aws.logs", {"eventSource": "logs.amazonaws.com", "eventName": "DeleteLogGroup",
                      "requestParameters": {"logGroupName": "/ecs/gameday-app"}}),
    ]
    other = [
        ("aws.elasticloadbalancing", {**alb, "requestParameters": {
            **alb["requestParameters"], "loadBalancerArn": alb_arn.replace("gameday-edge", "gameday-edge2")}}),
        ("aws.cloudfront", distribution_record("EDFDVBD6EXAMPLE", on)),  # another change, logging untouched
        ("aws.cloudfront", distribution_record("EOTHEREXAMPLE", off)),
        ("aws.logs", {**retention, "requestParameters": {"logGroupName": ours, "retentionInDays": 365}}),
        ("aws.logs", {**retention, "requestParameters": {"logGroupName": ours, "retentionInDays": 3653}}),
        ("aws.logs", {**retention, "requestParameters": {"logGroupName": theirs, "retentionInDays": 1}}),
        ("aws.logs", {"eventSource": "logs.amazonaws.com", "eventName": "DeleteLogGroup",
                      "requestParameters": {"logGroupName": theirs}}),
    ]
    # The plane's EventBridge, the path the stack's rule takes: a twin rule feeds a queue the test reads.
    sqs, ev = aws.client("sqs"), aws.client("events")
    probe = sqs.create_queue(QueueName=f"pattern-probe-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ev.put_rule(Name=probe.rsplit("/", 1)[1], EventPattern=pattern, State="ENABLED")
    ev.put_targets(Rule=probe.rsplit("/", 1)[1], Targets=[{"Id": "probe", "Arn": probe_arn}])
    for index, (source, detail) in enumerate(matching + other):
        answer = ev.put_events(Entries=[{"Source": source, "DetailType": "AWS API Call via CloudTrail",
                                         "Detail": json.dumps({**detail, "eventID": str(index)})}])
        assert answer["FailedEntryCount"] == 0
    aws.plane.drain()

    received = []
    while messages := sqs.receive_message(QueueUrl=probe, MaxNumberOfMessages=10).get("Messages", []):
        received += [int(json.loads(m["Body"])["detail"]["eventID"]) for m in messages]
        sqs.delete_message_batch(QueueUrl=probe, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    assert sorted(received) == list(range(len(matching)))


# -- converge and teardown on the embedded endpoint ----------------------------------------------------


def test_converge_creates_everything_then_changes_nothing(aws):
    desired = fresh()
    app = desired.applogs
    report, ids = converge(aws.client, desired)

    assert report.resources == dict.fromkeys(KEYS, "created")
    alb = aws.client("elbv2").describe_load_balancers(Names=[app.alb.name])["LoadBalancers"][0]
    assert ids["alb_arn"] == alb["LoadBalancerArn"] and alb["LoadBalancerArn"].startswith(app.alb.arn_prefix)
    assert (alb["Scheme"], alb["Type"]) == ("internet-facing", "application")
    assert len({z["ZoneName"] for z in alb["AvailabilityZones"]}) == 2
    assert attributes(aws, ids["alb_arn"]).items() >= app.alb.access_log_attributes().items()
    ec2 = aws.client("ec2")
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [app.vpc.name]}])["Vpcs"]
    assert alb["VpcId"] == vpc["VpcId"]
    (gateway,) = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])["InternetGateways"]
    (main,) = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                                 {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    assert {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": gateway["InternetGatewayId"]}.items() <= next(
        r for r in main["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0").items()

    config = aws.client("cloudfront").get_distribution_config(Id=ids["distribution_id"])["DistributionConfig"]
    assert config["Comment"] == app.distribution.comment and config["Enabled"] is True
    assert config["Logging"] == app.distribution.logging()
    assert config["Origins"]["Items"][0]["DomainName"] == alb["DNSName"]

    s3 = aws.client("s3")
    assert json.loads(s3.get_bucket_policy(Bucket=app.alb_logs_bucket.name)["Policy"]) == app.alb_logs_bucket.policy
    ownership = s3.get_bucket_ownership_controls(Bucket=app.cf_logs_bucket.name)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    for log_group in app.log_groups:
        assert group(aws, log_group.name)["retentionInDays"] == 365
    task = aws.client("ecs").describe_task_definition(taskDefinition=app.ecs.family)["taskDefinition"]
    assert task["containerDefinitions"][0]["logConfiguration"] == app.ecs.container_definition()["logConfiguration"]

    ev = aws.client("events")
    rule = ev.describe_rule(Name=app.rule_name)
    assert json.loads(rule["EventPattern"]) == app.pattern(ids["distribution_id"]) and rule["State"] == "ENABLED"
    assert [(t["Id"], t["Arn"]) for t in ev.list_targets_by_rule(Rule=app.rule_name)["Targets"]] == [
        ("security-topic", desired.topic.arn)]

    recorder = Recorder(aws)
    again, same_ids = converge(recorder, desired)
    assert again.resources == dict.fromkeys(KEYS, "unchanged") and again.changes == []
    assert recorder.calls and recorder.mutating() == []
    assert same_ids == ids


def test_drift_is_put_back_exactly(aws):
    desired = fresh()
    app = desired.applogs
    _, ids = converge(aws.client, desired)
    elb, cf, logs = aws.client("elbv2"), aws.client("cloudfront"), aws.client("logs")
    elb.modify_load_balancer_attributes(LoadBalancerArn=ids["alb_arn"], Attributes=[
        {"Key": "access_logs.s3.enabled", "Value": "false"}, {"Key": "access_logs.s3.bucket", "Value": "elsewhere"}])
    answer = cf.get_distribution_config(Id=ids["distribution_id"])
    cf.update_distribution(Id=ids["distribution_id"], IfMatch=answer["ETag"], DistributionConfig={
        **answer["DistributionConfig"], "Logging": {"Enabled": False, "IncludeCookies": False, "Bucket": "",
                                                    "Prefix": ""}})
    logs.delete_log_group(logGroupName=app.ecs_log_group.name)
    logs.put_retention_policy(logGroupName=app.lambda_log_groups[0].name, retentionInDays=1)
    aws.client("events").remove_targets(Rule=app.rule_name, Ids=["security-topic"])

    report, again = converge(aws.client, desired)

    assert {k: v for k, v in report.resources.items() if v != "unchanged"} == {
        "alb": "updated", "distribution": "updated", "app_log_groups": "created", "app_logging_rule": "updated"}
    assert again == ids
    assert attributes(aws, ids["alb_arn"]).items() >= app.alb.access_log_attributes().items()
    assert cf.get_distribution_config(Id=ids["distribution_id"])["DistributionConfig"]["Logging"] == \
        app.distribution.logging()
    assert [group(aws, g.name)["retentionInDays"] for g in app.log_groups] == [365] * len(app.log_groups)
    recorder = Recorder(aws)
    assert not converge(recorder, desired)[0].changed and recorder.mutating() == []


def test_teardown_leaves_nothing(aws):
    desired = fresh()
    app = desired.applogs
    _, ids = converge(aws.client, desired)
    aws.client("s3").put_object(Bucket=app.alb_logs_bucket.name, Key=f"AWSLogs/{ACCOUNT}/ELBAccessLogTestFile",
                                Body=b"test")
    aws.client("ecs").register_task_definition(family=app.ecs.family, requiresCompatibilities=["EC2"],
                                               containerDefinitions=[app.ecs.container_definition()])

    report = remove(aws.client, desired)

    assert report.resources == dict.fromkeys(TEARDOWN_KEYS, "deleted")
    assert leftovers(aws, desired, ids) == dict.fromkeys(leftovers(aws, desired, ids), False)
    again = remove(aws.client, desired)
    assert again.resources == dict.fromkeys(TEARDOWN_KEYS, "absent")


def leftovers(aws, desired, ids):
    app = desired.applogs
    ec2, ecs = aws.client("ec2"), aws.client("ecs")
    distributions = aws.client("cloudfront").list_distributions()["DistributionList"].get("Items", [])
    buckets = {b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]}
    try:
        aws.client("elbv2").describe_load_balancers(Names=[app.alb.name])
        alb = True
    except ClientError:
        alb = False
    return {
        "vpc": bool(ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [app.vpc.name]}])["Vpcs"]),
        "subnets": bool(ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": [n for n, _ in app.vpc.subnets]}])
                        ["Subnets"]),
        "gateway": bool(ec2.describe_internet_gateways(
            Filters=[{"Name": "tag:Name", "Values": [app.vpc.name]}])["InternetGateways"]),
        "alb": alb,
        "distribution": any(d["Id"] == ids["distribution_id"] for d in distributions),
        "buckets": bool(buckets & {app.alb_logs_bucket.name, app.cf_logs_bucket.name}),
        "ecs_group": group(aws, app.ecs_log_group.name) is not None,
        "cluster": any(c["status"] == "ACTIVE" for c in ecs.describe_clusters(clusters=[app.ecs.cluster])["clusters"]),
        "task_definitions": bool(ecs.list_task_definitions(familyPrefix=app.ecs.family)["taskDefinitionArns"]),
        "rule": app.rule_name in {r["Name"] for r in aws.client("events").list_rules()["Rules"]},
    }


def test_the_whole_stack_deploys_and_tears_down_with_it(aws):
    desired = fresh()
    report = deploy(aws.client, desired)

    assert report.resources.keys() >= KEYS
    outputs = report.outputs
    assert outputs.alb_arn.startswith(desired.applogs.alb.arn_prefix) and outputs.distribution_id
    assert outputs.app_log_groups == [g.name for g in desired.applogs.log_groups]
    assert outputs.app_logging_rule_name == desired.applogs.rule_name

    gone = teardown(aws.client, desired)

    assert {k: gone.resources[k] for k in TEARDOWN_KEYS} == dict.fromkeys(TEARDOWN_KEYS, "deleted")
    assert leftovers(aws, desired, {"distribution_id": outputs.distribution_id}) == \
        dict.fromkeys(leftovers(aws, desired, {"distribution_id": outputs.distribution_id}), False)


# -- faults: exact revert, and rebuilt from the journal ------------------------------------------------


@pytest.fixture(scope="module")
def edge(aws):
    desired = fresh()
    _, ids = converge(aws.client, desired)
    yield desired.applogs, ids
    remove(aws.client, desired)


def journaled(fault):
    """The fault and its snapshot as `gameday cleanup` would see them in another process."""
    return rebuild(fault.name, json.loads(json.dumps(fault.params)))


def run(aws, fault):
    snapshot = json.loads(json.dumps(fault.snapshot(aws)))
    assert fault.steady()(aws)[0]
    fault.apply(aws, snapshot)
    assert not fault.steady()(aws)[0]
    journaled(fault).revert(aws, snapshot)
    assert fault.steady()(aws)[0]
    return snapshot


def test_alb_access_logs_come_back_with_their_bucket_and_prefix(aws, edge):
    app, ids = edge
    aws.client("elbv2").modify_load_balancer_attributes(LoadBalancerArn=ids["alb_arn"], Attributes=[
        {"Key": "access_logs.s3.prefix", "Value": "edge"}])
    before = attributes(aws, ids["alb_arn"])
    run(aws, faults.applogs.disable_alb_access_logs(ids["alb_arn"]))
    assert attributes(aws, ids["alb_arn"]) == before


def test_distribution_logging_comes_back_exactly(aws, edge):
    app, ids = edge
    cf = aws.client("cloudfront")
    before = cf.get_distribution_config(Id=ids["distribution_id"])["DistributionConfig"]
    snapshot = run(aws, faults.applogs.disable_distribution_logging(ids["distribution_id"]))
    assert snapshot["Logging"] == app.distribution.logging()
    assert cf.get_distribution_config(Id=ids["distribution_id"])["DistributionConfig"] == before


def test_a_deleted_log_group_comes_back_with_retention_tags_and_filters(aws, edge):
    app, _ = edge
    logs = aws.client("logs")
    name = app.ecs_log_group.name
    logs.tag_log_group(logGroupName=name, tags={"team": "payments"})
    logs.put_metric_filter(logGroupName=name, filterName="errors", filterPattern="ERROR", metricTransformations=[
        {"metricName": "Errors", "metricNamespace": "App", "metricValue": "1", "defaultValue": 0.0}])
    run(aws, faults.applogs.delete_log_group(name))
    assert group(aws, name)["retentionInDays"] == 365
    assert logs.list_tags_log_group(logGroupName=name)["tags"] == {"team": "payments"}
    (restored,) = logs.describe_metric_filters(logGroupName=name)["metricFilters"]
    assert (restored["filterName"], restored["filterPattern"]) == ("errors", "ERROR")
    assert restored["metricTransformations"][0]["metricName"] == "Errors"


@pytest.mark.parametrize("before", [365, None])
def test_cut_retention_comes_back_exactly(aws, edge, before):
    app, _ = edge
    name = app.lambda_log_groups[-1].name
    logs = aws.client("logs")
    if before is None:
        logs.delete_retention_policy(logGroupName=name)
    else:
        logs.put_retention_policy(logGroupName=name, retentionInDays=before)
    fault = faults.applogs.cut_log_retention(name, days=1)
    snapshot = fault.snapshot(aws)
    fault.apply(aws, snapshot)
    assert group(aws, name)["retentionInDays"] == 1 and not fault.steady()(aws)[0]
    journaled(fault).revert(aws, json.loads(json.dumps(snapshot)))
    assert group(aws, name).get("retentionInDays") == before
    assert fault.steady()(aws)[0]


REVERTS = {
    "alb": lambda app, ids: faults.applogs.disable_alb_access_logs(ids["alb_arn"]),
    "distribution": lambda app, ids: faults.applogs.disable_distribution_logging(ids["distribution_id"]),
    "deleted": lambda app, ids: faults.applogs.delete_log_group(app.ecs_log_group.name),
    "retention": lambda app, ids: faults.applogs.cut_log_retention(app.lambda_log_groups[-1].name),
}


@pytest.mark.parametrize("kind", REVERTS)
def test_a_revert_with_nothing_to_undo_only_reads(aws, edge, kind):
    fault = REVERTS[kind](*edge)
    snapshot = fault.snapshot(aws)
    recorder = Recorder(aws)

    class Clients:
        client = staticmethod(recorder)

    fault.revert(Clients, snapshot)  # as after a remediation: the control is already as it was

    assert recorder.calls and recorder.mutating() == []
