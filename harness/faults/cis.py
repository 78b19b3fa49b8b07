"""Faults that trip the CIS 4.x monitoring controls: the real call where it can be made, else a real-shaped record."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from harness.faults import Fault
from harness.probes import Probe, all_of
from harness.probes import cloudwatch as probes

__all__ = ["unauthorized_api_call", "console_login_without_mfa", "root_account_usage", "iam_policy_change",
           "cloudtrail_config_change", "console_login_failure", "kms_key_disabled", "bucket_policy_change",
           "config_change", "security_group_change", "nacl_change", "gateway_change", "route_table_change",
           "vpc_change", "organizations_change"]

SYNTHETIC_STREAM = "gameday-synthetic-records"


@dataclass(frozen=True)
class CisFault(Fault):
    """Base: the control's alarm must not already be in ALARM, so a transition can be seen."""

    alarm: str
    # AWS seconds to wait for the alarm to leave ALARM: its evaluation range is 3 periods of 300 s, plus margin.
    settle_within: ClassVar[float] = 1800.0

    def steady(self) -> Probe:
        return probes.alarm_armed(self.alarm)

    def precondition(self) -> Probe:
        return all_of(f"alarm {self.alarm} armed and not in ALARM", probes.alarm_armed(self.alarm),
                      probes.not_in_alarm(self.alarm))

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        raise NotImplementedError

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Most CIS triggers leave nothing behind worth undoing; those that do override this."""


@dataclass(frozen=True)
class SyntheticRecordFault(CisFault):
    """Write one real-shaped CloudTrail record to the trail's log group (no API call can produce it)."""

    log_group: str = ""

    def record(self, aws: Any) -> dict:
        raise NotImplementedError

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        write_record(aws, self.log_group, self.record(aws))


def write_record(aws: Any, log_group: str, record: dict) -> None:
    """PutLogEvents of a record into the trail's group, on its own stream so it never mixes with real ones."""
    logs = aws.client("logs")
    try:
        logs.create_log_stream(logGroupName=log_group, logStreamName=SYNTHETIC_STREAM)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    logs.put_log_events(logGroupName=log_group, logStreamName=SYNTHETIC_STREAM,
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(record)}])


def _base_record(aws: Any, *, event_name: str, source: str, identity: dict, event_type: str = "AwsApiCall") -> dict:
    """The keys every record has, shaped like the real ones in tests/fixtures/cloudtrail."""
    return {
        "eventVersion": "1.08", "userIdentity": identity,
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source, "eventName": event_name, "awsRegion": aws.region,
        "sourceIPAddress": "198.51.100.23", "userAgent": "gameday-synthetic", "requestParameters": None,
        "responseElements": None, "eventID": str(uuid.uuid4()), "readOnly": False, "eventType": event_type,
        "managementEvent": True, "recipientAccountId": aws.account_id, "eventCategory": "Management",
    }


def _user_identity(aws: Any, name: str = "gameday-probe-user") -> dict:
    return {"type": "IAMUser", "principalId": "AIDAGAMEDAYPROBE00001", "arn": f"arn:aws:iam::{aws.account_id}:user/{name}",
            "accountId": aws.account_id, "userName": name}


@dataclass(frozen=True)
class UnauthorizedApiCall(SyntheticRecordFault):
    """An API call refused with AccessDenied (CIS 4.1)."""

    name = "cis.unauthorized_api_call"
    iam_actions = ("logs:CreateLogStream", "logs:PutLogEvents")

    def record(self, aws: Any) -> dict:
        # moto evaluates no IAM policy, so no call is refused here: the denied call's record is written instead.
        rec = _base_record(aws, event_name="ListBuckets", source="s3.amazonaws.com", identity=_user_identity(aws))
        rec.update(errorCode="AccessDenied", errorMessage="Access Denied", readOnly=True)
        return rec


@dataclass(frozen=True)
class ConsoleLoginWithoutMfa(SyntheticRecordFault):
    """A console sign-in without MFA (CIS 4.2)."""

    name = "cis.console_login_without_mfa"
    iam_actions = ("logs:CreateLogStream", "logs:PutLogEvents")

    def record(self, aws: Any) -> dict:
        rec = _base_record(aws, event_name="ConsoleLogin", source="signin.amazonaws.com",
                           identity=_user_identity(aws), event_type="AwsConsoleSignIn")
        rec.update(additionalEventData={"LoginTo": "https://console.aws.amazon.com/console/home",
                                        "MobileVersion": "No", "MFAUsed": "No"},
                   responseElements={"ConsoleLogin": "Success"})
        return rec


