"""Converge and tear down the application-logging part: edge VPC, ALB, CloudFront, ECS app, log groups, rule."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from botocore.exceptions import ClientError

from harness.assume import ClientFactory
from harness.stack.applogs import AppLogs, Distribution, EcsApp, EdgeVpc, LoadBalancer
from harness.stack.deploy import (CREATED, UNCHANGED, UPDATED, DeployError, DeployReport, _code, _delete,
                                  _delete_bucket, _ensure_bucket, _ensure_log_group, _ensure_rule, _not_found,
                                  _paginate, _retrying, _while_iam_propagates)
from harness.stack.desired import DesiredState

# ELB writes a test file when access logs are switched on: a bucket policy put seconds ago can still be refused.
_BUCKET_POLICY_NOT_READY = (("InvalidConfigurationRequest", "Access Denied"),)
# A deleted ALB's network interfaces linger for minutes: its subnets and gateway cannot go before them.
_STILL_IN_USE = (("DependencyViolation", ""),)
NETWORK_RELEASE_DEADLINE = 600.0
NETWORK_RELEASE_WAIT = 10.0
ALB_WAITER = {"Delay": 10, "MaxAttempts": 60}
# A distribution must be disabled and deployed again before it can be deleted: AWS takes minutes to do so.
DISTRIBUTION_WAITER = {"Delay": 30, "MaxAttempts": 60}
TASK_DEFINITION_COMPATIBILITY = ["EC2"]
_DELETE_BATCH = 10  # DeleteTaskDefinitions takes at most ten revisions


def converge(aws: ClientFactory, desired: DesiredState, report: DeployReport) -> dict[str, Any]:
    """Create what is missing, put back what drifted; returns the ids AWS assigns (StackOutputs fields)."""
    app: AppLogs = desired.applogs
    s3 = aws("s3")
    policy_changed = _ensure_bucket(s3, app.alb_logs_bucket, desired, report, key="alb_logs_bucket")
    _ensure_bucket(s3, app.cf_logs_bucket, desired, report, key="cf_logs_bucket", ownership=app.cf_logs_ownership)
    vpc_id, subnets = _ensure_vpc(aws("ec2"), app.vpc, report)
    alb = _ensure_alb(aws("elbv2"), app.alb, vpc_id, subnets, report, policy_changed=policy_changed)
    distribution_id = _ensure_distribution(aws("cloudfront"), app.distribution, alb["DNSName"], report)
    for group in app.log_groups:
        _ensure_log_group(aws("logs"), group, report, key="app_log_groups")
    _ensure_ecs(aws("ecs"), app.ecs, report)
    _ensure_rule(aws("events"), app.rule(distribution_id), report, key="app_logging_rule")
    return {"alb_arn": alb["LoadBalancerArn"], "distribution_id": distribution_id}


def teardown(aws: ClientFactory, desired: DesiredState, report: DeployReport) -> None:
    """Remove what the part's names own, the rule first; the functions' log groups go with the functions."""
    app: AppLogs = desired.applogs
    ev, cf, elb, ecs, logs, ec2, s3 = (aws(s) for s in ("events", "cloudfront", "elbv2", "ecs", "logs", "ec2", "s3"))
    _delete(report, "app_logging_rule", f"DeleteRule {app.rule_name}", functools.partial(_remove_rule, ev, app),
            "ResourceNotFoundException")
    _delete(report, "distribution", f"DeleteDistribution {app.distribution.comment}",
            functools.partial(_remove_distributions, cf, app.distribution), "NoSuchDistribution")
    _delete(report, "alb", f"DeleteLoadBalancer {app.alb.name}", functools.partial(_remove_alb, elb, app.alb),
            "LoadBalancerNotFound")
    _delete(report, "ecs_task_definition", f"DeleteTaskDefinitions {app.ecs.family}",
            functools.partial(_remove_task_definitions, ecs, app.ecs), "ClientException")
    _delete(report, "ecs_cluster", f"DeleteCluster {app.ecs.cluster}", functools.partial(_remove_cluster, ecs, app.ecs),
            "ClusterNotFoundException")
    _delete(report, "app_log_groups", f"DeleteLogGroup {app.ecs_log_group.name}",
            functools.partial(logs.delete_log_group, logGroupName=app.ecs_log_group.name), "ResourceNotFoundException")
    _delete(report, "edge_vpc", f"DeleteVpc {app.vpc.name}", functools.partial(_remove_vpc, ec2, app.vpc),
            "InvalidVpcID.NotFound")
    for key, bucket in (("alb_logs_bucket", app.alb_logs_bucket), ("cf_logs_bucket", app.cf_logs_bucket)):
        _delete(report, key, f"DeleteBucket {bucket.name}", functools.partial(_delete_bucket, s3, bucket.name),
                "NoSuchBucket", "404")


def _ensure_vpc(ec2: Any, vpc: EdgeVpc, report: DeployReport, key: str = "edge_vpc") -> tuple[str, list[str]]:
    """The VPC, one subnet per Availability Zone, an internet gateway and the default route to it."""
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [vpc.name]}])["Vpcs"]
    if len(found) > 1:
        raise DeployError(f"{len(found)} VPCs are named {vpc.name}: the stack owns one")
    if found:
        vpc_id = found[0]["VpcId"]
        report.note(key, UNCHANGED)
    else:
        vpc_id = ec2.create_vpc(CidrBlock=vpc.cidr, TagSpecifications=_tags("vpc", vpc.name))["Vpc"]["VpcId"]
        ec2.get_waiter("vpc_available").wait(VpcIds=[vpc_id])
        report.note(key, CREATED, f"CreateVpc {vpc.name}")
    named = {_name(s): s["SubnetId"]
             for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]}
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]
                   if z.get("State") == "available" and z.get("ZoneType", "availability-zone") == "availability-zone")
    if len(zones) < len(vpc.subnets):
        raise DeployError(f"an ALB needs {len(vpc.subnets)} Availability Zones; this Region offers {len(zones)}")
    for (name, cidr), zone in zip(vpc.subnets, zones):
        if name not in named:
            named[name] = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
                                            TagSpecifications=_tags("subnet", name))["Subnet"]["SubnetId"]
            report.note(key, UPDATED, f"CreateSubnet {name} {zone}")
    gateways = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]
    if gateways:
        gateway = gateways[0]["InternetGatewayId"]
    else:
        # An internet-facing ALB needs one: AWS refuses to create it in a VPC without (moto does not check).
        gateway = ec2.create_internet_gateway(
            TagSpecifications=_tags("internet-gateway", vpc.name))["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
        report.note(key, UPDATED, f"CreateInternetGateway {vpc.name}")
    (main,) = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                 {"Name": "association.main", "Values": ["true"]}])["RouteTables"]
    default = [r for r in main["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    if not default:
        ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
        report.note(key, UPDATED, f"CreateRoute {vpc.name} 0.0.0.0/0")
    elif default[0].get("GatewayId") != gateway:
        ec2.replace_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
        report.note(key, UPDATED, f"ReplaceRoute {vpc.name} 0.0.0.0/0")
    return vpc_id, [named[name] for name, _ in vpc.subnets]


def _ensure_alb(elb: Any, alb: LoadBalancer, vpc_id: str, subnets: list[str], report: DeployReport, *,
                policy_changed: bool, key: str = "alb") -> dict[str, Any]:
    try:
        (found,) = elb.describe_load_balancers(Names=[alb.name])["LoadBalancers"]
    except ClientError as exc:
        if _code(exc) != "LoadBalancerNotFound":
            raise
        (found,) = elb.create_load_balancer(Name=alb.name, Subnets=subnets, Scheme="internet-facing",
                                            Type="application", IpAddressType="ipv4",
                                            Tags=[{"Key": "Name", "Value": alb.name}])["LoadBalancers"]
        report.note(key, CREATED, f"CreateLoadBalancer {alb.name}")
    else:
        if (found.get("Type"), found.get("Scheme"), found.get("VpcId")) != ("application", "internet-facing", vpc_id):
            raise DeployError(f"load balancer {alb.name} exists but is not an internet-facing ALB in {vpc_id}")
        report.note(key, UNCHANGED)
    stored = {a["Key"]: a["Value"]
              for a in elb.describe_load_balancer_attributes(LoadBalancerArn=found["LoadBalancerArn"])["Attributes"]}
    wanted = alb.access_log_attributes()
    drifted = [name for name, value in wanted.items() if stored.get(name) != value]
    if drifted:
        modify = functools.partial(elb.modify_load_balancer_attributes, LoadBalancerArn=found["LoadBalancerArn"],
                                   Attributes=[{"Key": k, "Value": v} for k, v in wanted.items()])
        _while_iam_propagates(modify, policy_changed, _BUCKET_POLICY_NOT_READY)
        report.note(key, UPDATED, f"ModifyLoadBalancerAttributes {alb.name} ({', '.join(drifted)})")
    return found


def _ensure_distribution(cf: Any, dist: Distribution, origin: str, report: DeployReport,
                         key: str = "distribution") -> str:
    found = _find_distributions(cf, dist)
    if len(found) > 1:
        raise DeployError(f"{len(found)} CloudFront distributions have the comment {dist.comment}: the stack owns one")
    if not found:
        # A fresh CallerReference: CloudFront may refuse one it saw before with another config.
        config = dist.config(origin, caller_reference=f"{dist.comment}-{uuid.uuid4().hex[:12]}")
        created = cf.create_distribution(DistributionConfig=config)["Distribution"]
        report.note(key, CREATED, f"CreateDistribution {dist.comment}")
        return created["Id"]
    distribution_id = found[0]["Id"]
    report.note(key, UNCHANGED)
    answer = cf.get_distribution_config(Id=distribution_id)
    config = answer["DistributionConfig"]
    wanted = dist.config(origin, caller_reference=config["CallerReference"])
    drifted = [name for name in ("Enabled", "Logging", "Origins")
               if _distribution_setting(config, name) != _distribution_setting(wanted, name)]
    if drifted:
        # UpdateDistribution replaces the whole config: start from the stored one, put back only what we own.
        config.update({name: wanted[name] for name in drifted})
        cf.update_distribution(Id=distribution_id, IfMatch=answer["ETag"], DistributionConfig=config)
        report.note(key, UPDATED, f"UpdateDistribution {dist.comment} ({', '.join(drifted)})")
    return distribution_id


def _distribution_setting(config: dict[str, Any], name: str) -> Any:
    if name == "Origins":  # what the stack decides of its origin; AWS fills in the rest
        return [(o["Id"], o["DomainName"]) for o in config["Origins"].get("Items", [])]
    if name == "Logging":
        logging = config.get("Logging") or {}
        return {k: logging.get(k, default) for k, default in
                (("Enabled", False), ("IncludeCookies", False), ("Bucket", ""), ("Prefix", ""))}
    return config.get(name)


def _ensure_ecs(ecs: Any, app: EcsApp, report: DeployReport) -> None:
    if any(c["status"] == "ACTIVE" for c in ecs.describe_clusters(clusters=[app.cluster])["clusters"]):
        report.note("ecs_cluster", UNCHANGED)
    else:
        ecs.create_cluster(clusterName=app.cluster)
        report.note("ecs_cluster", CREATED, f"CreateCluster {app.cluster}")
    try:
        current = ecs.describe_task_definition(taskDefinition=app.family)["taskDefinition"]
    except ClientError as exc:
        if _code(exc) != "ClientException":  # ECS's answer for a family without an active revision
            raise
        current = None
    wanted = app.container_definition()
    if current is not None and _same_container(current, wanted) \
            and current.get("requiresCompatibilities") == TASK_DEFINITION_COMPATIBILITY:
        report.note("ecs_task_definition", UNCHANGED)
        return
    revision = ecs.register_task_definition(family=app.family, requiresCompatibilities=TASK_DEFINITION_COMPATIBILITY,
                                            containerDefinitions=[wanted])["taskDefinition"]["revision"]
    report.note("ecs_task_definition", UPDATED if current else CREATED,
                f"RegisterTaskDefinition {app.family}:{revision}")


def _same_container(task_definition: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """The revision's only container says what we said (ECS adds defaults for what we left out)."""
    containers = task_definition.get("containerDefinitions") or []
    return len(containers) == 1 and all(containers[0].get(k) == v for k, v in wanted.items())


