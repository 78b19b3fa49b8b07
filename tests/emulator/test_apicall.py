"""apicall.resolve on real requests produced by botocore (captured before they are sent)."""
from __future__ import annotations

from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.serialize import create_serializer

from harness.emulator import apicall
from harness.emulator.apicall import resolve

from botocall import ENDPOINT, exchange



def call(service: str, operation: str, params: dict, **kw) -> apicall.ApiCall:
    resolved = resolve(**exchange(service, operation, params, **kw))
    assert resolved is not None
    return resolved


# -- JSON protocols ------------------------------------------------------------------------------


def test_cloudtrail_stop_logging():
    c = call("cloudtrail", "stop_logging", {"Name": "trail-1"},
             headers={"x-amzn-RequestId": "req-1"}, body=b"{}")
    assert (c.service, c.operation, c.params) == ("cloudtrail", "StopLogging", {"Name": "trail-1"})
    assert c.region == "us-east-1" and c.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert c.request_id == "req-1" and c.response is None and c.error_code is None
    assert c.source_ip == "198.51.100.7" and c.user_agent.startswith("Boto3/")


def test_cloudtrail_put_event_selectors():
    selectors = [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": False,
                  "DataResources": [{"Type": "AWS::S3::Object", "Values": []}],
                  "ExcludeManagementEventSources": []}]
    c = call("cloudtrail", "put_event_selectors", {"TrailName": "t", "EventSelectors": selectors},
             body=b'{"TrailARN": "arn:aws:cloudtrail:us-east-1:123456789012:trail/t"}')
    assert c.operation == "PutEventSelectors"
    assert c.params == {"TrailName": "t", "EventSelectors": selectors}
    assert c.response == {"TrailARN": "arn:aws:cloudtrail:us-east-1:123456789012:trail/t"}


def test_cloudtrail_delete_trail():
    c = call("cloudtrail", "delete_trail", {"Name": "arn:aws:cloudtrail:us-east-1:123456789012:trail/t"})
    assert (c.service, c.operation) == ("cloudtrail", "DeleteTrail")
    assert c.params == {"Name": "arn:aws:cloudtrail:us-east-1:123456789012:trail/t"}


def test_sqs_receive_message_uses_json_protocol():
    c = call("sqs", "receive_message", {"QueueUrl": "http://127.0.0.1:1/123456789012/sink",
                                         "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0},
             body=b'{"Messages": [{"MessageId": "m1", "Body": "hi"}]}')
    assert (c.service, c.operation) == ("sqs", "ReceiveMessage")
    assert c.params == {"QueueUrl": "http://127.0.0.1:1/123456789012/sink", "MaxNumberOfMessages": 10,
                        "WaitTimeSeconds": 0}
    assert c.response == {"Messages": [{"MessageId": "m1", "Body": "hi"}]}


def test_events_put_rule():
    pattern = '{"source": ["aws.cloudtrail"], "detail": {"eventName": ["StopLogging"]}}'
    c = call("events", "put_rule", {"Name": "tamper", "EventPattern": pattern, "State": "ENABLED"},
             body=b'{"RuleArn": "arn:aws:events:us-east-1:123456789012:rule/tamper"}')
    assert (c.service, c.operation) == ("events", "PutRule")
    assert c.params == {"Name": "tamper", "EventPattern": pattern, "State": "ENABLED"}
    assert c.response == {"RuleArn": "arn:aws:events:us-east-1:123456789012:rule/tamper"}


def test_cloudwatch_signing_name_monitoring_maps_to_cloudwatch():
    c = call("cloudwatch", "delete_alarms", {"AlarmNames": ["a1", "a2"]})
    assert "monitoring/aws4_request" in exchange("cloudwatch", "delete_alarms", {"AlarmNames": ["a"]})[
        "headers"]["Authorization"]
    assert (c.service, c.operation, c.params) == ("cloudwatch", "DeleteAlarms", {"AlarmNames": ["a1", "a2"]})


def test_cloudwatch_rpc_v2_cbor_request():
    op = apicall.operation_model("cloudwatch", "PutMetricAlarm")
    params = {"AlarmName": "cpu", "MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "Statistic": "Average",
              "Period": 60, "EvaluationPeriods": 2, "Threshold": 80.0, "ComparisonOperator": "GreaterThanThreshold"}
    req = create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, op)
    headers = {**req["headers"], "Host": "127.0.0.1:1",
               "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDCBOR/20240101/eu-west-1/monitoring/aws4_request, "
                                "SignedHeaders=host, Signature=abc"}
    c = resolve("POST", req["url_path"], "", headers, req["body"], 200, {}, b"", "10.0.0.1")
    assert c is not None
    assert (c.service, c.operation, c.region, c.access_key_id) == ("cloudwatch", "PutMetricAlarm", "eu-west-1", "AKIDCBOR")
    assert c.params == params


