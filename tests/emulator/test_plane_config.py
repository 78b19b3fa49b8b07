"""AWS Config in the plane over HTTP: managed-rule evaluators, triggers, compliance events, remediation, hooks."""

from __future__ import annotations

import io
import json
import textwrap
import urllib.error
import urllib.request
import uuid
import zipfile
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.poll import wait_for

ACCOUNT = "123456789012"
REGION = "us-east-1"
HOUR = 3600.0


@pytest.fixture(scope="module")
def aws():
    # An AWS hour lasts one wall second: One_Hour rules run every second, TwentyFour_Hours ones every 24.
    backend = EmbeddedBackend(Settings(time_scale=3600))
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module", autouse=True)
def recorder(aws):
    """The region's configuration recorder, recording; tests that stop it start it again."""
    config = aws.client("config")
    config.put_configuration_recorder(ConfigurationRecorder={
        "name": "default", "roleARN": f"arn:aws:iam::{ACCOUNT}:role/config-recorder",
        "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": True}})
    config.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": f"config-{suffix()}"})
    config.start_configuration_recorder(ConfigurationRecorderName="default")
    yield "default"
    config.stop_configuration_recorder(ConfigurationRecorderName="default")


def suffix() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def rules(aws):
    """Creates managed rules (unique names) and removes them, remediation first, afterwards."""
    created: list[tuple[object, str]] = []

    def make(identifier: str, *, scope: dict | None = None, params: dict | None = None,
             frequency: str | None = None, config=None) -> str:
        config = config or aws.client("config")
        name = f"{identifier.lower().replace('_', '-')}-{suffix()}"
        rule: dict = {"ConfigRuleName": name, "Source": {"Owner": "AWS", "SourceIdentifier": identifier}}
        if scope:
            rule["Scope"] = scope
        if params:
            rule["InputParameters"] = json.dumps(params)
        if frequency:
            rule["MaximumExecutionFrequency"] = frequency
        config.put_config_rule(ConfigRule=rule)
        created.append((config, name))
        aws.plane.drain()
        return name

    yield make
    for config, name in created:
        for call in (config.delete_remediation_configuration, config.delete_config_rule):
            try:
                call(ConfigRuleName=name)
            except ClientError:
                pass
    aws.plane.drain()


def compliance(aws, rule: str, resource_id: str, config=None) -> str | None:
    config = config or aws.client("config")
    results = config.get_compliance_details_by_config_rule(
        ConfigRuleName=rule, ComplianceTypes=["COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE"])["EvaluationResults"]
    found = [r["ComplianceType"] for r in results
             if r["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"] == resource_id]
    return found[0] if found else None


def wait_compliance(aws, rule: str, resource_id: str, expected: str, timeout: float = 10, config=None) -> None:
    got = wait_for(lambda: compliance(aws, rule, resource_id, config) == expected or None, timeout=timeout,
                   interval=0.05, describe=f"{rule} {resource_id} {expected}")
    assert got, f"{rule} {resource_id}: {compliance(aws, rule, resource_id, config)}, not {expected}"


def evaluate(aws, *rule_names: str, config=None) -> None:
    (config or aws.client("config")).start_config_rules_evaluation(ConfigRuleNames=list(rule_names))
    aws.plane.drain()


def new_trail(aws, *, multi_region: bool = False) -> tuple[str, str]:
    """(name, bucket) of a logging trail with its own bucket."""
    name = f"trail-{suffix()}"
    bucket = f"{name}-logs"
    aws.client("s3").create_bucket(Bucket=bucket)
    aws.client("cloudtrail").create_trail(Name=name, S3BucketName=bucket, IsMultiRegionTrail=multi_region)
    aws.client("cloudtrail").start_logging(Name=name)
    return name, bucket


def new_queue(aws) -> tuple[str, str]:
    name = f"q-{suffix()}"
    return aws.client("sqs").create_queue(QueueName=name)["QueueUrl"], f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def drain_queue(aws, url: str) -> list[str]:
    sqs, bodies = aws.client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            bodies.append(m["Body"])