def _find_distributions(cf: Any, dist: Distribution) -> list[dict[str, Any]]:
    found = []
    for page in cf.get_paginator("list_distributions").paginate():
        found += [d for d in page["DistributionList"].get("Items", []) if d.get("Comment") == dist.comment]
    return found


def _remove_rule(ev: Any, app: AppLogs) -> None:
    ids = [t["Id"] for t in _paginate(ev, "list_targets_by_rule", "Targets", Rule=app.rule_name)]
    if ids:
        ev.remove_targets(Rule=app.rule_name, Ids=ids)
    ev.delete_rule(Name=app.rule_name)


def _remove_distributions(cf: Any, dist: Distribution) -> None:
    found = _find_distributions(cf, dist)
    if not found:
        raise _not_found("NoSuchDistribution")
    for summary in found:  # AWS refuses to delete an enabled distribution (moto does not): disable it first
        answer = cf.get_distribution_config(Id=summary["Id"])
        etag = answer["ETag"]
        if answer["DistributionConfig"]["Enabled"]:
            config = {**answer["DistributionConfig"], "Enabled": False}
            etag = cf.update_distribution(Id=summary["Id"], IfMatch=etag, DistributionConfig=config)["ETag"]
        cf.get_waiter("distribution_deployed").wait(Id=summary["Id"], WaiterConfig=DISTRIBUTION_WAITER)
        cf.delete_distribution(Id=summary["Id"], IfMatch=etag)


