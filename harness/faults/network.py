"""Faults on the network and compute: open a security group to the world, route to the internet, launch an instance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from harness.faults import Fault
from harness.probes import Probe
from harness.probes import network as probes

__all__ = ["open_ingress", "route_to_internet", "launch_instance"]

FAULT_TAG = "gameday-fault"  # tags what a fault created, so a revert in another process finds it
ANY_IPV4 = "0.0.0.0/0"
# Amazon Linux's current AMI, resolvable in every region (and in the emulator).
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
# The route fields naming a target, as DescribeRouteTables shows them and ReplaceRoute takes them.
ROUTE_TARGETS = ("GatewayId", "NatGatewayId", "TransitGatewayId", "NetworkInterfaceId", "VpcPeeringConnectionId",
                 "InstanceId", "EgressOnlyInternetGatewayId", "LocalGatewayId", "CarrierGatewayId")


def _token() -> str:
    return uuid.uuid4().hex[:12]


def _tags(resource_type: str, token: str) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": FAULT_TAG, "Value": token}]}]


@dataclass(frozen=True)
class OpenIngress(Fault):
    """AuthorizeSecurityGroupIngress opening a TCP port to the whole internet."""

    group_id: str
    port: int
    cidr: str = ANY_IPV4
    name = "network.open_ingress"
    iam_actions = ("ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress",
                   "ec2:RevokeSecurityGroupIngress")

    def describe(self) -> str:
        return f"AuthorizeSecurityGroupIngress tcp/{self.port} from {self.cidr} on {self.group_id}"

    def steady(self) -> Probe:
        return probes.no_world_ingress(self.group_id, self.port)

    def _permission(self) -> dict:
        ipv6 = ":" in self.cidr
        ranges = {"Ipv6Ranges": [{"CidrIpv6": self.cidr}]} if ipv6 else {"IpRanges": [{"CidrIp": self.cidr}]}
        return {"IpProtocol": "tcp", "FromPort": self.port, "ToPort": self.port, **ranges}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("ec2").authorize_security_group_ingress(GroupId=self.group_id, IpPermissions=[self._permission()])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Revoke exactly the permission granted; what else the group allows is left alone."""
        try:
            aws.client("ec2").revoke_security_group_ingress(GroupId=self.group_id,
                                                            IpPermissions=[self._permission()])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "InvalidPermission.NotFound":  # remediation revoked it already
                raise


@dataclass(frozen=True)
class RouteToInternet(Fault):
    """A new internet gateway attached to the VPC, and the route table's 0.0.0.0/0 sent to it."""

    route_table_id: str
    vpc_id: str
    token: str = field(default_factory=_token)
    name = "network.route_to_internet"
    iam_actions = ("ec2:DescribeRouteTables", "ec2:DescribeInternetGateways", "ec2:CreateInternetGateway",
                   "ec2:CreateTags", "ec2:AttachInternetGateway", "ec2:CreateRoute", "ec2:ReplaceRoute",
                   "ec2:DeleteRoute", "ec2:DetachInternetGateway", "ec2:DeleteInternetGateway")

    def describe(self) -> str:
        return f"route {ANY_IPV4} of {self.route_table_id} to a new internet gateway on {self.vpc_id}"

    def steady(self) -> Probe:
        return probes.no_internet_route(self.route_table_id)

    def snapshot(self, aws: Any) -> dict | None:
        """The table's current default route, if any (ReplaceRoute must put its target back)."""
        table = aws.client("ec2").describe_route_tables(RouteTableIds=[self.route_table_id])["RouteTables"][0]
        default = next((r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANY_IPV4), None)
        return {"default": None if default is None else {k: default[k] for k in ROUTE_TARGETS if default.get(k)}}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        ec2 = aws.client("ec2")
        igw = ec2.create_internet_gateway(TagSpecifications=_tags("internet-gateway", self.token))
        gateway = igw["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=self.vpc_id)
        route = {"RouteTableId": self.route_table_id, "DestinationCidrBlock": ANY_IPV4, "GatewayId": gateway}
        (ec2.replace_route if snapshot["default"] else ec2.create_route)(**route)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Put the default route back as it was, then detach and delete the gateway this fault made."""
        assert snapshot is not None
        ec2 = aws.client("ec2")
        gateways = [g["InternetGatewayId"] for g in ec2.describe_internet_gateways(
            Filters=[{"Name": f"tag:{FAULT_TAG}", "Values": [self.token]}])["InternetGateways"]]
        table = ec2.describe_route_tables(RouteTableIds=[self.route_table_id])["RouteTables"][0]
        current = next((r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANY_IPV4), None)
        ours = current is not None and current.get("GatewayId") in gateways
        if snapshot["default"] and (current is None or ours):
            verb = ec2.replace_route if current is not None else ec2.create_route
            verb(RouteTableId=self.route_table_id, DestinationCidrBlock=ANY_IPV4, **snapshot["default"])
        elif not snapshot["default"] and ours:
            ec2.delete_route(RouteTableId=self.route_table_id, DestinationCidrBlock=ANY_IPV4)
        for gateway in gateways:
            try:
                ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=self.vpc_id)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "Gateway.NotAttached":
                    raise
            ec2.delete_internet_gateway(InternetGatewayId=gateway)


@dataclass(frozen=True)
class LaunchInstance(Fault):
    """RunInstances of one instance (of a type or in a region the account does not expect)."""

    subnet_id: str
    instance_type: str
    allowed_types: tuple[str, ...]
    allowed_regions: tuple[str, ...]
    token: str = field(default_factory=_token)
    name = "network.launch_instance"
    iam_actions = ("ssm:GetParameter", "ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeInstances",
                   "ec2:TerminateInstances")

    def describe(self) -> str:
        return f"RunInstances of a {self.instance_type} in {self.subnet_id}"

    def steady(self) -> Probe:
        return probes.only_allowed_instances(self.allowed_types, self.allowed_regions)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        image = aws.client("ssm").get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
        aws.client("ec2").run_instances(ImageId=image, InstanceType=self.instance_type, SubnetId=self.subnet_id,
                                        MinCount=1, MaxCount=1, TagSpecifications=_tags("instance", self.token))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Terminate what this fault launched (found by its tag) unless remediation already did."""
        left = [i["InstanceId"] for i in probes.instances(aws, {"Name": f"tag:{FAULT_TAG}", "Values": [self.token]})]
        if left:
            aws.client("ec2").terminate_instances(InstanceIds=left)


def open_ingress(group_id: str, port: int, cidr: str = ANY_IPV4) -> OpenIngress:
    """The security group lets anyone on the internet reach `port`."""
    return OpenIngress(group_id=group_id, port=port, cidr=cidr)


def route_to_internet(route_table_id: str, vpc_id: str) -> RouteToInternet:
    """The route table sends all traffic to a new internet gateway."""
    return RouteToInternet(route_table_id=route_table_id, vpc_id=vpc_id)


def launch_instance(subnet_id: str, instance_type: str, *, allowed_types: Any, allowed_regions: Any) -> LaunchInstance:
    """An instance of `instance_type` launched in the subnet; the account allows only the listed types and regions."""
    return LaunchInstance(subnet_id=subnet_id, instance_type=instance_type, allowed_types=tuple(allowed_types),
                          allowed_regions=tuple(allowed_regions))