def new_role(aws, service: str = "ssm.amazonaws.com") -> str:
    return aws.client("iam").create_role(RoleName=f"role-{suffix()}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]


def new_document(aws, steps: list[dict], parameters: dict, *, yaml: bool = False) -> str:
    """An SSM Automation document (schemaVersion 0.3) that assumes {{ AutomationAssumeRole }}."""
    name = f"Remediate-{suffix()}"
    content = {"schemaVersion": "0.3", "assumeRole": "{{ AutomationAssumeRole }}",
               "parameters": {"AutomationAssumeRole": {"type": "String", "default": ""}, **parameters},
               "mainSteps": steps}
    if yaml:
        import yaml as pyyaml

        text, fmt = pyyaml.safe_dump(content), "YAML"
    else:
        text, fmt = json.dumps(content), "JSON"
    aws.client("ssm").create_document(Name=name, Content=text, DocumentType="Automation", DocumentFormat=fmt)
    return name


def hook(aws, path: str, method: str = "POST") -> tuple[int, dict]:
    request = urllib.request.Request(f"{aws.endpoint_url}{path}", method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.fixture
def root_mfa(aws):
    """Turns root MFA on or off through the simulation hook; back on afterwards (the plane's default)."""
    def set_mfa(enabled: bool) -> None:
        status, body = hook(aws, f"/_gameday/root-mfa?account={ACCOUNT}&enabled={int(enabled)}")
        assert status == 200 and body["AccountMFAEnabled"] == int(enabled)

    yield set_mfa
    set_mfa(True)


# -- each rule, compliant and not ---------------------------------------------------------------------


def test_cloud_trail_enabled_follows_the_trail_it_names(aws, rules):
    trail, bucket = new_trail(aws)
    try:
        rule = rules("CLOUD_TRAIL_ENABLED", params={"s3BucketName": bucket})
        assert compliance(aws, rule, ACCOUNT) == "COMPLIANT"  # a new rule is evaluated at once
        other = rules("CLOUD_TRAIL_ENABLED", params={"s3BucketName": f"{bucket}-other"})
        assert compliance(aws, other, ACCOUNT) == "NON_COMPLIANT"
        aws.client("cloudtrail").stop_logging(Name=trail)
        aws.plane.drain()
        assert compliance(aws, rule, ACCOUNT) == "COMPLIANT"  # periodic: the stop is seen at the next run
        evaluate(aws, rule)
        assert compliance(aws, rule, ACCOUNT) == "NON_COMPLIANT"
    finally:
        aws.client("cloudtrail").delete_trail(Name=trail)


def test_multi_region_cloud_trail_enabled_needs_all_management_events(aws, rules):
    single, single_bucket = new_trail(aws)
    multi, multi_bucket = new_trail(aws, multi_region=True)
    try:
        assert compliance(aws, rules("MULTI_REGION_CLOUD_TRAIL_ENABLED", params={"s3BucketName": single_bucket}),
                          ACCOUNT) == "NON_COMPLIANT"
        rule = rules("MULTI_REGION_CLOUD_TRAIL_ENABLED", params={"s3BucketName": multi_bucket})
        assert compliance(aws, rule, ACCOUNT) == "COMPLIANT"
        aws.client("cloudtrail").put_event_selectors(TrailName=multi, EventSelectors=[
            {"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}])
        evaluate(aws, rule)
        assert compliance(aws, rule, ACCOUNT) == "NON_COMPLIANT"
        write_only = rules("MULTI_REGION_CLOUD_TRAIL_ENABLED",
                           params={"s3BucketName": multi_bucket, "readWriteType": "WriteOnly"})
        assert compliance(aws, write_only, ACCOUNT) == "COMPLIANT"
    finally:
        for trail in (single, multi):
            aws.client("cloudtrail").delete_trail(Name=trail)


@pytest.mark.parametrize("permission", [
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 1024, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
])
def test_incoming_ssh_disabled_flags_world_open_ssh_on_the_change(aws, rules, permission):
    ec2 = aws.client("ec2")
    group = ec2.create_security_group(GroupName=f"sg-{suffix()}", Description="ssh test")["GroupId"]
    rule = rules("INCOMING_SSH_DISABLED", scope={"ComplianceResourceTypes": ["AWS::EC2::SecurityGroup"]})
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    aws.plane.drain()
    assert compliance(aws, rule, group) == "COMPLIANT"  # SSH from a private range is restricted
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[permission])
    aws.plane.drain()
    assert compliance(aws, rule, group) == "NON_COMPLIANT"  # the change itself triggers the evaluation
    ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=[permission])
    aws.plane.drain()
    assert compliance(aws, rule, group) == "COMPLIANT"
    ec2.delete_security_group(GroupId=group)
    aws.plane.drain()
    assert compliance(aws, rule, group) is None  # a deleted resource leaves no result


def test_vpc_flow_logs_enabled_per_vpc_and_traffic_type(aws, rules):
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    try:
        rule = rules("VPC_FLOW_LOGS_ENABLED")
        rejects = rules("VPC_FLOW_LOGS_ENABLED", params={"trafficType": "REJECT"})
        assert compliance(aws, rule, vpc) == "NON_COMPLIANT"
        aws.client("logs").create_log_group(logGroupName=f"/flow/{vpc}")
        flow = ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL",
                                    LogGroupName=f"/flow/{vpc}",
                                    DeliverLogsPermissionArn=f"arn:aws:iam::{ACCOUNT}:role/flow")["FlowLogIds"][0]
        evaluate(aws, rule, rejects)
        assert compliance(aws, rule, vpc) == "COMPLIANT"
        assert compliance(aws, rejects, vpc) == "NON_COMPLIANT"  # an ALL flow log is not a REJECT one
        ec2.delete_flow_logs(FlowLogIds=[flow])
        evaluate(aws, rule)
        assert compliance(aws, rule, vpc) == "NON_COMPLIANT"
    finally:
        ec2.delete_vpc(VpcId=vpc)


def test_access_keys_rotated_ages_keys_on_aws_time_and_honours_tag_scope(aws, rules):
    iam = aws.client("iam")
    tag = suffix()
    fresh, stale = f"fresh-{tag}", f"stale-{tag}"
    for user in (fresh, stale):
        iam.create_user(UserName=user, Tags=[{"Key": "team", "Value": tag}])
    key = iam.create_access_key(UserName=stale)["AccessKey"]["AccessKeyId"]
    iam.create_access_key(UserName=fresh)
    ids = {u: iam.get_user(UserName=u)["User"]["UserId"] for u in (fresh, stale)}
    rule = rules("ACCESS_KEYS_ROTATED", params={"maxAccessKeyAge": "90"}, scope={"TagKey": "team", "TagValue": tag})
    assert compliance(aws, rule, ids[stale]) == "COMPLIANT"
    before = iam.list_access_keys(UserName=stale)["AccessKeyMetadata"][0]["CreateDate"]
    status, body = hook(aws, f"/_gameday/age-access-key?account={ACCOUNT}&user={stale}&key={key}&days=100")
    assert status == 200 and body["AccessKeyId"] == key
    after = iam.list_access_keys(UserName=stale)["AccessKeyMetadata"][0]["CreateDate"]
    assert before - after == timedelta(days=100)
    evaluate(aws, rule)
    assert compliance(aws, rule, ids[stale]) == "NON_COMPLIANT"
    assert compliance(aws, rule, ids[fresh]) == "COMPLIANT"
    results = aws.client("config").get_compliance_details_by_config_rule(ConfigRuleName=rule)["EvaluationResults"]
    assert {r["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"] for r in results} == \
        set(ids.values())  # the tag scope keeps every other user out
    iam.update_access_key(UserName=stale, AccessKeyId=key, Status="Inactive")
    evaluate(aws, rule)
    assert compliance(aws, rule, ids[stale]) == "COMPLIANT"  # only active keys count


def test_root_account_mfa_enabled_reads_the_simulated_fact(aws, rules, root_mfa):
    iam = aws.client("iam")
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 1  # the plane's well-configured default
    rule = rules("ROOT_ACCOUNT_MFA_ENABLED")
    assert compliance(aws, rule, ACCOUNT) == "COMPLIANT"
    root_mfa(False)
    assert iam.get_account_summary()["SummaryMap"]["AccountMFAEnabled"] == 0
    evaluate(aws, rule)
    assert compliance(aws, rule, ACCOUNT) == "NON_COMPLIANT"


def test_cloudwatch_alarm_action_enabled_check_on_each_change(aws, rules):
    cw = aws.client("cloudwatch")
    alarm = f"alarm-{suffix()}"
    rule = rules("CLOUDWATCH_ALARM_ACTION_ENABLED_CHECK")
    cw.put_metric_alarm(AlarmName=alarm, Namespace="Gameday", MetricName="M", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    aws.plane.drain()
    assert compliance(aws, rule, alarm) == "COMPLIANT"
    cw.disable_alarm_actions(AlarmNames=[alarm])
    aws.plane.drain()
    assert compliance(aws, rule, alarm) == "NON_COMPLIANT"
    cw.enable_alarm_actions(AlarmNames=[alarm])
    aws.plane.drain()
    assert compliance(aws, rule, alarm) == "COMPLIANT"
    cw.delete_alarms(AlarmNames=[alarm])
    aws.plane.drain()
    assert compliance(aws, rule, alarm) is None


def test_guardduty_enabled_centralized_per_region_and_central_account(aws, rules):
    region = "ap-southeast-2"  # a region of its own: other modules' detectors live in us-east-1
    config = boto3.client("config", region_name=region, endpoint_url=aws.endpoint_url)
    guardduty = boto3.client("guardduty", region_name=region, endpoint_url=aws.endpoint_url)
    for detector in guardduty.list_detectors()["DetectorIds"]:
        guardduty.delete_detector(DetectorId=detector)
    rule = rules("GUARDDUTY_ENABLED_CENTRALIZED", config=config)
    central = rules("GUARDDUTY_ENABLED_CENTRALIZED", params={"CentralMonitoringAccount": "111122223333"},
                    config=config)
    assert compliance(aws, rule, ACCOUNT, config) == "NON_COMPLIANT"
    detector = guardduty.create_detector(Enable=True)["DetectorId"]
    try:
        evaluate(aws, rule, central, config=config)
        assert compliance(aws, rule, ACCOUNT, config) == "COMPLIANT"
        assert compliance(aws, central, ACCOUNT, config) == "NON_COMPLIANT"  # reports to no central account
        guardduty.update_detector(DetectorId=detector, Enable=False)
        evaluate(aws, rule, config=config)
        assert compliance(aws, rule, ACCOUNT, config) == "NON_COMPLIANT"
    finally:
        guardduty.delete_detector(DetectorId=detector)


# -- triggers --------------------------------------------------------------------------------------------


def test_a_stopped_recorder_blinds_change_triggered_rules_but_not_periodic_ones(aws, rules, recorder, root_mfa):
    ec2, cw, config = aws.client("ec2"), aws.client("cloudwatch"), aws.client("config")
    group = ec2.create_security_group(GroupName=f"sg-{suffix()}", Description="blind")["GroupId"]
    alarm = f"alarm-{suffix()}"
    cw.put_metric_alarm(AlarmName=alarm, Namespace="Gameday", MetricName="M", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    ssh = rules("INCOMING_SSH_DISABLED", scope={"ComplianceResourceTypes": ["AWS::EC2::SecurityGroup"],
                                                "ComplianceResourceId": group})
    actions = rules("CLOUDWATCH_ALARM_ACTION_ENABLED_CHECK")
    mfa = rules("ROOT_ACCOUNT_MFA_ENABLED")
    assert compliance(aws, ssh, group) == compliance(aws, actions, alarm) == "COMPLIANT"
    config.stop_configuration_recorder(ConfigurationRecorderName=recorder)
    try:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        cw.disable_alarm_actions(AlarmNames=[alarm])
        root_mfa(False)
        evaluate(aws, actions, mfa)  # on demand: the last recorded state for a change-only rule
        assert compliance(aws, ssh, group) == "COMPLIANT"
        assert compliance(aws, actions, alarm) == "COMPLIANT"
        assert compliance(aws, mfa, ACCOUNT) == "NON_COMPLIANT"  # periodic rules run without the recorder
    finally:
        config.start_configuration_recorder(ConfigurationRecorderName=recorder)
    aws.plane.drain()
    # Started again, the recorder takes an inventory: the changes it missed are evaluated now.
    assert compliance(aws, ssh, group) == "NON_COMPLIANT"
    assert compliance(aws, actions, alarm) == "NON_COMPLIANT"
    cw.delete_alarms(AlarmNames=[alarm])


def test_periodic_rules_run_at_their_frequency_on_the_plane_clock(aws, rules, root_mfa):
    config = aws.client("config")
    hourly = rules("ROOT_ACCOUNT_MFA_ENABLED", frequency="One_Hour")
    daily = rules("ROOT_ACCOUNT_MFA_ENABLED")  # TwentyFour_Hours by default
    first = {r["ConfigRuleName"]: r for r in config.describe_config_rule_evaluation_status(
        ConfigRuleNames=[hourly, daily])["ConfigRulesEvaluationStatus"]}
    assert all(s["FirstEvaluationStarted"] for s in first.values())
    root_mfa(False)
    wait_compliance(aws, hourly, ACCOUNT, "NON_COMPLIANT", timeout=10)
    result = config.get_compliance_details_by_config_rule(ConfigRuleName=hourly)["EvaluationResults"][0]
    since = (result["ResultRecordedTime"] - first[hourly]["LastSuccessfulEvaluationTime"]).total_seconds()
    assert since >= HOUR - 1, since  # not before its next run, an AWS hour after the first
    assert compliance(aws, daily, ACCOUNT) == "COMPLIANT"  # its next run is a day away
    status = config.describe_config_rule_evaluation_status(ConfigRuleNames=[daily])["ConfigRulesEvaluationStatus"][0]
    assert status["LastSuccessfulEvaluationTime"] == first[daily]["LastSuccessfulEvaluationTime"]
    evaluate(aws, daily)
    assert compliance(aws, daily, ACCOUNT) == "NON_COMPLIANT"


# -- events ------------------------------------------------------------------------------------------------


def test_compliance_changes_reach_a_queue_through_eventbridge_and_sns(aws, rules):
    events, sns, ec2 = aws.client("events"), aws.client("sns"), aws.client("ec2")
    url, queue = new_queue(aws)
    topic = sns.create_topic(Name=f"config-{suffix()}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue, Attributes={"RawMessageDelivery": "true"})
    group = ec2.create_security_group(GroupName=f"sg-{suffix()}", Description="events")["GroupId"]
    name = f"ssh-{suffix()}"
    bridge = f"config-{suffix()}"
    events.put_rule(Name=bridge, EventPattern=json.dumps({
        "source": ["aws.config"], "detail-type": ["Config Rules Compliance Change"],
        "detail": {"configRuleName": [name]}}))
    events.put_targets(Rule=bridge, Targets=[{"Id": "topic", "Arn": topic}])
    config = aws.client("config")
    config.put_config_rule(ConfigRule={"ConfigRuleName": name, "Source": {"Owner": "AWS",
                                                                           "SourceIdentifier": "INCOMING_SSH_DISABLED"},
                                       "Scope": {"ComplianceResourceTypes": ["AWS::EC2::SecurityGroup"],
                                                 "ComplianceResourceId": group}})
    try:
        aws.plane.drain()
        first = [json.loads(b) for b in drain_queue(aws, url)]
        assert len(first) == 1
        event = first[0]
        assert event["source"] == "aws.config" and event["detail-type"] == "Config Rules Compliance Change"
        detail = event["detail"]
        arn = config.describe_config_rules(ConfigRuleNames=[name])["ConfigRules"][0]["ConfigRuleArn"]
        assert detail["messageType"] == "ComplianceChangeNotification" and detail["recordVersion"] == "1.0"
        assert (detail["configRuleName"], detail["configRuleARN"]) == (name, arn)
        assert (detail["resourceType"], detail["resourceId"]) == ("AWS::EC2::SecurityGroup", group)
        assert (detail["awsAccountId"], detail["awsRegion"]) == (ACCOUNT, REGION)
        assert detail["newEvaluationResult"]["complianceType"] == "COMPLIANT"
        assert "oldEvaluationResult" not in detail  # the first evaluation of the resource
        qualifier = detail["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"]
        assert qualifier == {"configRuleName": name, "resourceType": "AWS::EC2::SecurityGroup", "resourceId": group}
        assert datetime.strptime(detail["notificationCreationTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
        evaluate(aws, name)
        assert drain_queue(aws, url) == []  # the same compliance again: no event
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        aws.plane.drain()
        changed = [json.loads(b)["detail"] for b in drain_queue(aws, url)]
        assert [(d["oldEvaluationResult"]["complianceType"], d["newEvaluationResult"]["complianceType"])
                for d in changed] == [("COMPLIANT", "NON_COMPLIANT")]
    finally:
        config.delete_config_rule(ConfigRuleName=name)


# -- remediation -----------------------------------------------------------------------------------------


def execution(aws, rule: str, resource_id: str) -> dict | None:
    statuses = aws.client("config").describe_remediation_execution_status(
        ConfigRuleName=rule)["RemediationExecutionStatuses"]
    return next((s for s in statuses if s["ResourceKey"]["resourceId"] == resource_id), None)


def wait_execution(aws, rule: str, resource_id: str, state: str, timeout: float = 20) -> dict:
    got = wait_for(lambda: (e := execution(aws, rule, resource_id)) and e["State"] == state and e or None,
                   timeout=timeout, interval=0.05, describe=f"{rule} remediation {state}")
    assert got, f"remediation of {resource_id}: {execution(aws, rule, resource_id)}"
    return got


def test_automatic_remediation_restarts_a_stopped_trail_as_the_automation_role(aws, rules):
    trail, bucket = new_trail(aws)
    role = new_role(aws)
    document = new_document(aws, [{"name": "startTrail", "action": "aws:executeAwsApi", "inputs": {
        "Service": "cloudtrail", "Api": "StartLogging", "Name": "{{ TrailName }}"}}],
                            {"TrailName": {"type": "String"}}, yaml=True)
    rule = rules("CLOUD_TRAIL_ENABLED", params={"s3BucketName": bucket}, frequency="One_Hour")
    config, ct = aws.client("config"), aws.client("cloudtrail")
    config.put_remediation_configurations(RemediationConfigurations=[{
        "ConfigRuleName": rule, "TargetType": "SSM_DOCUMENT", "TargetId": document, "Automatic": True,
        "Parameters": {"TrailName": {"StaticValue": {"Values": [trail]}},
                       "AutomationAssumeRole": {"StaticValue": {"Values": [role]}}},
        "MaximumAutomaticAttempts": 2, "RetryAttemptSeconds": 60}])
    stored = config.describe_remediation_configurations(ConfigRuleNames=[rule])["RemediationConfigurations"]
    assert stored[0]["TargetId"] == document and stored[0]["Arn"].startswith(
        f"arn:aws:config:{REGION}:{ACCOUNT}:remediation-configuration/{rule}/")
    try:
        ct.stop_logging(Name=trail)
        done = wait_execution(aws, rule, ACCOUNT, "SUCCEEDED")
        assert [(s["Name"], s["State"]) for s in done["StepDetails"]] == [("startTrail", "SUCCEEDED")]
        assert ct.get_trail_status(Name=trail)["IsLogging"]
        wait_compliance(aws, rule, ACCOUNT, "COMPLIANT")
        aws.plane.drain()
        record = json.loads(ct.lookup_events(LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "StartLogging"}])["Events"][0]["CloudTrailEvent"])
        assert record["userIdentity"]["type"] == "AssumedRole"
        assert record["userIdentity"]["arn"].split("/")[1] == role.split("/")[-1]
    finally:
        config.delete_remediation_configuration(ConfigRuleName=rule)
        ct.delete_trail(Name=trail)


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", textwrap.dedent(source))
    return buf.getvalue()


def test_automatic_remediation_invokes_a_lambda_function_with_the_resource_id(aws, rules):
    cw, config = aws.client("cloudwatch"), aws.client("config")
    function = aws.client("lambda").create_function(
        FunctionName=f"fix-{suffix()}", Runtime="python3.12", Role=new_role(aws, "lambda.amazonaws.com"),
        Handler="app.handler", Timeout=10, Code={"ZipFile": _zip("""
            import boto3
            def handler(event, context):
                boto3.client("cloudwatch").enable_alarm_actions(AlarmNames=[event["alarm"]])
                return {"enabled": event["alarm"]}
        """)})["FunctionName"]
    document = new_document(aws, [{"name": "enable", "action": "aws:invokeLambdaFunction",
                                   "inputs": {"FunctionName": "{{ FunctionName }}",
                                              "Payload": '{"alarm": "{{ AlarmName }}"}'}}],
                            {"AlarmName": {"type": "String"}, "FunctionName": {"type": "String"}})
    alarm = f"alarm-{suffix()}"
    cw.put_metric_alarm(AlarmName=alarm, Namespace="Gameday", MetricName="M", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    rule = rules("CLOUDWATCH_ALARM_ACTION_ENABLED_CHECK", scope={"ComplianceResourceTypes": ["AWS::CloudWatch::Alarm"],
                                                                 "ComplianceResourceId": alarm})
    config.put_remediation_configurations(RemediationConfigurations=[{
        "ConfigRuleName": rule, "TargetType": "SSM_DOCUMENT", "TargetId": document, "Automatic": True,
        "ResourceType": "AWS::CloudWatch::Alarm",
        "Parameters": {"AlarmName": {"ResourceValue": {"Value": "RESOURCE_ID"}},
                       "FunctionName": {"StaticValue": {"Values": [function]}},
                       "AutomationAssumeRole": {"StaticValue": {"Values": [new_role(aws)]}}}}])
    try:
        cw.disable_alarm_actions(AlarmNames=[alarm])
        done = wait_execution(aws, rule, alarm, "SUCCEEDED", timeout=60)
        assert done["StepDetails"][0]["Name"] == "enable" and done["StepDetails"][0]["State"] == "SUCCEEDED"
        assert cw.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["ActionsEnabled"]
        wait_compliance(aws, rule, alarm, "COMPLIANT")
    finally:
        config.delete_remediation_configuration(ConfigRuleName=rule)
        cw.delete_alarms(AlarmNames=[alarm])


def test_automatic_remediation_retries_then_adds_a_remediation_exception(aws, rules, root_mfa):
    url, queue = new_queue(aws)
    document = new_document(aws, [{"name": "mark", "action": "aws:executeAwsApi",
                                   "inputs": {"Service": "sqs", "Api": "SendMessage", "QueueUrl": url,
                                              "MessageBody": "attempt on {{ AccountId }}"}}],
                            {"AccountId": {"type": "String"}})
    rule = rules("ROOT_ACCOUNT_MFA_ENABLED")
    config = aws.client("config")
    config.put_remediation_configurations(RemediationConfigurations=[{
        "ConfigRuleName": rule, "TargetType": "SSM_DOCUMENT", "TargetId": document, "Automatic": True,
        "Parameters": {"AccountId": {"ResourceValue": {"Value": "RESOURCE_ID"}}},
        "MaximumAutomaticAttempts": 3, "RetryAttemptSeconds": 600}])
    try:
        root_mfa(False)  # the document cannot turn MFA on: every attempt leaves the account non-compliant
        evaluate(aws, rule)
        exceptions = wait_for(lambda: config.describe_remediation_exceptions(ConfigRuleName=rule)[
            "RemediationExceptions"] or None, timeout=20, interval=0.05, describe="remediation exception")
        assert exceptions, "no remediation exception"
        assert (exceptions[0]["ResourceType"], exceptions[0]["ResourceId"]) == ("AWS::::Account", ACCOUNT)
        aws.plane.drain()
        assert drain_queue(aws, url) == [f"attempt on {ACCOUNT}"] * 3
        assert execution(aws, rule, ACCOUNT)["State"] == "SUCCEEDED"  # each attempt ran; none made it compliant
        evaluate(aws, rule)
        assert drain_queue(aws, url) == []  # the exception stops further attempts
    finally:
        config.delete_remediation_exceptions(ConfigRuleName=rule, ResourceKeys=[
            {"ResourceType": "AWS::::Account", "ResourceId": ACCOUNT}])
        config.delete_remediation_configuration(ConfigRuleName=rule)


def test_failed_remediations_are_recorded_never_crash_the_plane(aws, rules):
    config = aws.client("config")
    rule = rules("ROOT_ACCOUNT_MFA_ENABLED")
    unsupported = new_document(aws, [{"name": "script", "action": "aws:executeScript", "inputs": {}}], {})
    key = {"resourceType": "AWS::::Account", "resourceId": ACCOUNT}
    for target, message in ((f"Missing-{suffix()}", "does not exist"), (unsupported, "aws:executeScript")):
        config.put_remediation_configurations(RemediationConfigurations=[{
            "ConfigRuleName": rule, "TargetType": "SSM_DOCUMENT", "TargetId": target}])
        earlier = execution(aws, rule, ACCOUNT)
        assert config.start_remediation_execution(ConfigRuleName=rule, ResourceKeys=[key])["FailedItems"] == []
        failed = wait_for(lambda: (e := execution(aws, rule, ACCOUNT)) and e != earlier and e["State"] == "FAILED"
                          and e or None, timeout=20, interval=0.05, describe=f"{target} fails")
        assert failed, execution(aws, rule, ACCOUNT)
        assert any(message in f and rule in f for f in aws.plane.failures), aws.plane.failures[-3:]
        if target == unsupported:
            assert failed["StepDetails"][0]["State"] == "FAILED"
            assert "not emulated" in failed["StepDetails"][0]["ErrorMessage"]
    config.delete_remediation_configuration(ConfigRuleName=rule)


# -- the API's errors and the rule lifecycle ------------------------------------------------------------


def test_deleting_a_rule_needs_its_remediation_gone_and_drops_its_results(aws, rules):
    config = aws.client("config")
    rule = rules("ROOT_ACCOUNT_MFA_ENABLED")
    config.put_remediation_configurations(RemediationConfigurations=[{
        "ConfigRuleName": rule, "TargetType": "SSM_DOCUMENT", "TargetId": "Anything"}])
    with pytest.raises(ClientError) as refused:
        config.delete_config_rule(ConfigRuleName=rule)
    assert refused.value.response["Error"]["Code"] == "ResourceInUseException"
    assert config.describe_compliance_by_resource(ResourceType="AWS::::Account", ResourceId=ACCOUNT)[
        "ComplianceByResources"][0]["Compliance"]["ComplianceType"] == "COMPLIANT"
    config.delete_remediation_configuration(ConfigRuleName=rule)
    config.delete_config_rule(ConfigRuleName=rule)
    aws.plane.drain()
    with pytest.raises(ClientError):
        config.get_compliance_details_by_config_rule(ConfigRuleName=rule)
    # The rule's results went with it: the account has none left (each test removes its own rules).
    assert config.describe_compliance_by_resource(ResourceType="AWS::::Account", ResourceId=ACCOUNT)[
        "ComplianceByResources"][0]["Compliance"]["ComplianceType"] == "INSUFFICIENT_DATA"


@pytest.mark.parametrize("call, kwargs, code", [
    ("get_compliance_details_by_config_rule", {"ConfigRuleName": "no-such-rule"}, "NoSuchConfigRuleException"),
    ("describe_compliance_by_config_rule", {"ConfigRuleNames": ["no-such-rule"]}, "NoSuchConfigRuleException"),
    ("start_config_rules_evaluation", {"ConfigRuleNames": ["no-such-rule"]}, "NoSuchConfigRuleException"),
    ("describe_config_rule_evaluation_status", {"ConfigRuleNames": ["no-such-rule"]}, "NoSuchConfigRuleException"),
    ("describe_remediation_execution_status", {"ConfigRuleName": "no-such-rule"},
     "NoSuchRemediationConfigurationException"),
    ("delete_remediation_configuration", {"ConfigRuleName": "no-such-rule"},
     "NoSuchRemediationConfigurationException"),
    ("start_remediation_execution", {"ConfigRuleName": "no-such-rule", "ResourceKeys": [
        {"resourceType": "AWS::::Account", "resourceId": ACCOUNT}]}, "NoSuchRemediationConfigurationException"),
])
def test_config_api_errors_carry_aws_codes(aws, call, kwargs, code):
    with pytest.raises(ClientError) as err:
        getattr(aws.client("config"), call)(**kwargs)
    assert err.value.response["Error"]["Code"] == code


def test_compliance_summaries_by_rule_and_by_resource(aws, rules):
    ec2, config = aws.client("ec2"), aws.client("config")
    group = ec2.create_security_group(GroupName=f"sg-{suffix()}", Description="summary")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    rule = rules("INCOMING_SSH_DISABLED", scope={"ComplianceResourceTypes": ["AWS::EC2::SecurityGroup"],
                                                 "ComplianceResourceId": group})
    summary = config.describe_compliance_by_config_rule(ConfigRuleNames=[rule])["ComplianceByConfigRules"][0]
    assert summary["Compliance"] == {"ComplianceType": "NON_COMPLIANT",
                                     "ComplianceContributorCount": {"CappedCount": 1, "CapExceeded": False}}
    assert config.describe_compliance_by_config_rule(ConfigRuleNames=[rule], ComplianceTypes=["COMPLIANT"])[
        "ComplianceByConfigRules"] == []
    by_resource = config.describe_compliance_by_resource(ResourceType="AWS::EC2::SecurityGroup",
                                                         ResourceId=group)["ComplianceByResources"]
    assert by_resource[0]["Compliance"]["ComplianceType"] == "NON_COMPLIANT"
    assert config.get_compliance_details_by_config_rule(ConfigRuleName=rule, ComplianceTypes=["COMPLIANT"])[
        "EvaluationResults"] == []
    ec2.delete_security_group(GroupId=group)


def test_simulation_hooks_take_post_and_name_bad_arguments(aws):
    assert hook(aws, f"/_gameday/root-mfa?account={ACCOUNT}&enabled=1", method="GET")[0] == 405
    assert hook(aws, f"/_gameday/root-mfa?account={ACCOUNT}&enabled=yes")[0] == 400
    status, body = hook(aws, f"/_gameday/age-access-key?account={ACCOUNT}&user=nobody&key=AKIANONE&days=3")
    assert status == 400 and "AKIANONE" in body["error"]
    user = f"hooked-{suffix()}"
    aws.client("iam").create_user(UserName=user)
    key = aws.client("iam").create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    created = aws.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"][0]["CreateDate"]
    status, body = hook(aws, f"/_gameday/age-access-key?user={user}&key={key}&days=2.5")
    assert status == 200
    listed = aws.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"][0]["CreateDate"]
    assert abs((created - listed) - timedelta(days=2.5)) < timedelta(seconds=1)
    assert abs(datetime.fromisoformat(body["CreateDate"]) - listed.astimezone(timezone.utc)) < timedelta(seconds=1)


# -- the Automation document runner's pure parts ------------------------------------------------------------


def test_automation_parameters_and_substitution():
    from harness.emulator.automation import AutomationFailed, resolve_parameters, select, substitute

    declared = {"Ids": {"type": "StringList"}, "Name": {"type": "String"}, "Count": {"type": "Integer", "default": 2},
                "Role": {"type": "String", "default": ""}}
    values = resolve_parameters(declared, {"Ids": ["sg-1", "sg-2"], "Name": ["trail"]})
    assert values == {"Ids": ["sg-1", "sg-2"], "Name": "trail", "Count": 2, "Role": ""}
    assert resolve_parameters({"Ids": {"type": "StringList"}}, {"Ids": "sg-9"}) == {"Ids": ["sg-9"]}
    assert substitute({"GroupIds": "{{ Ids }}", "Text": "trail {{Name}} x{{ Count }}"}, values) == \
        {"GroupIds": ["sg-1", "sg-2"], "Text": "trail trail x2"}
    assert select({"Trail": {"Names": ["a", "b"]}}, "$.Trail.Names[1]") == "b"
    for declared_, given, message in (({"Name": {"type": "String"}}, {}, "required"),
                                      ({}, {"Extra": ["x"]}, "not defined"),
                                      ({"Name": {"type": "String"}}, {"Name": ["a", "b"]}, "one value")):
        with pytest.raises(AutomationFailed, match=message):
            resolve_parameters(declared_, given)
    with pytest.raises(AutomationFailed, match="Missing"):
        substitute("{{ Missing }}", values)