def _remove_alb(elb: Any, alb: LoadBalancer) -> None:
    (found,) = elb.describe_load_balancers(Names=[alb.name])["LoadBalancers"]
    elb.delete_load_balancer(LoadBalancerArn=found["LoadBalancerArn"])
    elb.get_waiter("load_balancers_deleted").wait(Names=[alb.name], WaiterConfig=ALB_WAITER)


def _remove_task_definitions(ecs: Any, app: EcsApp) -> None:
    def revisions(status: str) -> list[str]:
        listed = _paginate(ecs, "list_task_definitions", "taskDefinitionArns", familyPrefix=app.family, status=status)
        return [arn for arn in listed if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == app.family]

    active, inactive = revisions("ACTIVE"), revisions("INACTIVE")
    if not active and not inactive:
        raise _not_found("ClientException")
    for arn in active:
        ecs.deregister_task_definition(taskDefinition=arn)
    every = active + inactive
    for start in range(0, len(every), _DELETE_BATCH):
        ecs.delete_task_definitions(taskDefinitions=every[start:start + _DELETE_BATCH])


def _remove_cluster(ecs: Any, app: EcsApp) -> None:
    if not any(c["status"] == "ACTIVE" for c in ecs.describe_clusters(clusters=[app.cluster])["clusters"]):
        raise _not_found("ClusterNotFoundException")
    ecs.delete_cluster(cluster=app.cluster)


def _remove_vpc(ec2: Any, vpc: EdgeVpc) -> None:
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [vpc.name]}])["Vpcs"]
    if not found:
        raise _not_found("InvalidVpcID.NotFound")
    released = _retrying(_STILL_IN_USE, NETWORK_RELEASE_DEADLINE, NETWORK_RELEASE_WAIT)
    for vpc_id in (v["VpcId"] for v in found):
        for gateway in ec2.describe_internet_gateways(
                Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]:
            released(functools.partial(ec2.detach_internet_gateway, InternetGatewayId=gateway["InternetGatewayId"],
                                       VpcId=vpc_id))
            ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]:
            released(functools.partial(ec2.delete_subnet, SubnetId=subnet["SubnetId"]))
        released(functools.partial(ec2.delete_vpc, VpcId=vpc_id))


def _tags(kind: str, name: str) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]


def _name(resource: dict[str, Any]) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == "Name"), None)
