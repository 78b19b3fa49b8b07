"""records.build_record against real CloudTrail records: the same calls, regenerated through botocore."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from harness.emulator import records
from harness.emulator.apicall import ApiCall, resolve

from botocall import exchange

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cloudtrail"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

# Record keys that depend on features the emulator does not have, with the reason.
NOT_EMULATED = {
    "sessionCredentialFromConsole": "console sessions: the emulator only sees SDK/CLI calls",
    "additionalEventData": "only ConsoleLogin (a sign-in event, not an API call) has it among the fixtures",
}
# Fixture events that are not API calls on an endpoint, so the recorder never produces them.
NOT_API_CALLS = {("signin.amazonaws.com", "ConsoleLogin"): "console sign-in happens outside the API"}
# requestParameters members the real caller sent that botocore does not model, so no SDK call can repeat them.
UNKNOWABLE = {("ssm.amazonaws.com", "SendCommand"): {"interactive"}}


def pascal(value):
    """CloudTrail's lowerCamel keys back to API member names."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def xml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        if set(value) == {"items"}:
            return "".join(f"<item>{xml(v)}</item>" for v in value["items"])
        return "".join(f"<{'return' if k == '_return' else k}>{xml(v)}</{'return' if k == '_return' else k}>"
                       for k, v in value.items())
    return escape(str(value))


def aws_date(text: str) -> str:
    """'Aug 1, 2024, 11:45:22 AM' (as CloudTrail prints it) back to the ISO date the API returns."""
    return datetime.strptime(text.replace(",", ""), "%b %d %Y %I:%M:%S %p").strftime("%Y-%m-%dT%H:%M:%SZ")


def _role_xml(role: dict) -> str:
    boundary = role["permissionsBoundary"]
    return (f"<Role><Path>{role['path']}</Path><RoleName>{role['roleName']}</RoleName>"
            f"<RoleId>{role['roleId']}</RoleId><Arn>{role['arn']}</Arn>"
            f"<CreateDate>{aws_date(role['createDate'])}</CreateDate>"
            f"<AssumeRolePolicyDocument>{role['assumeRolePolicyDocument']}</AssumeRolePolicyDocument>"
            f"<PermissionsBoundary><PermissionsBoundaryType>{boundary['permissionsBoundaryType']}"
            f"</PermissionsBoundaryType><PermissionsBoundaryArn>{boundary['permissionsBoundaryArn']}"
            f"</PermissionsBoundaryArn></PermissionsBoundary></Role>")