@dataclass(frozen=True)
class RootAccountUsage(SyntheticRecordFault):
    """An API call made with the root user's credentials (CIS 4.3)."""

    name = "cis.root_account_usage"
    iam_actions = ("logs:CreateLogStream", "logs:PutLogEvents")

    def record(self, aws: Any) -> dict:
        identity = {"type": "Root", "principalId": aws.account_id, "arn": f"arn:aws:iam::{aws.account_id}:root",
                    "accountId": aws.account_id, "accessKeyId": "ASIAGAMEDAYROOT00001"}
        return _base_record(aws, event_name="CreateAccessKey", source="iam.amazonaws.com", identity=identity)


@dataclass(frozen=True)
class ConsoleLoginFailure(SyntheticRecordFault):
    """A failed console sign-in (CIS 4.6)."""

    name = "cis.console_login_failure"
    iam_actions = ("logs:CreateLogStream", "logs:PutLogEvents")

    def record(self, aws: Any) -> dict:
        rec = _base_record(aws, event_name="ConsoleLogin", source="signin.amazonaws.com",
                           identity=_user_identity(aws), event_type="AwsConsoleSignIn")
        rec.update(errorMessage="Failed authentication", responseElements={"ConsoleLogin": "Failure"},
                   additionalEventData={"LoginTo": "https://console.aws.amazon.com/console/home",
                                        "MobileVersion": "No", "MFAUsed": "No"})
        return rec


@dataclass(frozen=True)
class OrganizationsChange(SyntheticRecordFault):
    """An AWS Organizations change (CIS 4.15)."""

    name = "cis.organizations_change"
    iam_actions = ("logs:CreateLogStream", "logs:PutLogEvents")

    def record(self, aws: Any) -> dict:
        # Organizations calls come from the management account; a sandbox account cannot make them.
        rec = _base_record(aws, event_name="CreateOrganizationalUnit", source="organizations.amazonaws.com",
                           identity=_user_identity(aws))
        rec["requestParameters"] = {"parentId": "r-gmdy", "name": "gameday-probe-ou"}
        return rec


@dataclass(frozen=True)
class IamPolicyChange(CisFault):
    """CreatePolicy of an unused customer-managed policy (CIS 4.4); revert deletes it."""

    name = "cis.iam_policy_change"
    iam_actions = ("iam:CreatePolicy", "iam:DeletePolicy", "iam:ListPolicies")
    POLICY: ClassVar[str] = "gameday-cis-probe-policy"

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("iam").create_policy(PolicyName=self.POLICY, PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "none:None", "Resource": "*"}]}))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        arn = f"arn:aws:iam::{aws.account_id}:policy/{self.POLICY}"
        _ignore_missing(lambda: aws.client("iam").delete_policy(PolicyArn=arn), "NoSuchEntity")


@dataclass(frozen=True)
class CloudTrailConfigChange(CisFault):
    """CreateTrail of a second, single-region probe trail (CIS 4.5); revert deletes it."""

    bucket: str = ""
    name = "cis.cloudtrail_config_change"
    iam_actions = ("cloudtrail:CreateTrail", "cloudtrail:DeleteTrail")
    TRAIL: ClassVar[str] = "gameday-cis-probe-trail"

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("cloudtrail").create_trail(Name=self.TRAIL, S3BucketName=self.bucket, S3KeyPrefix="gameday-probe")

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        _ignore_missing(lambda: aws.client("cloudtrail").delete_trail(Name=self.TRAIL), "TrailNotFoundException")


@dataclass(frozen=True)
class KmsKeyDisabled(CisFault):
    """DisableKey on a probe customer-managed key (CIS 4.7); revert schedules its deletion."""

    name = "cis.kms_key_disabled"
    iam_actions = ("kms:CreateKey", "kms:DisableKey", "kms:ScheduleKeyDeletion")

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        kms = aws.client("kms")
        key = kms.create_key(Description="gameday CIS 4.7 probe key (safe to delete)")["KeyMetadata"]["KeyId"]
        kms.disable_key(KeyId=key)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        kms = aws.client("kms")
        for key in kms.list_keys()["Keys"]:
            meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if meta.get("Description", "").startswith("gameday CIS 4.7 probe") and meta["KeyState"] == "Disabled":
                kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)