# -- query and EC2 protocols -------------------------------------------------------------------


def test_sns_publish():
    c = call("sns", "publish", {"TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts", "Message": "hi a+b=c",
                                "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
             body=b"<PublishResponse><PublishResult><MessageId>m-1</MessageId></PublishResult>"
                  b"<ResponseMetadata><RequestId>rid-9</RequestId></ResponseMetadata></PublishResponse>")
    assert (c.service, c.operation) == ("sns", "Publish")
    assert c.params == {"TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts", "Message": "hi a+b=c",
                        "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}
    assert c.response == {"MessageId": "m-1"}
    assert c.request_id == "rid-9"


def test_sns_subscribe_rebuilds_attribute_map():
    c = call("sns", "subscribe", {"TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts", "Protocol": "sqs",
                                  "Endpoint": "arn:aws:sqs:us-east-1:123456789012:sink",
                                  "Attributes": {"RawMessageDelivery": "true", "FilterPolicy": "{}"},
                                  "ReturnSubscriptionArn": True},
             body=b'<SubscribeResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><SubscribeResult>'
                  b"<SubscriptionArn>arn:aws:sns:us-east-1:123456789012:alerts:s1</SubscriptionArn>"
                  b"</SubscribeResult></SubscribeResponse>")
    assert c.operation == "Subscribe"
    assert c.params == {"TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts", "Protocol": "sqs",
                        "Endpoint": "arn:aws:sqs:us-east-1:123456789012:sink",
                        "Attributes": {"RawMessageDelivery": "true", "FilterPolicy": "{}"},
                        "ReturnSubscriptionArn": True}
    assert c.response == {"SubscriptionArn": "arn:aws:sns:us-east-1:123456789012:alerts:s1"}


def test_ec2_authorize_security_group_ingress_rebuilds_nested_lists_and_types():
    perms = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
              "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh"}, {"CidrIp": "10.0.0.0/8"}]}]
    c = call("ec2", "authorize_security_group_ingress", {"GroupId": "sg-1", "IpPermissions": perms},
             body=b'<AuthorizeSecurityGroupIngressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                  b"<requestId>r-ec2</requestId><return>true</return><securityGroupRuleSet><item>"
                  b"<securityGroupRuleId>sgr-1</securityGroupRuleId><isEgress>false</isEgress>"
                  b"<fromPort>22</fromPort></item></securityGroupRuleSet></AuthorizeSecurityGroupIngressResponse>")
    assert (c.service, c.operation) == ("ec2", "AuthorizeSecurityGroupIngress")
    assert c.params == {"GroupId": "sg-1", "IpPermissions": perms}
    assert c.response == {"Return": True, "SecurityGroupRules": [
        {"SecurityGroupRuleId": "sgr-1", "IsEgress": False, "FromPort": 22}]}
    assert c.request_id == "r-ec2"