def regenerate(rec: dict) -> dict:
    """The same call as the fixture record, made with boto3 and answered like AWS answered it."""
    rp, re_ = rec["requestParameters"] or {}, rec["responseElements"]
    source, name, rid = rec["eventSource"], rec["eventName"], rec["requestID"]
    json_ok = {"headers": {"x-amzn-RequestId": rid}}
    if source == "cloudtrail.amazonaws.com":
        if name == "PutEventSelectors":
            return dict(service="cloudtrail", operation="put_event_selectors",
                        params={"TrailName": rp["trailName"], "EventSelectors": pascal(rp["eventSelectors"])},
                        body=json.dumps(pascal(re_)).encode(), **json_ok)
        op = {"StopLogging": "stop_logging", "DeleteTrail": "delete_trail"}[name]
        return dict(service="cloudtrail", operation=op, params={"Name": rp["name"]}, body=b"{}", **json_ok)
    if source == "ec2.amazonaws.com":
        if name == "AuthorizeSecurityGroupIngress":
            return dict(service="ec2", operation="authorize_security_group_ingress",
                        params={"GroupId": rp["groupId"], "IpProtocol": rp["ipProtocol"], "FromPort": rp["fromPort"],
                                "ToPort": rp["toPort"], "CidrIp": rp["cidrIp"]},
                        body=f'<{name}Response xmlns="{EC2_NS}">{xml(re_)}</{name}Response>'.encode())
        if name == "DeleteFlowLogs":
            flow = rp["DeleteFlowLogsRequest"]["FlowLogId"]["content"]
            return dict(service="ec2", operation="delete_flow_logs", params={"FlowLogIds": [flow]},
                        body=f'<DeleteFlowLogsResponse xmlns="{EC2_NS}"><requestId>{rid}</requestId>'
                             f"<unsuccessful/></DeleteFlowLogsResponse>".encode())
        if name == "RunInstances":
            item = rp["instancesSet"]["items"][0]
            return dict(service="ec2", operation="run_instances",
                        params={"ImageId": item["imageId"], "MinCount": item["minCount"], "MaxCount": item["maxCount"],
                                "InstanceType": rp["instanceType"], "SubnetId": rp["subnetId"],
                                "ClientToken": rp["clientToken"]},
                        status=403, body=f"<Response><Errors><Error><Code>{rec['errorCode'].split('.', 1)[1]}</Code>"
                                         f"<Message>{escape(rec['errorMessage'])}</Message></Error></Errors>"
                                         f"<RequestID>{rid}</RequestID></Response>".encode())
    if source == "iam.amazonaws.com":
        meta = f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata>"
        if name == "AttachRolePolicy":
            return dict(service="iam", operation="attach_role_policy",
                        params={"RoleName": rp["roleName"], "PolicyArn": rp["policyArn"]},
                        body=f"<AttachRolePolicyResponse>{meta}</AttachRolePolicyResponse>".encode())
        if name == "CreateRole":
            return dict(service="iam", operation="create_role",
                        params={"RoleName": rp["roleName"], "AssumeRolePolicyDocument": rp["assumeRolePolicyDocument"],
                                "PermissionsBoundary": rp["permissionsBoundary"]},
                        body=f"<CreateRoleResponse><CreateRoleResult>{_role_xml(re_['role'])}</CreateRoleResult>"
                             f"{meta}</CreateRoleResponse>".encode())
    if source == "sts.amazonaws.com" and name == "AssumeRole":
        cred, user = re_["credentials"], re_["assumedRoleUser"]
        result = (f"<Credentials><AccessKeyId>{cred['accessKeyId']}</AccessKeyId>"
                  f"<SecretAccessKey>never-logged</SecretAccessKey><SessionToken>{cred['sessionToken']}</SessionToken>"
                  f"<Expiration>{aws_date(cred['expiration'])}</Expiration></Credentials>"
                  f"<AssumedRoleUser><AssumedRoleId>{user['assumedRoleId']}</AssumedRoleId>"
                  f"<Arn>{user['arn']}</Arn></AssumedRoleUser>")
        return dict(service="sts", operation="assume_role",
                    params={"RoleArn": rp["roleArn"], "RoleSessionName": rp["roleSessionName"],
                            "DurationSeconds": rp["durationSeconds"]},
                    body=f"<AssumeRoleResponse><AssumeRoleResult>{result}</AssumeRoleResult><ResponseMetadata>"
                         f"<RequestId>{rid}</RequestId></ResponseMetadata></AssumeRoleResponse>".encode())
    if source == "secretsmanager.amazonaws.com":
        if name == "GetSecretValue":
            return dict(service="secretsmanager", operation="get_secret_value", params={"SecretId": rp["secretId"]},
                        body=json.dumps({"ARN": rp["secretId"], "SecretString": "s3cr3t"}).encode(), **json_ok)
        return dict(service="secretsmanager", operation="list_secrets", params=pascal(rp),
                    body=b'{"SecretList": []}', **json_ok)
    if source == "ssm.amazonaws.com":
        if name == "DescribeInstanceInformation":
            return dict(service="ssm", operation="describe_instance_information", params=pascal(rp),
                        body=b'{"InstanceInformationList": []}', **json_ok)
        if name == "GetCommandInvocation":
            return dict(service="ssm", operation="get_command_invocation", params=pascal(rp),
                        body=b'{"Status": "Success"}', **json_ok)
        if name == "SendCommand":
            cmd = re_["command"]
            requested = datetime.strptime(aws_date(cmd["requestedDateTime"]), "%Y-%m-%dT%H:%M:%SZ")
            answer = {"Command": {"CommandId": cmd["commandId"], "DocumentName": cmd["documentName"],
                                  "RequestedDateTime": requested.replace(tzinfo=timezone.utc).timestamp(),
                                  "TargetCount": cmd["targetCount"]}}
            return dict(service="ssm", operation="send_command",
                        params={"DocumentName": rp["documentName"], "InstanceIds": rp["instanceIds"],
                                "Parameters": {"commands": ["id"]}},
                        body=json.dumps(answer).encode(), **json_ok)
    raise AssertionError(f"no regeneration for {source} {name}")


