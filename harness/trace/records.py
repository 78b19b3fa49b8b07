"""The tampering record each CIS control exists to catch, real-shaped (the canary writes one)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from harness.errors import ConfigError
from harness.stack.desired import CIS_CONTROLS, StackOutputs

CANARY_STREAM = "gameday-canary"
CANARY_USER = "gameday-canary"
CANARY_AGENT = "gameday-canary/1.0 (synthetic record written by `gameday trace --canary`)"
# Streams Gameday writes itself: they must not pass for CloudTrail's own delivery.
OWN_STREAMS = (CANARY_STREAM, "gameday-synthetic-records")


# control -> (eventSource, eventName, fields); the rest of the record is what every real record has.
_TAMPERING = {
    "4.1": ("ec2.amazonaws.com", "RunInstances", {
        "errorCode": "Client.UnauthorizedOperation",
        "errorMessage": "You are not authorized to perform this operation.",
        "requestParameters": {"instancesSet": {"items": [{"imageId": "ami-0gamedaycanary", "minCount": 1,
                                                           "maxCount": 1}]}, "instanceType": "t3.micro"}}),
    "4.2": ("signin.amazonaws.com", "ConsoleLogin", {
        "eventType": "AwsConsoleSignIn", "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                                "MFAUsed": "No"}}),
    "4.3": ("iam.amazonaws.com", "CreateAccessKey", {"root": True}),
    "4.4": ("iam.amazonaws.com", "PutUserPolicy", {"requestParameters": {
        "userName": CANARY_USER, "policyName": "gameday-canary", "policyDocument": "{}"}}),
    "4.5": ("cloudtrail.amazonaws.com", "StopLogging", {"requestParameters": {"name": "gameday-canary-trail"}}),
    "4.6": ("signin.amazonaws.com", "ConsoleLogin", {
        "eventType": "AwsConsoleSignIn", "errorMessage": "Failed authentication",
        "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                                "MFAUsed": "No"}}),
    "4.7": ("kms.amazonaws.com", "DisableKey", {"requestParameters": {
        "keyId": "00000000-0000-4000-8000-00000ca9a71e"}}),
    "4.8": ("s3.amazonaws.com", "PutBucketPolicy", {"requestParameters": {
        "bucketName": "gameday-canary-bucket", "Host": "gameday-canary-bucket.s3.amazonaws.com", "policy": ""}}),
    "4.9": ("config.amazonaws.com", "StopConfigurationRecorder", {"requestParameters": {
        "configurationRecorderName": "gameday-canary"}}),
    "4.10": ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", {"requestParameters": {
        "groupId": "sg-0gamedaycanary", "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
             "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]}}}),
    "4.11": ("ec2.amazonaws.com", "CreateNetworkAclEntry", {"requestParameters": {
        "networkAclId": "acl-0gamedaycanary", "ruleNumber": 100, "egress": False, "ruleAction": "allow",
        "icmpTypeCode": {}, "portRange": {"from": 22, "to": 22}, "aclProtocol": "6", "cidrBlock": "0.0.0.0/0"}}),
    "4.12": ("ec2.amazonaws.com", "CreateInternetGateway", {"requestParameters": {}}),
    "4.13": ("ec2.amazonaws.com", "CreateRoute", {"requestParameters": {
        "routeTableId": "rtb-0gamedaycanary", "destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-0gamedaycanary"}}),
    "4.14": ("ec2.amazonaws.com", "ModifyVpcAttribute", {"requestParameters": {
        "vpcId": "vpc-0gamedaycanary", "enableDnsHostnames": {"value": True}}}),
    "4.15": ("organizations.amazonaws.com", "CreateOrganizationalUnit", {"requestParameters": {
        "parentId": "r-gmdy", "name": "gameday-canary"}}),
}
CONTROL_IDS = tuple(c["id"] for c in CIS_CONTROLS["controls"])


def check_control(control: str, stack: StackOutputs | None = None) -> None:
    """ConfigError (one line) unless the control is a CIS monitoring control the stack monitors."""
    if control not in CONTROL_IDS:
        raise ConfigError(f"unknown control {control!r}; choose one of {CONTROL_IDS[0]}-{CONTROL_IDS[-1]} "
                          f"(CIS monitoring controls)")
    if stack is not None and (control not in stack.alarm_names or control not in stack.metric_filter_names):
        raise ConfigError(f"the stack names no alarm or metric filter for control {control}; "
                          f"add it to alarm_names and metric_filter_names in the stack file")


def sample_record(control: str, *, account_id: str, region: str, canary: bool = False) -> dict:
    """A CloudTrail record shaped like a real one (tests/fixtures/cloudtrail) for the call the control catches."""
    source, name, fields = _TAMPERING[control]
    user = CANARY_USER if canary else "gameday-trace"
    identity = {"type": "IAMUser", "principalId": "AIDAGAMEDAYCANARY0001",
                "arn": f"arn:aws:iam::{account_id}:user/{user}", "accountId": account_id,
                "accessKeyId": "AKIAGAMEDAYCANARY001", "userName": user}
    if fields.get("root"):
        identity = {"type": "Root", "principalId": account_id, "arn": f"arn:aws:iam::{account_id}:root",
                    "accountId": account_id, "accessKeyId": "AKIAGAMEDAYCANARY001"}
    record = {
        "eventVersion": "1.10", "userIdentity": identity,
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source, "eventName": name, "awsRegion": region, "sourceIPAddress": "192.0.2.10",
        "userAgent": CANARY_AGENT if canary else "gameday-trace", "requestParameters": None,
        "responseElements": None, "requestID": str(uuid.uuid4()), "eventID": str(uuid.uuid4()), "readOnly": False,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": account_id,
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"},
    }
    record.update({k: v for k, v in fields.items() if k != "root"})  # known keys keep their place
    return record
