"""The reference stack's application logging: the edge ALB's and CloudFront's access logs, the app log groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.stack.desired import MIN_LOG_RETENTION_DAYS, TOPIC_TARGET_ID, Bucket, LogGroup, Rule, Target

VPC_CIDR = "10.250.0.0/16"
SUBNET_CIDRS = ("10.250.0.0/24", "10.250.1.0/24")  # an ALB needs subnets in two Availability Zones
ORIGIN_ID = "edge-alb"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # the AWS managed cache policy "CachingDisabled"
ECS_IMAGE = "public.ecr.aws/nginx/nginx:stable"
# CloudTrail's names for the calls that switch application logging off or shorten what it keeps.
ALB_TAMPERING = ("ModifyLoadBalancerAttributes",)
DISTRIBUTION_TAMPERING = ("UpdateDistribution",)
LOG_GROUP_DELETION = ("DeleteLogGroup",)
LOG_RETENTION_CHANGE = ("PutRetentionPolicy",)
# The ELB account that writes access logs in Regions opened before August 2022 (later ones use a service principal).
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "af-south-1": "098369216593", "ap-east-1": "754344448648",
    "ap-south-1": "718504428378", "ap-northeast-1": "582318560864", "ap-northeast-2": "600734575887",
    "ap-northeast-3": "383597477331", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "ap-southeast-3": "589379963580", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-west-3": "009996457667",
    "eu-south-1": "635631232127", "eu-north-1": "897822967062", "me-south-1": "076674570225",
    "sa-east-1": "507241528517", "us-gov-west-1": "048591011584", "us-gov-east-1": "190560391635",
    "cn-north-1": "638102146993", "cn-northwest-1": "037604701340",
}
ELB_LOG_DELIVERY = "logdelivery.elasticloadbalancing.amazonaws.com"


@dataclass(frozen=True)
class EdgeVpc:
    """The VPC an internet-facing ALB lives in: two public subnets, an internet gateway, a default route to it."""

    name: str
    cidr: str
    subnets: tuple[tuple[str, str], ...]  # (Name tag, CIDR), one per Availability Zone in order


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    arn_prefix: str  # every ARN a load balancer of this name can have starts with it (the suffix is AWS's id)
    logs_bucket: str
    logs_prefix: str

    def access_log_attributes(self) -> dict[str, str]:
        """The attributes that keep access logs on, as DescribeLoadBalancerAttributes lists them."""
        return {"access_logs.s3.enabled": "true", "access_logs.s3.bucket": self.logs_bucket,
                "access_logs.s3.prefix": self.logs_prefix}


@dataclass(frozen=True)
class Distribution:
    comment: str  # finds the distribution: CloudFront assigns its id, and CloudTrail hides the comment
    logs_bucket: str
    logs_prefix: str

    def logging(self) -> dict[str, Any]:
        """DistributionConfig.Logging: standard (legacy) logs to the bucket, which CloudFront names by its S3 domain."""
        return {"Enabled": True, "IncludeCookies": False, "Bucket": f"{self.logs_bucket}.s3.amazonaws.com",
                "Prefix": self.logs_prefix}

    def config(self, origin_domain: str, caller_reference: str) -> dict[str, Any]:
        """CreateDistribution's DistributionConfig: the edge ALB behind it, uncached, logged."""
        return {
            "CallerReference": caller_reference,
            "Comment": self.comment,
            "Enabled": True,
            "PriceClass": "PriceClass_100",
            "Origins": {"Quantity": 1, "Items": [{
                "Id": ORIGIN_ID, "DomainName": origin_domain,
                "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "http-only"}}]},
            "DefaultCacheBehavior": {"TargetOriginId": ORIGIN_ID, "ViewerProtocolPolicy": "redirect-to-https",
                                     "CachePolicyId": CACHING_DISABLED},
            "Logging": self.logging(),
        }


@dataclass(frozen=True)
class EcsApp:
    """A cluster and a task definition whose container logs through the awslogs driver (no task runs)."""

    cluster: str
    family: str
    container: str
    image: str
    log_group: str
    region: str

    def container_definition(self) -> dict[str, Any]:
        # EC2 compatibility: the instance role ships the logs, so no task execution role (and no IAM change) is needed.
        return {"name": self.container, "image": self.image, "memory": 128, "essential": True,
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": self.log_group, "awslogs-region": self.region,
                    "awslogs-stream-prefix": self.container}}}


@dataclass(frozen=True)
class AppLogs:
    """Everything the application-logging part owns; the rule needs the distribution id CloudFront assigns."""

    vpc: EdgeVpc
    alb: LoadBalancer
    alb_logs_bucket: Bucket
    distribution: Distribution
    cf_logs_bucket: Bucket  # ACLs, not a policy, let CloudFront write: its policy is empty
    cf_logs_ownership: str
    ecs: EcsApp
    ecs_log_group: LogGroup
    lambda_log_groups: tuple[LogGroup, ...]  # the stack's functions' groups: Lambda creates them never expiring
    rule_name: str
    rule_arn: str
    targets: tuple[Target, ...]  # none when detection is sabotaged

    @property
    def log_groups(self) -> tuple[LogGroup, ...]:
        """The application log groups: the ECS application's first, then the functions'."""
        return (self.ecs_log_group, *self.lambda_log_groups)

    def rule(self, distribution_id: str | None) -> Rule:
        """The detection rule; the CloudFront clause needs the id CloudFront gave the distribution."""
        return Rule(self.rule_name, self.rule_arn, "default",
                    f"Gameday: application logging switched off or shortened ({self.alb.name}, "
                    f"{self.distribution.comment}, {len(self.log_groups)} log groups)",
                    self.pattern(distribution_id), "ENABLED", self.targets)

    def pattern(self, distribution_id: str | None) -> dict[str, Any]:
        groups = [g.name for g in self.log_groups]
        clauses: list[dict[str, Any]] = [
            # Every attribute change of the edge ALB, not only access_logs.s3.enabled=false: pointing the logs at
            # another bucket or prefix blinds it too. (EventBridge matches a list of objects' keys and values
            # independently, not pair by pair, and the embedded matcher does not descend into such lists at all.)
            {"source": ["aws.elasticloadbalancing"],
             "detail": {"eventName": list(ALB_TAMPERING),
                        "requestParameters": {"loadBalancerArn": [{"prefix": self.alb.arn_prefix}]}}},
            {"source": ["aws.logs"],
             "detail": {"eventName": list(LOG_GROUP_DELETION), "requestParameters": {"logGroupName": groups}}},
            {"source": ["aws.logs"],
             "detail": {"eventName": list(LOG_RETENTION_CHANGE),
                        "requestParameters": {"logGroupName": groups,
                                              "retentionInDays": [{"numeric": ["<", MIN_LOG_RETENTION_DAYS]}]}}},
        ]
        if distribution_id:
            # UpdateDistribution's record carries the whole new config (its comment hidden): logging switched off,
            # or sent to another bucket, on this distribution. Known limitation: CloudFront is global and its
            # records reach EventBridge in us-east-1 only, so a stack in another Region never sees these.
            for logging in ({"enabled": [False]},
                            {"bucket": [{"anything-but": [self.distribution.logging()["Bucket"]]}]}):
                clauses.append({"source": ["aws.cloudfront"],
                                "detail": {"eventName": list(DISTRIBUTION_TAMPERING),
                                           "requestParameters": {"id": [distribution_id],
                                                                 "distributionConfig": {"logging": logging}}}})
        return {"detail-type": ["AWS API Call via CloudTrail"], "$or": clauses}

    def outputs(self) -> dict[str, Any]:
        """The StackOutputs fields known before deploying (the ALB's ARN and the distribution's id are not)."""
        return {"alb_logs_bucket": self.alb_logs_bucket.name, "cf_logs_bucket": self.cf_logs_bucket.name,
                "app_log_groups": [g.name for g in self.log_groups], "app_logging_rule_name": self.rule_name}


def desired(*, account_id: str, region: str, prefix: str, partition: str, sabotage: str | None, topic_arn: str,
            function_names: tuple[str, ...]) -> AppLogs:
    """The application-logging part for one account and region; `function_names` are the functions deployed."""
    def arn(service: str, resource: str) -> str:
        return f"arn:{partition}:{service}:{region}:{account_id}:{resource}"

    name = f"{prefix}-edge"
    alb_bucket = f"{prefix}-alb-logs-{account_id}-{region}"
    cf_bucket = f"{prefix}-cf-logs-{account_id}"
    for bucket in (alb_bucket, cf_bucket):
        if len(bucket) > 63:
            raise ValueError(f"bucket name {bucket!r} is longer than S3's 63 characters: use a shorter prefix")
    ecs_group = f"/ecs/{prefix}-app"
    rule_name = f"{prefix}-app-logging"

    def group(group_name: str) -> LogGroup:
        return LogGroup(group_name, arn("logs", f"log-group:{group_name}"), MIN_LOG_RETENTION_DAYS)

    return AppLogs(
        vpc=EdgeVpc(name, VPC_CIDR, tuple((f"{name}-{zone}", cidr) for zone, cidr in zip("ab", SUBNET_CIDRS))),
        alb=LoadBalancer(name, arn("elasticloadbalancing", f"loadbalancer/app/{name}/"), alb_bucket, ""),
        alb_logs_bucket=Bucket(alb_bucket, f"arn:{partition}:s3:::{alb_bucket}",
                               alb_logs_policy(alb_bucket, account_id, region, partition)),
        distribution=Distribution(name, cf_bucket, ""),
        cf_logs_bucket=Bucket(cf_bucket, f"arn:{partition}:s3:::{cf_bucket}", {}),
        cf_logs_ownership="BucketOwnerPreferred",  # CloudFront's standard logs need ACLs, off by default since 2023
        ecs=EcsApp(f"{prefix}-app", f"{prefix}-app", "app", ECS_IMAGE, ecs_group, region),
        ecs_log_group=group(ecs_group),
        lambda_log_groups=tuple(group(f"/aws/lambda/{fn}") for fn in function_names),
        rule_name=rule_name,
        rule_arn=arn("events", f"rule/{rule_name}"),
        targets=() if sabotage == "detection" else (Target(TOPIC_TARGET_ID, topic_arn),),
    )


def alb_logs_policy(bucket: str, account_id: str, region: str, partition: str) -> dict[str, Any]:
    """The documented ELB access-log bucket policy: the Region's ELB account where it has one, else the service."""
    elb_account = ELB_LOG_ACCOUNTS.get(region)
    principal = {"AWS": f"arn:{partition}:iam::{elb_account}:root"} if elb_account else {"Service": ELB_LOG_DELIVERY}
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AWSElbAccessLogsWrite",
            "Effect": "Allow",
            "Principal": principal,
            "Action": "s3:PutObject",
            "Resource": f"arn:{partition}:s3:::{bucket}/AWSLogs/{account_id}/*",
        }],
    }