def test_iam_create_role():
    doc = '{"Version": "2012-10-17", "Statement": []}'
    c = call("iam", "create_role", {"RoleName": "backdoor", "AssumeRolePolicyDocument": doc,
                                    "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]},
             body=b"<CreateRoleResponse><CreateRoleResult><Role><RoleName>backdoor</RoleName>"
                  b"<Tags><member><Key>a</Key><Value>1</Value></member></Tags></Role></CreateRoleResult>"
                  b"</CreateRoleResponse>")
    assert (c.service, c.operation) == ("iam", "CreateRole")
    assert c.params == {"RoleName": "backdoor", "AssumeRolePolicyDocument": doc,
                        "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}
    assert c.response == {"Role": {"RoleName": "backdoor", "Tags": [{"Key": "a", "Value": "1"}]}}


def test_sts_get_caller_identity():
    c = call("sts", "get_caller_identity", {},
             body=b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                  b"<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/u</Arn><UserId>AIDA1</UserId>"
                  b"<Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>")
    assert (c.service, c.operation, c.params) == ("sts", "GetCallerIdentity", {})
    assert c.response == {"Arn": "arn:aws:iam::123456789012:user/u", "UserId": "AIDA1", "Account": "123456789012"}


# -- REST protocols ------------------------------------------------------------------------------


def test_s3_put_bucket_lifecycle_configuration():
    rules = {"Rules": [{"ID": "short", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]}
    c = call("s3", "put_bucket_lifecycle_configuration", {"Bucket": "trail-logs", "LifecycleConfiguration": rules})
    assert (c.service, c.operation) == ("s3", "PutBucketLifecycleConfiguration")
    assert c.params["Bucket"] == "trail-logs"
    assert c.params["LifecycleConfiguration"] == {
        "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
        "Rule": {"ID": "short", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}}


def test_s3_delete_bucket_policy():
    c = call("s3", "delete_bucket_policy", {"Bucket": "b1"}, status=204)
    assert (c.service, c.operation, c.params) == ("s3", "DeleteBucketPolicy", {"Bucket": "b1"})


def test_s3_get_object_with_nested_key():
    c = call("s3", "get_object", {"Bucket": "b1", "Key": "logs/2024/a b+c.json", "VersionId": "v1"},
             headers={"x-amz-request-id": "s3req", "ETag": '"e"', "Content-Length": "5"}, body=b"hello")
    assert (c.service, c.operation) == ("s3", "GetObject")
    assert c.params["Bucket"] == "b1" and c.params["Key"] == "logs/2024/a b+c.json"
    assert c.params["VersionId"] == "v1"
    assert c.request_id == "s3req" and c.response["ETag"] == '"e"' and c.response["ContentLength"] == 5


def test_s3_create_bucket_with_configuration():
    c = call("s3", "create_bucket", {"Bucket": "b2", "ACL": "private",
                                     "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}})
    assert (c.service, c.operation) == ("s3", "CreateBucket")
    assert c.params["Bucket"] == "b2" and c.params["ACL"] == "private"
    assert c.params["CreateBucketConfiguration"]["LocationConstraint"] == "eu-west-1"


def test_s3_most_specific_route_wins():
    assert call("s3", "list_objects_v2", {"Bucket": "b"}).operation == "ListObjectsV2"
    assert call("s3", "list_objects", {"Bucket": "b"}).operation == "ListObjects"
    assert call("s3", "get_bucket_policy", {"Bucket": "b"}).operation == "GetBucketPolicy"
    assert call("s3", "list_buckets", {}).operation == "ListBuckets"
    part = call("s3", "upload_part", {"Bucket": "b", "Key": "k", "PartNumber": 2, "UploadId": "u", "Body": b"x"})
    assert (part.operation, part.params["PartNumber"], part.params["UploadId"]) == ("UploadPart", 2, "u")
    assert call("s3", "put_object", {"Bucket": "b", "Key": "k", "Body": b"x"}).operation == "PutObject"
    copy = call("s3", "copy_object", {"Bucket": "b", "Key": "k2", "CopySource": "b/k"})
    assert copy.operation == "CopyObject"


def test_s3_virtual_host_style():
    c = call("s3", "get_object", {"Bucket": "vhost-bucket", "Key": "a/b"}, endpoint="http://s3.amazonaws.com",
             config=Config(s3={"addressing_style": "virtual"}))
    assert (c.operation, c.params["Bucket"], c.params["Key"]) == ("GetObject", "vhost-bucket", "a/b")


@pytest.mark.parametrize("signature", ["s3v4", "s3"])
def test_s3_presigned_url(signature):
    client = boto3.client("s3", endpoint_url=ENDPOINT, region_name="eu-west-1",
                          config=Config(signature_version=signature),
                          aws_access_key_id="AKIAPRESIGN", aws_secret_access_key="secret")
    url = urlsplit(client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}))
    c = resolve("GET", url.path, url.query, {"Host": url.netloc}, b"", 200, {}, b"data", "10.0.0.2")
    assert c is not None
    assert (c.operation, c.params["Key"], c.access_key_id, c.presigned) == ("GetObject", "k", "AKIAPRESIGN", True)
    assert c.region == ("eu-west-1" if signature == "s3v4" else "us-east-1")  # SigV2 names no region


def test_lambda_invoke_reads_label_and_header():
    c = call("lambda", "invoke", {"FunctionName": "remediate", "InvocationType": "Event", "Payload": b'{"a": 1}'},
             status=202, headers={"x-amzn-RequestId": "lr"})
    assert (c.service, c.operation) == ("lambda", "Invoke")
    assert c.params == {"FunctionName": "remediate", "InvocationType": "Event"}  # the payload is data
    assert c.response == {"StatusCode": 202}


def test_lambda_create_function():
    c = call("lambda", "create_function", {"FunctionName": "f", "Runtime": "python3.11",
                                           "Role": "arn:aws:iam::123456789012:role/r", "Handler": "app.handler",
                                           "Code": {"ZipFile": b"PK"}, "Timeout": 30},
             status=201, body=b'{"FunctionName": "f", "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}')
    assert (c.service, c.operation) == ("lambda", "CreateFunction")
    assert c.params["FunctionName"] == "f" and c.params["Handler"] == "app.handler" and c.params["Timeout"] == 30
    assert c.params["Code"] == {"ZipFile": "UEs="}
    assert c.response["FunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:f"


def test_lambda_list_functions_with_trailing_slash():
    c = resolve("GET", "/2015-03-31/functions/", "", {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request, "
                         "SignedHeaders=host, Signature=x"}, b"", 200, {}, b"{}", "10.0.0.3")
    assert c is not None and c.operation == "ListFunctions"


# -- errors and non-calls ------------------------------------------------------------------------


def test_json_error():
    c = call("cloudtrail", "stop_logging", {"Name": "missing"}, status=400,
             headers={"x-amzn-RequestId": "e1"},
             body=b'{"__type": "com.amazonaws.cloudtrail.v20131101#TrailNotFoundException", '
                  b'"message": "Unknown trail: missing"}')
    assert (c.error_code, c.error_message) == ("TrailNotFoundException", "Unknown trail: missing")
    assert c.response is None and c.status == 400 and c.request_id == "e1"


def test_query_xml_error():
    c = call("iam", "get_role", {"RoleName": "nope"}, status=404,
             body=b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
                  b"<Code>NoSuchEntity</Code><Message>Role nope not found</Message></Error>"
                  b"<RequestId>xr</RequestId></ErrorResponse>")
    assert (c.error_code, c.error_message, c.request_id) == ("NoSuchEntity", "Role nope not found", "xr")
    assert c.response is None


def test_ec2_xml_error():
    c = call("ec2", "run_instances", {"ImageId": "ami-1", "MinCount": 1, "MaxCount": 1}, status=403,
             body=b"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>nope</Message></Error>"
                  b"</Errors><RequestID>er</RequestID></Response>")
    assert (c.error_code, c.error_message, c.request_id) == ("UnauthorizedOperation", "nope", "er")


def test_s3_xml_error():
    c = call("s3", "get_bucket_policy", {"Bucket": "gone"}, status=404,
             body=b"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>")
    assert (c.error_code, c.error_message) == ("NoSuchBucket", "The specified bucket does not exist")


def test_rest_json_error_type_header():
    c = call("lambda", "get_function", {"FunctionName": "nope"}, status=404,
             headers={"x-amzn-ErrorType": "ResourceNotFoundException:http://internal.amazon.com/coral/"},
             body=b'{"Type": "User", "Message": "Function not found"}')
    assert (c.error_code, c.error_message) == ("ResourceNotFoundException", "Function not found")


def test_unsigned_request_is_not_an_api_call():
    assert resolve("POST", "/", "", {"Content-Type": "application/x-amz-json-1.1",
                                     "X-Amz-Target": "CloudTrail_20131101.StopLogging"},
                   b'{"Name": "t"}', 200, {}, b"{}", "10.0.0.4") is None


@pytest.mark.parametrize("path", ["/moto-api/reset", "/_gameday/state"])
def test_control_paths_are_ignored(path):
    signed = exchange("cloudtrail", "stop_logging", {"Name": "t"})
    signed["path"] = path
    assert resolve(**signed) is None


def test_unknown_rest_path_is_none():
    assert resolve("GET", "/no/such/route/here", "", {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request, "
                         "SignedHeaders=host, Signature=x"}, b"", 404, {}, b"", "10.0.0.5") is None


@pytest.mark.parametrize("service, params, expected", [
    ("elbv2", {"LoadBalancerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/edge/50dc",
               "Attributes": [{"Key": "access_logs.s3.enabled", "Value": "false"}]},
     {"LoadBalancerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/edge/50dc",
      "Attributes": [{"Key": "access_logs.s3.enabled", "Value": "false"}]}),
    ("elb", {"LoadBalancerName": "classic", "LoadBalancerAttributes": {"AccessLog": {"Enabled": False}}},
     {"LoadBalancerName": "classic", "LoadBalancerAttributes": {"AccessLog": {"Enabled": False}}}),
])
def test_classic_elb_and_elbv2_share_operation_names_and_the_version_tells_them_apart(service, params, expected):
    c = call(service, "modify_load_balancer_attributes", params)
    assert (c.service, c.operation, c.params) == (service, "ModifyLoadBalancerAttributes", expected)