@dataclass(frozen=True)
class BucketPolicyChange(CisFault):
    """PutBucketPolicy on a probe bucket (CIS 4.8); revert deletes the bucket."""

    name = "cis.bucket_policy_change"
    iam_actions = ("s3:CreateBucket", "s3:PutBucketPolicy", "s3:DeleteBucket")

    def bucket(self, aws: Any) -> str:
        return f"gameday-cis-probe-{aws.account_id}-{aws.region}"

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        s3, bucket = aws.client("s3"), self.bucket(aws)
        kwargs = {} if aws.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": aws.region}}
        _ignore_missing(lambda: s3.create_bucket(Bucket=bucket, **kwargs), "BucketAlreadyOwnedByYou")
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        _ignore_missing(lambda: aws.client("s3").delete_bucket(Bucket=self.bucket(aws)), "NoSuchBucket")


@dataclass(frozen=True)
class ConfigChange(CisFault):
    """PutConfigurationRecorder of a probe recorder (CIS 4.9); revert deletes it. Skips if one exists."""

    name = "cis.config_change"
    iam_actions = ("config:DescribeConfigurationRecorders", "config:PutConfigurationRecorder",
                   "config:DeleteConfigurationRecorder", "iam:PassRole")
    RECORDER: ClassVar[str] = "gameday-cis-probe"

    def snapshot(self, aws: Any) -> dict | None:
        recorders = aws.client("config").describe_configuration_recorders()["ConfigurationRecorders"]
        return {"existing": [r["name"] for r in recorders]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        existing = (snapshot or {}).get("existing") or []
        # One recorder per region: when the account has one, re-put it unchanged (the same CIS event).
        config = aws.client("config")
        if existing:
            recorder = config.describe_configuration_recorders(ConfigurationRecorderNames=existing[:1])
            config.put_configuration_recorder(ConfigurationRecorder=recorder["ConfigurationRecorders"][0])
            return
        config.put_configuration_recorder(ConfigurationRecorder={
            "name": self.RECORDER, "roleARN": f"arn:aws:iam::{aws.account_id}:role/gameday-cis-probe-config",
            "recordingGroup": {"allSupported": True}})

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        if (snapshot or {}).get("existing"):
            return
        _ignore_missing(lambda: aws.client("config").delete_configuration_recorder(
            ConfigurationRecorderName=self.RECORDER), "NoSuchConfigurationRecorderException")


def _default_vpc(aws: Any) -> str:
    vpcs = aws.client("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise LookupError(f"no default VPC in {aws.region}: the network CIS probes create their resources in it")
    return vpcs[0]["VpcId"]


@dataclass(frozen=True)
class Ec2ProbeFault(CisFault):
    """Create a throwaway EC2 network resource and delete it on revert (CIS 4.10-4.13)."""

    TAG: ClassVar[dict] = {"Key": "gameday", "Value": "cis-probe"}

    def snapshot(self, aws: Any) -> dict | None:
        # Looked up before the clock starts: the first EC2 call can be slow and is not part of the fault.
        return {"vpc": _default_vpc(aws)}

    def tags(self, kind: str) -> list[dict]:
        return [{"ResourceType": kind, "Tags": [self.TAG]}]


@dataclass(frozen=True)
class SecurityGroupChange(Ec2ProbeFault):
    """CreateSecurityGroup in the default VPC (CIS 4.10); revert deletes it."""

    name = "cis.security_group_change"
    iam_actions = ("ec2:DescribeVpcs", "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup",
                   "ec2:DescribeSecurityGroups", "ec2:CreateTags")

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("ec2").create_security_group(GroupName=f"gameday-cis-probe-{uuid.uuid4().hex[:8]}",
                                                Description="gameday CIS 4.10 probe", VpcId=_vpc(snapshot),
                                                TagSpecifications=self.tags("security-group"))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        ec2 = aws.client("ec2")
        for group in ec2.describe_security_groups(Filters=[{"Name": "tag:gameday", "Values": ["cis-probe"]}])[
                "SecurityGroups"]:
            ec2.delete_security_group(GroupId=group["GroupId"])


@dataclass(frozen=True)
class NaclChange(Ec2ProbeFault):
    """CreateNetworkAcl in the default VPC (CIS 4.11); revert deletes it."""

    name = "cis.nacl_change"
    iam_actions = ("ec2:DescribeVpcs", "ec2:CreateNetworkAcl", "ec2:DeleteNetworkAcl", "ec2:DescribeNetworkAcls",
                   "ec2:CreateTags")

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("ec2").create_network_acl(VpcId=_vpc(snapshot), TagSpecifications=self.tags("network-acl"))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        ec2 = aws.client("ec2")
        for acl in ec2.describe_network_acls(Filters=[{"Name": "tag:gameday", "Values": ["cis-probe"]}])["NetworkAcls"]:
            ec2.delete_network_acl(NetworkAclId=acl["NetworkAclId"])


@dataclass(frozen=True)
class GatewayChange(Ec2ProbeFault):
    """CreateInternetGateway, left detached (CIS 4.12); revert deletes it."""

    name = "cis.gateway_change"
    iam_actions = ("ec2:CreateInternetGateway", "ec2:DeleteInternetGateway", "ec2:DescribeInternetGateways",
                   "ec2:CreateTags")

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("ec2").create_internet_gateway(TagSpecifications=self.tags("internet-gateway"))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        ec2 = aws.client("ec2")
        for gw in ec2.describe_internet_gateways(Filters=[{"Name": "tag:gameday", "Values": ["cis-probe"]}])[
                "InternetGateways"]:
            ec2.delete_internet_gateway(InternetGatewayId=gw["InternetGatewayId"])


@dataclass(frozen=True)
class RouteTableChange(Ec2ProbeFault):
    """CreateRouteTable in the default VPC (CIS 4.13); revert deletes it."""

    name = "cis.route_table_change"
    iam_actions = ("ec2:DescribeVpcs", "ec2:CreateRouteTable", "ec2:DeleteRouteTable", "ec2:DescribeRouteTables",
                   "ec2:CreateTags")

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("ec2").create_route_table(VpcId=_vpc(snapshot), TagSpecifications=self.tags("route-table"))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        ec2 = aws.client("ec2")
        for table in ec2.describe_route_tables(Filters=[{"Name": "tag:gameday", "Values": ["cis-probe"]}])[
                "RouteTables"]:
            ec2.delete_route_table(RouteTableId=table["RouteTableId"])


@dataclass(frozen=True)
class VpcChange(CisFault):
    """ModifyVpcAttribute toggling DNS hostnames on the default VPC (CIS 4.14); revert sets it back."""

    name = "cis.vpc_change"
    iam_actions = ("ec2:DescribeVpcs", "ec2:DescribeVpcAttribute", "ec2:ModifyVpcAttribute")

    def snapshot(self, aws: Any) -> dict | None:
        vpc = _default_vpc(aws)
        value = aws.client("ec2").describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsHostnames")
        return {"vpc": vpc, "enableDnsHostnames": value["EnableDnsHostnames"]["Value"]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("ec2").modify_vpc_attribute(VpcId=snapshot["vpc"],
                                               EnableDnsHostnames={"Value": not snapshot["enableDnsHostnames"]})

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("ec2").modify_vpc_attribute(VpcId=snapshot["vpc"],
                                               EnableDnsHostnames={"Value": snapshot["enableDnsHostnames"]})


def _vpc(snapshot: dict | None) -> str:
    assert snapshot is not None, "EC2 probe faults look up the default VPC in snapshot()"
    return snapshot["vpc"]


def _ignore_missing(call: Any, code: str) -> None:
    try:
        call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] != code:
            raise


unauthorized_api_call = UnauthorizedApiCall
console_login_without_mfa = ConsoleLoginWithoutMfa
root_account_usage = RootAccountUsage
iam_policy_change = IamPolicyChange
cloudtrail_config_change = CloudTrailConfigChange
console_login_failure = ConsoleLoginFailure
kms_key_disabled = KmsKeyDisabled
bucket_policy_change = BucketPolicyChange
config_change = ConfigChange
security_group_change = SecurityGroupChange
nacl_change = NaclChange
gateway_change = GatewayChange
route_table_change = RouteTableChange
vpc_change = VpcChange
organizations_change = OrganizationsChange