def identity_for(rec: dict) -> dict:
    ui = rec["userIdentity"]
    if ui["type"] == "IAMUser":
        return records.iam_user_identity(account_id=ui["accountId"], user_name=ui["userName"],
                                         user_id=ui["principalId"], access_key_id=ui["accessKeyId"])
    issuer = ui["sessionContext"]["sessionIssuer"]
    attrs = ui["sessionContext"]["attributes"]
    return records.assumed_role_identity(
        account_id=ui["accountId"], role_name=issuer["userName"], role_id=issuer["principalId"],
        session_name=ui["arn"].rsplit("/", 1)[1], access_key_id=ui["accessKeyId"],
        issued_at=datetime.strptime(attrs["creationDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc),
        mfa=attrs["mfaAuthenticated"] == "true")


def all_fixture_records() -> list[dict]:
    return [rec for path in sorted(FIXTURES.glob("*.json")) for rec in json.loads(path.read_text())]


def fixture_records():
    """One real record per API the recorder can produce."""
    seen = set()
    for rec in all_fixture_records():
        key = (rec["eventSource"], rec["eventName"])
        if key in seen or key in NOT_API_CALLS:
            continue
        seen.add(key)
        yield pytest.param(rec, id=f"{rec['eventSource'].split('.')[0]}-{rec['eventName']}")


def test_only_non_api_fixtures_are_left_out():
    left_out = {(r["eventSource"], r["eventName"]) for r in all_fixture_records()} - \
        {(p.values[0]["eventSource"], p.values[0]["eventName"]) for p in fixture_records()}
    assert left_out == set(NOT_API_CALLS)
    assert all(r["eventType"] != "AwsApiCall" for r in all_fixture_records()
               if (r["eventSource"], r["eventName"]) in left_out)


def rebuild(rec: dict) -> tuple[dict, ApiCall]:
    spec = regenerate(rec)
    ex = exchange(spec.pop("service"), spec.pop("operation"), spec.pop("params"), region=rec["awsRegion"],
                  remote_addr="192.0.2.1", **spec)
    ex["headers"]["User-Agent"] = rec["userAgent"]  # the caller's own string, passed through untouched
    ex["remote_addr"] = rec["sourceIPAddress"]
    call = resolve(**ex)
    assert call is not None
    when = datetime.strptime(rec["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    built = records.build_record(call, user_identity=identity_for(rec), account_id=rec["recipientAccountId"],
                                 event_time=when, event_id=rec["eventID"])
    return built, call


@pytest.mark.parametrize("rec", list(fixture_records()))
def test_record_matches_real_fixture(rec):
    built, _ = rebuild(rec)
    expected_keys = set(rec) - set(NOT_EMULATED)
    assert set(built) == expected_keys
    for key in expected_keys:
        assert type(built[key]) is type(rec[key]), key
    assert built["userIdentity"] == rec["userIdentity"]
    exact = ("eventVersion", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress", "userAgent",
             "errorCode", "errorMessage", "requestID", "eventID", "readOnly", "resources", "eventType",
             "managementEvent", "recipientAccountId", "eventCategory")
    for key in exact:
        assert built.get(key) == rec.get(key), key
    assert set(built["tlsDetails"]) == set(rec["tlsDetails"])
    assert built["tlsDetails"]["clientProvidedHostHeader"] == rec["tlsDetails"]["clientProvidedHostHeader"]
    unknowable = UNKNOWABLE.get((rec["eventSource"], rec["eventName"]), set())
    assert built["requestParameters"] == {k: v for k, v in rec["requestParameters"].items() if k not in unknowable}


@pytest.mark.parametrize("name", ["PutEventSelectors", "AuthorizeSecurityGroupIngress", "CreateRole", "AssumeRole",
                                  "DeleteFlowLogs", "StopLogging", "AttachRolePolicy", "GetSecretValue"])
def test_response_elements_match_fixture(name):
    rec = next(p.values[0] for p in fixture_records() if p.values[0]["eventName"] == name)
    built, _ = rebuild(rec)
    assert built["responseElements"] == rec["responseElements"]


def test_ssm_dates_and_sensitive_parameters():
    rec = next(p.values[0] for p in fixture_records() if p.values[0]["eventName"] == "SendCommand")
    built, _ = rebuild(rec)
    assert built["requestParameters"]["parameters"] == records.HIDDEN
    assert built["responseElements"]["command"]["requestedDateTime"] == rec["responseElements"]["command"][
        "requestedDateTime"]


def _call(**kw) -> ApiCall:
    base = dict(service="cloudtrail", operation="StopLogging", region="us-east-1", access_key_id="AKIA1",
                params={}, user_agent="ua", source_ip="192.0.2.9", host="127.0.0.1:5000", status=200,
                response=None, error_code=None, error_message=None, request_id="r-1")
    return ApiCall(**{**base, **kw})


IDENTITY = records.iam_user_identity(account_id="123456789012", user_name="u", user_id="AIDA1", access_key_id="AKIA1")
NOW = datetime(2024, 8, 1, 12, 0, 0, tzinfo=timezone.utc)


def _record(call: ApiCall) -> dict:
    return records.build_record(call, user_identity=IDENTITY, account_id="123456789012", event_time=NOW)


def test_error_record_has_error_fields_and_null_response():
    rec = _record(_call(params={"Name": "t"}, status=400, error_code="TrailNotFoundException",
                        error_message="Unknown trail", response={"ignored": 1}))
    assert (rec["errorCode"], rec["errorMessage"]) == ("TrailNotFoundException", "Unknown trail")
    assert rec["responseElements"] is None
    assert rec["requestParameters"] == {"name": "t"}
    assert list(rec).index("errorCode") < list(rec).index("requestParameters")  # AWS's key order


def test_success_record_has_no_error_fields():
    rec = _record(_call(params={"Name": "t"}))
    assert "errorCode" not in rec and "errorMessage" not in rec
    assert rec["responseElements"] is None and rec["eventID"] and rec["requestID"] == "r-1"


def test_iam_errors_use_exception_names():
    rec = _record(_call(service="iam", operation="GetRole", params={"RoleName": "x"}, status=404,
                        error_code="NoSuchEntity", error_message="not found"))
    assert rec["errorCode"] == "NoSuchEntityException"


def test_s3_bucket_configuration_record():
    call = _call(service="s3", operation="PutBucketLifecycleConfiguration", region="us-west-2", bytes_in=249,
                 params={"Bucket": "trail-logs", "ChecksumAlgorithm": "CRC32",
                         "LifecycleConfiguration": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
                                                    "Rule": {"ID": "r", "Status": "Enabled", "Expiration": {"Days": 1},
                                                             "Filter": {"Prefix": "*"}}}})
    rec = _record(call)
    assert rec["eventName"] == "PutBucketLifecycle"
    assert rec["requestParameters"] == {
        "bucketName": "trail-logs", "Host": "trail-logs.s3.us-west-2.amazonaws.com", "lifecycle": "",
        "LifecycleConfiguration": call.params["LifecycleConfiguration"]}
    assert rec["responseElements"] is None
    assert rec["resources"] == [{"accountId": "123456789012", "type": "AWS::S3::Bucket",
                                 "ARN": "arn:aws:s3:::trail-logs"}]
    assert rec["additionalEventData"]["bytesTransferredIn"] == 249
    assert rec["additionalEventData"]["AuthenticationMethod"] == "AuthHeader"
    assert rec["tlsDetails"]["clientProvidedHostHeader"] == "trail-logs.s3.us-west-2.amazonaws.com"


def test_s3_bucket_policy_is_logged_parsed():
    policy = {"Version": "2012-10-17", "Statement": []}
    rec = _record(_call(service="s3", operation="PutBucketPolicy",
                        params={"Bucket": "b", "Policy": json.dumps(policy)}))
    assert rec["requestParameters"] == {"bucketName": "b", "Host": "b.s3.amazonaws.com", "policy": "",
                                        "bucketPolicy": policy}


def test_s3_object_data_event():
    rec = _record(_call(service="s3", operation="GetObject", params={"Bucket": "b", "Key": "a/k.txt"},
                        response={"ETag": '"e"'}))
    assert (rec["eventCategory"], rec["managementEvent"], rec["readOnly"]) == ("Data", False, True)
    assert rec["requestParameters"] == {"bucketName": "b", "Host": "b.s3.amazonaws.com", "key": "a/k.txt"}
    assert rec["resources"] == [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::b/a/k.txt"},
                                {"accountId": "123456789012", "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::b"}]
    assert rec["responseElements"] is None


@pytest.mark.parametrize("service,operation,params,resource", [
    ("lambda", "Invoke", {"FunctionName": "f"},
     {"accountId": "123456789012", "type": "AWS::Lambda::Function",
      "ARN": "arn:aws:lambda:us-east-1:123456789012:function:f"}),
    ("sns", "Publish", {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "m"},
     {"accountId": "123456789012", "type": "AWS::SNS::Topic", "ARN": "arn:aws:sns:us-east-1:123456789012:t"}),
    ("sqs", "SendMessage", {"QueueUrl": "http://127.0.0.1:5000/210987654321/q", "MessageBody": "m"},
     {"accountId": "210987654321", "type": "AWS::SQS::Queue", "ARN": "arn:aws:sqs:us-east-1:210987654321:q"}),
])
def test_data_events_name_their_resource(service, operation, params, resource):
    rec = _record(_call(service=service, operation=operation, params=params))
    assert (rec["eventCategory"], rec["managementEvent"]) == ("Data", False)
    assert rec["resources"] == [resource]


@pytest.mark.parametrize("service,operation,expected", [
    ("cloudtrail", "StopLogging", "Management"),
    ("cloudtrail", "LookupEvents", "Management"),
    ("iam", "CreateRole", "Management"),
    ("s3", "PutBucketPolicy", "Management"),
    ("s3", "GetObject", "Data"),
    ("s3", "PutObject", "Data"),
    ("s3", "DeleteObjects", "Data"),
    ("s3", "CompleteMultipartUpload", "Data"),
    ("lambda", "Invoke", "Data"),
    ("lambda", "CreateFunction", "Management"),
    ("sns", "Publish", "Data"),
    ("sns", "PublishBatch", "Data"),
    ("sns", "Subscribe", "Management"),
    ("sqs", "SendMessage", "Data"),
    ("sqs", "ReceiveMessage", "Data"),
    ("sqs", "DeleteMessageBatch", "Data"),
    ("sqs", "SetQueueAttributes", "Management"),
    ("dynamodb", "PutItem", "Data"),
    ("dynamodb", "CreateTable", "Management"),
    ("logs", "PutLogEvents", None),
    ("logs", "GetLogEvents", None),
    ("logs", "FilterLogEvents", None),
    ("logs", "PutMetricFilter", "Management"),
    ("cloudwatch", "PutMetricData", None),
    ("cloudwatch", "PutMetricAlarm", "Management"),
])
def test_classify(service, operation, expected):
    assert records.classify(_call(service=service, operation=operation)) == expected


@pytest.mark.parametrize("service,operation,expected", [
    ("cloudtrail", "StopLogging", False),
    ("cloudtrail", "GetTrailStatus", True),
    ("cloudtrail", "LookupEvents", True),
    ("ec2", "DescribeSecurityGroups", True),
    ("ec2", "RunInstances", False),
    ("s3", "HeadObject", True),
    ("s3", "ListBuckets", True),
    ("s3", "SelectObjectContent", True),
    ("dynamodb", "Scan", True),
    ("dynamodb", "Query", True),
    ("dynamodb", "BatchGetItem", True),
    ("dynamodb", "BatchWriteItem", False),
    ("events", "TestEventPattern", True),
    ("sts", "GetCallerIdentity", True),
    ("sts", "AssumeRole", True),
    ("kms", "Decrypt", True),
    ("sqs", "ReceiveMessage", True),
    ("sqs", "SendMessage", False),
    ("iam", "SimulatePrincipalPolicy", True),
    ("iam", "AttachRolePolicy", False),
])
def test_is_read_only(service, operation, expected):
    assert records.is_read_only(_call(service=service, operation=operation)) is expected


@pytest.mark.parametrize("service,operation,expected", [
    ("s3", "PutBucketLifecycleConfiguration", "PutBucketLifecycle"),
    ("s3", "GetBucketLifecycleConfiguration", "GetBucketLifecycle"),
    ("s3", "DeleteBucketLifecycle", "DeleteBucketLifecycle"),
    ("s3", "PutBucketPolicy", "PutBucketPolicy"),
    ("s3", "DeleteBucketPolicy", "DeleteBucketPolicy"),
    ("s3", "PutBucketNotificationConfiguration", "PutBucketNotification"),
    ("lambda", "CreateFunction", "CreateFunction20150331"),
    ("lambda", "UpdateFunctionConfiguration", "UpdateFunctionConfiguration20150331v2"),
    ("lambda", "Invoke", "Invoke"),
    ("cloudtrail", "StopLogging", "StopLogging"),
])
def test_event_name(service, operation, expected):
    assert records.event_name(_call(service=service, operation=operation)) == expected


@pytest.mark.parametrize("service,expected", [
    ("cloudtrail", "cloudtrail.amazonaws.com"),
    ("cloudwatch", "monitoring.amazonaws.com"),
    ("ses", "ses.amazonaws.com"),
    ("events", "events.amazonaws.com"),
    ("elbv2", "elasticloadbalancing.amazonaws.com"),
])
def test_event_source(service, expected):
    assert records.event_source(service) == expected


def test_read_only_calls_have_null_response_but_credentials_are_logged():
    assert _record(_call(service="sts", operation="GetCallerIdentity",
                         response={"Account": "123456789012"}))["responseElements"] is None
    rec = _record(_call(service="sts", operation="GetSessionToken",
                        response={"Credentials": {"AccessKeyId": "ASIA1", "SecretAccessKey": "s", "SessionToken": "t",
                                                  "Expiration": "2024-08-01T12:00:00Z"}}))
    assert rec["responseElements"] == {"credentials": {"accessKeyId": "ASIA1", "sessionToken": "t",
                                                       "expiration": "Aug 1, 2024, 12:00:00 PM"}}


def test_root_identity_shape():
    assert records.root_identity(account_id="123456789012", access_key_id="AKIAROOT") == {
        "type": "Root", "principalId": "123456789012", "arn": "arn:aws:iam::123456789012:root",
        "accountId": "123456789012", "accessKeyId": "AKIAROOT"}


def test_record_is_json_serialisable_and_in_aws_key_order():
    rec = _record(_call(params={"Name": "t"}))
    assert json.loads(json.dumps(rec)) == rec
    assert list(rec)[:8] == ["eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
                             "sourceIPAddress", "userAgent"]
